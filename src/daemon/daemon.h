#ifndef WST_DAEMON_H
#define WST_DAEMON_H

#include <stdbool.h>

struct wst_config;

struct daemon_opts {
	const char *config_path;	/* NULL: --url alone */
	const char *url_override;
	bool use_stdio;
	bool log_level_forced;		/* --log-level given: the config's level does not apply */
};

/* Runs the loop until a clean stop; takes ownership of cfg. Returns the exit code. */
int daemon_run(const struct wst_config *cfg, const struct daemon_opts *opts);

#endif

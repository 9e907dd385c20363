#ifndef WST_CONFIG_H
#define WST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define WST_DEFAULT_CONFIG "/etc/wstether/wstether.conf"

/* Parsed configuration: built once by config_load and never written after. */
struct wst_config {
	char *path;		/* file it was read from; NULL with --url alone */

	char *url;
	unsigned connect_timeout_s;
	size_t max_message_bytes;
	unsigned drain_timeout_s;

	char *ca_file;
	char *server_name;	/* "" = the URL's host */

	unsigned ping_interval_s;
	unsigned pong_timeout_s;

	unsigned backoff_initial_ms;
	unsigned backoff_max_ms;
	double backoff_multiplier;
	double backoff_jitter;
	unsigned backoff_reset_after_s;

	size_t queue_max_messages;
	size_t queue_max_bytes;

	int log_level;
};

struct config_error {
	int status;		/* 64 (bad command line) or 78 (bad config) */
	char msg[1024];		/* "FILE:LINE: message" or "FILE: message" */
};

/*
 * Read path (NULL: no file, built-in defaults) and apply url_override
 * (NULL: none). Returns a config to free with config_free, or NULL with err set.
 */
const struct wst_config *config_load(const char *path, const char *url_override,
				     struct config_error *err);
void config_free(const struct wst_config *cfg);

#endif

#ifndef WST_CONFIG_H
#define WST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WST_DEFAULT_CONFIG "/etc/wstether/wstether.conf"

/* What a change to a key needs when a reload swaps the config in. */
enum config_reload {
	RELOAD_UNSET,	  /* no class yet: a unit test fails on such a key */
	RELOAD_LIVE,	  /* applied to the running daemon at once */
	RELOAD_RECONNECT, /* applied by a new connection */
	RELOAD_RESTART,	  /* needs a restart; a reload warns */
};

/* Who applies a change to a RELOAD_LIVE key; each live key names one in the key table. */
enum config_apply {
	APPLY_NONE = 0,
	APPLY_AT_USE = 1 << 0,	   /* read from the running config at each use */
	APPLY_SUPERVISOR = 1 << 1, /* sup_reconfigure, which every reload runs */
	APPLY_QUEUE = 1 << 2,	   /* queue_set_limits */
	APPLY_LOG = 1 << 3,	   /* log_set_level, unless --log-level was given */
};

enum framing { FRAMING_LINES, FRAMING_LENGTH_PREFIXED };
enum overflow { OVERFLOW_DROP_OLDEST, OVERFLOW_REJECT };
enum compression { COMPRESSION_OFF, COMPRESSION_DEFLATE };
/* tls.min_version: TLS 1.3 is always offered; 1.2 too unless the minimum is 1.3 */
enum tls_min_version { TLS_MIN_1_2, TLS_MIN_1_3 };

struct wst_header {
	char *name;
	char *value;		/* or NULL, with value_file set */
	char *value_file;	/* re-read at every attempt */
	int line;		/* where it was configured, for messages */
};

/* A NULL-terminated list of strings. */
typedef char **strlist;

/* Parsed configuration: built once by config_load and never written after. */
struct wst_config {
	char *path;		/* file it was read from; NULL with --url alone */

	char *url;
	strlist fallback_urls;
	char *subprotocol;	/* "" = none */
	char *origin;		/* "" = none */
	struct wst_header *headers;
	size_t n_headers;
	char *user_agent;	/* "" = none; a User-Agent in headers wins */
	unsigned connect_timeout_s;
	size_t max_message_bytes;
	unsigned drain_timeout_s;
	unsigned max_age_s;	/* 0 = never rotate for age */
	char *hello;		/* "" = none: sent first on every connect */
	char *hello_file;	/* "" = none: one message per line, read at every attempt */
	char *proxy;		/* "" = from the environment, "direct", or a proxy URL */
	char *proxy_auth_file;	/* "" = none; user:password, re-read every attempt */
	int address_family;	/* AF_UNSPEC, AF_INET or AF_INET6 */
	char *bind_address;	/* "" = any */
	char *interface;	/* "" = any */
	enum compression compression;

	char *ca_file;
	char *server_name;	/* "" = the URL's host */
	char *cert_file;	/* "" = no client certificate */
	char *key_file;
	bool insecure;
	enum tls_min_version tls_min_version;
	bool session_resumption;	/* resume the last TLS session at the next attempt */

	unsigned ping_interval_s;
	unsigned pong_timeout_s;

	unsigned backoff_initial_ms;
	unsigned backoff_max_ms;
	double backoff_multiplier;
	double backoff_jitter;
	unsigned backoff_reset_after_s;

	size_t queue_max_messages;
	size_t queue_max_bytes;
	enum overflow queue_overflow;
	char *spool_dir;	/* "" = memory only */

	char *bridge_socket;	/* "" = no bridge socket */
	unsigned bridge_mode;
	enum framing bridge_framing;
	bool bridge_events;	/* event frames to length-prefixed clients */

	strlist exec_command;	/* empty = no handler */
	enum framing exec_framing;
	bool exec_events;

	char *control_socket;	/* "" = no control socket */

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

/* What changed from a to b, by the key table's reload classes. */
struct config_change {
	bool reconnect; /* a RELOAD_RECONNECT key changed */
	bool tls_identity; /* a tls.* key or link.url changed: no kept TLS session may be resumed */
	unsigned apply; /* enum config_apply: the appliers of the live keys that changed */
	char
	    restart_keys[256]; /* "bridge.socket, exec.command": RELOAD_RESTART keys that changed */
};
void config_diff(const struct wst_config *a, const struct wst_config *b, struct config_change *out);

/* The key table, for tests: "group.name" into buf, its reload class and applier. */
size_t config_key_count(void);
enum config_reload config_key_info(size_t i, char *buf, size_t len, enum config_apply *apply);

/* Number of URLs to rotate through: link.url then link.fallback_urls. */
size_t config_url_count(const struct wst_config *cfg);
const char *config_url(const struct wst_config *cfg, size_t i);

#endif

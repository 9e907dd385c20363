#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "log.h"

/* Kinds stored as one malloc'd string. */
static bool string_kind(enum kind k)
{
	return k == K_STR || k == K_FILE || k == K_URL || k == K_DIR || k == K_PROXY ||
	       k == K_ADDR || k == K_IFACE || k == K_SOCKET || k == K_TEXT || k == K_SECRET ||
	       k == K_CREDS || k == K_HDRVAL;
}

/* A live key names who applies a change to it (enum config_apply). */
#define LIVE(apply) (RELOAD_LIVE | (apply) << 8)

#define F(field) offsetof(struct wst_config, field)

/* In the unit's RuntimeDirectory; none without one (see set_default). */
#define RUNTIME_SOCKET "${RUNTIME_DIRECTORY}/wstether.ctl"

/* The tables: one row a key (the man page lists them so), one row an enumerated kind. */
/* clang-format off */
static const struct key keys[] = {
	{ "link", "url", K_URL, F(url), 0, 0, NULL, RELOAD_RECONNECT },
	{ "link", "fallback_urls", K_URLS, F(fallback_urls), 0, 0, NULL, RELOAD_RECONNECT },
	{ "link", "subprotocol", K_STR, F(subprotocol), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "origin", K_STR, F(origin), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "headers", K_HEADERS, F(headers), 0, 0, NULL, RELOAD_RECONNECT },
	{ "link", "user_agent", K_HDRVAL, F(user_agent), 0, 0, "wstether/" WST_VERSION, RELOAD_RECONNECT },
	{ "link", "connect_timeout_s", K_UINT, F(connect_timeout_s), 1, 3600, "15", RELOAD_RECONNECT },
	{ "link", "max_message_bytes", K_SIZE, F(max_message_bytes), 1, 256 << 20, "1048576", RELOAD_RECONNECT },
	{ "link", "drain_timeout_s", K_UINT, F(drain_timeout_s), 0, 3600, "5", LIVE(APPLY_AT_USE) },
	{ "link", "max_age_s", K_UINT, F(max_age_s), 0, 315360000, "0", LIVE(APPLY_AT_USE) },
	{ "link", "hello", K_STR, F(hello), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "hello_file", K_TEXT, F(hello_file), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "proxy", K_PROXY, F(proxy), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "proxy_auth_file", K_CREDS, F(proxy_auth_file), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "address_family", K_FAMILY, F(address_family), 0, 0, "any", RELOAD_RECONNECT },
	{ "link", "bind_address", K_ADDR, F(bind_address), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "interface", K_IFACE, F(interface), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "compression", K_COMPRESSION, F(compression), 0, 0, "off", RELOAD_RECONNECT },
	{ "tls", "ca_file", K_FILE, F(ca_file), 0, 0, "/etc/ssl/certs/ca-certificates.crt", RELOAD_RECONNECT },
	{ "tls", "cert_file", K_FILE, F(cert_file), 0, 0, "", RELOAD_RECONNECT },
	{ "tls", "key_file", K_FILE, F(key_file), 0, 0, "", RELOAD_RECONNECT },
	{ "tls", "server_name", K_STR, F(server_name), 0, 0, "", RELOAD_RECONNECT },
	{ "tls", "insecure", K_BOOL, F(insecure), 0, 0, "false", RELOAD_RECONNECT },
	{ "tls", "min_version", K_TLS_VERSION, F(tls_min_version), 0, 0, "1.2", RELOAD_RECONNECT },
	{ "tls", "session_resumption", K_BOOL, F(session_resumption), 0, 0, "true", LIVE(APPLY_AT_USE) },
	{ "keepalive", "ping_interval_s", K_UINT, F(ping_interval_s), 0, 86400, "20", RELOAD_RECONNECT },
	{ "keepalive", "pong_timeout_s", K_UINT, F(pong_timeout_s), 1, 3600, "10", RELOAD_RECONNECT },
	{ "backoff", "initial_ms", K_UINT, F(backoff_initial_ms), 1, 3600000, "500", LIVE(APPLY_SUPERVISOR) },
	{ "backoff", "max_ms", K_UINT, F(backoff_max_ms), 1, 86400000, "60000", LIVE(APPLY_SUPERVISOR) },
	{ "backoff", "multiplier", K_DOUBLE, F(backoff_multiplier), 1.0, 100.0, "2.0", LIVE(APPLY_SUPERVISOR) },
	{ "backoff", "jitter", K_DOUBLE, F(backoff_jitter), 0.0, 1.0, "0.5", LIVE(APPLY_SUPERVISOR) },
	{ "backoff", "reset_after_s", K_UINT, F(backoff_reset_after_s), 0, 86400, "30", LIVE(APPLY_SUPERVISOR) },
	{ "queue", "max_messages", K_SIZE, F(queue_max_messages), 1, 100000000, "10000", LIVE(APPLY_QUEUE) },
	{ "queue", "max_bytes", K_SIZE, F(queue_max_bytes), 1, (double)(4ULL << 30), "16777216", LIVE(APPLY_QUEUE) },
	{ "queue", "overflow", K_OVERFLOW, F(queue_overflow), 0, 0, "drop-oldest", LIVE(APPLY_QUEUE) },
	{ "queue", "spool_dir", K_DIR, F(spool_dir), 0, 0, "", RELOAD_RESTART },
	{ "bridge", "socket", K_SOCKET, F(bridge_socket), 0, 0, "", RELOAD_RESTART },
	{ "bridge", "mode", K_MODE, F(bridge_mode), 0, 0, "0660", RELOAD_RESTART },
	{ "bridge", "framing", K_FRAMING, F(bridge_framing), 0, 0, "lines", RELOAD_RESTART },
	{ "bridge", "events", K_BOOL, F(bridge_events), 0, 0, "false", RELOAD_RESTART },
	{ "exec", "command", K_ARGV, F(exec_command), 0, 0, NULL, RELOAD_RESTART },
	{ "exec", "framing", K_FRAMING, F(exec_framing), 0, 0, "lines", RELOAD_RESTART },
	{ "exec", "events", K_BOOL, F(exec_events), 0, 0, "false", RELOAD_RESTART },
	{ "control", "socket", K_SOCKET, F(control_socket), 0, 0, RUNTIME_SOCKET, RELOAD_RESTART },
	{ "log", "level", K_LEVEL, F(log_level), 0, 0, "info", LIVE(APPLY_LOG) },
};

/* The names of each enumerated kind, and what an unknown one is told. */
static const struct {
	enum kind kind;
	const char *names[3]; /* K_LEVEL: log_level_parse's */
	int values[3];
	const char *hint;
} enums[] = {
	{ K_FRAMING, { "lines", "length-prefixed" }, { FRAMING_LINES, FRAMING_LENGTH_PREFIXED },
	  "use \"lines\" or \"length-prefixed\"" },
	{ K_OVERFLOW, { "drop-oldest", "reject" }, { OVERFLOW_DROP_OLDEST, OVERFLOW_REJECT },
	  "use \"drop-oldest\" or \"reject\"" },
	{ K_COMPRESSION, { "off", "deflate" }, { COMPRESSION_OFF, COMPRESSION_DEFLATE },
	  "use \"off\" or \"deflate\"" },
	{ K_TLS_VERSION, { "1.2", "1.3" }, { TLS_MIN_1_2, TLS_MIN_1_3 },
	  "use \"1.2\" or \"1.3\"" },
	{ K_FAMILY, { "any", "ipv4", "ipv6" }, { AF_UNSPEC, AF_INET, AF_INET6 },
	  "use \"any\", \"ipv4\" or \"ipv6\"" },
	{ K_LEVEL, { NULL }, { 0 }, "use error, warning, notice, info or debug" },
};
/* clang-format on */

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

const char *config_enum_hint(enum kind kind)
{
	for (size_t i = 0; i < sizeof(enums) / sizeof(enums[0]); i++)
		if (enums[i].kind == kind)
			return enums[i].hint;
	return NULL;
}

int config_parse_enum(enum kind kind, const char *s)
{
	if (kind == K_LEVEL)
		return log_level_parse(s);
	for (size_t i = 0; i < sizeof(enums) / sizeof(enums[0]); i++)
		for (size_t j = 0; enums[i].kind == kind && j < 3 && enums[i].names[j]; j++)
			if (!strcmp(s, enums[i].names[j]))
				return enums[i].values[j];
	return -1;
}

int config_parse_mode(const char *s)
{
	char *end;
	long m;

	if (!*s)
		return -1;
	m = strtol(s, &end, 8);
	return *end || m < 0 || m > 0777 ? -1 : (int)m;
}

/*
 * "${CREDENTIALS_DIRECTORY}/key" for systemd's LoadCredential=, and
 * "${RUNTIME_DIRECTORY}/x.sock" for its RuntimeDirectory=. Unset, the file
 * cannot be found, and saying so beats reading "/key".
 */
char *config_expand(enum kind kind, const char *s, const char **why)
{
	const char *name = kind == K_SOCKET ? "RUNTIME_DIRECTORY" : "CREDENTIALS_DIRECTORY";
	const char *setter = kind == K_SOCKET ? "RuntimeDirectory=" : "LoadCredential=";
	static char msg[160];
	char var[40];
	const char *p, *dir;
	char *out;

	snprintf(var, sizeof(var), "${%s}", name);
	if (!(p = strstr(s, var)))
		return strdup(s);
	dir = getenv(name);
	if (!dir || !*dir) {
		snprintf(msg, sizeof(msg),
			 "uses %s, which is not set or empty (it is set by systemd's %s)", var,
			 setter);
		*why = msg;
		return NULL;
	}
	/* RuntimeDirectory=a b gives "/run/a:/run/b": the first is ours */
	out = malloc(strlen(s) - strlen(var) + strlen(dir) + 1);
	if (!out)
		return NULL;
	memcpy(out, s, (size_t)(p - s));
	out[p - s] = '\0';
	strncat(out, dir, strcspn(dir, ":"));
	strcat(out, p + strlen(var));
	return out;
}

/* Store a default given as text; these are trusted. */
static int set_default(struct wst_config *c, const struct key *k)
{
	void *f = field(c, k);

	switch (k->kind) {
	case K_URLS:
	case K_ARGV:
		return (*(strlist *)f = calloc(1, sizeof(char *))) ? 0 : -1;
	case K_HEADERS:
		return 0;
	default:
		break;
	}
	if (!k->dflt)
		return 0;
	if (k->kind == K_SOCKET) {
		const char *why = NULL;

		/* outside a unit with a RuntimeDirectory=, the default is no socket */
		*(char **)f = config_expand(K_SOCKET, k->dflt, &why);
		return *(char **)f || (why && (*(char **)f = strdup(""))) ? 0 : -1;
	}
	if (string_kind(k->kind))
		return (*(char **)f = strdup(k->dflt)) ? 0 : -1;
	switch (k->kind) {
	case K_UINT:
		*(unsigned *)f = (unsigned)strtoul(k->dflt, NULL, 10);
		return 0;
	case K_SIZE:
		*(size_t *)f = (size_t)strtoull(k->dflt, NULL, 10);
		return 0;
	case K_DOUBLE:
		*(double *)f = strtod(k->dflt, NULL);
		return 0;
	case K_BOOL:
		*(bool *)f = !strcmp(k->dflt, "true");
		return 0;
	case K_MODE:
		*(unsigned *)f = (unsigned)config_parse_mode(k->dflt);
		return 0;
	default:
		if (config_enum_hint(k->kind))
			*(int *)f = config_parse_enum(k->kind, k->dflt);
		return 0;
	}
}

int config_set_defaults(struct wst_config *c)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (set_default(c, &keys[i]) < 0)
			return -1;
	return 0;
}

void config_free_strlist(strlist l)
{
	if (!l)
		return;
	for (char **p = l; *p; p++)
		free(*p);
	free(l);
}

const struct key *config_find_key(const char *group, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].group, group) && (!name || !strcmp(keys[i].name, name)))
			return &keys[i];
	return NULL;
}

void config_free(const struct wst_config *cfg)
{
	struct wst_config *c = (struct wst_config *)cfg;

	if (!c)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		void *f = field(c, &keys[i]);

		if (string_kind(keys[i].kind))
			free(*(char **)f);
		else if (keys[i].kind == K_URLS || keys[i].kind == K_ARGV)
			config_free_strlist(*(strlist *)f);
	}
	for (size_t i = 0; i < c->n_headers; i++) {
		free(c->headers[i].name);
		free(c->headers[i].value);
		free(c->headers[i].value_file);
	}
	free(c->headers);
	free(c->path);
	free(c);
}

static bool str_equal(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

static bool strlist_equal(const strlist a, const strlist b)
{
	size_t i = 0;

	for (; a && b && a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return (!a || !a[i]) && (!b || !b[i]);
}

static bool headers_equal(const struct wst_config *a, const struct wst_config *b)
{
	if (a->n_headers != b->n_headers)
		return false;
	for (size_t i = 0; i < a->n_headers; i++)
		if (!str_equal(a->headers[i].name, b->headers[i].name) ||
		    !str_equal(a->headers[i].value, b->headers[i].value) ||
		    !str_equal(a->headers[i].value_file, b->headers[i].value_file))
			return false;
	return true;
}

static bool key_equal(const struct key *k, const struct wst_config *a, const struct wst_config *b)
{
	const void *fa = field((struct wst_config *)a, k), *fb = field((struct wst_config *)b, k);

	if (string_kind(k->kind))
		return str_equal(*(char *const *)fa, *(char *const *)fb);
	switch (k->kind) {
	case K_URLS:
	case K_ARGV:
		return strlist_equal(*(const strlist *)fa, *(const strlist *)fb);
	case K_HEADERS:
		return headers_equal(a, b);
	case K_UINT:
	case K_MODE:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case K_SIZE:
		return *(const size_t *)fa == *(const size_t *)fb;
	case K_DOUBLE:
		return *(const double *)fa == *(const double *)fb;
	case K_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	default:
		return *(const int *)fa == *(const int *)fb;
	}
}

void config_diff(const struct wst_config *a, const struct wst_config *b, struct config_change *out)
{
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];

		if (key_equal(k, a, b))
			continue;
		if (k->reload == RELOAD_RECONNECT)
			out->reconnect = true;
		if (!strcmp(k->group, "tls") ||
		    (!strcmp(k->group, "link") && !strcmp(k->name, "url")))
			out->tls_identity = true;
		out->apply |= k->reload >> 8;
		if (k->reload == RELOAD_RESTART && n < sizeof(out->restart_keys))
			n += (size_t)snprintf(out->restart_keys + n, sizeof(out->restart_keys) - n,
					      "%s%s.%s", n ? ", " : "", k->group, k->name);
	}
}

size_t config_key_count(void)
{
	return NKEYS;
}

enum config_reload config_key_info(size_t i, char *buf, size_t len, enum config_apply *apply)
{
	snprintf(buf, len, "%s.%s", keys[i].group, keys[i].name);
	if (apply)
		*apply = (enum config_apply)(keys[i].reload >> 8);
	return (enum config_reload)(keys[i].reload & 0xff);
}

size_t config_url_count(const struct wst_config *cfg)
{
	size_t n = 1;

	while (cfg->fallback_urls[n - 1])
		n++;
	return n;
}

const char *config_url(const struct wst_config *cfg, size_t i)
{
	return i == 0 ? cfg->url : cfg->fallback_urls[i - 1];
}

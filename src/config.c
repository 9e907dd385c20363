#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/socket.h>

#include <libconfig.h>

#include "config_file.h"
#include "log.h"
#include "readfile.h"
#include "sock.h"
#include "spool.h"
#include "proxy.h"
#include "url.h"
#include "utf8.h"

enum kind {
	K_STR,		/* string */
	K_FILE,		/* string; ${CREDENTIALS_DIRECTORY} expanded */
	K_URL,		/* string; a valid ws:// or wss:// URL */
	K_URLS,		/* array of URLs */
	K_ARGV,		/* array of strings, maybe empty */
	K_UINT,
	K_SIZE,
	K_DOUBLE,
	K_BOOL,
	K_LEVEL,	/* log level name */
	K_MODE,		/* octal permission string, "0660" */
	K_FRAMING,
	K_OVERFLOW,
	K_COMPRESSION,	/* "off" or "deflate" */
	K_HEADERS,	/* list of { name; value | value_file } */
	K_DIR,		/* string; "" or a directory we can create or write */
	K_PROXY,	/* string; "", "direct" or a proxy URL */
	K_FAMILY,	/* "any", "ipv4", "ipv6" */
	K_ADDR,		/* string; "" or an IP address */
	K_IFACE,	/* string; "" or a network interface name */
	K_SOCKET,	/* string; "" or a socket path; ${RUNTIME_DIRECTORY} expanded */
	K_TEXT,		/* K_FILE that must be a readable regular file at load */
	K_SECRET,	/* K_FILE read at every attempt: one missing at load is a warning */
	K_HDRVAL,	/* string; an HTTP header value: no line break */
};

/* Kinds stored as one malloc'd string. */
static bool string_kind(enum kind k)
{
	return k == K_STR || k == K_FILE || k == K_URL || k == K_DIR || k == K_PROXY ||
	       k == K_ADDR || k == K_IFACE || k == K_SOCKET || k == K_TEXT ||
	       k == K_SECRET || k == K_HDRVAL;
}

struct key {
	const char *group;
	const char *name;
	enum kind kind;
	size_t off;
	double min, max;	/* numeric range, inclusive */
	const char *dflt;	/* the default, as text: the man page documents this table */
	unsigned reload;	/* enum config_reload: what a change to it needs on SIGHUP */
};

/* A live key names who applies a change to it (enum config_apply). */
#define LIVE(apply) (RELOAD_LIVE | (apply) << 8)

#define F(field) offsetof(struct wst_config, field)

/* In the unit's RuntimeDirectory; none without one (see set_default). */
#define RUNTIME_SOCKET "${RUNTIME_DIRECTORY}/wstether.ctl"

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
	{ "link", "proxy_auth_file", K_SECRET, F(proxy_auth_file), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "address_family", K_FAMILY, F(address_family), 0, 0, "any", RELOAD_RECONNECT },
	{ "link", "bind_address", K_ADDR, F(bind_address), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "interface", K_IFACE, F(interface), 0, 0, "", RELOAD_RECONNECT },
	{ "link", "compression", K_COMPRESSION, F(compression), 0, 0, "off", RELOAD_RECONNECT },
	{ "tls", "ca_file", K_FILE, F(ca_file), 0, 0, "/etc/ssl/certs/ca-certificates.crt", RELOAD_RECONNECT },
	{ "tls", "cert_file", K_FILE, F(cert_file), 0, 0, "", RELOAD_RECONNECT },
	{ "tls", "key_file", K_FILE, F(key_file), 0, 0, "", RELOAD_RECONNECT },
	{ "tls", "server_name", K_STR, F(server_name), 0, 0, "", RELOAD_RECONNECT },
	{ "tls", "insecure", K_BOOL, F(insecure), 0, 0, "false", RELOAD_RECONNECT },
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

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static __attribute__((format(printf, 3, 4))) int set_error(struct config_error *err, int status,
							   const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static void *field(struct wst_config *c, const struct key *k)
{
	return (char *)c + k->off;
}

static int check_url(const char *url, char *why, size_t whylen)
{
	struct wst_url u;

	return url_parse(url, &u, why, whylen);
}

static int check_net(enum kind kind, const char *s, char *why, size_t whylen)
{
	unsigned char a[16];

	if (kind == K_IFACE) {
		if (strlen(s) >= IF_NAMESIZE || strpbrk(s, "/ \t"))
			return snprintf(why, whylen, "not an interface name"), -1;
		return 0;
	}
	if (*s && inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1)
		return snprintf(why, whylen, "not an IPv4 or IPv6 address"), -1;
	return 0;
}

static int parse_enum(enum kind kind, const char *s)
{
	if (kind == K_FRAMING)
		return !strcmp(s, "lines") ? FRAMING_LINES
		       : !strcmp(s, "length-prefixed") ? FRAMING_LENGTH_PREFIXED
						       : -1;
	if (kind == K_OVERFLOW)
		return !strcmp(s, "drop-oldest") ? OVERFLOW_DROP_OLDEST
		       : !strcmp(s, "reject") ? OVERFLOW_REJECT
					      : -1;
	if (kind == K_COMPRESSION)
		return !strcmp(s, "off") ? COMPRESSION_OFF
		       : !strcmp(s, "deflate") ? COMPRESSION_DEFLATE
					       : -1;
	if (kind == K_LEVEL)
		return log_level_parse(s);
	if (kind == K_FAMILY)
		return !strcmp(s, "any") ? AF_UNSPEC : !strcmp(s, "ipv4") ? AF_INET
					: !strcmp(s, "ipv6") ? AF_INET6 : -1;
	return -1;
}

static int parse_mode(const char *s)
{
	char *end;
	long m;

	if (!*s)
		return -1;
	m = strtol(s, &end, 8);
	return *end || m < 0 || m > 0777 ? -1 : (int)m;
}

static const char *enum_hint(enum kind kind)
{
	switch (kind) {
	case K_FRAMING: return "use \"lines\" or \"length-prefixed\"";
	case K_OVERFLOW: return "use \"drop-oldest\" or \"reject\"";
	case K_COMPRESSION: return "use \"off\" or \"deflate\"";
	case K_LEVEL: return "use error, warning, notice, info or debug";
	case K_FAMILY: return "use \"any\", \"ipv4\" or \"ipv6\"";
	default: return "";
	}
}

/*
 * "${CREDENTIALS_DIRECTORY}/key" for systemd's LoadCredential=, and
 * "${RUNTIME_DIRECTORY}/x.sock" for its RuntimeDirectory=. Unset, the file
 * cannot be found, and saying so beats reading "/key".
 */
static char *expand_var(const char *s, const char *name, const char *setter, const char **why)
{
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

static char *expand_file(const char *s, const char **why)
{
	return expand_var(s, "CREDENTIALS_DIRECTORY", "LoadCredential=", why);
}

static char *expand_socket(const char *s, const char **why)
{
	return expand_var(s, "RUNTIME_DIRECTORY", "RuntimeDirectory=", why);
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
		*(char **)f = expand_socket(k->dflt, &why);
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
		*(unsigned *)f = (unsigned)parse_mode(k->dflt);
		return 0;
	case K_LEVEL:
	case K_FRAMING:
	case K_OVERFLOW:
	case K_FAMILY:
	case K_COMPRESSION:
		*(int *)f = parse_enum(k->kind, k->dflt);
		return 0;
	default:
		return 0;
	}
}

static const char *type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a number";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "something else";
	}
}

struct ctx {
	const char *path;
	struct config_error *err;
	const struct conf_text *text; /* to name the file of a line, includes expanded */
};

static int type_error(const struct ctx *x, const config_setting_t *s, const char *name,
		      const char *want)
{
	return set_error(x->err, 78, "%s:%d: %s: expected %s, got %s", x->path,
			 (int)config_setting_source_line(s), name, want,
			 type_name(config_setting_type(s)));
}

static void free_strlist(strlist l)
{
	if (!l)
		return;
	for (char **p = l; *p; p++)
		free(*p);
	free(l);
}

static int set_strlist(const struct ctx *x, const struct key *k, const config_setting_t *s,
		       strlist *out)
{
	int n = config_setting_length(s), t = config_setting_type(s);
	char name[64], why[256];
	strlist l;

	snprintf(name, sizeof(name), "%s.%s", k->group, k->name);
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
		return type_error(x, s, name, "an array of strings, [ \"...\", ... ]");
	l = calloc((size_t)n + 1, sizeof(char *));
	if (!l)
		return set_error(x->err, 1, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v;

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			free_strlist(l);
			return type_error(x, e, name, "strings in the array");
		}
		v = config_setting_get_string(e);
		if (k->kind == K_URLS && check_url(v, why, sizeof(why)) < 0) {
			free_strlist(l);
			return set_error(x->err, 78, "%s:%d: %s: invalid URL '%s': %s", x->path,
					 (int)config_setting_source_line(e), name, v, why);
		}
		if (!(l[i] = strdup(v))) {
			free_strlist(l);
			return set_error(x->err, 1, "out of memory");
		}
	}
	free_strlist(*out);
	*out = l;
	return 0;
}

/* RFC 7230 token characters: a header name must be one. */
static int valid_header_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(*s > 32 && *s < 127) || strchr("()<>@,;:\\\"/[]?={}", *s))
			return 0;
	return 1;
}

/* What start would find about a path: an error, or a warning where only start can know. */
static int check_path(const struct ctx *x, const struct key *k, const char *name, int line,
		      const char *path)
{
	char why[512];
	struct stat st;
	int rc = 0;

	if (k->kind == K_SOCKET)
		rc = sock_check_path(path, why, sizeof(why));
	else if (k->kind == K_TEXT)
		rc = readfile_check(path, why, sizeof(why));
	/* a FIFO named by any file key would block the loop where it is read */
	else if ((k->kind == K_FILE || k->kind == K_SECRET) && stat(path, &st) == 0 &&
		 !S_ISREG(st.st_mode))
		rc = readfile_check(path, why, sizeof(why));
	/* a token may be written after we start (by a refresher): say so, do not refuse */
	else if (k->kind == K_SECRET && readfile_check(path, why, sizeof(why)) < 0) {
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "; it is read at every attempt, and each fails until it can be");
		rc = 1;
	}

	if (rc > 0) {
		int fl;
		const char *file = conf_text_where(x->text, line, &fl);

		log_msg(LOG_WARNING, "%s:%d: %s '%s': %s", file, fl, name, path, why);
	}
	if (rc < 0)
		return set_error(x->err, 78, "%s:%d: %s '%s': %s", x->path, line, name, path, why);
	return 0;
}

static const struct key value_file_key = { "link", "headers", K_SECRET, 0, 0, 0, NULL,
					   RELOAD_RECONNECT };

static int set_headers(const struct ctx *x, struct wst_config *c, const config_setting_t *s)
{
	int n = config_setting_length(s), t = config_setting_type(s);

	if (t != CONFIG_TYPE_LIST)
		return type_error(x, s, "link.headers",
				  "a list of groups, ( { name = \"...\"; value = \"...\"; } )");
	c->headers = calloc((size_t)n + 1, sizeof(*c->headers));
	if (!c->headers)
		return set_error(x->err, 1, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);
		struct wst_header *h = &c->headers[c->n_headers];
		int line = (int)config_setting_source_line(g);
		const char *name = NULL, *value = NULL, *vfile = NULL, *why = NULL;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return type_error(x, g, "link.headers", "a group { name; value; }");
		for (int j = 0; j < config_setting_length(g); j++) {
			const config_setting_t *e = config_setting_get_elem(g, (unsigned)j);
			const char *en = config_setting_name(e);

			if (strcmp(en, "name") && strcmp(en, "value") && strcmp(en, "value_file"))
				return set_error(x->err, 78,
						 "%s:%d: unknown key 'link.headers.%s' (use name, "
						 "value or value_file)",
						 x->path, (int)config_setting_source_line(e), en);
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return type_error(x, e, "link.headers", "a string");
			if (!strcmp(en, "name"))
				name = config_setting_get_string(e);
			else if (!strcmp(en, "value"))
				value = config_setting_get_string(e);
			else
				vfile = config_setting_get_string(e);
		}
		if (!name || !valid_header_name(name))
			return set_error(x->err, 78,
					 "%s:%d: link.headers: each header needs a valid name "
					 "(letters, digits, '-')",
					 x->path, line);
		if (!value == !vfile)
			return set_error(x->err, 78,
					 "%s:%d: link.headers: header '%s' needs exactly one of "
					 "value or value_file",
					 x->path, line, name);
		if (value && strpbrk(value, "\r\n"))
			return set_error(x->err, 78,
					 "%s:%d: link.headers: value of '%s' contains a line break",
					 x->path, line, name);
		h->line = line;
		c->n_headers++; /* counted now: config_free frees it whatever fails below */
		h->name = strdup(name);
		if (value)
			h->value = strdup(value);
		else if (!(h->value_file = expand_file(vfile, &why)) && why)
			return set_error(x->err, 78, "%s:%d: link.headers: value_file '%s' %s",
					 x->path, line, vfile, why);
		else if (h->value_file && check_path(x, &value_file_key, "link.headers value_file",
						     line, h->value_file) < 0)
			return -1;
		if (!h->name || (!h->value && !h->value_file))
			return set_error(x->err, 1, "out of memory");
	}
	return 0;
}

static int set_string(const struct ctx *x, const struct key *k, void *f, const char *name,
		      int line, const char *str)
{
	const char *ewhy = NULL;
	char why[256];

	switch (k->kind) {
	case K_LEVEL:
	case K_FRAMING:
	case K_OVERFLOW:
	case K_FAMILY:
	case K_COMPRESSION: {
		int e = parse_enum(k->kind, str);

		if (e < 0)
			return set_error(x->err, 78, "%s:%d: %s: unknown value '%s' (%s)", x->path,
					 line, name, str, enum_hint(k->kind));
		*(int *)f = e;
		return 0;
	}
	case K_MODE: {
		int m = parse_mode(str);

		if (m < 0)
			return set_error(x->err, 78, "%s:%d: %s: '%s' is not an octal mode like \"0660\"",
					 x->path, line, name, str);
		*(unsigned *)f = (unsigned)m;
		return 0;
	}
	case K_URL:
		if (check_url(str, why, sizeof(why)) < 0)
			return set_error(x->err, 78, "%s:%d: %s: invalid URL '%s': %s", x->path, line,
					 name, str, why);
		break;
	case K_DIR:
		if (*str && spool_check_dir(str, why, sizeof(why)) < 0)
			return set_error(x->err, 78, "%s:%d: %s '%s': %s", x->path, line, name, str,
					 why);
		break;
	case K_PROXY:
		/* a proxy URL may hold a password: never echo it */
		if (proxy_check_setting(str, why, sizeof(why)) < 0)
			return set_error(x->err, 78, "%s:%d: %s: %s", x->path, line, name, why);
		break;
	case K_HDRVAL:
		if (strpbrk(str, "\r\n"))
			return set_error(x->err, 78, "%s:%d: %s: contains a line break", x->path, line,
					 name);
		break;
	case K_ADDR:
	case K_IFACE:
		if (check_net(k->kind, str, why, sizeof(why)) < 0)
			return set_error(x->err, 78, "%s:%d: %s: '%s': %s", x->path, line, name, str,
					 why);
		break;
	default:
		break;
	}
	free(*(char **)f);
	if (k->kind == K_FILE || k->kind == K_TEXT || k->kind == K_SECRET)
		*(char **)f = expand_file(str, &ewhy);
	else if (k->kind == K_SOCKET)
		*(char **)f = expand_socket(str, &ewhy);
	else
		*(char **)f = strdup(str);
	if (!*(char **)f)
		return ewhy ? set_error(x->err, 78, "%s:%d: %s: '%s' %s", x->path, line, name, str,
					ewhy)
			    : set_error(x->err, 1, "out of memory");
	return **(char **)f ? check_path(x, k, name, line, *(char **)f) : 0;
}

static int set_from(const struct ctx *x, struct wst_config *c, const struct key *k,
		    const config_setting_t *s)
{
	int line = (int)config_setting_source_line(s), t = config_setting_type(s);
	void *f = field(c, k);
	char name[64];
	double v;

	snprintf(name, sizeof(name), "%s.%s", k->group, k->name);
	switch (k->kind) {
	case K_URLS:
	case K_ARGV:
		return set_strlist(x, k, s, (strlist *)f);
	case K_HEADERS:
		return set_headers(x, c, s);
	case K_BOOL:
		if (t != CONFIG_TYPE_BOOL)
			return type_error(x, s, name, "true or false");
		*(bool *)f = config_setting_get_bool(s);
		return 0;
	case K_UINT:
	case K_SIZE:
		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
			return type_error(x, s, name, "an integer");
		v = (double)config_setting_get_int64(s);
		break;
	case K_DOUBLE:
		if (t == CONFIG_TYPE_FLOAT)
			v = config_setting_get_float(s);
		else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
			v = (double)config_setting_get_int64(s);
		else
			return type_error(x, s, name, "a number");
		break;
	default:
		/* every other kind is a string */
		if (t != CONFIG_TYPE_STRING)
			return type_error(x, s, name, "a string");
		return set_string(x, k, f, name, line, config_setting_get_string(s));
	}
	if (v < k->min || v > k->max)
		return set_error(x->err, 78, "%s:%d: %s: %g is out of range (%g to %g)", x->path,
				 line, name, v, k->min, k->max);
	if (k->kind == K_UINT)
		*(unsigned *)f = (unsigned)v;
	else if (k->kind == K_SIZE)
		*(size_t *)f = (size_t)v;
	else
		*(double *)f = v;
	return 0;
}

static const struct key *find_key(const char *group, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].group, group) && (!name || !strcmp(keys[i].name, name)))
			return &keys[i];
	return NULL;
}

/*
 * Messages name "PATH:LINE" of the text libconfig read, includes expanded:
 * put the file and line that text came from in their place.
 */
static void relocate(const struct conf_text *t, const char *path, struct config_error *err)
{
	size_t plen = strlen(path), rlen;
	char *end, head[PATH_MAX + 16];
	const char *file;
	long line;
	int fl, hlen;

	if (strncmp(err->msg, path, plen) || err->msg[plen] != ':')
		return;
	line = strtol(err->msg + plen + 1, &end, 10);
	if (end == err->msg + plen + 1 || *end != ':' || line < 1 || line > INT_MAX)
		return;
	file = conf_text_where(t, (int)line, &fl);
	hlen = snprintf(head, sizeof(head), "%s:%d", file, fl);
	rlen = strlen(end);
	if (hlen < 0 || (size_t)hlen >= sizeof(head) || (size_t)hlen + rlen >= sizeof(err->msg))
		return;
	memmove(err->msg + hlen, end, rlen + 1);
	memcpy(err->msg, head, (size_t)hlen);
}

static int read_groups(const struct ctx *x, struct wst_config *c, config_setting_t *root)
{
	struct config_error *err = x->err;
	const char *path = x->path;

	for (int i = 0; i < config_setting_length(root); i++) {
		config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
		const char *gname = config_setting_name(g);
		int line = (int)config_setting_source_line(g);

		if (!find_key(gname, NULL))
			return set_error(err, 78, "%s:%d: unknown group '%s'", path, line, gname);
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return set_error(err, 78, "%s:%d: '%s' must be a group: %s = { ... };", path,
					 line, gname, gname);
		for (int j = 0; j < config_setting_length(g); j++) {
			config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
			const struct key *k = find_key(gname, config_setting_name(s));

			if (!k)
				return set_error(err, 78, "%s:%d: unknown key '%s.%s'", path,
						 (int)config_setting_source_line(s), gname,
						 config_setting_name(s));
			if (set_from(x, c, k, s) < 0)
				return -1;
		}
	}
	return 0;
}

static int read_file(struct wst_config *c, const char *path, struct config_error *err)
{
	struct conf_text t;
	struct ctx x = { path, err, &t };
	config_t cf;
	int rc = -1;

	if (conf_text_read(&t, path, err->msg, sizeof(err->msg)) < 0) {
		err->status = strcmp(err->msg, "out of memory") ? 78 : 1;
		conf_text_free(&t);
		return -1;
	}
	config_init(&cf);
	if (config_read_string(&cf, t.text) != CONFIG_TRUE)
		set_error(err, 78, "%s:%d: %s", path, config_error_line(&cf),
			  config_error_text(&cf));
	else
		rc = read_groups(&x, c, config_root_setting(&cf));
	if (rc < 0)
		relocate(&t, path, err);
	config_destroy(&cf);
	conf_text_free(&t);
	return rc;
}

static int validate_hello(const struct wst_config *c, const char *p, struct config_error *err)
{
	size_t n = strlen(c->hello);

	if (n && *c->hello_file)
		return set_error(err, 78, "%s: link.hello and link.hello_file: set one or neither", p);
	if (n > c->max_message_bytes)
		return set_error(err, 78,
				 "%s: link.hello (%zu bytes) is larger than link.max_message_bytes (%zu)",
				 p, n, c->max_message_bytes);
	if (!utf8_valid(c->hello, n))
		return set_error(err, 78, "%s: link.hello is not valid UTF-8 (it is sent as text)", p);
	return 0;
}

/* Rules that tie keys together, checked once everything is read. */
static int validate(const struct wst_config *c, struct config_error *err)
{
	const char *p = c->path ? c->path : "(defaults)";

	if (!c->url)
		return set_error(err, 78, "%s: link.url is not set (set it in the file, or pass --url)",
				 p);
	if (c->backoff_max_ms < c->backoff_initial_ms)
		return set_error(err, 78, "%s: backoff.max_ms (%u) is below backoff.initial_ms (%u)", p,
				 c->backoff_max_ms, c->backoff_initial_ms);
	if (!*c->cert_file != !*c->key_file)
		return set_error(err, 78,
				 "%s: tls.cert_file and tls.key_file go together: set both or neither",
				 p);
	if (c->queue_max_bytes < c->max_message_bytes)
		return set_error(err, 78,
				 "%s: queue.max_bytes (%zu) is below link.max_message_bytes (%zu): "
				 "a largest message could never be queued",
				 p, c->queue_max_bytes, c->max_message_bytes);
	if (validate_hello(c, p, err) < 0)
		return -1;
	if (c->bridge_events && c->bridge_framing != FRAMING_LENGTH_PREFIXED)
		return set_error(err, 78,
				 "%s: bridge.events needs bridge.framing = \"length-prefixed\" (event "
				 "frames have no form in lines)",
				 p);
	if (c->exec_events && c->exec_framing != FRAMING_LENGTH_PREFIXED)
		return set_error(err, 78,
				 "%s: exec.events needs exec.framing = \"length-prefixed\" (event "
				 "frames have no form in lines)",
				 p);
	if (*c->bind_address && c->address_family != AF_UNSPEC &&
	    (strchr(c->bind_address, ':') ? AF_INET6 : AF_INET) != c->address_family)
		return set_error(err, 78, "%s: link.bind_address '%s' is not of link.address_family",
				 p, c->bind_address);
	if (*c->bridge_socket && *c->control_socket &&
	    !strcmp(c->bridge_socket, c->control_socket))
		return set_error(err, 78, "%s: bridge.socket and control.socket are the same path",
				 p);
	return 0;
}

const struct wst_config *config_load(const char *path, const char *url_override,
				     struct config_error *err)
{
	struct wst_config *c = calloc(1, sizeof(*c));
	char why[256];

	if (!c) {
		set_error(err, 1, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < NKEYS; i++)
		if (set_default(c, &keys[i]) < 0)
			goto oom;
	if (path) {
		if (!(c->path = strdup(path)))
			goto oom;
		if (read_file(c, path, err) < 0)
			goto fail;
	}
	if (url_override) {
		if (check_url(url_override, why, sizeof(why)) < 0) {
			set_error(err, 64, "--url '%s': %s", url_override, why);
			goto fail;
		}
		free(c->url);
		if (!(c->url = strdup(url_override)))
			goto oom;
	}
	if (validate(c, err) < 0)
		goto fail;
	return c;
oom:
	set_error(err, 1, "out of memory");
fail:
	config_free(c);
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
			free_strlist(*(strlist *)f);
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
		if (!strcmp(k->group, "tls") || (!strcmp(k->group, "link") && !strcmp(k->name, "url")))
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

#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <libconfig.h>

#include "config_check.h"
#include "config_file.h"
#include "config_int.h"
#include "log.h"
#include "spool.h"
#include "proxy.h"
#include "url.h"
#include "utf8.h"

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

static const char *type_name(int t)
{
	static const char *const names[] = {
	    [CONFIG_TYPE_GROUP] = "a group",	[CONFIG_TYPE_INT] = "an integer",
	    [CONFIG_TYPE_INT64] = "an integer", [CONFIG_TYPE_FLOAT] = "a number",
	    [CONFIG_TYPE_STRING] = "a string",	[CONFIG_TYPE_BOOL] = "a boolean",
	    [CONFIG_TYPE_ARRAY] = "an array",	[CONFIG_TYPE_LIST] = "a list",
	};

	return t > 0 && (size_t)t < sizeof(names) / sizeof(names[0]) && names[t] ? names[t]
										 : "something else";
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

static int set_strlist(const struct ctx *x, const struct key *k, const config_setting_t *s,
		       strlist *out)
{
	int n = config_setting_length(s), t = config_setting_type(s);
	char name[64], why[256];
	strlist l;

	snprintf(name, sizeof(name), "%s.%s", k->group, k->name);
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
		return type_error(x, s, name, "an array of strings, [ \"...\", ... ]");
	/* in place at once: config_free frees what is filled in whatever fails below */
	config_free_strlist(*out);
	if (!(*out = l = calloc((size_t)n + 1, sizeof(char *))))
		return set_error(x->err, 1, "out of memory");
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v;

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return type_error(x, e, name, "strings in the array");
		v = config_setting_get_string(e);
		if (k->kind == K_URLS && check_url(v, why, sizeof(why)) < 0)
			return set_error(x->err, 78, "%s:%d: %s: invalid URL '%s': %s", x->path,
					 (int)config_setting_source_line(e), name, v, why);
		if (!(l[i] = strdup(v)))
			return set_error(x->err, 1, "out of memory");
	}
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
static int check_path(const struct ctx *x, enum kind kind, const char *name, int line,
		      const char *path)
{
	enum config_path use = kind == K_SOCKET	  ? CONFIG_PATH_SOCKET
			       : kind == K_TEXT	  ? CONFIG_PATH_TEXT
			       : kind == K_SECRET ? CONFIG_PATH_TOKEN
			       : kind == K_CREDS  ? CONFIG_PATH_CREDS
						  : CONFIG_PATH_FILE;
	char why[512];
	int rc = config_check_path(use, path, why, sizeof(why));

	if (rc > 0) {
		int fl;
		const char *file = conf_text_where(x->text, line, &fl);

		log_msg(LOG_WARNING, "%s:%d: %s '%s': %s", file, fl, name, path, why);
	}
	if (rc < 0)
		return set_error(x->err, 78, "%s:%d: %s '%s': %s", x->path, line, name, path, why);
	return 0;
}

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
		else if (!(h->value_file = config_expand(K_SECRET, vfile, &why)) && why)
			return set_error(x->err, 78, "%s:%d: link.headers: value_file '%s' %s",
					 x->path, line, vfile, why);
		else if (h->value_file && check_path(x, K_SECRET, "link.headers value_file", line,
						     h->value_file) < 0)
			return -1;
		if (!h->name || (!h->value && !h->value_file))
			return set_error(x->err, 1, "out of memory");
	}
	return 0;
}

static int set_string(const struct ctx *x, const struct key *k, void *f, const char *name, int line,
		      const char *str)
{
	const char *ewhy = NULL, *hint = config_enum_hint(k->kind);
	char why[256];

	if (hint) {
		int e = config_parse_enum(k->kind, str);

		if (e < 0)
			return set_error(x->err, 78, "%s:%d: %s: unknown value '%s' (%s)", x->path,
					 line, name, str, hint);
		*(int *)f = e;
		return 0;
	}
	switch (k->kind) {
	case K_MODE: {
		int m = config_parse_mode(str);

		if (m < 0)
			return set_error(x->err, 78,
					 "%s:%d: %s: '%s' is not an octal mode like \"0660\"",
					 x->path, line, name, str);
		*(unsigned *)f = (unsigned)m;
		return 0;
	}
	case K_URL:
		if (check_url(str, why, sizeof(why)) < 0)
			return set_error(x->err, 78, "%s:%d: %s: invalid URL '%s': %s", x->path,
					 line, name, str, why);
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
			return set_error(x->err, 78, "%s:%d: %s: contains a line break", x->path,
					 line, name);
		break;
	case K_ADDR:
	case K_IFACE:
		if (check_net(k->kind, str, why, sizeof(why)) < 0)
			return set_error(x->err, 78, "%s:%d: %s: '%s': %s", x->path, line, name,
					 str, why);
		break;
	default:
		break;
	}
	free(*(char **)f);
	if (k->kind == K_FILE || k->kind == K_TEXT || k->kind == K_SECRET || k->kind == K_CREDS ||
	    k->kind == K_SOCKET)
		*(char **)f = config_expand(k->kind, str, &ewhy);
	else /* not a path: nothing to check (a K_DIR had spool_check_dir above) */
		return (*(char **)f = strdup(str)) ? 0 : set_error(x->err, 1, "out of memory");
	if (!*(char **)f)
		return ewhy ? set_error(x->err, 78, "%s:%d: %s: '%s' %s", x->path, line, name, str,
					ewhy)
			    : set_error(x->err, 1, "out of memory");
	return **(char **)f ? check_path(x, k->kind, name, line, *(char **)f) : 0;
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

		if (!config_find_key(gname, NULL))
			return set_error(err, 78, "%s:%d: unknown group '%s'", path, line, gname);
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return set_error(err, 78, "%s:%d: '%s' must be a group: %s = { ... };",
					 path, line, gname, gname);
		for (int j = 0; j < config_setting_length(g); j++) {
			config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
			const struct key *k = config_find_key(gname, config_setting_name(s));

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
	struct ctx x = {path, err, &t};
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
		return set_error(err, 78, "%s: link.hello and link.hello_file: set one or neither",
				 p);
	if (n > c->max_message_bytes)
		return set_error(
		    err, 78,
		    "%s: link.hello (%zu bytes) is larger than link.max_message_bytes (%zu)", p, n,
		    c->max_message_bytes);
	if (!utf8_valid(c->hello, n))
		return set_error(err, 78, "%s: link.hello is not valid UTF-8 (it is sent as text)",
				 p);
	return 0;
}

/* Rules that tie keys together, checked once everything is read. */
static int validate(const struct wst_config *c, struct config_error *err)
{
	const char *p = c->path ? c->path : "(defaults)";

	if (!c->url)
		return set_error(err, 78,
				 "%s: link.url is not set (set it in the file, or pass --url)", p);
	if (c->backoff_max_ms < c->backoff_initial_ms)
		return set_error(err, 78,
				 "%s: backoff.max_ms (%u) is below backoff.initial_ms (%u)", p,
				 c->backoff_max_ms, c->backoff_initial_ms);
	if (!*c->cert_file != !*c->key_file)
		return set_error(
		    err, 78, "%s: tls.cert_file and tls.key_file go together: set both or neither",
		    p);
	if (c->queue_max_bytes < c->max_message_bytes)
		return set_error(err, 78,
				 "%s: queue.max_bytes (%zu) is below link.max_message_bytes (%zu): "
				 "a largest message could never be queued",
				 p, c->queue_max_bytes, c->max_message_bytes);
	if (validate_hello(c, p, err) < 0)
		return -1;
	if (c->bridge_events && c->bridge_framing != FRAMING_LENGTH_PREFIXED)
		return set_error(
		    err, 78,
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
		return set_error(err, 78,
				 "%s: link.bind_address '%s' is not of link.address_family", p,
				 c->bind_address);
	if (*c->bridge_socket && *c->control_socket && !strcmp(c->bridge_socket, c->control_socket))
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
	if (config_set_defaults(c) < 0)
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

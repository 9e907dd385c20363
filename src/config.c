#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "log.h"
#include "url.h"

enum kind { K_STR, K_UINT, K_SIZE, K_DOUBLE, K_LEVEL, K_URL };

struct key {
	const char *group;
	const char *name;
	enum kind kind;
	size_t off;
	double min, max;	/* numeric range, inclusive */
	const char *dflt;	/* the default, as text: the man page documents this table */
};

#define F(field) offsetof(struct wst_config, field)

static const struct key keys[] = {
	{ "link", "url", K_URL, F(url), 0, 0, NULL },
	{ "link", "connect_timeout_s", K_UINT, F(connect_timeout_s), 1, 3600, "15" },
	{ "link", "max_message_bytes", K_SIZE, F(max_message_bytes), 1, 256 << 20, "1048576" },
	{ "link", "drain_timeout_s", K_UINT, F(drain_timeout_s), 0, 3600, "5" },
	{ "tls", "ca_file", K_STR, F(ca_file), 0, 0, "/etc/ssl/certs/ca-certificates.crt" },
	{ "tls", "server_name", K_STR, F(server_name), 0, 0, "" },
	{ "keepalive", "ping_interval_s", K_UINT, F(ping_interval_s), 0, 86400, "20" },
	{ "keepalive", "pong_timeout_s", K_UINT, F(pong_timeout_s), 1, 3600, "10" },
	{ "backoff", "initial_ms", K_UINT, F(backoff_initial_ms), 1, 3600000, "500" },
	{ "backoff", "max_ms", K_UINT, F(backoff_max_ms), 1, 86400000, "60000" },
	{ "backoff", "multiplier", K_DOUBLE, F(backoff_multiplier), 1.0, 100.0, "2.0" },
	{ "backoff", "jitter", K_DOUBLE, F(backoff_jitter), 0.0, 1.0, "0.5" },
	{ "backoff", "reset_after_s", K_UINT, F(backoff_reset_after_s), 0, 86400, "30" },
	{ "queue", "max_messages", K_SIZE, F(queue_max_messages), 1, 100000000, "10000" },
	{ "queue", "max_bytes", K_SIZE, F(queue_max_bytes), 1, (double)(4ULL << 30), "16777216" },
	{ "log", "level", K_LEVEL, F(log_level), 0, 0, "info" },
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static int set_error(struct config_error *err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_error(struct config_error *err, int status, const char *fmt, ...)
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

/* Store a value given as text (defaults); these are trusted. */
static int set_default(struct wst_config *c, const struct key *k)
{
	void *f = field(c, k);

	if (!k->dflt)
		return 0;
	switch (k->kind) {
	case K_STR:
	case K_URL:
		return (*(char **)f = strdup(k->dflt)) ? 0 : -1;
	case K_UINT:
		*(unsigned *)f = (unsigned)strtoul(k->dflt, NULL, 10);
		return 0;
	case K_SIZE:
		*(size_t *)f = (size_t)strtoull(k->dflt, NULL, 10);
		return 0;
	case K_DOUBLE:
		*(double *)f = strtod(k->dflt, NULL);
		return 0;
	case K_LEVEL:
		*(int *)f = log_level_parse(k->dflt);
		return 0;
	}
	return 0;
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

static int set_from(struct wst_config *c, const struct key *k, const config_setting_t *s,
		    const char *path, struct config_error *err)
{
	int line = (int)config_setting_source_line(s), t = config_setting_type(s);
	void *f = field(c, k);
	char why[256];
	double v;

	switch (k->kind) {
	case K_STR:
	case K_URL:
	case K_LEVEL: {
		const char *str;

		if (t != CONFIG_TYPE_STRING)
			return set_error(err, 78, "%s:%d: %s.%s: expected a string, got %s", path,
					 line, k->group, k->name, type_name(t));
		str = config_setting_get_string(s);
		if (k->kind == K_LEVEL) {
			int lvl = log_level_parse(str);

			if (lvl < 0)
				return set_error(err, 78,
						 "%s:%d: %s.%s: unknown level '%s' (use error, "
						 "warning, notice, info or debug)",
						 path, line, k->group, k->name, str);
			*(int *)f = lvl;
			return 0;
		}
		if (k->kind == K_URL && check_url(str, why, sizeof(why)) < 0)
			return set_error(err, 78, "%s:%d: %s.%s: invalid URL '%s': %s", path, line,
					 k->group, k->name, str, why);
		free(*(char **)f);
		return (*(char **)f = strdup(str)) ? 0 : set_error(err, 1, "out of memory");
	}
	case K_UINT:
	case K_SIZE:
		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
			return set_error(err, 78, "%s:%d: %s.%s: expected an integer, got %s", path,
					 line, k->group, k->name, type_name(t));
		v = (double)config_setting_get_int64(s);
		break;
	case K_DOUBLE:
		if (t == CONFIG_TYPE_FLOAT)
			v = config_setting_get_float(s);
		else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
			v = (double)config_setting_get_int64(s);
		else
			return set_error(err, 78, "%s:%d: %s.%s: expected a number, got %s", path,
					 line, k->group, k->name, type_name(t));
		break;
	default:
		return 0;
	}
	if (v < k->min || v > k->max)
		return set_error(err, 78, "%s:%d: %s.%s: %g is out of range (%g to %g)", path, line,
				 k->group, k->name, v, k->min, k->max);
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

static int read_file(struct wst_config *c, const char *path, struct config_error *err)
{
	config_setting_t *root;
	config_t cf;
	FILE *fp;
	int rc = -1;

	fp = fopen(path, "r");
	if (!fp)
		return set_error(err, 78, "%s: cannot open config file: %s", path, strerror(errno));
	config_init(&cf);
	if (config_read(&cf, fp) != CONFIG_TRUE) {
		set_error(err, 78, "%s:%d: %s", path, config_error_line(&cf),
			  config_error_text(&cf));
		goto out;
	}
	root = config_root_setting(&cf);
	for (int i = 0; i < config_setting_length(root); i++) {
		config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
		const char *gname = config_setting_name(g);
		int line = (int)config_setting_source_line(g);

		if (!find_key(gname, NULL)) {
			set_error(err, 78, "%s:%d: unknown group '%s'", path, line, gname);
			goto out;
		}
		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			set_error(err, 78, "%s:%d: '%s' must be a group: %s = { ... };", path, line,
				  gname, gname);
			goto out;
		}
		for (int j = 0; j < config_setting_length(g); j++) {
			config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
			const struct key *k = find_key(gname, config_setting_name(s));

			if (!k) {
				set_error(err, 78, "%s:%d: unknown key '%s.%s'", path,
					  (int)config_setting_source_line(s), gname,
					  config_setting_name(s));
				goto out;
			}
			if (set_from(c, k, s, path, err) < 0)
				goto out;
		}
	}
	rc = 0;
out:
	config_destroy(&cf);
	fclose(fp);
	return rc;
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
	if (!c->url) {
		set_error(err, 78, "%s: link.url is not set (set it in the file, or pass --url)",
			  path ? path : "(no config)");
		goto fail;
	}
	if (c->backoff_max_ms < c->backoff_initial_ms) {
		set_error(err, 78, "%s: backoff.max_ms (%u) is below backoff.initial_ms (%u)",
			  path ? path : "(defaults)", c->backoff_max_ms, c->backoff_initial_ms);
		goto fail;
	}
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
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].kind == K_STR || keys[i].kind == K_URL)
			free(*(char **)field(c, &keys[i]));
	free(c->path);
	free(c);
}

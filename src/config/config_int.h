#ifndef WST_CONFIG_INT_H
#define WST_CONFIG_INT_H

/*
 * The key table's insides, shared by config.c (reading the file: the only
 * libconfig user) and config_keys.c (the table, defaults, freeing, diff).
 * Calls go one way, from config.c into config_keys.c.
 */
#include "config.h"

enum kind {
	K_STR,	/* string */
	K_FILE, /* string; ${CREDENTIALS_DIRECTORY} expanded */
	K_URL,	/* string; a valid ws:// or wss:// URL */
	K_URLS, /* array of URLs */
	K_ARGV, /* array of strings, maybe empty */
	K_UINT,
	K_SIZE,
	K_DOUBLE,
	K_BOOL,
	K_LEVEL, /* log level name */
	K_MODE,	 /* octal permission string, "0660" */
	K_FRAMING,
	K_OVERFLOW,
	K_COMPRESSION, /* "off" or "deflate" */
	K_TLS_VERSION, /* "1.2" or "1.3" */
	K_HEADERS,     /* list of { name; value | value_file } */
	K_DIR,	       /* string; "" or a directory we can create or write */
	K_PROXY,       /* string; "", "direct" or a proxy URL */
	K_FAMILY,      /* "any", "ipv4", "ipv6" */
	K_ADDR,	       /* string; "" or an IP address */
	K_IFACE,       /* string; "" or a network interface name */
	K_SOCKET,      /* string; "" or a socket path; ${RUNTIME_DIRECTORY} expanded */
	K_TEXT,	       /* K_FILE that must be a readable regular file at load */
	K_SECRET,      /* K_FILE read at every attempt: one missing at load is a warning */
	K_CREDS,       /* K_SECRET that others reading it draws a warning */
	K_HDRVAL,      /* string; an HTTP header value: no line break */
};

struct key {
	const char *group;
	const char *name;
	enum kind kind;
	size_t off;
	double min, max;  /* numeric range, inclusive */
	const char *dflt; /* the default, as text: the man page documents this table */
	unsigned reload;  /* enum config_reload: what a change to it needs on SIGHUP */
};

static inline void *field(struct wst_config *c, const struct key *k)
{
	return (char *)c + k->off;
}

int config_set_defaults(struct wst_config *c);				/* -1: out of memory */
const struct key *config_find_key(const char *group, const char *name); /* name NULL: any */
/* What to use instead of an unknown value of an enumerated kind; NULL: kind is not one. */
const char *config_enum_hint(enum kind kind);
int config_parse_enum(enum kind kind, const char *s);
int config_parse_mode(const char *s);
/*
 * A path of kind kind with ${RUNTIME_DIRECTORY} (K_SOCKET) or
 * ${CREDENTIALS_DIRECTORY} (the others) expanded: NULL with *why set when
 * unset, or out of memory.
 */
char *config_expand(enum kind kind, const char *s, const char **why);
void config_free_strlist(strlist l);

#endif

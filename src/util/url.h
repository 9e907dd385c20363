#ifndef WST_URL_H
#define WST_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define URL_MAX_HOST 254
#define URL_MAX_PATH 2048

/* A ws:// or wss:// URL split into owned parts. */
struct wst_url {
	bool tls;
	bool ipv6;     /* host is an IPv6 literal (stored without brackets) */
	uint16_t port; /* explicit or the scheme's default */
	char host[URL_MAX_HOST + 1];
	char path[URL_MAX_PATH + 1]; /* always starts with '/', includes ?query */
};

/* 0 on success; -1 with a reason in err ("unsupported scheme 'http'", ...). */
int url_parse(const char *s, struct wst_url *u, char *err, size_t errlen);

/* The decimal port in [s, s+n), 1 to 65535: NULL, or what is wrong with it. */
const char *url_port(const char *s, size_t n, uint16_t *port);

/* "host" or "host:port" when the port is not the scheme's default; brackets for IPv6. */
void url_host_header(const struct wst_url *u, const char *name, char *out, size_t outlen);

#endif

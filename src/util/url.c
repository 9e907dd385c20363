#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

const char *url_port(const char *s, size_t n, uint16_t *out)
{
	unsigned long port = 0;

	if (!n)
		return "empty port after ':'";
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return "port is not a number";
		port = port * 10 + (unsigned long)(s[i] - '0');
		if (port > 65535)
			return "port out of range (1-65535)";
	}
	if (port == 0)
		return "port out of range (1-65535)";
	*out = (uint16_t)port;
	return NULL;
}

/* Path and query: what follows the authority. */
static int parse_path(const char *rest, struct wst_url *u, char *err, size_t errlen)
{
	if (strchr(rest, '#'))
		return errf(err, errlen, "fragment ('#') is not allowed in a WebSocket URL");
	for (const char *c = rest; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f)
			return errf(err, errlen, "space or control character in URL path");
	if (strlen(rest) + 1 > URL_MAX_PATH)
		return errf(err, errlen, "URL path too long");
	if (*rest != '/')
		u->path[0] = '/';
	strcat(u->path, rest);
	return 0;
}

int url_parse(const char *s, struct wst_url *u, char *err, size_t errlen)
{
	const char *p, *host, *host_end, *port_s = NULL, *rest, *why;
	size_t n;

	memset(u, 0, sizeof(*u));
	if (!s || !*s)
		return errf(err, errlen, "empty URL");
	p = strstr(s, "://");
	if (!p)
		return errf(err, errlen,
			    "missing scheme: expected ws://HOST/PATH or wss://HOST/PATH");
	if ((size_t)(p - s) == 2 && !strncasecmp(s, "ws", 2)) {
		u->tls = false;
		u->port = 80;
	} else if ((size_t)(p - s) == 3 && !strncasecmp(s, "wss", 3)) {
		u->tls = true;
		u->port = 443;
	} else {
		return errf(err, errlen, "unsupported scheme '%.*s': use ws:// or wss://",
			    (int)(p - s) > 16 ? 16 : (int)(p - s), s);
	}
	host = p + 3;
	rest = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(rest - host)))
		return errf(err, errlen, "user info (user@host) is not supported in the URL");

	if (*host == '[') {
		host_end = memchr(host, ']', (size_t)(rest - host));
		if (!host_end)
			return errf(err, errlen, "unterminated IPv6 address: missing ']'");
		host++;
		u->ipv6 = true;
		if (host_end == host)
			return errf(err, errlen, "missing host");
		for (const char *c = host; c < host_end; c++)
			if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
				return errf(err, errlen, "invalid character in IPv6 address");
		if (host_end[1] == ':')
			port_s = host_end + 2;
		else if (host_end + 1 != rest)
			return errf(err, errlen, "unexpected text after IPv6 address");
	} else {
		const char *colon = memchr(host, ':', (size_t)(rest - host));

		host_end = colon ? colon : rest;
		if (colon)
			port_s = colon + 1;
		if (host_end == host)
			return errf(err, errlen, "missing host");
		for (const char *c = host; c < host_end; c++)
			if (!isalnum((unsigned char)*c) && !strchr("-._~%", *c))
				return errf(err, errlen, "invalid character in host name");
	}
	n = (size_t)(host_end - host);
	if (n > URL_MAX_HOST)
		return errf(err, errlen, "host name too long");
	memcpy(u->host, host, n);
	u->host[n] = '\0';

	if (port_s && (why = url_port(port_s, (size_t)(rest - port_s), &u->port)))
		return errf(err, errlen, "%s", why);
	return parse_path(rest, u, err, errlen);
}

void url_host_header(const struct wst_url *u, const char *name, char *out, size_t outlen)
{
	bool dflt = u->port == (u->tls ? 443 : 80);
	const char *h = name && *name ? name : u->host;
	bool br = !(name && *name) && u->ipv6;

	if (dflt)
		snprintf(out, outlen, "%s%s%s", br ? "[" : "", h, br ? "]" : "");
	else
		snprintf(out, outlen, "%s%s%s:%u", br ? "[" : "", h, br ? "]" : "", u->port);
}

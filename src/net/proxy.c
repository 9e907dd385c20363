#include "proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>

#include "log.h"
#include "url.h"

/* curl's default when a proxy URL has no port */
#define PROXY_DEFAULT_PORT 1080

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* Percent-decode [s, s+n) into out; -1 if bad or too long. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		}
		if (!c || o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static int parse_userinfo(const char *s, size_t n, struct proxy *p, char *err, size_t errlen)
{
	const char *colon = memchr(s, ':', n);
	size_t ul = colon ? (size_t)(colon - s) : n;

	if (pct_decode(s, ul, p->user, sizeof(p->user)) < 0 || !*p->user)
		return errf(err, errlen,
			    "bad user name in the proxy URL (percent-encode ':', '@')");
	if (colon && pct_decode(colon + 1, n - ul - 1, p->pass, sizeof(p->pass)) < 0)
		return errf(err, errlen, "bad password in the proxy URL (percent-encode ':', '@')");
	return 0;
}

/* host[:port] or [v6][:port], then nothing or "/". */
static int parse_hostport(const char *s, struct proxy *p, char *err, size_t errlen)
{
	const char *h = s, *e, *rest;
	size_t hl;

	if (*s == '[') {
		e = strchr(s, ']');
		if (!e)
			return errf(err, errlen, "unclosed '[' in the proxy address");
		h = s + 1;
		hl = (size_t)(e - h);
		rest = e + 1;
	} else {
		hl = strcspn(s, ":/");
		rest = s + hl;
	}
	if (!hl || hl > PROXY_MAX_HOST)
		return errf(err, errlen, "the proxy URL has no host");
	memcpy(p->host, h, hl);
	p->host[hl] = '\0';
	for (const char *c = p->host; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr(".-_:", *c))
			return errf(err, errlen,
				    "the proxy host has characters a host name cannot");
	p->port = PROXY_DEFAULT_PORT;
	if (*rest == ':') {
		size_t pl = strcspn(rest + 1, "/");

		if (url_port(rest + 1, pl, &p->port))
			return errf(err, errlen, "the proxy port must be a number from 1 to 65535");
		rest += 1 + pl;
	}
	if (*rest && strcmp(rest, "/"))
		return errf(err, errlen, "a proxy URL has no path: use scheme://host:port");
	return 0;
}

int proxy_parse(const char *s, bool scheme_optional, struct proxy *p, char *err, size_t errlen)
{
	const char *auth, *at, *end;
	bool v6;

	memset(p, 0, sizeof(*p));
	if (!strncasecmp(s, "http://", 7)) {
		p->kind = PROXY_HTTP;
		auth = s + 7;
	} else if (!strncasecmp(s, "socks5h://", 10)) {
		p->kind = PROXY_SOCKS5H;
		auth = s + 10;
	} else if (strstr(s, "://")) {
		return errf(err, errlen,
			    "unsupported proxy scheme: use http:// (HTTP CONNECT) or socks5h:// "
			    "(SOCKS5, names resolved by the proxy)");
	} else if (scheme_optional) {
		p->kind = PROXY_HTTP;
		auth = s;
	} else {
		return errf(err, errlen,
			    "a proxy needs its scheme: http://host:port or "
			    "socks5h://host:port");
	}
	end = auth + strcspn(auth, "/");
	at = NULL;
	for (const char *c = auth; c < end; c++)
		if (*c == '@')
			at = c;
	if (at && parse_userinfo(auth, (size_t)(at - auth), p, err, errlen) < 0)
		return -1;
	if (parse_hostport(at ? at + 1 : auth, p, err, errlen) < 0)
		return -1;
	v6 = strchr(p->host, ':') != NULL;
	snprintf(p->text, sizeof(p->text), "%s://%s%s%s:%u",
		 p->kind == PROXY_HTTP ? "http" : "socks5h", v6 ? "[" : "", p->host, v6 ? "]" : "",
		 p->port);
	return 0;
}

int proxy_check_setting(const char *s, char *err, size_t errlen)
{
	struct proxy p;
	int rc;

	if (!*s || !strcmp(s, "direct"))
		return 0;
	rc = proxy_parse(s, false, &p, err, errlen);
	explicit_bzero(&p, sizeof(p));
	return rc;
}

/* A v4 or v6 literal into 16 bytes; its length, or 0 if not one. */
static size_t ip_bytes(const char *s, unsigned char out[16])
{
	char buf[64];
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, buf, out) == 1)
		return 16;
	return 0;
}

/* An IPv4 host against "a.b.c.d[/bits]": as curl 7.88, no bits (or 0) means the address. */
static bool v4_entry_match(const char *e, size_t n, const struct in_addr *host)
{
	char buf[64];
	char *slash;
	struct in_addr net;
	int bits = 32;

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, e, n);
	buf[n] = '\0';
	if ((slash = strchr(buf, '/'))) {
		bits = atoi(slash + 1);
		*slash = '\0';
		if (!bits)
			bits = 32;
	}
	if (bits < 0 || bits > 32 || inet_pton(AF_INET, buf, &net) != 1)
		return false;
	return !((ntohl(host->s_addr) ^ ntohl(net.s_addr)) & (0xffffffffu << (32 - bits)));
}

/* A name against a domain entry: itself or a subdomain; one leading, one trailing '.' dropped */
static bool name_entry_match(const char *e, size_t n, const char *host, size_t hl)
{
	if (n && e[n - 1] == '.')
		n--;
	if (n && e[0] == '.') {
		e++;
		n--;
	}
	if (n == hl)
		return !strncasecmp(e, host, n);
	return n < hl && host[hl - n - 1] == '.' && !strncasecmp(e, host + hl - n, n);
}

/*
 * curl 7.88's reading (Debian 12), which we follow to the letter: "*" only
 * as the whole value; "*." is no wildcard; an IPv4 host matches addresses and
 * CIDR ranges; any other host, an IPv6 address included, is compared as a name.
 */
bool proxy_bypass(const char *no_proxy, const char *host)
{
	const char *s = no_proxy;
	size_t hl = strlen(host);
	struct in_addr v4;
	bool is_v4 = inet_pton(AF_INET, host, &v4) == 1;

	if (!s || !*s || !hl)
		return false;
	if (!strcmp(s, "*"))
		return true;
	if (!is_v4 && host[hl - 1] == '.')
		hl--;
	while (*s) {
		size_t n;

		s += strspn(s, ", \t");
		n = strcspn(s, ", \t");
		if (n && (is_v4 ? v4_entry_match(s, n, &v4) : name_entry_match(s, n, host, hl)))
			return true;
		s += n;
	}
	return false;
}

static const char *env_pair(const char *(*getenv_fn)(const char *), const char *lower,
			    const char *upper, const char **name)
{
	const char *v = getenv_fn(lower);

	*name = lower;
	if ((!v || !*v) && upper) {
		v = getenv_fn(upper);
		*name = upper;
	}
	return v && *v ? v : NULL;
}

int proxy_select(const char *setting, bool tls, const char *host,
		 const char *(*getenv_fn)(const char *), struct proxy *p, char *err, size_t errlen)
{
	const char *v, *name, *np, *npname;

	memset(p, 0, sizeof(*p));
	if (!strcmp(setting, "direct"))
		return 0;
	if (*setting) {
		if (proxy_parse(setting, false, p, err, errlen) < 0)
			return -1;
		p->source = "link.proxy";
		return 0;
	}
	/* curl reads only the lower-case http_proxy: HTTP_PROXY can be set by a CGI request */
	v = tls ? env_pair(getenv_fn, "https_proxy", "HTTPS_PROXY", &name)
		: env_pair(getenv_fn, "http_proxy", NULL, &name);
	if (!v)
		v = env_pair(getenv_fn, "all_proxy", "ALL_PROXY", &name);
	if (!v)
		return 0;
	np = env_pair(getenv_fn, "no_proxy", "NO_PROXY", &npname);
	if (proxy_bypass(np, host))
		return 0;
	if (proxy_parse(v, true, p, err, errlen) < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", err);
		return errf(err, errlen, "environment variable %s: %s", name, why);
	}
	p->source = name;
	return 0;
}

size_t proxy_http_request(char *buf, size_t len, const char *host, uint16_t port, const char *user,
			  const char *pass)
{
	bool v6 = strchr(host, ':') != NULL;
	char target[PROXY_MAX_HOST + 16];
	int n;

	snprintf(target, sizeof(target), "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
	n = snprintf(buf, len, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target);
	if (n < 0 || (size_t)n >= len)
		return 0;
	if (user && *user) {
		unsigned char cred[2 * PROXY_MAX_CRED + 2];
		size_t cl = (size_t)snprintf((char *)cred, sizeof(cred), "%s:%s", user, pass), olen;
		int m = snprintf(buf + n, len - (size_t)n, "Proxy-Authorization: Basic ");

		if (m < 0 || (size_t)(n + m) >= len)
			return 0;
		n += m;
		if (mbedtls_base64_encode((unsigned char *)buf + n, len - (size_t)n, &olen, cred,
					  cl)) {
			explicit_bzero(cred, sizeof(cred));
			return 0;
		}
		explicit_bzero(cred, sizeof(cred));
		n += (int)olen;
		if ((size_t)n + 2 >= len)
			return 0;
		memcpy(buf + n, "\r\n", 3);
		n += 2;
	}
	if ((size_t)n + 3 >= len)
		return 0;
	memcpy(buf + n, "\r\n", 3);
	return (size_t)n + 2;
}

long proxy_http_response(const char *buf, size_t len, int *status)
{
	const char *end = NULL;

	if (len >= 5 && strncmp(buf, "HTTP/", 5))
		return -1;
	for (size_t i = 0; i + 1 < len && !end; i++) {
		if (buf[i] == '\n' && buf[i + 1] == '\n')
			end = buf + i + 2;
		else if (i + 3 < len && !memcmp(buf + i, "\r\n\r\n", 4))
			end = buf + i + 4;
	}
	if (!end)
		return 0;
	/* "HTTP/1.1 200 ..." */
	if (len < 12 || buf[8] != ' ' || !isdigit((unsigned char)buf[9]) ||
	    !isdigit((unsigned char)buf[10]) || !isdigit((unsigned char)buf[11]) ||
	    (len > 12 && buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n'))
		return -1;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	return end - buf;
}

enum proxy_reply proxy_http_verdict(const char *buf, size_t len, size_t cap, int *status)
{
	long n = proxy_http_response(buf, len, status);

	if (n < 0)
		return PROXY_REPLY_NOT_HTTP;
	if (n == 0)
		return len < cap ? PROXY_REPLY_MORE : PROXY_REPLY_TOO_BIG;
	if (*status < 200 || *status > 299)
		return PROXY_REPLY_REFUSED;
	return (size_t)n == len ? PROXY_REPLY_OPEN : PROXY_REPLY_EXTRA;
}

size_t socks5_greeting(unsigned char *buf, bool with_auth)
{
	/* version 5; one or two methods: none, then username/password (RFC 1929) */
	buf[0] = 5;
	buf[1] = with_auth ? 2 : 1;
	buf[2] = 0;
	buf[3] = 2;
	return with_auth ? 4 : 3;
}

int socks5_method(const unsigned char *buf)
{
	return buf[0] == 5 ? buf[1] : -1;
}

size_t socks5_auth_request(unsigned char *buf, const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass);

	if (ul > PROXY_MAX_CRED || pl > PROXY_MAX_CRED)
		return 0;
	buf[0] = 1;
	buf[1] = (unsigned char)ul;
	memcpy(buf + 2, user, ul);
	buf[2 + ul] = (unsigned char)pl;
	memcpy(buf + 3 + ul, pass, pl);
	return 3 + ul + pl;
}

size_t socks5_connect_request(unsigned char *buf, size_t len, const char *host, uint16_t port)
{
	unsigned char ip[16];
	size_t il = ip_bytes(host, ip), hl = strlen(host), n = 4;

	if (len < 4 + 1 + 255 + 2 || (!il && (!hl || hl > 255)))
		return 0;
	buf[0] = 5;
	buf[1] = 1; /* CONNECT */
	buf[2] = 0;
	if (il) {
		buf[3] = il == 4 ? 1 : 4;
		memcpy(buf + n, ip, il);
		n += il;
	} else {
		buf[3] = 3;
		buf[n++] = (unsigned char)hl;
		memcpy(buf + n, host, hl);
		n += hl;
	}
	buf[n++] = (unsigned char)(port >> 8);
	buf[n++] = (unsigned char)port;
	return n;
}

long socks5_connect_reply(const unsigned char *buf, size_t len, int *rep)
{
	size_t need;

	if (len < 2)
		return 0;
	if (buf[0] != 5)
		return -1;
	*rep = buf[1];
	if (len < 5)
		return 0;
	/* a failure reply may come with no valid address: still report its code */
	if (buf[3] != 1 && buf[3] != 3 && buf[3] != 4)
		return *rep ? 2 : -1;
	/* the bound address: IPv4, a name of buf[4] bytes, or IPv6; then the port */
	need = 4 + (buf[3] == 1 ? 4 : buf[3] == 4 ? 16 : 1 + (size_t)buf[4]) + 2;
	return len < need ? 0 : (long)need;
}

const char *socks5_reply_text(int rep)
{
	static const char *const t[] = {
	    "succeeded",
	    "general SOCKS server failure",
	    "connection not allowed by ruleset",
	    "network unreachable",
	    "host unreachable",
	    "connection refused",
	    "TTL expired",
	    "command not supported",
	    "address type not supported",
	};

	return rep >= 0 && rep < (int)(sizeof(t) / sizeof(t[0])) ? t[rep] : "unassigned reply code";
}

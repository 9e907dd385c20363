#ifndef WST_PROXY_H
#define WST_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Proxy settings and the bytes of the proxy handshakes, as pure functions:
 * no sockets here (dial.c does the I/O), so unit tests reach all of it.
 */

enum proxy_kind { PROXY_NONE, PROXY_HTTP, PROXY_SOCKS5H };

#define PROXY_MAX_HOST 253
#define PROXY_MAX_CRED 255 /* RFC 1929 caps user and password at 255 bytes */

struct proxy {
	enum proxy_kind kind;
	char host[PROXY_MAX_HOST + 1]; /* IPv6 without brackets */
	uint16_t port;
	char user[PROXY_MAX_CRED + 1]; /* "" = no credentials; never logged */
	char pass[PROXY_MAX_CRED + 1];
	char text[PROXY_MAX_HOST + 32]; /* "http://host:port", credentials left out */
	const char *source;		/* where it came from: "link.proxy", "https_proxy", ... */
};

/*
 * "http://[user:password@]host:port" or "socks5h://...". A value without a
 * scheme (as found in environments) is taken as http://. 0, or -1 with err.
 */
int proxy_parse(const char *s, bool scheme_optional, struct proxy *p, char *err, size_t errlen);

/* link.proxy as --check sees it: "", "direct" or a proxy URL. */
int proxy_check_setting(const char *s, char *err, size_t errlen);

/*
 * The proxy for a link to host (a name or an IP literal, no brackets): from
 * link.proxy, or with "" from the environment the way curl reads it. getenv_fn
 * is getenv, or a fake in tests. kind PROXY_NONE means connect directly.
 */
int proxy_select(const char *setting, bool tls, const char *host,
		 const char *(*getenv_fn)(const char *), struct proxy *p, char *err, size_t errlen);

/* no_proxy: names, .suffixes, IP addresses, CIDR ranges, "*"; comma or space separated. */
bool proxy_bypass(const char *no_proxy, const char *host);

/* "CONNECT host:port HTTP/1.1" with Basic auth when user is set. Length, or 0 if too long. */
size_t proxy_http_request(char *buf, size_t len, const char *host, uint16_t port, const char *user,
			  const char *pass);

/*
 * Look for a complete response head in buf. Returns 0 when more bytes are
 * needed, -1 when it is not HTTP, else the head's length with *status set.
 */
long proxy_http_response(const char *buf, size_t len, int *status);

enum proxy_reply {
	PROXY_REPLY_MORE,     /* the head is not complete yet */
	PROXY_REPLY_NOT_HTTP, /* not an HTTP proxy */
	PROXY_REPLY_TOO_BIG,  /* no complete head within the buffer */
	PROXY_REPLY_OPEN,     /* 2xx: the tunnel is open */
	PROXY_REPLY_EXTRA,    /* 2xx followed by bytes the server cannot have sent yet */
	PROXY_REPLY_REFUSED,  /* any other status, whatever follows its head */
};

/*
 * What the first len bytes of a CONNECT reply say, read into a buffer of cap
 * bytes. A refusal is judged by its status even when its error page came in
 * the same read; *status is set from OPEN on.
 */
enum proxy_reply proxy_http_verdict(const char *buf, size_t len, size_t cap, int *status);

/* SOCKS5 (RFC 1928) with username/password (RFC 1929). A greeting needs 4 bytes of room. */
size_t socks5_greeting(unsigned char *buf, bool with_auth);
/* Method choice: 2 bytes. -1 not SOCKS5, else the method (0xff: none acceptable). */
int socks5_method(const unsigned char *buf);
size_t socks5_auth_request(unsigned char *buf, const char *user, const char *pass);
/* CONNECT to host:port; IP literals as addresses, names for the proxy to resolve. */
size_t socks5_connect_request(unsigned char *buf, size_t len, const char *host, uint16_t port);
/*
 * The CONNECT reply: 0 when more bytes are needed, -1 malformed, else its
 * full length with *rep set (0 = succeeded).
 */
long socks5_connect_reply(const unsigned char *buf, size_t len, int *rep);
const char *socks5_reply_text(int rep);

#endif

#include "tunnel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ev.h>

#include "log.h"

/* How much of a refusal's error page is read before the socket is closed */
#define TUNNEL_DRAIN_MAX 65536

struct tunnel {
	struct ev_loop *loop;
	int fd;
	ev_io w;
	const struct proxy *p;
	char host[256];
	uint16_t port;
	int (*reply)(struct tunnel *t); /* reads what came in so far */
	unsigned char out[600];		/* may hold credentials: wiped */
	size_t olen, osent;
	unsigned char in[4096];
	size_t ilen;
	tunnel_done_fn done;
	void *ud;
};

/* A failure, as one line that names the proxy. The last thing any path does: done() may free t. */
static __attribute__((format(printf, 2, 3))) int finish(struct tunnel *t, const char *fmt, ...)
{
	char err[640], line[1024];
	va_list ap;

	ev_io_stop(t->loop, &t->w);
	va_start(ap, fmt);
	vsnprintf(err, sizeof(err), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "proxy %s (from %s) %s", t->p->text, t->p->source, err);
	t->done(t->ud, line);
	return 0;
}

static int succeed(struct tunnel *t)
{
	ev_io_stop(t->loop, &t->w);
	t->done(t->ud, NULL);
	return 0;
}

static void watch(struct tunnel *t, int events)
{
	ev_io_stop(t->loop, &t->w);
	ev_io_set(&t->w, t->fd, events);
	ev_io_start(t->loop, &t->w);
}

static int send_msg(struct tunnel *t, size_t len, int (*reply)(struct tunnel *t))
{
	t->olen = len;
	t->osent = 0;
	t->ilen = 0;
	t->reply = reply;
	watch(t, EV_WRITE);
	return 0;
}

/* Printable ASCII of a reason phrase from the proxy, for the log. */
static void reason_phrase(const struct tunnel *t, char *buf, size_t len)
{
	size_t o = 0;

	for (size_t i = 13; i < t->ilen && t->in[i] != '\r' && t->in[i] != '\n' && o + 1 < len; i++)
		buf[o++] = t->in[i] >= 32 && t->in[i] < 127 ? (char)t->in[i] : '?';
	buf[o] = '\0';
}

/*
 * A refusal's error page is read and dropped as far as it has arrived, so
 * that closing the socket does not reset the proxy's side of it; never waited for.
 */
static void drain_refusal(struct tunnel *t)
{
	size_t total = t->ilen;

	while (total < TUNNEL_DRAIN_MAX) {
		ssize_t n = recv(t->fd, t->in, sizeof(t->in), MSG_DONTWAIT);

		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static int http_refused(struct tunnel *t, int status)
{
	char why[64];

	reason_phrase(t, why, sizeof(why));
	drain_refusal(t);
	if (status == 407)
		return finish(
		    t,
		    *t->p->user
			? "rejected our credentials: HTTP 407 %s (check link.proxy_auth_file "
			  "or the user:password in the proxy URL)"
			: "requires credentials: HTTP 407 %s (set link.proxy_auth_file)",
		    why);
	return finish(t, "refused to CONNECT to %s:%u: HTTP %d %s%s", t->host, t->port, status, why,
		      status == 403 ? " (its rules forbid this host or port)"
		      : status == 502 || status == 503 || status == 504
			  ? " (the proxy could not reach it: is the server down?)"
			  : "");
}

static int http_reply(struct tunnel *t)
{
	int status = 0;

	switch (proxy_http_verdict((const char *)t->in, t->ilen, sizeof(t->in), &status)) {
	case PROXY_REPLY_MORE:
		return 0;
	case PROXY_REPLY_TOO_BIG:
		return finish(t, "sent a CONNECT response head larger than %zu bytes",
			      sizeof(t->in));
	case PROXY_REPLY_NOT_HTTP:
		return finish(t, "is not an HTTP proxy: its reply to CONNECT is not HTTP");
	case PROXY_REPLY_EXTRA:
		return finish(t, "sent data after its CONNECT response (HTTP %d)", status);
	case PROXY_REPLY_OPEN:
		return succeed(t);
	case PROXY_REPLY_REFUSED:
		break;
	}
	return http_refused(t, status);
}

static int socks_auth(struct tunnel *t);
static int socks_reply(struct tunnel *t);

static int socks_connect(struct tunnel *t)
{
	size_t n = socks5_connect_request(t->out, sizeof(t->out), t->host, t->port);

	if (!n)
		return finish(t, "cannot carry the host name '%s' (longer than 255 bytes)",
			      t->host);
	return send_msg(t, n, socks_reply);
}

static int socks_method(struct tunnel *t)
{
	int m;

	if (t->ilen < 2)
		return 0;
	if (t->ilen > 2 || (m = socks5_method(t->in)) < 0)
		return finish(t, "is not a SOCKS5 proxy (bad reply to our greeting)");
	if (m == 0)
		return socks_connect(t);
	if (m == 2 && *t->p->user) {
		size_t n = socks5_auth_request(t->out, t->p->user, t->p->pass);

		return n ? send_msg(t, n, socks_auth) : finish(t, "credentials too long");
	}
	if (m == 2 || m == 0xff)
		return finish(t, *t->p->user ? "accepts none of our authentication methods"
					     : "requires credentials (set link.proxy_auth_file)");
	return finish(t, "chose authentication method %d, which we did not offer", m);
}

static int socks_auth(struct tunnel *t)
{
	if (t->ilen < 2)
		return 0;
	if (t->ilen > 2 || t->in[0] != 1)
		return finish(t, "sent a malformed reply to our credentials");
	if (t->in[1])
		return finish(t,
			      "rejected our credentials (RFC 1929 status %d; check "
			      "link.proxy_auth_file)",
			      t->in[1]);
	return socks_connect(t);
}

static int socks_reply(struct tunnel *t)
{
	int rep = 0;
	long n = socks5_connect_reply(t->in, t->ilen, &rep);

	if (n == 0)
		return 0;
	if (n < 0)
		return finish(t, "sent a malformed reply to CONNECT");
	if (rep)
		return finish(t, "could not connect to %s:%u: %s (SOCKS5 reply %d)", t->host,
			      t->port, socks5_reply_text(rep), rep);
	if ((size_t)n != t->ilen)
		return finish(t, "sent data after its CONNECT reply");
	return succeed(t);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tunnel *t = w->data;
	ssize_t n;

	if (t->osent < t->olen) {
		n = send(t->fd, t->out + t->osent, t->olen - t->osent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			(void)finish(t, "failed while we sent the handshake: %s", strerror(errno));
			return;
		}
		t->osent += (size_t)n;
		if (t->osent < t->olen)
			return;
		explicit_bzero(t->out, t->olen);
		watch(t, EV_READ);
		return;
	}
	n = recv(t->fd, t->in + t->ilen, sizeof(t->in) - t->ilen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		(void)finish(t, "closed the connection during the %s handshake%s%s",
			     t->p->kind == PROXY_HTTP ? "CONNECT" : "SOCKS5", n ? ": " : "",
			     n ? strerror(errno) : "");
		return;
	}
	t->ilen += (size_t)n;
	(void)t->reply(t);
}

struct tunnel *tunnel_start(struct ev_loop *loop, int fd, const struct proxy *proxy,
			    const char *host, uint16_t port, tunnel_done_fn done, void *ud)
{
	struct tunnel *t = calloc(1, sizeof(*t));
	size_t n;

	if (!t)
		return NULL;
	t->loop = loop;
	t->fd = fd;
	t->p = proxy;
	t->port = port;
	t->done = done;
	t->ud = ud;
	snprintf(t->host, sizeof(t->host), "%s", host);
	ev_io_init(&t->w, io_cb, fd, EV_WRITE);
	t->w.data = t;
	if (proxy->kind == PROXY_HTTP) {
		n = proxy_http_request((char *)t->out, sizeof(t->out), host, port, proxy->user,
				       proxy->pass);
		if (!n) {
			free(t);
			return NULL;
		}
		(void)send_msg(t, n, http_reply);
	} else {
		(void)send_msg(t, socks5_greeting(t->out, *proxy->user), socks_method);
	}
	return t;
}

void tunnel_free(struct tunnel *t)
{
	if (!t)
		return;
	ev_io_stop(t->loop, &t->w);
	explicit_bzero(t, sizeof(*t));
	free(t);
}

int tunnel_read_auth_file(const char *file, struct proxy *p, char *err, size_t errlen)
{
	char buf[2 * PROXY_MAX_CRED + 4], *colon;
	size_t n, ul;
	FILE *f = fopen(file, "r");
	int rc = -1;

	if (!f)
		return errf(err, errlen, "link.proxy_auth_file '%s': cannot read it: %s", file,
			    strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f) || !feof(f)) {
		snprintf(err, errlen, "link.proxy_auth_file '%s': %s", file,
			 ferror(f) ? "read error" : "too long for user:password");
		goto out;
	}
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	colon = strchr(buf, ':');
	ul = colon ? (size_t)(colon - buf) : 0;
	if (!colon || !ul || strpbrk(buf, "\r\n") || ul > PROXY_MAX_CRED ||
	    strlen(colon + 1) > PROXY_MAX_CRED) {
		snprintf(
		    err, errlen,
		    "link.proxy_auth_file '%s' must hold user:password on one line (each at most "
		    "255 bytes)",
		    file);
		goto out;
	}
	memcpy(p->user, buf, ul);
	p->user[ul] = '\0';
	snprintf(p->pass, sizeof(p->pass), "%s", colon + 1);
	rc = 0;
out:
	fclose(f);
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

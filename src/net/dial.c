#include "dial.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "resolve.h"
#include "sock.h"
#include "tunnel.h"

struct attempt {
	int fd; /* -1: not started or over */
	ev_io w;
	struct dial *d;
};

enum phase { PH_RESOLVE, PH_CONNECT, PH_PROXY };

struct dial {
	struct ev_loop *loop;
	char host[256];
	uint16_t port;
	struct proxy proxy;   /* holds credentials: wiped on free */
	const char *tcp_host; /* host or proxy.host */
	uint16_t tcp_port;
	int family;
	char bind[64], iface[IF_NAMESIZE];
	enum phase phase;

	struct resolve *res;
	struct resolve_addrs addrs;
	size_t order[RESOLVE_MAX], next;
	struct attempt att[RESOLVE_MAX];
	ev_timer stagger; /* RFC 8305 connection attempt delay */
	char fails[400];

	int fd;		    /* the winner */
	struct tunnel *tun; /* the proxy handshake on it */

	dial_done_fn done;
	void *ud;
};

static void sockaddr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	}
}

/* "proxy http://p:3128 (from https_proxy)" or "backend.test:443" */
static void target_text(const struct dial *d, char *buf, size_t len)
{
	bool v6 = strchr(d->host, ':') != NULL;

	if (d->proxy.kind != PROXY_NONE)
		snprintf(buf, len, "proxy %s (from %s)", d->proxy.text, d->proxy.source);
	else
		snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", d->host, v6 ? "]" : "", d->port);
}

static void stop_attempts(struct dial *d, int keep_fd)
{
	ev_timer_stop(d->loop, &d->stagger);
	for (size_t i = 0; i < RESOLVE_MAX; i++) {
		struct attempt *a = &d->att[i];

		if (a->fd < 0)
			continue;
		ev_io_stop(d->loop, &a->w);
		if (a->fd != keep_fd)
			close(a->fd);
		a->fd = -1;
	}
}

static void release(struct dial *d)
{
	stop_attempts(d, -1);
	tunnel_free(d->tun);
	d->tun = NULL;
}

static bool in_flight(const struct dial *d)
{
	for (size_t i = 0; i < RESOLVE_MAX; i++)
		if (d->att[i].fd >= 0)
			return true;
	return false;
}

/* Connected (and tunnelled): the socket is the caller's now. done() may free d: last. */
static void succeed(struct dial *d)
{
	int fd = d->fd;

	release(d);
	d->fd = -1;
	d->done(d->ud, fd, DIAL_FAIL_CONNECT, NULL);
}

static __attribute__((format(printf, 2, 3))) void fail(struct dial *d, const char *fmt, ...)
{
	char err[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, sizeof(err), fmt, ap);
	va_end(ap);
	release(d);
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	d->done(d->ud, -1, d->phase == PH_PROXY ? DIAL_FAIL_PROXY : DIAL_FAIL_CONNECT, err);
}

static void note_failure(struct dial *d, const struct sockaddr_storage *ss, const char *why)
{
	size_t o = strlen(d->fails);
	char a[64];

	sockaddr_text(ss, a, sizeof(a));
	if (o < sizeof(d->fails) - 1)
		snprintf(d->fails + o, sizeof(d->fails) - o, "%s%s %s", o ? "; " : "", a, why);
}

static const char *errno_word(int e)
{
	return e == ECONNREFUSED    ? "refused"
	       : e == ENETUNREACH   ? "network unreachable"
	       : e == EHOSTUNREACH  ? "host unreachable"
	       : e == ETIMEDOUT	    ? "timed out"
	       : e == EADDRNOTAVAIL ? "link.bind_address not available"
				    : strerror(e);
}

static void start_proxy(struct dial *d);
static void start_next(struct dial *d);

static void all_failed(struct dial *d)
{
	const char *f = d->fails;
	char t[320];
	size_t n;

	target_text(d, t, sizeof(t));
	n = strlen(t);
	/* one address that is the target itself (an IP literal): name it once */
	if (!strncmp(f, t, n) && f[n] == ' ' && !strstr(f, "; "))
		f += n + 1;
	fail(d, "cannot connect to %s: %s", t, *f ? f : "no address to try");
}

static void attempt_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct attempt *a = w->data;
	struct dial *d = a->d;
	socklen_t sl = sizeof(int);
	int e = 0, fd = a->fd;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
		e = errno;
	if (!e) {
		/* first to connect wins; the others are closed */
		d->fd = fd;
		stop_attempts(d, fd);
		if (d->proxy.kind != PROXY_NONE)
			start_proxy(d);
		else
			succeed(d);
		return;
	}
	note_failure(d, &d->addrs.a[a - d->att], errno_word(e));
	ev_io_stop(loop, w);
	close(fd);
	a->fd = -1;
	/* RFC 8305: a failure starts the next attempt without waiting out the delay */
	if (d->next < d->addrs.n)
		start_next(d);
	else if (!in_flight(d))
		all_failed(d);
}

static int bind_socket(struct dial *d, int fd, int family)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (*d->iface &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, d->iface, (socklen_t)strlen(d->iface)) < 0)
		return -1;
	if (!*d->bind)
		return 0;
	if (!(len = sockaddr_parse(d->bind, 0, &ss)) || ss.ss_family != family)
		return errno = EAFNOSUPPORT, -1;
	return bind(fd, (struct sockaddr *)&ss, len);
}

/* Start one connect; false if it failed at once (noted). */
static bool start_one(struct dial *d, size_t idx)
{
	const struct sockaddr_storage *ss = &d->addrs.a[idx];
	struct attempt *a = &d->att[idx];
	socklen_t len =
	    ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd >= 0 && fd < 3) {
		/* lws treats fd 0 as "none": keep clear of the standard fds */
		int hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);

		close(fd);
		fd = hi;
	}
	if (fd < 0) {
		note_failure(d, ss, strerror(errno));
		return false;
	}
	if (bind_socket(d, fd, ss->ss_family) < 0) {
		note_failure(d, ss,
			     errno == EAFNOSUPPORT ? "not the family of link.bind_address"
			     : errno == EPERM	   ? "link.interface needs CAP_NET_RAW"
			     : errno == ENODEV	   ? "link.interface does not exist"
						   : errno_word(errno));
		close(fd);
		return false;
	}
	if (connect(fd, (const struct sockaddr *)ss, len) < 0 && errno != EINPROGRESS) {
		note_failure(d, ss, errno_word(errno));
		close(fd);
		return false;
	}
	a->fd = fd;
	a->d = d;
	ev_io_init(&a->w, attempt_cb, fd, EV_WRITE);
	a->w.data = a;
	ev_io_start(d->loop, &a->w);
	return true;
}

static void start_next(struct dial *d)
{
	ev_timer_stop(d->loop, &d->stagger);
	while (d->next < d->addrs.n && !start_one(d, d->order[d->next++]))
		;
	if (!in_flight(d)) {
		all_failed(d);
		return;
	}
	if (d->next < d->addrs.n) {
		ev_timer_set(&d->stagger, DIAL_ATTEMPT_DELAY_S, 0);
		ev_timer_start(d->loop, &d->stagger);
	}
}

static void stagger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	start_next(w->data);
}

/* RFC 8305 4: alternate families, IPv6 first; c-ares has sorted each by RFC 6724. */
static void order_addrs(struct dial *d)
{
	size_t n6 = 0, n4 = 0, i6[RESOLVE_MAX], i4[RESOLVE_MAX], k = 0;

	for (size_t i = 0; i < d->addrs.n; i++) {
		if (d->addrs.a[i].ss_family == AF_INET6)
			i6[n6++] = i;
		else
			i4[n4++] = i;
	}
	for (size_t i = 0; i < n6 || i < n4; i++) {
		if (i < n6)
			d->order[k++] = i6[i];
		if (i < n4)
			d->order[k++] = i4[i];
	}
	d->next = 0;
}

static void resolved(void *ud, const struct resolve_addrs *addrs, const char *err)
{
	struct dial *d = ud;
	/* addrs and err live in r: free it only after they are used */
	struct resolve *r = d->res;

	d->res = NULL;
	if (!addrs) {
		if (d->proxy.kind != PROXY_NONE)
			fail(d, "%s (the proxy %s, from %s)", err, d->proxy.text, d->proxy.source);
		else
			fail(d, "%s", err);
		resolve_free(r);
		return;
	}
	d->addrs = *addrs;
	resolve_free(r);
	d->phase = PH_CONNECT;
	order_addrs(d);
	start_next(d);
}

/* An IP literal needs no lookup. */
static bool literal(struct dial *d)
{
	memset(&d->addrs, 0, sizeof(d->addrs));
	d->addrs.n = sockaddr_parse(d->tcp_host, d->tcp_port, &d->addrs.a[0]) > 0;
	return d->addrs.n;
}

struct dial *dial_start(struct ev_loop *loop, const struct dial_req *req, dial_done_fn done,
			void *ud, char *err, size_t errlen)
{
	struct resolve_opts ro = {req->family, req->iface, req->bind_address};
	struct dial *d;

	if (req->iface && *req->iface && !if_nametoindex(req->iface)) {
		snprintf(err, errlen, "link.interface '%s' does not exist (yet): will retry",
			 req->iface);
		return NULL;
	}
	if (!(d = calloc(1, sizeof(*d)))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->loop = loop;
	d->done = done;
	d->ud = ud;
	d->fd = -1;
	for (size_t i = 0; i < RESOLVE_MAX; i++)
		d->att[i].fd = -1;
	snprintf(d->host, sizeof(d->host), "%s", req->host);
	d->port = req->port;
	if (req->proxy)
		d->proxy = *req->proxy;
	d->tcp_host = d->proxy.kind != PROXY_NONE ? d->proxy.host : d->host;
	d->tcp_port = d->proxy.kind != PROXY_NONE ? d->proxy.port : d->port;
	d->family = req->family;
	snprintf(d->bind, sizeof(d->bind), "%s", req->bind_address ? req->bind_address : "");
	snprintf(d->iface, sizeof(d->iface), "%s", req->iface ? req->iface : "");
	ev_timer_init(&d->stagger, stagger_cb, DIAL_ATTEMPT_DELAY_S, 0);
	d->stagger.data = d;

	if (literal(d)) {
		int fam = d->addrs.a[0].ss_family;

		if (d->family != AF_UNSPEC && d->family != fam) {
			snprintf(err, errlen, "%s is an %s address, but link.address_family is %s",
				 d->tcp_host, fam == AF_INET ? "IPv4" : "IPv6",
				 d->family == AF_INET ? "ipv4" : "ipv6");
			dial_free(d);
			return NULL;
		}
		/* through the loop like a lookup, so done() never runs inside dial_start */
		d->phase = PH_CONNECT;
		ev_timer_set(&d->stagger, 0, 0);
		ev_timer_start(loop, &d->stagger);
		order_addrs(d);
		return d;
	}
	d->phase = PH_RESOLVE;
	d->res = resolve_start(loop, d->tcp_host, d->tcp_port, &ro, resolved, d, err, errlen);
	if (!d->res) {
		dial_free(d);
		return NULL;
	}
	return d;
}

void dial_free(struct dial *d)
{
	if (!d)
		return;
	resolve_free(d->res);
	release(d);
	if (d->fd >= 0)
		close(d->fd);
	explicit_bzero(&d->proxy, sizeof(d->proxy));
	free(d);
}

/* Append the addresses of order[from, to) whose attempt is (or is not) in flight. */
static size_t list_addrs(const struct dial *d, size_t from, size_t to, bool in_flight,
			 const char *label, char *buf, size_t len, size_t o)
{
	bool first = true;

	for (size_t k = from; k < to && o < len; k++) {
		size_t i = d->order[k];
		char a[64];

		if (in_flight != (d->att[i].fd >= 0))
			continue;
		sockaddr_text(&d->addrs.a[i], a, sizeof(a));
		o += (size_t)snprintf(buf + o, len - o, "%s%s", first ? label : ", ", a);
		first = false;
	}
	return o;
}

/* "...never completed: no answer from A, B; failed: C refused; not tried: D" */
static void describe_connects(const struct dial *d, const char *target, char *buf, size_t len)
{
	size_t o = (size_t)snprintf(buf, len, "the TCP connect to %s never completed", target);

	o = list_addrs(d, 0, d->next, true, ": no answer from ", buf, len, o);
	if (d->fails[0] && o < len)
		o += (size_t)snprintf(buf + o, len - o, "; failed: %s", d->fails);
	if (d->next < d->addrs.n && o < len)
		(void)list_addrs(d, d->next, d->addrs.n, false, "; not tried yet: ", buf, len, o);
}

void dial_describe_wait(const struct dial *d, char *buf, size_t len)
{
	char t[320];

	target_text(d, t, sizeof(t));
	switch (d->phase) {
	case PH_RESOLVE:
		resolve_describe_wait(d->res, buf, len);
		if (d->proxy.kind != PROXY_NONE) {
			size_t o = strlen(buf);

			snprintf(buf + o, len - o, " (the %s)", t);
		}
		break;
	case PH_CONNECT:
		describe_connects(d, t, buf, len);
		break;
	case PH_PROXY:
		snprintf(buf, len,
			 "%s accepted the connection but stalled in its %s handshake for %s:%u", t,
			 d->proxy.kind == PROXY_HTTP ? "CONNECT" : "SOCKS5", d->host, d->port);
		break;
	}
}

static void tunnelled(void *ud, const char *err)
{
	struct dial *d = ud;

	if (err)
		fail(d, "%s", err);
	else
		succeed(d);
}

static void start_proxy(struct dial *d)
{
	d->phase = PH_PROXY;
	d->tun = tunnel_start(d->loop, d->fd, &d->proxy, d->host, d->port, tunnelled, d);
	if (!d->tun)
		fail(d, "out of memory starting the proxy handshake");
}

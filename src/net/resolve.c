#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ares.h>
#include <ev.h>

#include "log.h"
#include "sock.h"

/* UDP per name server plus TCP for truncated answers: more is a broken resolv.conf */
#define MAX_SOCKS 16

struct resolve {
	struct ev_loop *loop;
	ares_channel ch;
	bool have_ch;
	char host[256];
	uint16_t port;
	int family;
	char servers[128];
	char iface[IF_NAMESIZE];
	struct sockaddr_storage bind; /* link.bind_address, when bind_len */
	socklen_t bind_len;

	/* what the wire showed, to tell a silent resolver from one that said no */
	unsigned replies;
	int last_rcode, last_errno;

	ev_io io[MAX_SOCKS];
	bool io_used[MAX_SOCKS];
	ev_timer timer;	  /* c-ares's own retry timeouts */
	ev_timer deliver; /* done() from the loop, never from inside c-ares */

	bool finished;
	struct resolve_addrs addrs;
	char err[512];

	resolve_done_fn done;
	void *ud;
};

static void arm_timer(struct resolve *r)
{
	struct timeval tv, *t;

	ev_timer_stop(r->loop, &r->timer);
	if (!r->have_ch || r->finished)
		return;
	t = ares_timeout(r->ch, NULL, &tv);
	if (!t)
		return;
	ev_timer_set(&r->timer, (double)t->tv_sec + (double)t->tv_usec / 1e6, 0);
	ev_timer_start(r->loop, &r->timer);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct resolve *r = w->data;
	int fd = w->fd;

	ares_process_fd(r->ch, revents & EV_READ ? fd : ARES_SOCKET_BAD,
			revents & EV_WRITE ? fd : ARES_SOCKET_BAD);
	arm_timer(r);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolve *r = w->data;

	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(r);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolve *r = data;
	int ev = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0), free_slot = -1;

	for (int i = 0; i < MAX_SOCKS; i++) {
		if (!r->io_used[i]) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (r->io[i].fd != fd)
			continue;
		ev_io_stop(r->loop, &r->io[i]);
		if (!ev) {
			r->io_used[i] = false;
			return;
		}
		ev_io_set(&r->io[i], fd, ev);
		ev_io_start(r->loop, &r->io[i]);
		return;
	}
	if (!ev || free_slot < 0)
		return; /* out of slots: that query times out, and says so */
	r->io_used[free_slot] = true;
	ev_io_init(&r->io[free_slot], io_cb, fd, ev);
	r->io[free_slot].data = r;
	ev_io_start(r->loop, &r->io[free_slot]);
}

static void describe_servers(struct resolve *r)
{
	struct ares_addr_port_node *list = NULL;
	size_t o = 0;

	snprintf(r->servers, sizeof(r->servers), "(none configured)");
	if (ares_get_servers_ports(r->ch, &list) != ARES_SUCCESS)
		return;
	for (struct ares_addr_port_node *s = list; s && o < sizeof(r->servers) - 48; s = s->next) {
		char a[INET6_ADDRSTRLEN];
		unsigned port = s->udp_port ? (unsigned)s->udp_port : 53;

		ares_inet_ntop(s->family, &s->addr, a, sizeof(a));
		o += (size_t)snprintf(r->servers + o, sizeof(r->servers) - o, "%s%s%s%s",
				      o ? ", " : "", s->family == AF_INET6 && port != 53 ? "[" : "",
				      a, s->family == AF_INET6 && port != 53 ? "]" : "");
		if (port != 53)
			o += (size_t)snprintf(r->servers + o, sizeof(r->servers) - o, ":%u", port);
	}
	ares_free_data(list);
}

static const char *family_name(int family)
{
	return family == AF_INET ? "IPv4 (A)" : family == AF_INET6 ? "IPv6 (AAAA)" : "A or AAAA";
}

static void classify(struct resolve *r, int status)
{
	const char *h = r->host, *s = r->servers;

	/* c-ares folds REFUSED and SERVFAIL answers into "connection refused" */
	if ((status == ARES_ECONNREFUSED || status == ARES_ESERVFAIL || status == ARES_EREFUSED) &&
	    r->replies)
		status = r->last_rcode == 5   ? ARES_EREFUSED
			 : r->last_rcode == 2 ? ARES_ESERVFAIL
					      : status;
	switch (status) {
	case ARES_ENOTFOUND:
		snprintf(r->err, sizeof(r->err),
			 "DNS: no such name '%s' (NXDOMAIN from resolver %s, search list applied)",
			 h, s);
		break;
	case ARES_ENODATA:
		snprintf(r->err, sizeof(r->err), "DNS: '%s' has no %s record (resolver %s)", h,
			 family_name(r->family), s);
		break;
	case ARES_ETIMEOUT:
		snprintf(
		    r->err, sizeof(r->err),
		    "DNS: resolver timeout: %s did not answer for '%s' (check /etc/resolv.conf)", s,
		    h);
		break;
	case ARES_ECONNREFUSED:
		snprintf(r->err, sizeof(r->err),
			 "DNS: no resolver reachable: %s: %s, while looking up '%s' (check "
			 "/etc/resolv.conf)",
			 s, r->last_errno ? strerror(r->last_errno) : "no answer", h);
		break;
	case ARES_EREFUSED:
		snprintf(r->err, sizeof(r->err),
			 "DNS: resolver %s refused to look up '%s' (REFUSED)", s, h);
		break;
	case ARES_ESERVFAIL:
		snprintf(r->err, sizeof(r->err),
			 "DNS: resolver %s failed to look up '%s' (SERVFAIL)", s, h);
		break;
	default:
		snprintf(r->err, sizeof(r->err), "DNS: cannot resolve '%s': %s (resolver %s)", h,
			 ares_strerror(status), s);
		break;
	}
}

static void addrinfo_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct resolve *r = arg;

	if (status == ARES_EDESTRUCTION || r->finished) {
		ares_freeaddrinfo(res);
		return;
	}
	r->finished = true;
	if (status == ARES_SUCCESS) {
		for (struct ares_addrinfo_node *n = res ? res->nodes : NULL;
		     n && r->addrs.n < RESOLVE_MAX; n = n->ai_next) {
			struct sockaddr_storage *ss = &r->addrs.a[r->addrs.n];

			if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
			    n->ai_addrlen > sizeof(*ss))
				continue;
			memset(ss, 0, sizeof(*ss));
			memcpy(ss, n->ai_addr, n->ai_addrlen);
			if (n->ai_family == AF_INET)
				((struct sockaddr_in *)ss)->sin_port = htons(r->port);
			else
				((struct sockaddr_in6 *)ss)->sin6_port = htons(r->port);
			r->addrs.n++;
		}
		if (!r->addrs.n)
			classify(r, ARES_ENODATA);
	} else {
		classify(r, status);
	}
	ares_freeaddrinfo(res);
	ev_timer_start(r->loop, &r->deliver);
}

static void teardown(struct resolve *r)
{
	ev_timer_stop(r->loop, &r->timer);
	ev_timer_stop(r->loop, &r->deliver);
	if (r->have_ch) {
		r->finished = true; /* ares_destroy calls back with ARES_EDESTRUCTION */
		ares_destroy(r->ch);
		r->have_ch = false;
	}
	for (int i = 0; i < MAX_SOCKS; i++)
		if (r->io_used[i]) {
			ev_io_stop(r->loop, &r->io[i]);
			r->io_used[i] = false;
		}
}

static void deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolve *r = w->data;

	teardown(r);
	r->done(r->ud, r->addrs.n ? &r->addrs : NULL, r->addrs.n ? NULL : r->err);
}

static unsigned mask_bits(const struct sockaddr *mask)
{
	const unsigned char *b;
	size_t n = mask ? sockaddr_bytes(mask, &b) : 0;
	unsigned bits = 0;

	for (size_t i = 0; i < n; i++)
		bits += (unsigned)__builtin_popcount(b[i]);
	return bits;
}

/* This host's addresses with their networks, for resolve_server_unbound. */
static size_t own_addresses(struct resolve_local *own, size_t max)
{
	struct ifaddrs *list, *a;
	size_t n = 0;

	if (getifaddrs(&list) < 0)
		return 0;
	for (a = list; a && n < max; a = a->ifa_next) {
		int fam = a->ifa_addr ? a->ifa_addr->sa_family : AF_UNSPEC;

		if (fam != AF_INET && fam != AF_INET6)
			continue;
		memset(&own[n], 0, sizeof(own[n]));
		memcpy(&own[n].addr, a->ifa_addr,
		       fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
		own[n].prefix = a->ifa_netmask && a->ifa_netmask->sa_family == fam
				    ? mask_bits(a->ifa_netmask)
				    : 0;
		own[n++].ifindex = if_nametoindex(a->ifa_name);
	}
	freeifaddrs(list);
	return n;
}

/* link.interface and link.bind_address, as the link itself is bound. */
static int bind_query(struct resolve *r, int fd, int af)
{
	if (*r->iface &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, r->iface, (socklen_t)strlen(r->iface)) < 0)
		return -1;
	if (r->bind_len && r->bind.ss_family == af)
		return bind(fd, (struct sockaddr *)&r->bind, r->bind_len);
	return 0;
}

/*
 * Our own socket calls for c-ares: they see what came back (c-ares reports a
 * REFUSED answer and an unreachable server alike), and they bind the queries
 * as the link is bound, once the resolver's address shows that binding can
 * reach it (resolve_server_unbound).
 */
static ares_socket_t s_socket(int af, int type, int proto, void *ud)
{
	struct resolve *r = ud;
	int fd = socket(af, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);

	if (fd < 0) {
		r->last_errno = errno;
		return ARES_SOCKET_BAD;
	}
	return fd;
}

static int s_close(ares_socket_t fd, void *ud)
{
	return close(fd);
}

static int s_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len, void *ud)
{
	struct resolve *r = ud;
	struct resolve_local own[64];
	int rc;

	if (*r->iface || r->bind_len) {
		unsigned idx = *r->iface ? if_nametoindex(r->iface) : 0;

		if (!resolve_server_unbound(sa, idx, own, own_addresses(own, 64)) &&
		    bind_query(r, fd, sa->sa_family) < 0) {
			r->last_errno = errno;
			return -1;
		}
	}
	rc = connect(fd, sa, len);

	if (rc < 0 && errno != EINPROGRESS)
		r->last_errno = errno;
	return rc;
}

static ares_ssize_t s_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
			       struct sockaddr *from, ares_socklen_t *fromlen, void *ud)
{
	struct resolve *r = ud;
	ssize_t n = recvfrom(fd, buf, len, flags, from, fromlen);

	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		r->last_errno = errno;
	if (n > 0)
		r->replies++;
	/* over UDP (from set) the header comes first: RCODE is the low nibble of byte 3 */
	if (n >= 4 && from)
		r->last_rcode = ((unsigned char *)buf)[3] & 0x0f;
	return n;
}

static ares_ssize_t s_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *ud)
{
	struct resolve *r = ud;
	ssize_t rc = writev(fd, iov, n);

	if (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		r->last_errno = errno;
	return rc;
}

static const struct ares_socket_functions sock_funcs = {
    s_socket, s_close, s_connect, s_recvfrom, s_sendv,
};

struct resolve *resolve_start(struct ev_loop *loop, const char *host, uint16_t port,
			      const struct resolve_opts *o, resolve_done_fn done, void *ud,
			      char *err, size_t errlen)
{
	static bool lib_ready;
	struct ares_addrinfo_hints hints;
	struct ares_options opts;
	struct resolve *r;
	int rc;

	if (!lib_ready) {
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
			snprintf(err, errlen, "DNS: cannot start c-ares: %s", ares_strerror(rc));
			return NULL;
		}
		lib_ready = true;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->loop = loop;
	r->done = done;
	r->ud = ud;
	r->port = port;
	r->family = o->family;
	snprintf(r->host, sizeof(r->host), "%s", host);
	ev_timer_init(&r->timer, timer_cb, 1, 0);
	ev_timer_init(&r->deliver, deliver_cb, 0, 0);
	r->timer.data = r->deliver.data = r;

	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = sock_state_cb;
	opts.sock_state_cb_data = r;
	/* a channel per lookup: resolv.conf and hosts are read afresh every attempt */
	if ((rc = ares_init_options(&r->ch, &opts, ARES_OPT_SOCK_STATE_CB)) != ARES_SUCCESS) {
		snprintf(err, errlen, "DNS: cannot read the resolver configuration: %s",
			 ares_strerror(rc));
		free(r);
		return NULL;
	}
	r->have_ch = true;
	describe_servers(r);
	snprintf(r->iface, sizeof(r->iface), "%s", o->iface ? o->iface : "");
	if (o->bind_address && *o->bind_address &&
	    !(r->bind_len = sockaddr_parse(o->bind_address, 0, &r->bind))) {
		snprintf(err, errlen, "link.bind_address '%s' is not an IP address",
			 o->bind_address);
		resolve_free(r);
		return NULL;
	}
	ares_set_socket_functions(r->ch, &sock_funcs, r);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = o->family;
	hints.ai_socktype = SOCK_STREAM;
	ares_getaddrinfo(r->ch, host, NULL, &hints, addrinfo_cb, r);
	arm_timer(r);
	return r;
}

void resolve_free(struct resolve *r)
{
	if (!r)
		return;
	teardown(r);
	free(r);
}

void resolve_describe_wait(const struct resolve *r, char *buf, size_t len)
{
	snprintf(buf, len, "DNS: resolver timeout: %s did not answer for '%s'", r->servers,
		 r->host);
}

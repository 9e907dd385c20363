#include "netwatch.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

struct netwatch {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	netwatch_fn fn;
	void *ud;
};

static void addr_gone(const struct nlmsghdr *h, netwatch_fn fn, void *ud)
{
	const struct ifaddrmsg *ifa = NLMSG_DATA(h);
	const struct rtattr *rta = IFA_RTA(ifa);
	int len = (int)IFA_PAYLOAD(h);
	const void *local = NULL, *address = NULL;
	struct sockaddr_storage ss;

	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		if (rta->rta_type == IFA_LOCAL)
			local = RTA_DATA(rta);
		else if (rta->rta_type == IFA_ADDRESS)
			address = RTA_DATA(rta);
	}
	/* IPv4 point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours */
	if (!local)
		local = address;
	if (!local)
		return;
	memset(&ss, 0, sizeof(ss));
	if (ifa->ifa_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, local, 4);
	} else if (ifa->ifa_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, local, 16);
	} else {
		return;
	}
	fn(ud, NET_ADDR_GONE, &ss, 0);
}

static void route(const struct nlmsghdr *h, netwatch_fn fn, void *ud)
{
	const struct rtmsg *rt = NLMSG_DATA(h);
	const struct rtattr *rta = RTM_RTA(rt);
	int len = (int)RTM_PAYLOAD(h);
	size_t alen = rt->rtm_family == AF_INET ? 4 : 16;
	struct sockaddr_storage dst;

	/* local, broadcast and other tables' routes do not carry the link */
	if (rt->rtm_table != RT_TABLE_MAIN || rt->rtm_type != RTN_UNICAST)
		return;
	if (h->nlmsg_type == RTM_NEWROUTE) {
		if (rt->rtm_dst_len == 0)
			fn(ud, NET_DEFAULT_ROUTE, NULL, 0);
		return;
	}
	if (rt->rtm_family != AF_INET && rt->rtm_family != AF_INET6)
		return;
	memset(&dst, 0, sizeof(dst));
	dst.ss_family = rt->rtm_family;
	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		if (rta->rta_type != RTA_DST || RTA_PAYLOAD(rta) < alen)
			continue;
		if (rt->rtm_family == AF_INET)
			memcpy(&((struct sockaddr_in *)&dst)->sin_addr, RTA_DATA(rta), 4);
		else
			memcpy(&((struct sockaddr_in6 *)&dst)->sin6_addr, RTA_DATA(rta), 16);
	}
	fn(ud, NET_ROUTE_GONE, &dst, rt->rtm_dst_len);
}

bool netwatch_route_covers(const struct sockaddr_storage *dst, unsigned prefix,
			   const struct sockaddr_storage *peer)
{
	const unsigned char *a, *b;
	unsigned bits;

	if (!dst)
		return true;
	if (!peer || dst->ss_family != peer->ss_family)
		return false;
	if (dst->ss_family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)dst)->sin_addr;
		b = (const unsigned char *)&((const struct sockaddr_in *)peer)->sin_addr;
		bits = 32;
	} else if (dst->ss_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)dst)->sin6_addr.s6_addr;
		b = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
		bits = 128;
	} else {
		return false;
	}
	if (prefix > bits)
		return false;
	for (unsigned i = 0; i < prefix; i++) {
		unsigned char m = (unsigned char)(0x80 >> (i % 8));

		if ((a[i / 8] & m) != (b[i / 8] & m))
			return false;
	}
	return true;
}

void netwatch_parse(const void *buf, size_t len, netwatch_fn fn, void *ud)
{
	const unsigned char *p = buf;
	size_t off = 0;

	/* NLMSG_OK/NLMSG_NEXT mix signed and unsigned lengths: walk by hand */
	while (off + sizeof(struct nlmsghdr) <= len) {
		const struct nlmsghdr *h = (const struct nlmsghdr *)(const void *)(p + off);

		if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > len - off)
			return;
		switch (h->nlmsg_type) {
		case RTM_DELADDR:
			if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifaddrmsg)))
				addr_gone(h, fn, ud);
			break;
		case RTM_NEWROUTE:
		case RTM_DELROUTE:
			if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct rtmsg)))
				route(h, fn, ud);
			break;
		default:
			break;
		}
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct netwatch *w = io->data;
	/* aligned for struct nlmsghdr */
	union {
		struct nlmsghdr h;
		char b[16384];
	} buf;

	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(w->fd, buf.b, sizeof(buf.b), MSG_DONTWAIT);

		if (n < 0 && errno == ENOBUFS) {
			/* we missed messages: assume the worst about both kinds */
			w->fn(w->ud, NET_ROUTE_GONE, NULL, 0);
			w->fn(w->ud, NET_DEFAULT_ROUTE, NULL, 0);
			continue;
		}
		if (n <= 0)
			return;
		netwatch_parse(buf.b, (size_t)n, w->fn, w->ud);
	}
}

struct netwatch *netwatch_create(struct ev_loop *loop, netwatch_fn fn, void *ud)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	struct netwatch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
	sa.nl_groups =
	    RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
	if (w->fd < 0 || bind(w->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		if (w->fd >= 0)
			close(w->fd);
		free(w);
		errno = e;
		return NULL;
	}
	w->loop = loop;
	w->fn = fn;
	w->ud = ud;
	ev_io_init(&w->io, io_cb, w->fd, EV_READ);
	w->io.data = w;
	ev_io_start(loop, &w->io);
	return w;
}

void netwatch_destroy(struct netwatch *w)
{
	if (!w)
		return;
	ev_io_stop(w->loop, &w->io);
	close(w->fd);
	free(w);
}

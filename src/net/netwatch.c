#include "netwatch.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "sock.h"

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
	if (!local || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
		return;
	sockaddr_make(&ss, ifa->ifa_family, local, 0);
	fn(ud, NET_ADDR_GONE, &ss, 0);
}

static void route(const struct nlmsghdr *h, netwatch_fn fn, void *ud)
{
	const struct rtmsg *rt = NLMSG_DATA(h);
	const struct rtattr *rta = RTM_RTA(rt);
	int len = (int)RTM_PAYLOAD(h);
	static const unsigned char any[16];
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
	sockaddr_make(&dst, rt->rtm_family, any, 0);
	for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
		if (rta->rta_type == RTA_DST && RTA_PAYLOAD(rta) >= alen)
			sockaddr_make(&dst, rt->rtm_family, RTA_DATA(rta), 0);
	fn(ud, NET_ROUTE_GONE, &dst, rt->rtm_dst_len);
}

bool netwatch_route_covers(const struct sockaddr_storage *dst, unsigned prefix,
			   const struct sockaddr_storage *peer)
{
	return !dst || (peer && sockaddr_prefix_equal((const struct sockaddr *)dst,
						      (const struct sockaddr *)peer, prefix));
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
		if (h->nlmsg_type == RTM_DELADDR &&
		    h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifaddrmsg)))
			addr_gone(h, fn, ud);
		else if ((h->nlmsg_type == RTM_NEWROUTE || h->nlmsg_type == RTM_DELROUTE) &&
			 h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct rtmsg)))
			route(h, fn, ud);
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

#ifndef WST_NETWATCH_H
#define WST_NETWATCH_H

#include <stddef.h>
#include <sys/socket.h>

struct ev_loop;

/*
 * Address and route changes from rtnetlink, read on the loop. The daemon
 * probes the link when its footing goes away, and retries at once when a
 * default route appears while it waits.
 */
struct netwatch;

enum net_change {
	NET_ADDR_GONE,	   /* addr: the local address that was removed */
	NET_ROUTE_GONE,	   /* a unicast route of the main table was removed */
	NET_DEFAULT_ROUTE, /* a default route was added */
};

typedef void (*netwatch_fn)(void *ud, enum net_change what, const struct sockaddr_storage *addr);

/* NULL with errno set if rtnetlink cannot be opened; the daemon runs on without it. */
struct netwatch *netwatch_create(struct ev_loop *loop, netwatch_fn fn, void *ud);
void netwatch_destroy(struct netwatch *w);

/* One datagram of rtnetlink messages: fn for each change it reports. Pure, for tests. */
void netwatch_parse(const void *buf, size_t len, netwatch_fn fn, void *ud);

#endif

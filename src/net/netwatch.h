#ifndef WST_NETWATCH_H
#define WST_NETWATCH_H

#include <stdbool.h>
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

/*
 * addr: for NET_ADDR_GONE the local address removed; for NET_ROUTE_GONE the
 * route's destination (the family's zero address for a default route) and
 * prefix its length; NULL when messages were lost and anything may be gone.
 */
typedef void (*netwatch_fn)(void *ud, enum net_change what, const struct sockaddr_storage *addr,
			    unsigned prefix);

/* NULL with errno set if rtnetlink cannot be opened; the daemon runs on without it. */
struct netwatch *netwatch_create(struct ev_loop *loop, netwatch_fn fn, void *ud);
void netwatch_destroy(struct netwatch *w);

/*
 * Whether a route to dst/prefix that went away may have carried traffic to
 * peer, the link's far end: it covers that address. dst NULL (messages lost)
 * may have; a route of the other family or another network did not. Pure.
 */
bool netwatch_route_covers(const struct sockaddr_storage *dst, unsigned prefix,
			   const struct sockaddr_storage *peer);

/* One datagram of rtnetlink messages: fn for each change it reports. Pure, for tests. */
void netwatch_parse(const void *buf, size_t len, netwatch_fn fn, void *ud);

#endif

/* Which resolvers the link's interface and source binding apply to: pure, for unit tests. */
#include <netinet/in.h>

#include "resolve.h"
#include "sock.h"

/* Whether server lies in own's network (own's prefix), or is own itself with exact. */
static bool in_network(const struct sockaddr *server, const struct resolve_local *own, bool exact)
{
	const unsigned char *a;
	unsigned bits = exact ? (unsigned)sockaddr_bytes(server, &a) * 8 : own->prefix;

	return bits && sockaddr_prefix_equal(server, (const struct sockaddr *)&own->addr, bits);
}

static bool loopback(const struct sockaddr *server)
{
	if (server->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)server;

		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (server->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)server;

		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		       (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127);
	}
	return false;
}

bool resolve_server_unbound(const struct sockaddr *server, unsigned iface_index,
			    const struct resolve_local *own, size_t n)
{
	const struct sockaddr_in6 *s6 = (const void *)server;
	bool on_iface = false, elsewhere = false;

	if (loopback(server))
		return true;
	for (size_t i = 0; i < n; i++)
		if (in_network(server, &own[i], true))
			return true;
	/* every interface has fe80::/64: the scope says which one reaches it */
	if (server->sa_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr))
		return s6->sin6_scope_id && s6->sin6_scope_id != iface_index;
	for (size_t i = 0; i < n; i++) {
		if (!in_network(server, &own[i], false))
			continue;
		if (own[i].ifindex == iface_index)
			on_iface = true;
		else
			elsewhere = true;
	}
	/* on the interface's own network it is asked through it, whatever else is attached */
	return iface_index && elsewhere && !on_iface;
}

/* Which resolvers the link's interface and source binding apply to: pure, for unit tests. */
#include <netinet/in.h>
#include <string.h>

#include "resolve.h"

/* The address bytes of a v4 or v6 sockaddr, and their length; 0 for other families. */
static size_t addr_bytes(const struct sockaddr *sa, const unsigned char **out)
{
	if (sa->sa_family == AF_INET) {
		*out = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)
			   ->sin_addr;
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		*out = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		return 16;
	}
	return 0;
}

/* Whether server lies in own's network (own's prefix), or is own itself with exact. */
static bool in_network(const struct sockaddr *server, const struct resolve_local *own, bool exact)
{
	const unsigned char *a, *b;
	size_t n = addr_bytes(server, &a);
	unsigned bits = exact ? (unsigned)n * 8 : own->prefix;

	if (!n || (!exact && !own->prefix) || server->sa_family != own->addr.ss_family ||
	    addr_bytes((const struct sockaddr *)&own->addr, &b) != n || bits > n * 8)
		return false;
	for (unsigned i = 0; i < bits; i++) {
		unsigned char m = (unsigned char)(0x80 >> (i % 8));

		if ((a[i / 8] & m) != (b[i / 8] & m))
			return false;
	}
	return true;
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

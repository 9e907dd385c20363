/* Which resolvers the link's interface and source binding apply to: pure, for unit tests. */
#include <netinet/in.h>
#include <string.h>

#include "resolve.h"

static bool same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return false;
	if (a->sa_family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *)(const void *)a)->sin_addr,
			       &((const struct sockaddr_in *)(const void *)b)->sin_addr, 4);
	return !memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, 16);
}

bool resolve_server_unbound(const struct sockaddr *server, unsigned iface_index,
			    const struct sockaddr_storage *own, size_t n)
{
	if (server->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)server;

		if ((ntohl(s4->sin_addr.s_addr) >> 24) == 127)
			return true;
	} else if (server->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)server;
		const unsigned char *b = s6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && b[12] == 127))
			return true;
		if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr) && s6->sin6_scope_id &&
		    s6->sin6_scope_id != iface_index)
			return true;
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (same_addr(server, &own[i]))
			return true;
	return false;
}

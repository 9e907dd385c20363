#ifndef WST_TUNNEL_H
#define WST_TUNNEL_H

#include <stdint.h>

#include "proxy.h"

struct ev_loop;

/*
 * The proxy handshake on a connected socket, on the loop: HTTP CONNECT with
 * Basic auth, or SOCKS5 with RFC 1929 auth and the name resolved by the
 * proxy. The socket stays the caller's.
 */
struct tunnel;

/* err NULL: the socket now reaches host:port. Else one line naming the proxy. */
typedef void (*tunnel_done_fn)(void *ud, const char *err);

/* proxy must outlive the tunnel. NULL only when out of memory. */
struct tunnel *tunnel_start(struct ev_loop *loop, int fd, const struct proxy *proxy,
			    const char *host, uint16_t port, tunnel_done_fn done, void *ud);
void tunnel_free(struct tunnel *t);

/*
 * Credentials for the proxy from a file holding "user:password" on one line
 * (link.proxy_auth_file), read at every attempt. Its contents never reach err.
 */
int tunnel_read_auth_file(const char *file, struct proxy *p, char *err, size_t errlen);

#endif

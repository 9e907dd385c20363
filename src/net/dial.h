#ifndef WST_DIAL_H
#define WST_DIAL_H

#include <stdint.h>

#include "proxy.h"

struct ev_loop;

/*
 * Everything before the HTTP upgrade, on the loop and never blocking:
 * resolve, race the addresses (RFC 8305), bind, and tunnel through a proxy.
 * The result is a connected TCP socket that lws takes over for TLS and the
 * WebSocket upgrade.
 */
struct dial;

struct dial_req {
	const char *host; /* the server: a name or an IP literal, no brackets */
	uint16_t port;
	const struct proxy *proxy; /* NULL or PROXY_NONE: direct */
	int family;		   /* AF_UNSPEC, AF_INET, AF_INET6 */
	const char *bind_address;  /* "" or NULL: any */
	const char *iface;	   /* "" or NULL: any */
};

/* Which step failed: the proxy's handshake is the proxy's failure, not the connect's. */
enum dial_fail { DIAL_FAIL_CONNECT, DIAL_FAIL_PROXY };

/* fd >= 0: connected and tunnelled, now the caller's; else err says why in one line. */
typedef void (*dial_done_fn)(void *ud, int fd, enum dial_fail why, const char *err);

/* NULL with err set when it failed at once; done() is never called from here. */
struct dial *dial_start(struct ev_loop *loop, const struct dial_req *req, dial_done_fn done,
			void *ud, char *err, size_t errlen);
/* Stop, close every socket, free; no done() after this. NULL is fine. */
void dial_free(struct dial *d);
/* What the dial was waiting for, for a connect_timeout_s message. */
void dial_describe_wait(const struct dial *d, char *buf, size_t len);

/* Happy Eyeballs v2 (RFC 8305): the next family gets its turn after this. */
#define DIAL_ATTEMPT_DELAY_S 0.25

#endif

#ifndef WST_BRIDGE_H
#define WST_BRIDGE_H

#include <stddef.h>

#include "config.h"
#include "endpoint.h"

struct ev_loop;
struct bridge;

/*
 * Local programs talk to the server through a Unix socket (bridge.socket).
 * Each client may send; every message from the server goes to all clients.
 */

/* Listen; NULL with err set (a live socket means another instance is running). */
struct bridge *bridge_create(struct ev_loop *loop, const struct wst_config *cfg,
			     const struct endpoint_events *ops, char *err, size_t errlen);
/*
 * Its endpoint operations: pending and stalled look at each client; event
 * frames go to every client when bridge.events is on, and the latest to
 * each client that connects. status counts clients, and those dropped (not
 * reading, or a framing error such as an oversized line).
 */
extern const struct endpoint_impl bridge_endpoint;

#endif

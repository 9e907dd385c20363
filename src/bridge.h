#ifndef WST_BRIDGE_H
#define WST_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct ev_loop;
struct bridge;

/* Local programs talk to the server through a Unix socket (bridge.socket). */
struct bridge_ops {
	void *ud;
	/* false: the queue refuses it for now; that client pauses until bridge_resume */
	bool (*message)(void *ud, const unsigned char *data, size_t len, bool binary);
	/* a client's backlog fell low: reading from the server may resume */
	void (*drained)(void *ud);
};

/* Listen; -1 with err set (a live socket means another instance is running). */
struct bridge *bridge_create(struct ev_loop *loop, const struct wst_config *cfg,
			     const struct bridge_ops *ops, char *err, size_t errlen);
void bridge_destroy(struct bridge *b);

/* A message from the server, to every client. */
void bridge_broadcast(struct bridge *b, const unsigned char *data, size_t len, bool binary);
void bridge_resume(struct bridge *b);
void bridge_stop_input(struct bridge *b);
size_t bridge_clients(const struct bridge *b);
/* The most output waiting for a client that read some within active_s. */
size_t bridge_max_pending(const struct bridge *b, double active_s);
/* Drop clients that had output pending and read none of it for stall_s. */
void bridge_drop_stalled(struct bridge *b, double stall_s);
unsigned long long bridge_unframable(const struct bridge *b);
unsigned long long bridge_dropped_clients(const struct bridge *b);

#endif

#ifndef WST_EXEC_H
#define WST_EXEC_H

#include "endpoint.h"

struct ev_loop;
struct wst_config;
struct exec_handler;

/*
 * exec.command: a handler process spawned with pipes. Server messages go to
 * its stdin and its stdout feeds the queue, both framed like the bridge;
 * its stderr goes to the log. Restarted with backoff when it exits.
 */
struct exec_handler *exec_create(struct ev_loop *loop, const struct wst_config *cfg,
				 const struct endpoint_events *ops);
/*
 * Its endpoint operations. pending counts output for a handler that read
 * some within active_s; stalled terminates one that read none for stall_s
 * (it is restarted); destroy terminates it (SIGTERM, then SIGKILL after 2 s);
 * event writes an event frame when exec.events is on (the latest also to a
 * handler that starts).
 */
extern const struct endpoint_impl exec_endpoint;

#endif

#ifndef WST_CONTROL_H
#define WST_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "supervisor.h"

struct ev_loop;
struct wst_status;
struct control;

/*
 * The control socket: one request line in, one JSON line out, as often as
 * the client wants. Requests: status, metrics, send TEXT, reconnect, close
 * CODE [REASON], pause, resume, reload; and watch, after which the
 * connection carries link events, one JSON line each, until the client
 * closes it.
 */
struct control_ops {
	void *ud;
	/* Fill the snapshot the status document is built from. */
	void (*snapshot)(void *ud, struct wst_status *st);
	/* Each returns NULL on success, or the error text for the client. */
	const char *(*send)(void *ud, const char *text, size_t len);
	/* reconnect (--now: SUP_REQ_RECONNECT, else SUP_REQ_ROTATE), pause, resume */
	const char *(*request)(void *ud, enum sup_request r);
	const char *(*close)(void *ud, int code, const char *reason);
	const char *(*reload)(void *ud);
};

struct control *control_create(struct ev_loop *loop, const char *path, unsigned mode,
			       size_t max_line, const struct control_ops *ops, char *err,
			       size_t errlen);
void control_destroy(struct control *c);

/* A link event (control_event_json) to every watcher. c may be NULL. */
void control_event(struct control *c, const char *json, size_t len);

/*
 * A link event as one JSON object without a newline, for watchers and the
 * event frames of local endpoints; wall_ms is the Unix time in ms. Returns
 * text to free(), NULL when out of memory or for SUP_CHANGE_NONE.
 */
char *control_event_json(const struct sup_event *ev, int64_t wall_ms, size_t *len);

/*
 * Parse and run one request line; returns the answer line without its '\n'
 * (length in *olen), to free(), or NULL when out of memory. Separate from
 * the socket so unit tests and the fuzzer reach it.
 */
char *control_handle(const struct control_ops *ops, const char *line, size_t len, size_t *olen);

#endif

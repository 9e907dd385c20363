#ifndef WST_CONTROL_H
#define WST_CONTROL_H

#include <stddef.h>

struct ev_loop;
struct json;
struct control;

/*
 * The control socket: one request line in, one JSON line out, as often as
 * the client wants. Requests: status, send TEXT, reconnect, close CODE
 * [REASON], pause, resume, reload.
 */
struct control_ops {
	void *ud;
	/* Write the status fields into the open object j (after "ok":true). */
	void (*status)(void *ud, struct json *j);
	/* Each returns NULL on success, or the error text for the client. */
	const char *(*send)(void *ud, const char *text, size_t len);
	const char *(*reconnect)(void *ud);
	const char *(*close)(void *ud, int code, const char *reason);
	const char *(*pause)(void *ud);
	const char *(*resume)(void *ud);
	const char *(*reload)(void *ud);
};

struct control *control_create(struct ev_loop *loop, const char *path, unsigned mode,
			       size_t max_line, const struct control_ops *ops, char *err,
			       size_t errlen);
void control_destroy(struct control *c);

/*
 * Parse and run one request line; the answer goes into j. Separate from the
 * socket so unit tests reach it.
 */
void control_handle(const struct control_ops *ops, const char *line, size_t len,
		    struct json *j);

#endif

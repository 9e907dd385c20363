#ifndef WST_STDIO_H
#define WST_STDIO_H

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;

/*
 * --stdio: each stdin line is one text message for the queue; each text
 * message from the server is one stdout line. Reads and writes in bulk.
 * A full queue pauses reading (a pipe can wait; nothing is dropped), and a
 * stdout that does not keep up pauses reading from the server.
 */
struct stdio_bridge;

struct stdio_events {
	void *ud;
	/* a line from stdin; false: no room now, stdin pauses until stdio_resume */
	bool (*message)(void *ud, const char *line, size_t len);
	void (*eof)(void *ud);		/* stdin ended; all of it is queued */
	void (*rx_pause)(void *ud, bool pause);
	void (*broken)(void *ud);	/* stdout is gone */
};

struct stdio_bridge *stdio_create(struct ev_loop *loop, size_t max_line,
				  const struct stdio_events *ev);
void stdio_destroy(struct stdio_bridge *s);

/* The queue has room again: read on if we had paused. */
void stdio_resume(struct stdio_bridge *s);
/* Stop reading stdin for good (shutdown). */
void stdio_stop_input(struct stdio_bridge *s);
/* One message from the server; binary or multi-line text cannot be a line. */
void stdio_output(struct stdio_bridge *s, const unsigned char *data, size_t len, bool binary);
/* Write what is buffered for stdout, blocking; at exit. */
void stdio_flush(struct stdio_bridge *s);

#endif

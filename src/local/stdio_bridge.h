#ifndef WST_STDIO_H
#define WST_STDIO_H

#include <stddef.h>

#include "endpoint.h"

struct ev_loop;

/*
 * --stdio: each stdin line is one text message for the queue; each text
 * message from the server is one stdout line. Reads and writes in bulk.
 * A full queue pauses reading (a pipe can wait; nothing is dropped), and a
 * stdout that does not keep up counts as pending output (back-pressure).
 */
struct stdio_bridge;

struct stdio_bridge *stdio_create(struct ev_loop *loop, size_t max_line,
				  const struct endpoint_events *ev);
/* Its endpoint operations; destroy writes what is left for stdout, blocking. */
extern const struct endpoint_impl stdio_endpoint;

#endif

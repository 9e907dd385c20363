#ifndef WST_PEER_H
#define WST_PEER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "endpoint.h"

struct ev_loop;

/*
 * One local framed stream (a bridge client, the exec handler's pipes, a
 * control client, stdin and stdout): frames read from it go to its owner as
 * messages; those for it are framed into its bounded output buffer. A peer
 * that stops reading is dropped when the buffer is full, so it never stalls
 * the link (stdout has no bound: a pipe is waited for).
 */
struct peer;

struct peer_ops {
	/* Its messages (refused: it stops reading until peer_resume), its output draining. */
	struct endpoint_events ev;
	void *ud;
	/* The peer is gone or broke the protocol; it must be destroyed by the owner. */
	void (*closed)(void *ud, struct peer *p, const char *why);
	/* Optional, for separate pipes: the peer closed its end, but still reads ours. */
	void (*eof)(void *ud, struct peer *p);
	struct endpoint_drops *drops; /* counts what the peer sent that was dropped */
	/* Optional: a frame that can never be valid; the owner may answer before p is dropped. */
	void (*bad_frame)(void *ud, struct peer *p, const char *why);
	bool any_text; /* text need not be UTF-8: the owner checks it (control requests) */
	/*
	 * stdin and stdout: their flags are not set and they are not closed; an
	 * overlong line is dropped, the rest of it as it comes, not p; at EOF, a
	 * last line without '\n' is still a line; a read error ends input (eof)
	 * and out of memory pauses it (peer_resume reads on), instead of dropping p.
	 */
	bool stdio;
};

struct peer *peer_create(struct ev_loop *loop, int rfd, int wfd, enum framing framing,
			 size_t max_message, size_t out_limit, const char *name,
			 const struct peer_ops *ops);
void peer_destroy(struct peer *p);
const char *peer_name(const struct peer *p);

enum peer_send { PEER_SENT, PEER_UNFRAMABLE, PEER_FULL };
enum peer_send peer_send(struct peer *p, const unsigned char *data, size_t len, bool binary);
/* A link event frame (length-prefixed framing only; else PEER_UNFRAMABLE). */
enum peer_send peer_send_event(struct peer *p, const char *json, size_t len);

/*
 * Read what the peer left before it went away (its process exited): frames
 * go to ops.message as usual. May end in ops.closed, which destroys p.
 */
void peer_drain_input(struct peer *p);

/* The latest link event, replayed to a peer that connects or starts between events. */
struct last_event {
	char *json;
	size_t len;
};
/* Keep a copy (out of memory: the older one stays); free it with free(le->json). */
void last_event_keep(struct last_event *le, const char *json, size_t len);
/* Send it to p, when there is one. */
void last_event_replay(const struct last_event *le, struct peer *p);

/* Read on only to see the peer go: what it sends from now on is discarded. */
void peer_ignore_input(struct peer *p);
/* Write what the fd takes now, not on the next loop turn (an answer); fails as peer_drop. */
void peer_flush(struct peer *p);
/* The owner drops p: closed follows, at once, or from within message or bad_frame on return. */
void peer_drop(struct peer *p, const char *why);

/* Read on after a refusal. */
void peer_resume(struct peer *p);
/* Stop reading (shutdown); output still drains. */
void peer_stop_input(struct peer *p);
/* Close the write side once the output buffer is empty (EOF to the peer). */
void peer_close_output(struct peer *p);
size_t peer_pending_output(const struct peer *p);
/* Seconds the peer has had output pending without reading any of it; 0 when none. */
double peer_stalled_for(const struct peer *p);

#endif

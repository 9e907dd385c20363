#ifndef WST_OUTBOX_H
#define WST_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "queue.h"
#include "ratelimit.h"

struct spool;

/*
 * The outbound store: the queue, and the spool kept in step with it (what
 * leaves the queue leaves the spool). A full disk is an overflow too: the
 * sender is held back and nothing is lost.
 */
struct outbox {
	struct queue q;		/* the link reads and confirms it directly */
	struct ev_loop *loop;
	struct spool *spool;	/* NULL: memory only */
	char *dir;
	ev_prepare sync;
	ev_timer retry;
	uint64_t confirmed;	/* every seq below this is gone from the spool */
	bool failing;		/* the spool refused a write: senders are held back */
	struct ratelimit drop_log;	/* queue-full drops */
	unsigned long long too_big;	/* dropped: larger than the whole queue */
	unsigned long long too_big_bytes;
	void (*wake)(void *ud);	/* held-back senders may try again */
	void *ud;
};

/* Sets up the queue and opens (and replays) spool_dir unless it is "". -1: logged. */
int outbox_init(struct outbox *o, struct ev_loop *loop, size_t headroom, size_t max_messages,
		size_t max_bytes, enum queue_overflow overflow, const char *spool_dir,
		void (*wake)(void *ud), void *ud);
void outbox_finish(struct outbox *o);

/*
 * Queue one message from a local program. hold: a full queue holds the
 * sender back rather than drop or reject. false: not taken now; the sender
 * waits for wake(). A message larger than the whole queue is dropped (true).
 */
bool outbox_put(struct outbox *o, const void *data, size_t len, bool binary, bool hold);
/* Messages left the queue (confirmed or dropped): let the spool forget them. */
void outbox_confirmed(struct outbox *o);

#endif

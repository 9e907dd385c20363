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
	struct queue q;		/* the link writes and confirms through the calls below */
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

/*
 * The carrier's side: the next message to write and its data (NULL: none),
 * that it was written, the seq of the last written (0: none), and a pong
 * that confirms every message up to seq: they leave the queue and the spool
 * in one step. true: some did.
 */
struct qmsg *outbox_unsent(struct outbox *o, const unsigned char **data);
void outbox_sent(struct outbox *o);
uint64_t outbox_last_sent(const struct outbox *o);
bool outbox_confirm(struct outbox *o, uint64_t seq);
struct wst_status;
/* The queue's and the spool's part of the status. */
void outbox_status(const struct outbox *o, struct wst_status *st);
/* Why a message from `wstetherctl send` was refused. */
const char *outbox_refusal(const struct outbox *o);

#endif

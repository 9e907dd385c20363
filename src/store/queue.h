#ifndef WST_QUEUE_H
#define WST_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The outbound FIFO. A message stays in it until the server has confirmed
 * it (queue_confirm); messages written but not yet confirmed are "in flight"
 * and go out again after queue_rewind. Pure data structure: no I/O.
 */
struct qmsg {
	uint64_t seq;
	uint64_t queued_ms;	/* q->clock_ms() when it was queued: the oldest's age */
	uint32_t len;
	bool binary;
	/* headroom bytes, then len bytes of data, then a NUL */
};

enum queue_overflow { QUEUE_DROP_OLDEST, QUEUE_REJECT };

struct queue {
	struct qmsg **ring;
	size_t cap, head, count;
	size_t inflight;	/* messages from head that were written, unconfirmed */
	uint64_t written_seq;	/* newest seq ever written, kept across rewinds */
	size_t bytes;
	size_t headroom;
	size_t max_messages, max_bytes;
	enum queue_overflow overflow;
	uint64_t next_seq;
	uint64_t dropped, dropped_bytes, resent, rejected, rejected_bytes;
	uint64_t confirmed, confirmed_bytes, resent_bytes;
	uint64_t (*clock_ms)(void);	/* monotonic ms; tests may set their own */
};

void queue_init(struct queue *q, size_t headroom, size_t max_messages, size_t max_bytes,
		enum queue_overflow overflow);
void queue_finish(struct queue *q);

/* Writable data area of m (headroom bytes precede it). */
unsigned char *qmsg_data(const struct queue *q, struct qmsg *m);

/* True when a message of len bytes fits without dropping or rejecting. */
bool queue_has_room(const struct queue *q, size_t len);

/*
 * Append a copy of data. Returns 0, or -1 when rejected (overflow = reject
 * and full, or len larger than max_bytes, or out of memory). With
 * drop-oldest, older messages are dropped to make room and counted.
 */
int queue_push(struct queue *q, const void *data, size_t len, bool binary);

/*
 * Put back a message read from the spool with its own seq, whatever the
 * limits: they may have shrunk since it was spooled, and it must not be lost.
 */
int queue_restore(struct queue *q, uint64_t seq, const void *data, size_t len, bool binary);
/* A reload's new limits; messages already queued stay. */
void queue_set_limits(struct queue *q, size_t max_messages, size_t max_bytes,
		      enum queue_overflow overflow);

/* The next message not yet written, or NULL. */
struct qmsg *queue_peek_unsent(const struct queue *q);
void queue_mark_sent(struct queue *q);
/* Seq of the newest written message; 0 when nothing is in flight. */
uint64_t queue_last_sent_seq(const struct queue *q);
/* The server has read every message up to seq: release them. */
void queue_confirm(struct queue *q, uint64_t seq);
/* The link died: in-flight messages will be written again. */
void queue_rewind(struct queue *q);
/*
 * Messages written at least once and not confirmed, rewound or not (the
 * rest were never written): what "unconfirmed" means at exit.
 */
size_t queue_written(const struct queue *q);

/* How long the oldest message has waited, in ms; -1 when empty. */
int64_t queue_oldest_age_ms(const struct queue *q);

/* Seq of the oldest message, or the next seq to be given when empty. */
uint64_t queue_head_seq(const struct queue *q);

static inline size_t queue_len(const struct queue *q) { return q->count; }

#endif

#include "outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "spool.h"
#include "status.h"

/* Messages left the queue (confirmed or dropped): let the spool forget them. */
static void forget(struct outbox *o)
{
	uint64_t head = queue_head_seq(&o->q);

	if (!o->spool || head <= o->confirmed)
		return;
	if (spool_confirm(o->spool, head - 1) < 0)
		log_errno(LOG_WARNING, "spool %s: recording confirmations", o->dir);
	o->confirmed = head;
}

static bool spool_put(struct outbox *o, const void *data, size_t len, bool binary)
{
	if (spool_append(o->spool, o->q.next_seq, data, len, binary) < 0) {
		if (!o->failing)
			log_errno(LOG_WARNING, "spool %s: cannot write a message (holding local "
				  "senders back until the queue drains)", o->dir);
		o->failing = true;
		/* with nothing in flight no confirmation will come to wake them: poll */
		if (!ev_is_active(&o->retry))
			ev_timer_again(o->loop, &o->retry);
		return false;
	}
	if (o->failing) {
		log_msg(LOG_NOTICE, "spool %s: writing again", o->dir);
		o->failing = false;
		ev_timer_stop(o->loop, &o->retry);
	}
	return true;
}

bool outbox_put(struct outbox *o, const void *data, size_t len, bool binary, bool hold)
{
	struct queue *q = &o->q;
	unsigned long long dropped = q->dropped;

	if (len > q->max_bytes) {
		/* larger than the whole queue can never fit: drop it rather than stall */
		log_msg(LOG_WARNING, "a local message of %zu bytes exceeds queue.max_bytes: dropped",
			len);
		o->too_big++;
		o->too_big_bytes += len;
		return true;
	}
	if (!queue_has_room(q, len) && (hold || q->overflow == QUEUE_REJECT)) {
		if (!hold) {
			q->rejected++;
			q->rejected_bytes += len;
		}
		return false;
	}
	if (o->spool && !spool_put(o, data, len, binary))
		return false;
	if (queue_push(q, data, len, binary) < 0) {
		log_msg(LOG_ERR, "out of memory queueing a local message");
		/* the spool has this seq: never hand it out again */
		q->next_seq++;
		return false;
	}
	if (q->dropped != dropped) {
		if (ratelimit_allow(&o->drop_log, 0))
			log_msg(LOG_WARNING, "queue full (queue.max_messages %zu, max_bytes %zu): "
				"dropped the oldest message(s), %llu so far", q->max_messages,
				q->max_bytes, (unsigned long long)q->dropped);
		forget(o);
	}
	return true;
}

struct qmsg *outbox_unsent(struct outbox *o, const unsigned char **data)
{
	struct qmsg *m = queue_peek_unsent(&o->q);

	if (m && data)
		*data = qmsg_data(&o->q, m);
	return m;
}

void outbox_sent(struct outbox *o)
{
	queue_mark_sent(&o->q);
}

uint64_t outbox_last_sent(const struct outbox *o)
{
	return queue_last_sent_seq(&o->q);
}

bool outbox_confirm(struct outbox *o, uint64_t seq)
{
	size_t before = queue_len(&o->q);

	if (!before || !seq)
		return false;
	queue_confirm(&o->q, seq);
	if (queue_len(&o->q) == before)
		return false;
	forget(o);
	return true;
}

/* One fdatasync per loop iteration that wrote, not one per message. */
static void sync_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct outbox *o = w->data;

	if (spool_dirty(o->spool) && spool_sync(o->spool) < 0)
		log_errno(LOG_WARNING, "spool %s: fdatasync", o->dir);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct outbox *o = w->data;

	if (o->failing)
		o->wake(o->ud);
	else
		ev_timer_stop(loop, w);
}

static int replay(void *ud, uint64_t seq, const void *data, size_t len, bool binary)
{
	struct outbox *o = ud;

	if (queue_restore(&o->q, seq, data, len, binary) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static void spool_warn(void *ud, const char *msg)
{
	log_msg(LOG_WARNING, "spool: %s", msg);
}

static int open_spool(struct outbox *o)
{
	struct spool_params p = { .replay = replay, .warn = spool_warn, .ud = o };
	struct spool_stats st;

	o->spool = spool_open(o->dir, &p, &st);
	if (!o->spool) {
		if (errno == EWOULDBLOCK)
			log_msg(LOG_ERR, "spool %s: in use by another process", o->dir);
		else
			log_errno(LOG_ERR, "spool %s: cannot open (queue.spool_dir)", o->dir);
		return -1;
	}
	if (o->q.next_seq <= st.last_seq)
		o->q.next_seq = st.last_seq + 1;
	o->confirmed = queue_head_seq(&o->q);
	if (st.replayed)
		log_msg(LOG_NOTICE, "spool %s: %zu message(s) (%llu bytes) from before the restart "
			"will be sent", o->dir, st.replayed, (unsigned long long)st.replayed_bytes);
	ev_prepare_start(o->loop, &o->sync);
	return 0;
}

int outbox_init(struct outbox *o, struct ev_loop *loop, size_t headroom, size_t max_messages,
		size_t max_bytes, enum queue_overflow overflow, const char *spool_dir,
		void (*wake)(void *ud), void *ud)
{
	memset(o, 0, sizeof(*o));
	queue_init(&o->q, headroom, max_messages, max_bytes, overflow);
	o->drop_log = (struct ratelimit)RATELIMIT(0, 0, 1000);
	o->loop = loop;
	o->wake = wake;
	o->ud = ud;
	ev_prepare_init(&o->sync, sync_cb);
	ev_timer_init(&o->retry, retry_cb, 0, 1.0);
	o->sync.data = o->retry.data = o;
	if (!*spool_dir)
		return 0;
	if (!(o->dir = strdup(spool_dir))) {
		log_msg(LOG_ERR, "out of memory");
		return -1;
	}
	return open_spool(o);
}

/*
 * What is left at exit. A written message may well have reached the server
 * (it closed before the pong to our last ping, say), so it is "unconfirmed",
 * not "undelivered". Kept in the spool, nothing is lost: a notice.
 */
static void say_unconfirmed(struct outbox *o)
{
	size_t all = queue_len(&o->q), written = queue_written(&o->q);
	int level = o->dir ? LOG_NOTICE : LOG_WARNING;
	const char *kept = o->dir ? ", kept in the spool" : "";

	if (written == all)
		log_msg(level,
			"exiting with %zu unconfirmed message(s): written, but no pong "
			"confirmed them%s",
			all, kept);
	else if (written)
		log_msg(level,
			"exiting with %zu unconfirmed message(s): %zu written but not "
			"confirmed by a pong, %zu never sent%s",
			all, written, all - written, kept);
	else
		log_msg(level, "exiting with %zu unsent message(s)%s", all, kept);
}

void outbox_finish(struct outbox *o)
{
	if (o->spool) {
		ev_prepare_stop(o->loop, &o->sync);
		ev_timer_stop(o->loop, &o->retry);
		forget(o);
		if (spool_close(o->spool) < 0)
			log_errno(LOG_WARNING, "spool %s: closing", o->dir);
		o->spool = NULL;
	}
	if (queue_len(&o->q))
		say_unconfirmed(o);
	queue_finish(&o->q);
	free(o->dir);
	o->dir = NULL;
}

void outbox_status(const struct outbox *o, struct wst_status *st)
{
	const struct queue *q = &o->q;

	st->resent = q->resent;
	st->resent_bytes = q->resent_bytes;
	st->confirmed = q->confirmed;
	st->confirmed_bytes = q->confirmed_bytes;
	st->oldest_queued_ms = queue_oldest_age_ms(q);
	st->queue_messages = queue_len(q);
	st->queue_bytes = q->bytes;
	st->queue_max_messages = q->max_messages;
	st->queue_max_bytes = q->max_bytes;
	st->reject_overflow = q->overflow == QUEUE_REJECT;
	st->dropped = q->dropped;
	st->dropped_bytes = q->dropped_bytes;
	st->rejected = q->rejected;
	st->rejected_bytes = q->rejected_bytes;
	st->too_big = o->too_big;
	st->too_big_bytes = o->too_big_bytes;
	st->spool_on = o->spool != NULL;
	if (st->spool_on)
		spool_status(o->spool, &st->spool);
}

const char *outbox_refusal(const struct outbox *o)
{
	struct spool_status sp;

	if (!o->failing || !o->spool)
		return "queue full";
	spool_status(o->spool, &sp);
	return sp.disk_full ? "no space for the spool (queue.spool_dir)"
			    : "the spool cannot be written (queue.spool_dir)";
}

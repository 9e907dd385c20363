#include "queue.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Coarse: a stamp per message must cost next to nothing. */
static uint64_t coarse_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void queue_init(struct queue *q, size_t headroom, size_t max_messages, size_t max_bytes,
		enum queue_overflow overflow)
{
	memset(q, 0, sizeof(*q));
	/* keep the data area aligned like malloc's */
	q->headroom = (headroom + 15) & ~(size_t)15;
	queue_set_limits(q, max_messages, max_bytes, overflow);
	q->next_seq = 1;
	q->clock_ms = coarse_ms;
}

static struct qmsg *at(const struct queue *q, size_t i)
{
	return q->ring[(q->head + i) & (q->cap - 1)];
}

static void drop_head(struct queue *q)
{
	struct qmsg *m = at(q, 0);

	q->bytes -= m->len;
	free(m);
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	if (q->inflight)
		q->inflight--;
}

void queue_finish(struct queue *q)
{
	while (q->count)
		drop_head(q);
	free(q->ring);
	q->ring = NULL;
	q->cap = 0;
}

unsigned char *qmsg_data(const struct queue *q, struct qmsg *m)
{
	return (unsigned char *)(m + 1) + q->headroom;
}

bool queue_has_room(const struct queue *q, size_t len)
{
	return q->count < q->max_messages && q->bytes + len <= q->max_bytes;
}

static int grow(struct queue *q)
{
	size_t ncap = q->cap ? q->cap * 2 : 64;
	struct qmsg **nr = malloc(ncap * sizeof(*nr));

	if (!nr)
		return -1;
	for (size_t i = 0; i < q->count; i++)
		nr[i] = at(q, i);
	free(q->ring);
	q->ring = nr;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

static int append(struct queue *q, uint64_t seq, const void *data, size_t len, bool binary)
{
	struct qmsg *m;

	if (q->count == q->cap && grow(q) < 0)
		return -1;
	m = malloc(sizeof(*m) + q->headroom + len + 1);
	if (!m)
		return -1;
	m->seq = seq;
	m->queued_ms = q->clock_ms();
	m->len = (uint32_t)len;
	m->binary = binary;
	memcpy(qmsg_data(q, m), data, len);
	qmsg_data(q, m)[len] = '\0';
	q->ring[(q->head + q->count) & (q->cap - 1)] = m;
	q->count++;
	q->bytes += len;
	return 0;
}

int queue_push(struct queue *q, const void *data, size_t len, bool binary)
{
	if (len > q->max_bytes || len > UINT32_MAX ||
	    (!queue_has_room(q, len) && q->overflow == QUEUE_REJECT))
		goto reject;
	while (q->count && !queue_has_room(q, len)) {
		q->dropped++;
		q->dropped_bytes += at(q, 0)->len;
		drop_head(q);
	}
	if (append(q, q->next_seq, data, len, binary) < 0)
		goto reject;
	q->next_seq++;
	return 0;
reject:
	q->rejected++;
	q->rejected_bytes += len;
	return -1;
}

int queue_restore(struct queue *q, uint64_t seq, const void *data, size_t len, bool binary)
{
	if (len > UINT32_MAX || append(q, seq, data, len, binary) < 0)
		return -1;
	q->next_seq = seq + 1;
	return 0;
}

void queue_set_limits(struct queue *q, size_t max_messages, size_t max_bytes,
		      enum queue_overflow overflow)
{
	q->max_messages = max_messages;
	q->max_bytes = max_bytes;
	q->overflow = overflow;
}

struct qmsg *queue_peek_unsent(const struct queue *q)
{
	return q->inflight < q->count ? at(q, q->inflight) : NULL;
}

void queue_mark_sent(struct queue *q)
{
	if (q->inflight < q->count) {
		if (at(q, q->inflight)->seq > q->written_seq)
			q->written_seq = at(q, q->inflight)->seq;
		q->inflight++;
	}
}

uint64_t queue_last_sent_seq(const struct queue *q)
{
	return q->inflight ? at(q, q->inflight - 1)->seq : 0;
}

void queue_confirm(struct queue *q, uint64_t seq)
{
	while (q->inflight && at(q, 0)->seq <= seq) {
		q->confirmed++;
		q->confirmed_bytes += at(q, 0)->len;
		drop_head(q);
	}
}

void queue_rewind(struct queue *q)
{
	q->resent += q->inflight;
	for (size_t i = 0; i < q->inflight; i++)
		q->resent_bytes += at(q, i)->len;
	q->inflight = 0;
}

size_t queue_written(const struct queue *q)
{
	size_t n = 0;

	/* written in order from the head, so the written ones are a prefix */
	while (n < q->count && at(q, n)->seq <= q->written_seq)
		n++;
	return n;
}

uint64_t queue_head_seq(const struct queue *q)
{
	return q->count ? at(q, 0)->seq : q->next_seq;
}

int64_t queue_oldest_age_ms(const struct queue *q)
{
	uint64_t now;

	if (!q->count)
		return -1;
	now = q->clock_ms();
	return now > at(q, 0)->queued_ms ? (int64_t)(now - at(q, 0)->queued_ms) : 0;
}

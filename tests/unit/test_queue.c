#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "queue.h"

static void push_str(struct queue *q, const char *s, int want)
{
	assert_int_equal(queue_push(q, s, strlen(s), false), want);
}

static const char *peek(struct queue *q)
{
	struct qmsg *m = queue_peek_unsent(q);

	return m ? (const char *)qmsg_data(q, m) : NULL;
}

static void keeps_fifo_order_and_headroom(void **state)
{
	struct queue q;
	char buf[16];

	queue_init(&q, 16, 1000, 1 << 20, QUEUE_DROP_OLDEST);
	for (int i = 0; i < 300; i++) { /* crosses several ring growths */
		snprintf(buf, sizeof(buf), "m%d", i);
		push_str(&q, buf, 0);
	}
	for (int i = 0; i < 300; i++) {
		struct qmsg *m = queue_peek_unsent(&q);

		snprintf(buf, sizeof(buf), "m%d", i);
		assert_non_null(m);
		assert_string_equal((char *)qmsg_data(&q, m), buf);
		/* the headroom before the data is ours to write (lws frame header) */
		memset(qmsg_data(&q, m) - 16, 0xaa, 16);
		queue_mark_sent(&q);
	}
	assert_null(queue_peek_unsent(&q));
	assert_int_equal(queue_len(&q), 300);
	queue_finish(&q);
}

static void confirms_and_rewinds_in_flight_messages(void **state)
{
	struct queue q;

	queue_init(&q, 0, 100, 1000, QUEUE_DROP_OLDEST);
	push_str(&q, "a", 0);
	push_str(&q, "b", 0);
	push_str(&q, "c", 0);
	queue_mark_sent(&q);
	queue_mark_sent(&q);
	assert_int_equal(queue_last_sent_seq(&q), 2);
	assert_string_equal(peek(&q), "c");

	queue_confirm(&q, 1); /* the server read "a" */
	assert_int_equal(queue_len(&q), 2);
	assert_int_equal(q.bytes, 2);

	queue_rewind(&q); /* link died: "b" goes again, before "c" */
	assert_int_equal(q.resent, 1);
	assert_string_equal(peek(&q), "b");
	queue_mark_sent(&q);
	queue_mark_sent(&q);
	queue_confirm(&q, 99); /* only what was written can be confirmed */
	assert_int_equal(queue_len(&q), 0);
	assert_int_equal(q.bytes, 0);
	assert_int_equal(queue_last_sent_seq(&q), 0);
	queue_finish(&q);
}

static void drop_oldest_counts_what_it_drops(void **state)
{
	struct queue q;

	queue_init(&q, 0, 3, 1000, QUEUE_DROP_OLDEST);
	push_str(&q, "1", 0);
	push_str(&q, "2", 0);
	queue_mark_sent(&q); /* "1" in flight, then dropped */
	push_str(&q, "3", 0);
	push_str(&q, "4", 0);
	assert_int_equal(queue_len(&q), 3);
	assert_int_equal(q.dropped, 1);
	assert_int_equal(q.inflight, 0);
	assert_string_equal(peek(&q), "2");

	/* byte bound too */
	push_str(&q, "0123456789", 0);
	assert_int_equal(q.dropped, 2);
	queue_finish(&q);

	queue_init(&q, 0, 100, 10, QUEUE_DROP_OLDEST);
	push_str(&q, "12345", 0);
	push_str(&q, "123456", 0);
	assert_int_equal(queue_len(&q), 1);
	assert_int_equal(q.dropped_bytes, 5);
	push_str(&q, "12345678901", -1); /* larger than the whole queue */
	assert_int_equal(q.rejected, 1);
	queue_finish(&q);
}

static void reject_refuses_and_keeps_the_old(void **state)
{
	struct queue q;

	queue_init(&q, 0, 2, 1000, QUEUE_REJECT);
	push_str(&q, "a", 0);
	push_str(&q, "b", 0);
	assert_false(queue_has_room(&q, 1));
	push_str(&q, "c", -1);
	assert_int_equal(q.rejected, 1);
	assert_int_equal(q.rejected_bytes, 1);
	assert_int_equal(q.dropped, 0);
	assert_string_equal(peek(&q), "a");
	queue_finish(&q);
}

static void empty_and_binary_messages(void **state)
{
	struct queue q;
	struct qmsg *m;
	const unsigned char bin[4] = { 0, 1, 0, 255 };

	queue_init(&q, 0, 10, 100, QUEUE_DROP_OLDEST);
	assert_int_equal(queue_push(&q, "", 0, false), 0);
	assert_int_equal(queue_push(&q, bin, 4, true), 0);
	m = queue_peek_unsent(&q);
	assert_int_equal(m->len, 0);
	queue_mark_sent(&q);
	m = queue_peek_unsent(&q);
	assert_true(m->binary);
	assert_memory_equal(qmsg_data(&q, m), bin, 4);
	queue_finish(&q);
}

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static void counts_confirmed_and_resent_bytes_and_ages_the_oldest(void **state)
{
	struct queue q;

	queue_init(&q, 0, 10, 1000, QUEUE_DROP_OLDEST);
	q.clock_ms = fake_clock;
	fake_now = 1000;
	assert_int_equal(queue_oldest_age_ms(&q), -1);
	push_str(&q, "abc", 0);
	fake_now = 1500;
	push_str(&q, "de", 0);
	fake_now = 4000;
	assert_int_equal(queue_oldest_age_ms(&q), 3000);
	queue_mark_sent(&q);
	queue_mark_sent(&q);
	queue_rewind(&q);
	assert_int_equal(q.resent, 2);
	assert_int_equal(q.resent_bytes, 5);
	queue_mark_sent(&q);
	queue_confirm(&q, queue_last_sent_seq(&q));
	assert_int_equal(q.confirmed, 1);
	assert_int_equal(q.confirmed_bytes, 3);
	/* the next oldest was queued later */
	assert_int_equal(queue_oldest_age_ms(&q), 2500);
	fake_now = 100; /* a clock that went backwards is no negative age */
	assert_int_equal(queue_oldest_age_ms(&q), 0);
	queue_finish(&q);
}

/* At exit, "unconfirmed" counts what was ever written, rewound or not; the rest were never sent. */
static void counts_written_messages_across_rewinds(void **state)
{
	struct queue q;

	queue_init(&q, 0, 100, 1 << 20, QUEUE_REJECT);
	push_str(&q, "a", 0);
	push_str(&q, "b", 0);
	push_str(&q, "c", 0);
	push_str(&q, "d", 0);
	assert_int_equal(queue_written(&q), 0);
	queue_mark_sent(&q);
	queue_mark_sent(&q);
	queue_mark_sent(&q);
	assert_int_equal(queue_written(&q), 3);
	queue_rewind(&q); /* the link died: still written once, maybe read by the server */
	assert_int_equal(queue_written(&q), 3);
	queue_mark_sent(&q);
	queue_confirm(&q, queue_last_sent_seq(&q));
	assert_int_equal(queue_written(&q), 2);
	assert_int_equal(queue_len(&q), 3);
	queue_finish(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keeps_fifo_order_and_headroom),
		cmocka_unit_test(confirms_and_rewinds_in_flight_messages),
		cmocka_unit_test(drop_oldest_counts_what_it_drops),
		cmocka_unit_test(reject_refuses_and_keeps_the_old),
		cmocka_unit_test(empty_and_binary_messages),
		cmocka_unit_test(counts_confirmed_and_resent_bytes_and_ages_the_oldest),
		cmocka_unit_test(counts_written_messages_across_rewinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

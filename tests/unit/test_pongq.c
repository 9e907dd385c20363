#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pongq.h"

static void pop_expect(struct pongq *q, const char *want)
{
	size_t len = 999;
	const unsigned char *p = pongq_peek(q, &len);

	assert_non_null(p);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(p, want, len);
	pongq_pop(q);
}

/* Autobahn 2.10: ten pings in a row get ten pongs, in order, each with its payload. */
static void answers_every_ping_in_order(void **state)
{
	struct pongq q = {0};
	char buf[16];
	size_t len;

	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "ping-%d", i);
		assert_false(pongq_push(&q, (const unsigned char *)buf, strlen(buf)));
	}
	assert_int_equal(pongq_len(&q), 10);
	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "ping-%d", i);
		pop_expect(&q, buf);
	}
	assert_null(pongq_peek(&q, &len));
}

/* Empty and 125-byte payloads both come back whole. */
static void keeps_payloads_of_every_size(void **state)
{
	unsigned char big[PONGQ_PAYLOAD];
	const unsigned char *p;
	struct pongq q = {0};
	size_t len;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)i;
	pongq_push(&q, big, 0);
	pongq_push(&q, big, sizeof(big));
	pop_expect(&q, "");
	p = pongq_peek(&q, &len);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(p, big, sizeof(big));
}

/*
 * A flood keeps only the newest PONGQ_MAX, still in order, the latest ping
 * among them (RFC 6455 5.5.3), and counts what it dropped.
 */
static void a_flood_keeps_the_newest_and_counts_the_rest(void **state)
{
	struct pongq q = {0};
	char buf[16];
	int drops = 0;

	for (int i = 0; i < 1000; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		drops += pongq_push(&q, (const unsigned char *)buf, strlen(buf));
	}
	assert_int_equal(drops, 1000 - PONGQ_MAX);
	assert_int_equal(pongq_len(&q), PONGQ_MAX);
	for (int i = 1000 - PONGQ_MAX; i < 1000; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		pop_expect(&q, buf);
	}
	assert_int_equal(pongq_len(&q), 0);
	pongq_pop(&q); /* popping nothing is harmless */
	assert_int_equal(pongq_len(&q), 0);
}

/* Writes between pings: the ring wraps around many times and nothing is lost or reordered. */
static void wraps_around_without_loss(void **state)
{
	struct pongq q = {0};
	char buf[16];
	int next_out = 0;

	for (int i = 0; i < 10 * PONGQ_MAX; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		assert_false(pongq_push(&q, (const unsigned char *)buf, strlen(buf)));
		if (i % 3 == 2) {
			while (pongq_len(&q)) {
				snprintf(buf, sizeof(buf), "%d", next_out++);
				pop_expect(&q, buf);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(answers_every_ping_in_order),
	    cmocka_unit_test(keeps_payloads_of_every_size),
	    cmocka_unit_test(a_flood_keeps_the_newest_and_counts_the_rest),
	    cmocka_unit_test(wraps_around_without_loss),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

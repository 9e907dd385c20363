#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"

/* A burst of 10, then one a second: the rest are counted as suppressed. */
static void bucket_allows_a_burst_then_one_per_period(void **state)
{
	struct ratelimit r = RATELIMIT(10, 1000, 0);
	uint64_t t = 5000;
	int allowed = 0;

	for (int i = 0; i < 15; i++)
		allowed += ratelimit_allow(&r, t);
	assert_int_equal(allowed, 10);
	assert_int_equal(r.suppressed, 5);
	assert_false(ratelimit_allow(&r, t + 999));
	assert_true(ratelimit_allow(&r, t + 1000));
	assert_false(ratelimit_allow(&r, t + 1999));
	/* an hour idle refills the burst, never more */
	t += 3600 * 1000;
	allowed = 0;
	for (int i = 0; i < 20; i++)
		allowed += ratelimit_allow(&r, t);
	assert_int_equal(allowed, 10);
}

/* Once an hour for one message: exactly at the hour it is said again. */
static void once_per_period(void **state)
{
	struct ratelimit r = RATELIMIT(1, 3600 * 1000, 0);

	assert_true(ratelimit_allow(&r, 7000));
	assert_false(ratelimit_allow(&r, 7000 + 3599 * 1000));
	assert_true(ratelimit_allow(&r, 7000 + 3600 * 1000));
	/* a clock that steps back refills nothing */
	assert_false(ratelimit_allow(&r, 1000));
	ratelimit_reset(&r, 1000);
	assert_true(ratelimit_allow(&r, 1000));
	assert_int_equal(r.suppressed, 0);
}

static void first_only_without_a_clock(void **state)
{
	struct ratelimit r = { 0 };

	assert_true(ratelimit_allow(&r, 0));
	for (int i = 0; i < 10000; i++)
		assert_false(ratelimit_allow(&r, 0));
	assert_int_equal(r.suppressed, 10000);
}

/* The 1st, 1001st, 2001st ... of a run. */
static void every_nth_event(void **state)
{
	struct ratelimit r = RATELIMIT(0, 0, 1000);

	for (int i = 0; i < 3000; i++)
		assert_int_equal(ratelimit_allow(&r, 0), i % 1000 == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bucket_allows_a_burst_then_one_per_period),
	    cmocka_unit_test(once_per_period),
	    cmocka_unit_test(first_only_without_a_clock),
	    cmocka_unit_test(every_nth_event),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

#define DRAWS 10000

static void grows_exponentially_to_the_cap_without_jitter(void **state)
{
	struct backoff b;
	const unsigned want[] = { 500, 1000, 2000, 4000, 8000, 10000, 10000 };

	backoff_init(&b, 500, 10000, 2.0, 0.0, 1);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(backoff_next(&b), want[i]);
	backoff_reset(&b);
	assert_int_equal(backoff_next(&b), 500);
}

/* Every delay of step n lies in [d(1-j), d]; over 10,000 draws they spread over it. */
static void jitter_stays_in_bounds_and_spreads(void **state)
{
	const double jit = 0.5;
	double sum = 0, min = 1e18, max = 0;
	unsigned buckets[10] = { 0 };

	for (int i = 0; i < DRAWS; i++) {
		struct backoff b;
		unsigned d;

		backoff_init(&b, 1000, 60000, 2.0, jit, (uint64_t)i * 7919 + 1);
		backoff_next(&b);
		backoff_next(&b);
		d = backoff_next(&b); /* third step: nominal 4000 */
		assert_true(d >= 2000 && d <= 4000);
		sum += d;
		min = fmin(min, d);
		max = fmax(max, d);
		buckets[(d - 2000) * 10 / 2001]++;
	}
	/* uniform over [2000, 4000]: mean 3000, the ends reached, each tenth ~1000 */
	assert_true(fabs(sum / DRAWS - 3000) < 40);
	assert_true(min < 2050 && max > 3950);
	for (int i = 0; i < 10; i++)
		assert_true(buckets[i] > 850 && buckets[i] < 1150);
}

static void capped_delays_keep_their_jitter(void **state)
{
	struct backoff b;
	unsigned lo = 1u << 31, hi = 0;

	backoff_init(&b, 500, 60000, 2.0, 0.5, 42);
	for (int i = 0; i < DRAWS; i++) {
		unsigned d = backoff_next(&b);

		if (i > 20) {
			assert_true(d >= 30000 && d <= 60000);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
	}
	assert_true(lo < 31000 && hi > 59000);
}

static void full_jitter_never_returns_zero(void **state)
{
	struct backoff b;

	backoff_init(&b, 1, 10, 2.0, 1.0, 3);
	for (int i = 0; i < DRAWS; i++)
		assert_true(backoff_next(&b) >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(grows_exponentially_to_the_cap_without_jitter),
		cmocka_unit_test(jitter_stays_in_bounds_and_spreads),
		cmocka_unit_test(capped_delays_keep_their_jitter),
		cmocka_unit_test(full_jitter_never_returns_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

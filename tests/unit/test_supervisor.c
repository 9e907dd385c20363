#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "supervisor.h"

static const struct sup_params P = { 500, 60000, 2.0, 0.0, 30 };

static void failures_back_off_exponentially(void **state)
{
	struct supervisor s;
	uint64_t t = 1000;

	sup_init(&s, &P, 1);
	sup_attempt(&s);
	assert_int_equal(s.state, SUP_CONNECTING);
	assert_int_equal(sup_down(&s, t, SUP_FAILED, 0), 500);
	assert_int_equal(s.state, SUP_WAITING);
	sup_attempt(&s);
	assert_int_equal(sup_down(&s, t += 500, SUP_FAILED, 0), 1000);
	sup_attempt(&s);
	assert_int_equal(sup_down(&s, t += 1000, SUP_FAILED, 0), 2000);
	assert_int_equal(s.failures, 3);
	assert_int_equal(s.attempts, 3);
}

/* A server that accepts and drops at once must not get a reconnect storm. */
static void short_lived_links_do_not_reset_the_backoff(void **state)
{
	struct supervisor s;
	uint64_t t = 1000;
	unsigned d = 0;

	sup_init(&s, &P, 1);
	for (int i = 0; i < 6; i++) {
		sup_attempt(&s);
		sup_up(&s, t);
		d = sup_down(&s, t += 100, SUP_CLOSED, 0);
		t += d;
	}
	assert_int_equal(d, 16000);

	/* one that stayed up reset_after_s earns a fresh start */
	sup_attempt(&s);
	assert_int_equal(sup_up(&s, t), 16000); /* down since the last drop */
	assert_int_equal(sup_down(&s, t + 30000, SUP_CLOSED, 0), 500);
	assert_int_equal(s.reconnects, 6);
}

static void server_restart_and_auth_and_retry_after(void **state)
{
	struct supervisor s;

	sup_init(&s, &P, 1);
	sup_attempt(&s);
	sup_down(&s, 0, SUP_FAILED, 0);
	sup_attempt(&s);
	sup_down(&s, 0, SUP_FAILED, 0);
	sup_attempt(&s);
	sup_up(&s, 10);
	assert_int_equal(sup_down(&s, 20, SUP_SERVER_RESTART, 0), 500);
	sup_attempt(&s);
	assert_int_equal(sup_down(&s, 30, SUP_AUTH_REJECTED, 0), 60000);
	sup_attempt(&s);
	/* Retry-After wins when longer than the backoff, capped at max_ms x 10 */
	assert_int_equal(sup_down(&s, 40, SUP_RETRY_AFTER, 3), 3000);
	sup_attempt(&s);
	assert_int_equal(sup_down(&s, 50, SUP_RETRY_AFTER, 100000), 600000);
}

/* 1001/1012 at every connect must not become a storm of initial_ms retries. */
static void restart_closes_get_one_fast_retry_per_streak(void **state)
{
	struct supervisor s;
	uint64_t t = 0;

	sup_init(&s, &P, 1);
	sup_attempt(&s);
	sup_up(&s, t);
	assert_int_equal(sup_down(&s, t += 10, SUP_SERVER_RESTART, 0), 500);
	sup_attempt(&s);
	sup_up(&s, t += 500);
	assert_int_equal(sup_down(&s, t += 10, SUP_SERVER_RESTART, 0), 500);
	sup_attempt(&s);
	sup_up(&s, t += 500);
	assert_int_equal(sup_down(&s, t += 10, SUP_SERVER_RESTART, 0), 1000);
	/* a link that stayed up earns the fast retry again */
	sup_attempt(&s);
	sup_up(&s, t += 1000);
	assert_int_equal(sup_down(&s, t += 30000, SUP_SERVER_RESTART, 0), 500);
}

static void names_states(void **state)
{
	assert_string_equal(sup_state_name(SUP_CONNECTED), "connected");
	assert_string_equal(sup_state_name(SUP_WAITING), "waiting");
	assert_string_equal(sup_state_name((enum sup_state)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failures_back_off_exponentially),
		cmocka_unit_test(short_lived_links_do_not_reset_the_backoff),
		cmocka_unit_test(server_restart_and_auth_and_retry_after),
		cmocka_unit_test(restart_closes_get_one_fast_retry_per_streak),
		cmocka_unit_test(names_states),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

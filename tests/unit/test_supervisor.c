#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <syslog.h>

#include <cmocka.h>

#include "supervisor.h"

/* jitter 0: every delay is exact, so the fake clock can check it */
static const struct sup_params P = { 500, 60000, 2.0, 0.0, 30, 5000 };
static const char *const URLS[] = { "ws://a/", "ws://b/", "ws://c/" };

static struct link_end fail_end(void)
{
	return (struct link_end){.fail = LINK_FAIL_CONNECT, .msg = "cannot connect to a:80"};
}

static struct link_end closed_end(int code)
{
	return (struct link_end){.fail = LINK_FAIL_CLOSED,
				 .was_up = true,
				 .close_code = code,
				 .close_reason = "bye",
				 .msg = "server closed the link"};
}

static void init(struct supervisor *s, size_t n_urls)
{
	struct sup_verdict v;

	sup_init(s, &P, URLS, n_urls, 1);
	sup_start(s, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
	assert_string_equal(v.url, URLS[0]);
	assert_int_equal(s->state, SUP_CONNECTING);
}

/* Fail the current attempt at time t; returns the delay. */
static unsigned fail_at(struct supervisor *s, uint64_t t, struct link_end e, struct sup_verdict *v)
{
	sup_down(s, s->primary, t, &e, 0, v);
	assert_int_equal(v->act, SUP_DO_WAIT);
	assert_int_equal(s->state, SUP_WAITING);
	return v->delay_ms;
}

/* The wait is over: the next attempt starts. */
static void retry(struct supervisor *s, uint64_t t)
{
	struct sup_verdict v;

	sup_timer(s, t, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
}

static void failures_back_off_exponentially_and_count_attempts(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t t = 1000;

	init(&s, 1);
	assert_int_equal(fail_at(&s, t, fail_end(), &v), 500);
	assert_int_equal(sup_next_retry_ms(&s, t + 100), 400);
	retry(&s, t += 500);
	assert_int_equal(sup_next_retry_ms(&s, t), -1);
	assert_int_equal(fail_at(&s, t, fail_end(), &v), 1000);
	retry(&s, t += 1000);
	assert_int_equal(fail_at(&s, t, fail_end(), &v), 2000);
	assert_int_equal(s.tries, 3);
	assert_int_equal(s.attempts, 3);
	/* the retry line names the next attempt */
	assert_string_equal(v.lines[1].text, "reconnecting to ws://a/ in 2.0 s (attempt 4)");
	assert_string_equal(v.lines[1].ctx.event, "retry");
	assert_int_equal(v.lines[1].ctx.attempt, 4);
	assert_string_equal(v.status, "reconnecting in 2.0 s (attempt 4): cannot connect to a:80");
	assert_string_equal(s.last_error, "cannot connect to a:80");
}

static void timer_outside_a_wait_does_nothing(void **state)
{
	struct supervisor s;
	struct sup_verdict v;

	init(&s, 1);
	sup_timer(&s, 5, &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	assert_int_equal(s.attempts, 1);
}

/* A server that accepts and drops at once must not get a reconnect storm. */
static void short_lived_links_do_not_reset_the_backoff(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t t = 1000;
	unsigned d = 0;

	init(&s, 1);
	for (int i = 0; i < 6; i++) {
		sup_up(&s, s.primary, t, &v);
		d = fail_at(&s, t += 100, closed_end(1000), &v);
		retry(&s, t += d);
	}
	assert_int_equal(d, 16000);
	assert_int_equal(s.tries, 7);
	/* one that stayed up reset_after_s earns a fresh start: backoff and tries */
	sup_up(&s, s.primary, t, &v);
	assert_string_equal(v.lines[0].text,
			    "connected to ws://a/ again after 16.0 s down (it dropped 6 time(s) in a row)");
	assert_int_equal(fail_at(&s, t + 30000, closed_end(1000), &v), 500);
	assert_int_equal(s.tries, 0);
	assert_int_equal(s.reconnects, 6);
}

static void auth_rejection_and_retry_after(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct link_end e = fail_end();

	init(&s, 1);
	e.http_status = 401;
	assert_int_equal(fail_at(&s, 10, e, &v), 60000);
	retry(&s, 20);
	e.http_status = 403;
	assert_int_equal(fail_at(&s, 30, e, &v), 60000);
	retry(&s, 40);
	/* Retry-After wins when longer than the backoff, capped at max_ms x 10 */
	e.http_status = 503;
	e.retry_after_s = 3;
	assert_int_equal(fail_at(&s, 50, e, &v), 3000);
	retry(&s, 60);
	e.http_status = 429;
	e.retry_after_s = 100000;
	assert_int_equal(fail_at(&s, 70, e, &v), 600000);
	retry(&s, 80);
	/* shorter than the backoff: the backoff wins */
	e.retry_after_s = 0;
	assert_int_equal(fail_at(&s, 90, e, &v), 2000);
}

/* 1001/1012 at every connect must not become a storm of initial_ms retries. */
static void restart_closes_get_one_fast_retry_per_streak(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t t = 0;

	init(&s, 1);
	fail_at(&s, t += 10, fail_end(), &v);
	retry(&s, t += 500);
	fail_at(&s, t += 10, fail_end(), &v);
	retry(&s, t += 1000);
	sup_up(&s, s.primary, t += 10, &v);
	assert_int_equal(fail_at(&s, t += 10, closed_end(1012), &v), 500);
	retry(&s, t += 500);
	sup_up(&s, s.primary, t += 10, &v);
	assert_int_equal(fail_at(&s, t += 10, closed_end(1001), &v), 2000);
	retry(&s, t += 2000);
	/* a link that stayed up earns the fast retry again */
	sup_up(&s, s.primary, t += 10, &v);
	assert_int_equal(fail_at(&s, t += 30000, closed_end(1001), &v), 500);
	assert_int_equal(s.last_close_code, 1001);
	assert_string_equal(s.last_close_reason, "bye");
}

static void first_failure_warns_repeats_are_info_then_rate_limited(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t t = 0;
	int info = 0, debug = 0;

	init(&s, 1);
	fail_at(&s, t, fail_end(), &v);
	assert_int_equal(v.lines[0].level, LOG_WARNING);
	assert_string_equal(v.lines[0].text, "cannot connect to a:80");
	assert_string_equal(v.lines[0].ctx.event, "disconnect");
	assert_int_equal(v.lines[1].level, LOG_INFO);
	/* the same failure 30 times within a second: 10 lines, the rest at debug */
	for (int i = 0; i < 30; i++) {
		retry(&s, t += 1);
		fail_at(&s, t += 1, fail_end(), &v);
		if (v.lines[0].level == LOG_INFO)
			info++;
		else if (v.lines[0].level == LOG_DEBUG)
			debug++;
	}
	assert_int_equal(info, 10);
	assert_int_equal(debug, 20);
	assert_int_equal(v.lines[1].level, LOG_DEBUG);
	/* after the bucket refilled, the count of hidden lines is said */
	retry(&s, t += 5000);
	fail_at(&s, t, fail_end(), &v);
	assert_int_equal(v.lines[0].level, LOG_INFO);
	assert_string_equal(v.lines[0].text,
			    "cannot connect to a:80 (attempt 32; 20 similar line(s) not shown)");
	/* a different failure (another close code) warns again */
	retry(&s, t += 1);
	sup_up(&s, s.primary, t, &v);
	assert_int_equal(v.lines[0].level, LOG_NOTICE);
	assert_string_equal(v.lines[0].text, "connected to ws://a/ after 5.1 s down");
	fail_at(&s, t += 1, closed_end(1011), &v);
	assert_int_equal(v.lines[0].level, LOG_WARNING);
	assert_int_equal(v.lines[0].ctx.close_code, 1011);
}

static void flapping_links_reconnect_quietly(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t t = 0;

	init(&s, 1);
	sup_up(&s, s.primary, t, &v);
	assert_string_equal(v.lines[0].text, "connected to ws://a/");
	fail_at(&s, t += 100, closed_end(1011), &v);
	assert_int_equal(v.lines[0].level, LOG_WARNING);
	retry(&s, t += 500);
	/* one short-lived link is still news */
	sup_up(&s, s.primary, t, &v);
	assert_int_equal(v.lines[0].level, LOG_NOTICE);
	fail_at(&s, t += 100, closed_end(1011), &v);
	assert_int_equal(v.lines[0].level, LOG_INFO);
	retry(&s, t += 1000);
	sup_up(&s, s.primary, t, &v);
	assert_int_equal(v.lines[0].level, LOG_INFO);
}

static void fallback_urls_rotate_after_failures_not_after_requests(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct link_end byreq = closed_end(0);

	init(&s, 3);
	fail_at(&s, 1, fail_end(), &v);
	assert_string_equal(v.lines[1].ctx.url, "ws://b/");
	sup_timer(&s, 600, &v);
	assert_string_equal(v.url, "ws://b/");
	fail_at(&s, 700, fail_end(), &v);
	sup_timer(&s, 2000, &v);
	assert_string_equal(v.url, "ws://c/");
	fail_at(&s, 2100, fail_end(), &v);
	sup_timer(&s, 5000, &v);
	assert_string_equal(v.url, "ws://a/");
	sup_up(&s, s.primary, 5001, &v);
	byreq.by_request = true;
	fail_at(&s, 5002, byreq, &v);
	assert_int_equal(v.lines[0].level, LOG_NOTICE);
	assert_string_equal(sup_url(&s), "ws://a/");
	/* a reload that changes link settings starts at link.url again */
	fail_at(&s, 5003, fail_end(), &v);
	assert_string_equal(sup_url(&s), "ws://b/");
	sup_reconfigure(&s, &P, URLS, 3, true);
	assert_string_equal(sup_url(&s), "ws://a/");
}

/* A server's normal close (1000, or a close without a code) is a notice; 1011 still warns. */
static void a_clean_close_by_the_server_is_a_notice(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct link_end clean = closed_end(1000), empty = closed_end(0), err = closed_end(1011);
	uint64_t t = 1;

	clean.clean_close = empty.clean_close = true;
	init(&s, 1);
	sup_up(&s, s.primary, t, &v);
	fail_at(&s, t += 1, clean, &v);
	assert_int_equal(v.lines[0].level, LOG_NOTICE);
	assert_int_equal(v.lines[0].ctx.close_code, 1000);
	sup_timer(&s, t += 1000, &v);
	sup_up(&s, s.primary, t, &v);
	fail_at(&s, t += 1, empty, &v);
	assert_int_equal(v.lines[0].level, LOG_NOTICE);
	sup_timer(&s, t += 2000, &v);
	sup_up(&s, s.primary, t, &v);
	fail_at(&s, t += 1, err, &v);
	assert_int_equal(v.lines[0].level, LOG_WARNING);
}

static void reconnect_request_closes_then_connects_at_once(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct link_end e = closed_end(0);

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_request(&s, SUP_REQ_RECONNECT, 20, &v);
	assert_int_equal(v.act, SUP_DO_CLOSE);
	assert_int_equal(v.close_code, 1000);
	assert_string_equal(v.close_reason, "reconnect");
	assert_int_equal(v.id, s.primary);
	e.by_request = true;
	sup_down(&s, s.primary, 30, &e, 0, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
	assert_string_equal(v.lines[0].text, "reconnecting on request");
	/* while waiting, a reconnect connects at once */
	fail_at(&s, 40, fail_end(), &v);
	sup_request(&s, SUP_REQ_RECONNECT, 50, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
}

static void reconfigure_request(void **state)
{
	struct supervisor s;
	struct sup_verdict v;

	init(&s, 1);
	sup_request(&s, SUP_REQ_RECONFIGURE, 1, &v);
	assert_int_equal(v.act, SUP_DO_CLOSE);
	assert_string_equal(v.close_reason, "reconfigured");
	sup_down(&s, s.primary, 2, &(struct link_end){.fail = 9, .by_request = true, .msg = "x"}, 0,
		 &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
	fail_at(&s, 3, fail_end(), &v);
	sup_request(&s, SUP_REQ_RECONFIGURE, 4, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
}

static void pause_and_resume(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct link_end e = closed_end(0);

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_request(&s, SUP_REQ_PAUSE, 20, &v);
	assert_int_equal(v.act, SUP_DO_CLOSE);
	assert_string_equal(v.close_reason, "paused");
	assert_string_equal(v.lines[0].text, "pausing the link on request");
	sup_request(&s, SUP_REQ_RECONNECT, 21, &v);
	assert_string_equal(v.refused, "paused: use resume");
	e.by_request = true;
	sup_down(&s, s.primary, 30, &e, 0, &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	assert_int_equal(s.state, SUP_PAUSED);
	assert_string_equal(v.status, "paused");
	sup_request(&s, SUP_REQ_PAUSE, 31, &v);
	assert_int_equal(v.n_lines, 0);
	sup_request(&s, SUP_REQ_RESUME, 40, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
	assert_string_equal(v.lines[0].text, "resuming the link on request");
	/* pausing while waiting: no link to close, paused at once */
	fail_at(&s, 50, fail_end(), &v);
	sup_request(&s, SUP_REQ_PAUSE, 60, &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	assert_int_equal(s.state, SUP_PAUSED);
	sup_timer(&s, 2000, &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	sup_request(&s, SUP_REQ_RESUME, 61, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
}

static void stop_ends_everything(void **state)
{
	struct supervisor s;
	struct sup_verdict v;

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_request(&s, SUP_REQ_STOP, 20, &v);
	assert_int_equal(s.state, SUP_STOPPING);
	sup_request(&s, SUP_REQ_RECONNECT, 21, &v);
	assert_string_equal(v.refused, "stopping");
	sup_down(&s, s.primary, 30, &(struct link_end){.fail = LINK_FAIL_CLOSED, .msg = "closed"},
		 0, &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	assert_int_equal(v.lines[0].level, LOG_INFO);
}

/* The lines about the primary's end say which change it was, why, and whose close code. */
static void end_lines_tell_failed_from_down_and_carry_our_close_code(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct link_end refused = fail_end();

	init(&s, 1);
	refused.http_status = 503;
	fail_at(&s, 10, refused, &v);
	assert_string_equal(v.lines[0].ctx.event, "disconnect");
	assert_string_equal(v.lines[0].ctx.link, "failed");
	assert_string_equal(v.lines[0].ctx.cause, "connect");
	assert_int_equal(v.lines[0].ctx.http_status, 503);
	assert_null(v.lines[1].ctx.link); /* the retry line */
	retry(&s, 600);
	sup_up(&s, s.primary, 700, &v);
	assert_string_equal(v.lines[0].ctx.link, "up");
	fail_at(&s, 800, closed_end(4001), &v);
	assert_string_equal(v.lines[0].ctx.link, "down");
	assert_int_equal(v.lines[0].ctx.close_code, 4001);
	assert_false(v.lines[0].ctx.close_ours);
	retry(&s, 5000);
	sup_up(&s, s.primary, 5100, &v);
	sup_request(&s, SUP_REQ_STOP, 5200, &v);
	sup_down(&s, s.primary, 5300,
		 &(struct link_end){.fail = LINK_FAIL_CLOSED,
				    .was_up = true,
				    .by_request = true,
				    .msg = "closed",
				    .sent_close_code = 1001},
		 0, &v);
	assert_string_equal(v.lines[0].ctx.link, "down");
	assert_int_equal(v.lines[0].ctx.close_code, 1001);
	assert_true(v.lines[0].ctx.close_ours);
}

static void rotation_replaces_the_link_once_the_new_one_is_up(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t old, reconnects;

	init(&s, 1);
	/* nothing to replace yet: a rotation is a reconnect */
	sup_request(&s, SUP_REQ_ROTATE, 5, &v);
	assert_int_equal(v.act, SUP_DO_CLOSE);
	assert_string_equal(v.close_reason, "reconnect");
	sup_down(&s, s.primary, 6,
		 &(struct link_end){.fail = LINK_FAIL_CLOSED, .by_request = true, .msg = "x"}, 0,
		 &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
	sup_up(&s, s.primary, 10, &v);
	old = s.primary;
	reconnects = s.reconnects;
	sup_request(&s, SUP_REQ_ROTATE, 20, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
	assert_int_not_equal(v.id, old);
	assert_string_equal(v.lines[0].text, "opening a new link to ws://a/ to replace the current one");
	sup_request(&s, SUP_REQ_ROTATE, 21, &v);
	assert_string_equal(v.refused, "a rotation is under way");
	/* the new link comes up: it carries traffic, the old one finishes and closes */
	sup_up(&s, s.standby, 50, &v);
	assert_int_equal(v.act, SUP_DO_PROMOTE);
	assert_int_equal(v.old, old);
	assert_int_equal(v.id, s.primary);
	assert_int_equal(s.rotations, 1);
	assert_int_equal(s.reconnects, reconnects);
	/* the old link's end is no failure */
	sup_down(&s, old, 60,
		 &(struct link_end){.fail = LINK_FAIL_CLOSED, .by_request = true, .msg = "x"}, 0,
		 &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	assert_int_equal(v.lines[0].level, LOG_DEBUG);
	assert_int_equal(s.state, SUP_CONNECTED);
	assert_int_equal(s.retiring, 0);
}

/* A server that refuses a second connection still gets its rotation, the old way. */
static void failed_rotation_falls_back_to_a_reconnect(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t old;

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	old = s.primary;
	sup_request(&s, SUP_REQ_ROTATE, 20, &v);
	sup_down(&s, v.id, 30, &(struct link_end){.fail = 4, .http_status = 409, .msg = "refused"},
		 0, &v);
	assert_int_equal(v.act, SUP_DO_CLOSE);
	assert_int_equal(v.id, old);
	assert_int_equal(v.lines[0].level, LOG_WARNING);
	assert_int_equal(s.state, SUP_CONNECTED);
	sup_down(&s, old, 40,
		 &(struct link_end){.fail = LINK_FAIL_CLOSED, .by_request = true, .msg = "x"}, 0,
		 &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
}

/* 1001/1012 arrive while the replacement connects: it becomes the next attempt, no wait. */
static void primary_ending_during_rotation_hands_over_to_the_new_attempt(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t next;

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_request(&s, SUP_REQ_ROTATE, 20, &v);
	next = v.id;
	sup_down(&s, s.primary, 30,
		 &(struct link_end){.fail = LINK_FAIL_CLOSED,
				    .was_up = true,
				    .close_code = 1012,
				    .msg = "server closed"},
		 0, &v);
	/* the attempt under way carries traffic now: nothing to retire */
	assert_int_equal(v.act, SUP_DO_PROMOTE);
	assert_int_equal(v.id, next);
	assert_int_equal(v.old, 0);
	assert_int_equal(s.state, SUP_CONNECTING);
	assert_int_equal(s.primary, next);
	assert_int_equal(s.standby, 0);
	sup_up(&s, next, 40, &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	assert_int_equal(s.state, SUP_CONNECTED);
	assert_string_equal(v.lines[0].text, "connected to ws://a/ after 0.0 s down");
}

/* A restart close opens the replacement at once, once per streak of short links. */
static void server_restart_rotates_once_per_streak(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct link_end e = closed_end(1012);

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_request(&s, SUP_REQ_SERVER_RESTART, 20, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
	sup_down(&s, s.primary, 30, &e, 0, &v);
	assert_int_equal(v.act, SUP_DO_PROMOTE);
	assert_int_equal(v.id, s.primary);
	assert_int_equal(v.lines[0].level, LOG_NOTICE);
	sup_up(&s, s.primary, 40, &v);
	/* the new link says the same at once: no second fast replacement, backoff */
	sup_request(&s, SUP_REQ_SERVER_RESTART, 50, &v);
	assert_non_null(v.refused);
	assert_int_equal(fail_at(&s, 60, e, &v), 500);
	retry(&s, 600);
	sup_up(&s, s.primary, 610, &v);
	assert_int_equal(fail_at(&s, 620, e, &v), 1000);
	retry(&s, 1700);
	/* a link that stayed up earns it again */
	sup_up(&s, s.primary, 1700, &v);
	sup_request(&s, SUP_REQ_SERVER_RESTART, 40000, &v);
	assert_int_equal(v.act, SUP_DO_CONNECT);
	/* the server is going away: its replacement fails, the old link is not closed for it */
	sup_down(&s, v.id, 40010, &(struct link_end){.fail = LINK_FAIL_CONNECT, .msg = "refused"},
		 0, &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	assert_int_equal(v.lines[0].level, LOG_INFO);
	assert_int_equal(s.state, SUP_CONNECTED);
	assert_false(s.reconnect_pending);
	/* and its end takes the usual path: backoff, the fast retry is used up */
	assert_int_equal(fail_at(&s, 40020, e, &v), 500);
}

static void reconfigure_changes_policy_live(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct sup_params p = P;

	init(&s, 1);
	p.initial_ms = 100;
	p.max_ms = 150;
	sup_reconfigure(&s, &p, URLS, 1, false);
	assert_int_equal(fail_at(&s, 1, fail_end(), &v), 100);
	retry(&s, 200);
	assert_int_equal(fail_at(&s, 300, fail_end(), &v), 150);
}

static void verdicts_carry_link_events_and_count_failures_by_kind(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct link_end e = closed_end(1012);

	init(&s, 2);
	fail_at(&s, 10, fail_end(), &v);
	assert_int_equal(v.event.change, SUP_CHANGE_FAILED);
	assert_string_equal(v.event.url, URLS[0]);
	assert_int_equal(v.event.fail, LINK_FAIL_CONNECT);
	assert_int_equal(v.event.retry_ms, 500);
	assert_int_equal(v.event.attempt, 1);
	retry(&s, 600);
	sup_up(&s, s.primary, 700, &v);
	assert_int_equal(v.event.change, SUP_CHANGE_UP);
	assert_string_equal(v.event.url, URLS[1]);
	assert_int_equal(v.event.retry_ms, -1);
	sup_down(&s, s.primary, 800, &e, 0, &v);
	assert_int_equal(v.event.change, SUP_CHANGE_DOWN);
	assert_int_equal(v.event.close_code, 1012);
	assert_string_equal(v.event.close_reason, "bye");
	assert_int_equal(v.event.retry_ms, v.delay_ms);
	assert_false(v.event.by_request);
	assert_int_equal(s.failures[LINK_FAIL_CONNECT], 1);
	assert_int_equal(s.failures[LINK_FAIL_CLOSED], 1);
	/* a close we asked for is an event, not a failure */
	retry(&s, 5000);
	sup_up(&s, s.primary, 5100, &v);
	sup_request(&s, SUP_REQ_RECONNECT, 5200, &v);
	assert_int_equal(v.event.change, SUP_CHANGE_NONE);
	e = closed_end(0);
	e.by_request = true;
	sup_down(&s, s.primary, 5300, &e, 0, &v);
	assert_int_equal(v.event.change, SUP_CHANGE_DOWN);
	assert_true(v.event.by_request);
	assert_int_equal(v.event.retry_ms, 0);
	assert_int_equal(s.failures[LINK_FAIL_CLOSED], 1);
	/* a kind beyond the table counts in its last slot */
	sup_down(&s, s.primary, 5400, &(struct link_end){.fail = 99, .msg = "x"}, 0, &v);
	assert_int_equal(s.failures[SUP_FAIL_KINDS - 1], 1);
}

static void names_states(void **state)
{
	assert_string_equal(sup_state_name(SUP_CONNECTED), "connected");
	assert_string_equal(sup_state_name(SUP_WAITING), "waiting");
	assert_string_equal(sup_state_name((enum sup_state)99), "unknown");
}

/* Every verdict of a long random run fits its lines: none is ever lost. */
static void no_verdict_loses_a_line(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	uint64_t rng = 42, t = 0;

	sup_init(&s, &P, URLS, 3, 1);
	sup_start(&s, &v);
	for (int i = 0; i < 200000; i++) {
		struct link_end e =
		    (rng >> 40) & 1 ? fail_end() : closed_end(1001 + (int)(rng >> 50) % 12);
		uint64_t ids[] = {s.primary, s.standby, s.retiring, s.next_id + 1};
		uint64_t id = ids[(rng >> 20) % 4];

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		t += (rng >> 33) % 40000;
		e.by_request = (rng >> 30) % 5 == 0;
		switch ((rng >> 33) % 5) {
		case 0:
			sup_timer(&s, t, &v);
			break;
		case 1:
			sup_up(&s, id, t, &v);
			break;
		case 2:
			sup_down(&s, id, t, &e, 0, &v);
			break;
		default:
			sup_request(&s, (enum sup_request)((rng >> 45) % SUP_REQ_STOP), t, &v);
			break;
		}
		assert_int_equal(v.lines_lost, 0);
		assert_true(v.n_lines <= SUP_MAX_LINES);
	}
}

/* The world after one settle: what links.c would see. */
static struct sup_world world(size_t queued, bool up)
{
	return (struct sup_world){ .queued = queued, .up = up, .active = up };
}

/* SIGTERM: drain until drain_ms, warn of what is left, close with 1001 once, quit when down. */
static void stop_drains_then_closes_going_away(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct sup_finish f;
	struct sup_world w = world(3, true);

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	assert_true(sup_stop(&s, 100, &w));
	assert_true(sup_ending(&s));
	assert_int_equal(s.state, SUP_STOPPING);
	sup_settle(&s, 100, &w, &f);
	assert_int_equal(f.act, SUP_FIN_NONE);
	assert_int_equal(f.wake_at, 100 + P.drain_ms);
	/* a confirmation that leaves some: still draining */
	w.queued = 1;
	sup_settle(&s, 200, &w, &f);
	assert_int_equal(f.act, SUP_FIN_NONE);
	assert_int_equal(f.wake_at, 100 + P.drain_ms);
	/* the drain timed out: warn once, close */
	sup_settle(&s, 100 + P.drain_ms, &w, &f);
	assert_int_equal(f.undelivered, 1);
	assert_int_equal(f.act, SUP_FIN_CLOSE);
	assert_int_equal(f.close_code, 1001);
	assert_string_equal(f.close_reason, "going away");
	assert_int_equal(f.wake_at, 0);
	/* asked once: no second close frame */
	sup_settle(&s, 100 + P.drain_ms + 1, &w, &f);
	assert_int_equal(f.act, SUP_FIN_NONE);
	assert_int_equal(f.undelivered, 0);
	/* a second signal is not a second stop */
	assert_false(sup_stop(&s, 200, &w));
	/* the link ended: no retry, and with no link left, the end */
	sup_down(&s, s.primary, 6000,
		 &(struct link_end){
		     .fail = LINK_FAIL_CLOSED, .was_up = true, .by_request = true, .msg = "closed"},
		 1, &v);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	w = world(1, false);
	sup_settle(&s, 6001, &w, &f);
	assert_int_equal(f.act, SUP_FIN_QUIT);
}

/* A stop with an empty queue, or while no link is up, does not wait. */
static void stop_without_anything_to_drain_closes_at_once(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct sup_finish f;
	struct sup_world w = world(0, true);

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_stop(&s, 20, &w);
	sup_settle(&s, 20, &w, &f);
	assert_int_equal(f.act, SUP_FIN_CLOSE);
	assert_int_equal(f.close_code, 1001);

	init(&s, 1);
	w = (struct sup_world){ .queued = 5, .active = true };
	sup_stop(&s, 20, &w);
	sup_settle(&s, 20, &w, &f);
	assert_int_equal(f.act, SUP_FIN_ABORT);
	assert_int_equal(f.undelivered, 0);
	/* a rotation's other link is abandoned; the end waits for it */
	w = (struct sup_world){ .queued = 5, .others = true };
	sup_settle(&s, 30, &w, &f);
	assert_true(f.abort_others);
	assert_int_equal(f.act, SUP_FIN_NONE);
	w.others = false;
	sup_settle(&s, 40, &w, &f);
	assert_int_equal(f.act, SUP_FIN_QUIT);
}

/* EOF: nothing until the queue is empty; then the server's quiet moment, then 1000. */
static void eof_waits_for_the_queue_and_a_quiet_server(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct sup_finish f;
	struct sup_world w = world(2, true);

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_eof(&s);
	assert_true(sup_ending(&s));
	/* not a stop: senders other than stdin still get in, and requests still work */
	assert_int_equal(s.state, SUP_CONNECTED);
	sup_settle(&s, 100, &w, &f);
	assert_int_equal(f.act, SUP_FIN_NONE);
	assert_int_equal(f.wake_at, 0);
	w.queued = 0;
	sup_settle(&s, 200, &w, &f);
	assert_int_equal(f.act, SUP_FIN_NONE);
	assert_int_equal(f.wake_at, 500);
	/* a reply starts the quiet moment over */
	sup_heard(&s, 400);
	sup_settle(&s, 400, &w, &f);
	assert_int_equal(f.wake_at, 700);
	sup_settle(&s, 700, &w, &f);
	assert_int_equal(f.act, SUP_FIN_CLOSE);
	assert_int_equal(f.close_code, 1000);
	assert_string_equal(f.close_reason, "");
	sup_settle(&s, 701, &w, &f);
	assert_int_equal(f.act, SUP_FIN_NONE);
	/* the server's close ends it: no retry */
	sup_down(&s, s.primary, 800,
		 &(struct link_end){
		     .fail = LINK_FAIL_CLOSED, .was_up = true, .by_request = true, .msg = "closed"},
		 0, &v);
	assert_int_equal(s.state, SUP_STOPPING);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	w = world(0, false);
	sup_settle(&s, 800, &w, &f);
	assert_int_equal(f.act, SUP_FIN_QUIT);
}

/* A server that never stops talking gets drain_ms of quiet moments, no more. */
static void eof_quiet_moment_ends_at_the_drain_timeout(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct sup_finish f;
	struct sup_world w = world(0, true);
	uint64_t t;

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_eof(&s);
	sup_settle(&s, 100, &w, &f);
	for (t = 200; t < 100 + P.drain_ms + 1000; t += 200) {
		sup_heard(&s, t);
		sup_settle(&s, t, &w, &f);
		if (f.act == SUP_FIN_CLOSE)
			break;
	}
	assert_int_equal(f.act, SUP_FIN_CLOSE);
	/* the last reply before the deadline bought 300 ms; none after it did */
	assert_true(t > 100 + P.drain_ms);
	assert_true(t <= 100 + P.drain_ms + 300);
}

/* EOF with messages left when the link drops: connect again to deliver them. */
static void eof_with_messages_left_reconnects_to_deliver_them(void **state)
{
	struct supervisor s;
	struct sup_verdict v;
	struct sup_finish f;
	struct sup_world w = world(4, false);
	struct link_end e = closed_end(0);

	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_eof(&s);
	sup_down(&s, s.primary, 100, &e, 4, &v);
	assert_int_equal(v.act, SUP_DO_WAIT);
	sup_settle(&s, 100, &w, &f);
	assert_int_equal(f.act, SUP_FIN_NONE);
	/* but after our own final close, what came in meanwhile stays for the spool */
	init(&s, 1);
	sup_up(&s, s.primary, 10, &v);
	sup_eof(&s);
	w = world(0, true);
	sup_settle(&s, 100, &w, &f);
	sup_settle(&s, 400, &w, &f);
	assert_int_equal(f.act, SUP_FIN_CLOSE);
	e.by_request = true;
	sup_down(&s, s.primary, 500, &e, 4, &v);
	assert_int_equal(s.state, SUP_STOPPING);
	assert_int_equal(v.act, SUP_DO_NOTHING);
	w = world(4, false);
	sup_settle(&s, 500, &w, &f);
	assert_int_equal(f.act, SUP_FIN_QUIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failures_back_off_exponentially_and_count_attempts),
		cmocka_unit_test(timer_outside_a_wait_does_nothing),
		cmocka_unit_test(short_lived_links_do_not_reset_the_backoff),
		cmocka_unit_test(auth_rejection_and_retry_after),
		cmocka_unit_test(restart_closes_get_one_fast_retry_per_streak),
		cmocka_unit_test(first_failure_warns_repeats_are_info_then_rate_limited),
		cmocka_unit_test(flapping_links_reconnect_quietly),
		cmocka_unit_test(fallback_urls_rotate_after_failures_not_after_requests),
		cmocka_unit_test(reconnect_request_closes_then_connects_at_once),
		cmocka_unit_test(reconfigure_request),
		cmocka_unit_test(pause_and_resume),
		cmocka_unit_test(stop_ends_everything),
		cmocka_unit_test(end_lines_tell_failed_from_down_and_carry_our_close_code),
		cmocka_unit_test(rotation_replaces_the_link_once_the_new_one_is_up),
		cmocka_unit_test(failed_rotation_falls_back_to_a_reconnect),
		cmocka_unit_test(primary_ending_during_rotation_hands_over_to_the_new_attempt),
		cmocka_unit_test(server_restart_rotates_once_per_streak),
		cmocka_unit_test(reconfigure_changes_policy_live),
		cmocka_unit_test(verdicts_carry_link_events_and_count_failures_by_kind),
		cmocka_unit_test(names_states),
		cmocka_unit_test(a_clean_close_by_the_server_is_a_notice),
		cmocka_unit_test(no_verdict_loses_a_line),
		cmocka_unit_test(stop_drains_then_closes_going_away),
		cmocka_unit_test(stop_without_anything_to_drain_closes_at_once),
		cmocka_unit_test(eof_waits_for_the_queue_and_a_quiet_server),
		cmocka_unit_test(eof_quiet_moment_ends_at_the_drain_timeout),
		cmocka_unit_test(eof_with_messages_left_reconnects_to_deliver_them),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "outbox.h"
#include "status.h"

static int wakes;

static void on_wake(void *ud)
{
	wakes++;
}

static void open_outbox(struct outbox *o, struct ev_loop *loop, const char *dir)
{
	assert_int_equal(
	    outbox_init(o, loop, 16, 100, 1 << 20, QUEUE_DROP_OLDEST, dir, on_wake, NULL), 0);
}

/* Write everything queued, as the carrier does; returns the last seq written. */
static uint64_t write_all(struct outbox *o)
{
	const unsigned char *data;
	struct qmsg *m;

	while ((m = outbox_unsent(o, &data))) {
		assert_non_null(data);
		outbox_sent(o);
	}
	return outbox_last_sent(o);
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* One confirmation takes messages out of the queue and the spool: a restart resends only the rest.
 */
static void confirm_leaves_queue_and_spool_in_one_step(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	char dir[] = "/tmp/wst-outbox-XXXXXX";
	struct outbox o;
	struct wst_status st;

	assert_non_null(mkdtemp(dir));
	open_outbox(&o, loop, dir);
	for (int i = 0; i < 3; i++)
		assert_true(outbox_put(&o, "msg", 3, false, false));
	assert_int_equal(write_all(&o), 3);
	assert_null(outbox_unsent(&o, NULL));
	/* a pong for a ping that fenced nothing confirms nothing */
	assert_false(outbox_confirm(&o, 0));
	assert_true(outbox_confirm(&o, 2));
	/* the same fence again: nothing more left */
	assert_false(outbox_confirm(&o, 2));
	memset(&st, 0, sizeof(st));
	outbox_status(&o, &st);
	assert_int_equal(st.queue_messages, 1);
	assert_int_equal(st.confirmed, 2);
	assert_true(st.spool_on);
	outbox_finish(&o);

	/* after a restart only the unconfirmed one comes back, with its seq */
	open_outbox(&o, loop, dir);
	memset(&st, 0, sizeof(st));
	outbox_status(&o, &st);
	assert_int_equal(st.queue_messages, 1);
	assert_int_equal(write_all(&o), 3);
	assert_true(outbox_confirm(&o, 3));
	outbox_finish(&o);
	open_outbox(&o, loop, dir);
	assert_null(outbox_unsent(&o, NULL));
	outbox_finish(&o);
	rm_dir(dir);
	ev_loop_destroy(loop);
}

/* Without a spool the queue alone is confirmed; a full queue's refusal says so. */
static void memory_only_confirms_the_queue(void **state)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct outbox o;
	struct wst_status st;

	open_outbox(&o, loop, "");
	assert_true(outbox_put(&o, "a", 1, false, false));
	assert_true(outbox_put(&o, "b", 1, true, false));
	assert_int_equal(write_all(&o), 2);
	assert_true(outbox_confirm(&o, 2));
	memset(&st, 0, sizeof(st));
	outbox_status(&o, &st);
	assert_int_equal(st.queue_messages, 0);
	assert_false(st.spool_on);
	assert_string_equal(outbox_refusal(&o), "queue full");
	outbox_finish(&o);
	ev_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(confirm_leaves_queue_and_spool_in_one_step),
	    cmocka_unit_test(memory_only_confirms_the_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

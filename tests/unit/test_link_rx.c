#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "link_rx.h"

/* What reached local programs, as one string: "T:abc|B:xy|" */
static char got[1024];
static struct link_end end; /* what the feeds said of the attempt's end */

static void deliver(void *ud, const unsigned char *d, size_t len, bool binary)
{
	size_t n = strlen(got);

	snprintf(got + n, sizeof(got) - n, "%s:%.*s|", binary ? "B" : "T", (int)len,
		 (const char *)d);
}

static int setup(void **state)
{
	static struct link_rx s;

	memset(&s, 0, sizeof(s));
	link_rx_init(&s, 1 << 16, NULL, "example.org", 443, deliver, NULL);
	got[0] = '\0';
	memset(&end, 0, sizeof(end));
	*state = &s;
	return 0;
}

static int teardown(void **state)
{
	link_rx_finish(*state);
	return 0;
}

/* Server frames are unmasked: FIN + opcode, then the length. */
static unsigned feed(struct link_rx *s, const char *bytes, size_t len, uint64_t fence,
		     bool close_sent)
{
	return link_rx_feed(s, (const unsigned char *)bytes, len, fence, close_sent, &end);
}

/* A message goes to local programs and asks nothing of the link. */
static void data_message_is_delivered(void **state)
{
	assert_int_equal(feed(*state, "\x81\x05hello\x82\x02xy", 11, 0, false), 0);
	assert_string_equal(got, "T:hello|B:xy|");
}

/* A ping owes a pong with its payload, written at the link's next WRITEABLE; none after our close.
 */
static void ping_owes_a_pong(void **state)
{
	struct link_rx *s = *state;
	const unsigned char *p;
	size_t n;

	assert_int_equal(feed(s, "\x89\x02hi", 4, 0, false), LINK_RX_WRITE);
	assert_int_equal(pongq_len(&s->pongs), 1);
	p = pongq_peek(&s->pongs, &n);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "hi", 2);
	pongq_pop(&s->pongs);
	assert_int_equal(feed(s, "\x89\x01x", 3, 0, true), 0);
	assert_int_equal(pongq_len(&s->pongs), 0);
}

/* A pong carries the seq of our ping: it confirms up to it; one above the fence is not ours. */
static void pong_confirms_up_to_its_seq(void **state)
{
	const char two[] = "\x8a\x08\0\0\0\0\0\0\0\x05"
			   "\x8a\x08\0\0\0\0\0\0\0\x07";
	struct link_rx *s = *state;

	assert_int_equal(feed(s, two, 20, 7, false), LINK_RX_PONG);
	assert_int_equal(s->pong_first, 5);
	assert_int_equal(s->pong_last, 7);
	assert_int_equal(feed(*state, "\x8a\x08\0\0\0\0\0\0\0\x09", 10, 7, false), 0);
	/* not 8 bytes: not a pong to any ping of ours */
	assert_int_equal(feed(*state, "\x8a\x01x", 3, 7, false), 0);
	assert_string_equal(got, "");
}

/* The server's close: its code ends the attempt (named), is echoed, and 1001 says it restarts. */
static void server_close_is_echoed(void **state)
{
	struct link_rx *s = *state;
	const char *reason = NULL;

	assert_int_equal(link_rx_answer(s, &reason), -1);
	assert_int_equal(feed(s,
			      "\x88\x05\x03\xe9"
			      "bye\x81\x01x",
			      10, 0, false),
			 LINK_RX_CLOSE | LINK_RX_RESTARTING);
	assert_int_equal(end.close_code, 1001);
	assert_string_equal(end.close_reason, "bye");
	assert_int_equal(end.fail, LINK_FAIL_CLOSED);
	assert_false(end.clean_close);
	assert_string_equal(end.msg, "server example.org:443 closed the link: 1001 bye");
	assert_int_equal(link_rx_answer(s, &reason), 1001);
	assert_string_equal(reason, "");
	/* nothing after the close frame reaches anyone */
	assert_string_equal(got, "");
	assert_int_equal(feed(s, "\x81\x01y", 3, 0, false), 0);
	assert_string_equal(got, "");
}

/* After our own close, the server's close is the answer: drop the TCP, keep its code. */
static void close_answering_ours_finishes(void **state)
{
	assert_int_equal(feed(*state, "\x88\x02\x03\xe8", 4, 0, true), LINK_RX_FINISH);
	assert_int_equal(end.close_code, 1000);
	assert_int_equal(link_rx_answer(*state, &(const char *){NULL}), -1);
}

/* A close after another cause (here: a dead link) keeps that cause and is no clean end. */
static void close_after_another_cause_keeps_it(void **state)
{
	end.fail = LINK_FAIL_DEAD;
	snprintf(end.msg, sizeof(end.msg), "dead");
	assert_int_equal(feed(*state, "\x88\x02\x03\xe8", 4, 0, false), LINK_RX_CLOSE);
	assert_int_equal(end.close_code, 1000);
	assert_int_equal(end.fail, LINK_FAIL_DEAD);
	assert_string_equal(end.msg, "dead");
	assert_false(end.clean_close);
}

/* A masked frame from the server breaks RFC 6455 5.1: fail with 1002, say what it did. */
static void protocol_violation_closes_with_1002(void **state)
{
	struct link_rx *s = *state;
	const char *reason = NULL;

	assert_int_equal(feed(s, "\x81\x81\1\2\3\4x", 7, 0, false), LINK_RX_CLOSE);
	assert_int_equal(end.fail, LINK_FAIL_VIOLATION);
	assert_non_null(strstr(end.msg, "server example.org:443 sent "));
	assert_non_null(strstr(end.msg, ": closing with 1002"));
	assert_int_equal(link_rx_answer(s, &reason), 1002);
	assert_string_equal(reason, "protocol error");
	/* frames cannot be found again after it */
	assert_int_equal(feed(s, "\x89\x00", 2, 0, false), 0);
	assert_string_equal(got, "");
}

/* Text that is not UTF-8 (RFC 6455 8.1) closes with 1007; after our close, only the TCP is dropped.
 */
static void invalid_utf8_closes_with_1007(void **state)
{
	struct link_rx *s = *state;
	const char *reason = NULL;

	assert_int_equal(feed(s, "\x81\x02\xc3\x28", 4, 0, false), LINK_RX_CLOSE);
	assert_int_equal(end.fail, LINK_FAIL_VIOLATION);
	assert_non_null(strstr(end.msg, "closing with 1007"));
	assert_int_equal(link_rx_answer(s, &reason), 1007);
	assert_string_equal(reason, "invalid payload data");
	assert_string_equal(got, "");

	link_rx_init(s, 1 << 16, NULL, "example.org", 443, deliver, NULL);
	assert_int_equal(feed(s, "\x81\x02\xc3\x28", 4, 0, true), LINK_RX_FINISH);
	assert_int_equal(link_rx_answer(s, &reason), -1);
}

/* Past link.max_message_bytes: 1009, and the limit named. */
static void too_big_closes_with_1009(void **state)
{
	struct link_rx *s = *state;
	const char *reason = NULL;

	link_rx_init(s, 4, NULL, "example.org", 443, deliver, NULL);
	assert_int_equal(feed(s,
			      "\x82\x05"
			      "12345",
			      7, 0, false),
			 LINK_RX_CLOSE);
	assert_string_equal(end.msg, "message from example.org:443 exceeds link.max_message_bytes "
				   "(4): closing with 1009");
	assert_int_equal(link_rx_answer(s, &reason), 1009);
	assert_string_equal(reason, "message too big");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(data_message_is_delivered, setup, teardown),
	    cmocka_unit_test_setup_teardown(ping_owes_a_pong, setup, teardown),
	    cmocka_unit_test_setup_teardown(pong_confirms_up_to_its_seq, setup, teardown),
	    cmocka_unit_test_setup_teardown(server_close_is_echoed, setup, teardown),
	    cmocka_unit_test_setup_teardown(close_answering_ours_finishes, setup, teardown),
	    cmocka_unit_test_setup_teardown(close_after_another_cause_keeps_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(protocol_violation_closes_with_1002, setup, teardown),
	    cmocka_unit_test_setup_teardown(invalid_utf8_closes_with_1007, setup, teardown),
	    cmocka_unit_test_setup_teardown(too_big_closes_with_1009, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "wsrx.h"

/* What the parser called back with, as one string: "T:abc|P:x|C:1000:bye|" */
static char got[4096];

static void add(const char *kind, const unsigned char *d, size_t len)
{
	size_t n = strlen(got);

	snprintf(got + n, sizeof(got) - n, "%s:%.*s|", kind, (int)len, (const char *)d);
}

static void on_message(void *ud, const unsigned char *d, size_t len, bool binary)
{
	add(binary ? "B" : "T", d, len);
}

/* a compressed message's pieces: "ZT:" or "ZB:" with the bytes, "Z$:" at its end */
static void on_compressed(void *ud, const unsigned char *d, size_t len, bool fin, bool binary)
{
	add(fin ? "Z$" : binary ? "ZB" : "ZT", d, len);
}

static void on_ping(void *ud, const unsigned char *d, size_t len)
{
	add("P", d, len);
}

static void on_pong(void *ud, const unsigned char *d, size_t len)
{
	add("O", d, len);
}

static void on_close(void *ud, int code, const unsigned char *d, size_t len)
{
	char k[16];

	snprintf(k, sizeof(k), "C:%d", code);
	add(k, d, len);
}

static const struct wsrx_ops ops = {.message = on_message,
				    .compressed = on_compressed,
				    .ping = on_ping,
				    .pong = on_pong,
				    .close = on_close};

/* Feed the bytes in pieces of `step` (0: all at once); returns the final status. */
static enum wsrx_status feed(struct wsrx *rx, const void *buf, size_t len, size_t step)
{
	const unsigned char *p = buf;
	enum wsrx_status st = WSRX_OK;

	got[0] = '\0';
	if (!step)
		step = len;
	for (size_t i = 0; i < len && st == WSRX_OK; i += step)
		st = wsrx_feed(rx, p + i, len - i < step ? len - i : step, &ops, NULL);
	return st;
}

#define FEED(rx, lit, step) feed(rx, lit, sizeof(lit) - 1, step)

static void delivers_messages_in_any_split(void **state)
{
	static const char in[] = "\x81\x03"
				 "abc" /* text */
				 "\x01\x02"
				 "fr"
				 "\x89\x01"
				 "!" /* fragment, ping inside */
				 "\x80\x03"
				 "ag!"	    /* final continuation */
				 "\x82\x00" /* empty binary */
				 "\x8a\x02"
				 "po" /* unsolicited pong */
				 "\x81\x7e\x00\x03"
				 "16b" /* 16-bit length */
				 "\x81\x7f\x00\x00\x00\x00\x00\x00\x00\x03"
				 "64b"
				 "\x88\x05\x03\xe8"
				 "bye"; /* close 1000 */
	const char *want = "T:abc|P:!|T:frag!|B:|O:po|T:16b|T:64b|C:1000:bye|";

	for (size_t step = 0; step < 8; step++) {
		struct wsrx rx = {0};

		wsrx_init(&rx, 1024, 0);
		assert_int_equal(FEED(&rx, in, step), WSRX_CLOSED);
		assert_string_equal(got, want);
		wsrx_finish(&rx);
	}
}

static void fails(const char *in, size_t len, enum wsrx_status st, int code, const char *what,
		  const char *delivered)
{
	for (size_t step = 0; step < 3; step++) {
		struct wsrx rx = {0};

		wsrx_init(&rx, 16, 0);
		assert_int_equal(feed(&rx, in, len, step), st);
		assert_int_equal(rx.err_code, code);
		if (!strstr(rx.err_what, what))
			fail_msg("'%s' does not say '%s'", rx.err_what, what);
		assert_string_equal(got, delivered);
		/* and it stays failed */
		assert_int_equal(wsrx_feed(&rx, (const unsigned char *)"\x81\x01x", 3, &ops, NULL),
				 st);
		assert_string_equal(got, delivered);
		wsrx_finish(&rx);
	}
}

#define FAILS(lit, st, code, what, delivered) fails(lit, sizeof(lit) - 1, st, code, what, delivered)

static void fails_each_framing_violation(void **state)
{
	FAILS("\x81\x81"
	      "abcd"
	      "x",
	      WSRX_VIOLATION, 1002, "masked frame (RFC 6455 §5.1)", "");
	FAILS("\xc1\x01x", WSRX_VIOLATION, 1002, "RSV1 set", "");
	FAILS("\xa1\x01x", WSRX_VIOLATION, 1002, "RSV2 set", "");
	FAILS("\x91\x01x", WSRX_VIOLATION, 1002, "RSV3 set", "");
	FAILS("\x83\x01x", WSRX_VIOLATION, 1002, "reserved opcode 0x3", "");
	FAILS("\x87\x00", WSRX_VIOLATION, 1002, "reserved opcode 0x7", "");
	FAILS("\x8b\x00", WSRX_VIOLATION, 1002, "reserved opcode 0xb", "");
	FAILS("\x8f\x00", WSRX_VIOLATION, 1002, "reserved opcode 0xf", "");
	FAILS("\x09\x01x", WSRX_VIOLATION, 1002, "fragmented control frame", "");
	FAILS("\x89\x7e\x00\x7e", WSRX_VIOLATION, 1002, "control frame of 126 bytes", "");
	FAILS("\x80\x01x", WSRX_VIOLATION, 1002, "continuation frame with no message", "");
	FAILS("\x81\x01"
	      "a"
	      "\x80\x01x",
	      WSRX_VIOLATION, 1002, "no message to continue", "T:a|");
	FAILS("\x01\x01"
	      "a"
	      "\x81\x01x",
	      WSRX_VIOLATION, 1002, "new data frame inside", "");
	FAILS("\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x01x", WSRX_VIOLATION, 1002, "top bit set", "");
}

static void fails_bad_payloads(void **state)
{
	FAILS("\x81\x02\xc3\x28", WSRX_VIOLATION, 1007, "not valid UTF-8 at byte 1 (RFC 6455 §8.1)",
	      "");
	FAILS("\x01\x01\xce\x80\x01\xff", WSRX_VIOLATION, 1007, "not valid UTF-8", "");
	FAILS("\x82\x11"
	      "12345678901234567",
	      WSRX_TOO_BIG, 1009, "max_message_bytes", "");
	FAILS("\x02\x0a"
	      "1234567890"
	      "\x80\x07"
	      "1234567",
	      WSRX_TOO_BIG, 1009, "max_message_bytes", "");
	/* a binary message of exactly the limit is fine */
	{
		struct wsrx rx = {0};

		wsrx_init(&rx, 16, 0);
		assert_int_equal(FEED(&rx,
				      "\x82\x10"
				      "1234567890123456",
				      0),
				 WSRX_OK);
		assert_string_equal(got, "B:1234567890123456|");
		wsrx_finish(&rx);
	}
}

/*
 * Autobahn 6.4.x: a text message fails at its first byte that cannot be
 * UTF-8, with the rest of its frame and its later fragments still to come.
 */
static void fails_invalid_text_before_the_message_ends(void **state)
{
	struct wsrx rx = {0};

	wsrx_init(&rx, 1024, 0);
	/* 10 bytes announced, 3 arrived, the third hopeless */
	assert_int_equal(FEED(&rx,
			      "\x81\x0a"
			      "ab\xff",
			      0),
			 WSRX_VIOLATION);
	assert_int_equal(rx.err_code, 1007);
	assert_string_equal(rx.err_what,
			    "a text message that is not valid UTF-8 at byte 2 (RFC 6455 §8.1)");
	assert_string_equal(got, "");
	/* a first fragment already invalid: no continuation is waited for */
	wsrx_init(&rx, 1024, 0);
	assert_int_equal(FEED(&rx,
			      "\x01\x03"
			      "ab\xc0",
			      1),
			 WSRX_VIOLATION);
	assert_int_equal(rx.err_code, 1007);
	/* a surrogate whose lead byte ended the first fragment: byte 2 of the message */
	wsrx_init(&rx, 1024, 0);
	assert_int_equal(FEED(&rx,
			      "\x01\x02"
			      "a\xed\x80\x02\xa0\x80",
			      0),
			 WSRX_VIOLATION);
	assert_non_null(strstr(rx.err_what, "at byte 2 "));
	wsrx_finish(&rx);
	/* a message that ends inside a sequence fails when it ends */
	FAILS("\x81\x02"
	      "a\xe2",
	      WSRX_VIOLATION, 1007, "ends inside a UTF-8 sequence", "");
	FAILS("\x01\x01\xe2\x80\x01\x82", WSRX_VIOLATION, 1007, "ends inside a UTF-8 sequence", "");
}

/* A code point split over fragments, with a ping between its bytes, is whole again. */
static void joins_code_points_split_over_fragments(void **state)
{
	for (size_t step = 0; step < 4; step++) {
		struct wsrx rx = {0};

		wsrx_init(&rx, 1024, 0);
		assert_int_equal(FEED(&rx,
				      "\x01\x02"
				      "a\xe2\x89\x00\x00\x01\x82\x80\x01\xac",
				      step),
				 WSRX_OK);
		assert_string_equal(got, "P:|T:a\xe2\x82\xac|");
		wsrx_finish(&rx);
	}
}

/* Autobahn 2.10/2.11: ten pings in a row, whole or octet by octet, each handed over in order. */
static void hands_over_every_ping_in_order(void **state)
{
	unsigned char in[10 * 8];
	char want[128] = "";
	size_t len = 0;

	for (int i = 0; i < 10; i++) {
		len += (size_t)snprintf((char *)in + len, sizeof(in) - len, "\x89\x05ping%d", i);
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "P:ping%d|", i);
	}
	for (size_t step = 0; step < 3; step++) {
		struct wsrx rx = {0};

		wsrx_init(&rx, 16, 0);
		assert_int_equal(feed(&rx, in, len, step), WSRX_OK);
		assert_string_equal(got, want);
		wsrx_finish(&rx);
	}
}

static void checks_close_frames(void **state)
{
	struct wsrx rx = {0};

	FAILS("\x88\x01\x03", WSRX_VIOLATION, 1002, "close frame with a 1-byte payload", "");
	FAILS("\x88\x02\x03\xf7", WSRX_VIOLATION, 1002, "invalid close code 1015", "");
	FAILS("\x88\x04\x03\xe8\xff\xfe", WSRX_VIOLATION, 1007, "close reason that is not valid",
	      "");
	wsrx_init(&rx, 16, 0);
	assert_int_equal(FEED(&rx, "\x88\x02\x03\xf7", 0), WSRX_VIOLATION);
	assert_int_equal(rx.peer_code, 1015); /* as received */
	wsrx_init(&rx, 16, 0);
	assert_int_equal(FEED(&rx, "\x88\x00", 0), WSRX_CLOSED);
	assert_string_equal(got, "C:0:|");
	wsrx_finish(&rx);

	for (int c = 0; c < 6000; c++) {
		bool ok = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
			  (c >= 3000 && c <= 4999);

		assert_int_equal(wsrx_close_code_valid(c), ok);
	}
}

static void rsv1_marks_compressed_messages_when_negotiated(void **state)
{
	struct wsrx rx = {0};
	bool compressed[2];

	wsrx_init(&rx, 16, 0x40);
	/* not valid UTF-8 as sent: the consumer checks it as it inflates */
	assert_int_equal(FEED(&rx, "\xc1\x02\xff\xfe", 0), WSRX_OK);
	assert_string_equal(got, "ZT:\xff\xfe|Z$:|");
	compressed[0] = rx.msg_compressed;
	assert_int_equal(FEED(&rx, "\x81\x01x", 0), WSRX_OK);
	compressed[1] = rx.msg_compressed;
	assert_true(compressed[0] && !compressed[1]);
	assert_int_equal(FEED(&rx,
			      "\x42\x01"
			      "a\x89\x00\x80\x01"
			      "b",
			      1),
			 WSRX_OK);
	/* handed over as it comes, not gathered: fragments, pieces of reads */
	assert_string_equal(got, "ZB:a|P:|ZB:b|Z$:|");
	assert_true(rx.msg_compressed);
	assert_int_equal(FEED(&rx,
			      "\xc1\x03"
			      "abc",
			      2),
			 WSRX_OK);
	assert_string_equal(got, "ZT:ab|ZT:c|Z$:|");
	wsrx_finish(&rx);
}

static void fails_rsv1_outside_a_first_frame(void **state)
{
	const struct {
		const char *in;
		size_t len;
		const char *what, *delivered;
	} cases[] = {
	    /* the first piece went to the inflater; the consumer delivers nothing unfinished */
	    {"\x41\x01"
	     "a\xc0\x01"
	     "b",
	     6, "RSV1 on a continuation frame (RFC 7692 §6.1)", "ZT:a|"},
	    {"\xc9\x00", 2, "RSV1 on a control frame", ""},
	    {"\xca\x00", 2, "RSV1 on a control frame", ""},
	    {"\xc8\x02\x03\xe8", 4, "RSV1 on a control frame", ""},
	    {"\xe1\x01x", 3, "RSV2 set", ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wsrx rx = {0};

		wsrx_init(&rx, 16, 0x40);
		assert_int_equal(feed(&rx, cases[i].in, cases[i].len, 1), WSRX_VIOLATION);
		assert_int_equal(rx.err_code, 1002);
		if (!strstr(rx.err_what, cases[i].what))
			fail_msg("'%s' does not say '%s'", rx.err_what, cases[i].what);
		assert_string_equal(got, cases[i].delivered);
		wsrx_finish(&rx);
	}
}

static void on_compressed_reject(void *ud, const unsigned char *d, size_t len, bool fin,
				 bool binary)
{
	add("R", d, len);
	wsrx_reject(ud, WSRX_TOO_BIG, 1009, "a message that inflates too far");
}

static void a_consumer_can_reject_a_message(void **state)
{
	static const struct wsrx_ops rej = {.message = on_message,
					    .compressed = on_compressed_reject,
					    .ping = on_ping,
					    .pong = on_pong,
					    .close = on_close};
	struct wsrx rx = {0};

	wsrx_init(&rx, 16, 0x40);
	got[0] = '\0';
	assert_int_equal(wsrx_feed(&rx,
				   (const unsigned char *)"\xc1\x01"
							  "a\x81\x01"
							  "b",
				   6, &rej, &rx),
			 WSRX_TOO_BIG);
	assert_string_equal(got, "R:a|");
	assert_int_equal(rx.err_code, 1009);
	assert_string_equal(rx.err_what, "a message that inflates too far");
	wsrx_finish(&rx);
}

static void finds_unoffered_extensions(void **state)
{
	char name[32];

	assert_false(wsrx_unoffered_extension("", NULL, name, sizeof(name)));
	assert_true(wsrx_unoffered_extension("permessage-deflate; client_max_window_bits", NULL,
					     name, sizeof(name)));
	assert_string_equal(name, "permessage-deflate");
	assert_false(wsrx_unoffered_extension("permessage-deflate; server_no_context_takeover",
					      "permessage-deflate", name, sizeof(name)));
	assert_true(wsrx_unoffered_extension("permessage-deflate, x-webkit", "permessage-deflate",
					     name, sizeof(name)));
	assert_string_equal(name, "x-webkit");
	assert_true(
	    wsrx_unoffered_extension("permessage", "permessage-deflate", name, sizeof(name)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(delivers_messages_in_any_split),
	    cmocka_unit_test(fails_each_framing_violation),
	    cmocka_unit_test(fails_bad_payloads),
	    cmocka_unit_test(fails_invalid_text_before_the_message_ends),
	    cmocka_unit_test(joins_code_points_split_over_fragments),
	    cmocka_unit_test(hands_over_every_ping_in_order),
	    cmocka_unit_test(checks_close_frames),
	    cmocka_unit_test(finds_unoffered_extensions),
	    cmocka_unit_test(rsv1_marks_compressed_messages_when_negotiated),
	    cmocka_unit_test(fails_rsv1_outside_a_first_frame),
	    cmocka_unit_test(a_consumer_can_reject_a_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

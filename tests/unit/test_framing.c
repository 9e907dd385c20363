#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "framing.h"

struct msg {
	const char *data;
	size_t len;
	bool binary;
};

/* One framed message into dst, which must have room; returns its length. */
static size_t encode_into(enum framing f, bool binary, const void *data, size_t len,
			  unsigned char *dst, size_t cap)
{
	struct framing_wrap w;
	const char *why = NULL;

	assert_int_equal(framing_encode(f, binary, data, len, &w, &why), 0);
	assert_true(w.head_len + len + w.tail_len <= cap);
	memcpy(dst, w.head, w.head_len);
	memcpy(dst + w.head_len, data, len);
	memcpy(dst + w.head_len + len, w.tail, w.tail_len);
	return w.head_len + len + w.tail_len;
}

/* Encode msgs back to back with f into buf; returns the length. */
static size_t encode_all(enum framing f, const struct msg *m, size_t n, unsigned char *buf,
			 size_t cap)
{
	size_t off = 0;

	for (size_t i = 0; i < n; i++)
		off += encode_into(f, m[i].binary, m[i].data, m[i].len, buf + off, cap - off);
	return off;
}

/*
 * Feed buf to the decoder as a stream, first `first` bytes, then `step`
 * bytes at a time, the way a reader that appends to a buffer would: every
 * message must come out whole and in order, wherever the cuts fall.
 */
static void decode_stream(enum framing f, const unsigned char *buf, size_t len, size_t first,
			  size_t step, const struct msg *m, size_t n)
{
	unsigned char *acc = malloc(len + 1);
	size_t have = 0, fed = 0, got = 0;
	bool started = false;

	assert_non_null(acc);
	for (;;) {
		size_t chunk = started ? step : first, used = 99;
		struct frame fr;
		const char *why = NULL;
		int r;

		started = true;
		if (chunk > len - fed)
			chunk = len - fed;
		memcpy(acc + have, buf + fed, chunk);
		have += chunk;
		fed += chunk;
		while ((r = framing_decode(f, acc, have, 1000, &fr, &used, &why)) == 1) {
			assert_true(got < n);
			assert_int_equal(fr.len, m[got].len);
			assert_int_equal(fr.binary, m[got].binary);
			if (fr.len)
				assert_memory_equal(fr.data, m[got].data, fr.len);
			got++;
			memmove(acc, acc + used, have - used);
			have -= used;
		}
		assert_int_equal(r, 0);
		assert_int_equal(used, 0);
		if (fed == len)
			break;
	}
	assert_int_equal(have, 0);
	assert_int_equal(got, n);
	free(acc);
}

static void decode_every_split(enum framing f, const unsigned char *buf, size_t len,
			       const struct msg *m, size_t n)
{
	for (size_t split = 0; split <= len; split++)
		decode_stream(f, buf, len, split, len, m, n);
	decode_stream(f, buf, len, 1, 1, m, n); /* byte by byte */
	decode_stream(f, buf, len, 0, 3, m, n);
}

static void lines_survive_every_split(void **state)
{
	const struct msg m[] = {
	    {"hello", 5, false},    {"", 0, false},  {"with\rcr", 7, false},
	    {"\xff\xfe", 2, false}, {"x", 1, false},
	};
	unsigned char buf[64];
	size_t len = encode_all(FRAMING_LINES, m, 5, buf, sizeof(buf));

	assert_memory_equal(buf, "hello\n\nwith\rcr\n\xff\xfe\nx\n", len);
	decode_every_split(FRAMING_LINES, buf, len, m, 5);
}

static void length_prefixed_survives_every_split(void **state)
{
	const struct msg m[] = {
	    {"text", 4, false},	       {"", 0, true},	      {"", 0, false},
	    {"\xff\xff\xff", 3, true}, {"a\nb\0c", 5, false}, {"\0\n\xff", 3, true},
	};
	unsigned char buf[128];
	size_t len = encode_all(FRAMING_LENGTH_PREFIXED, m, 6, buf, sizeof(buf));

	assert_int_equal(len, 6 * 5 + 4 + 3 + 5 + 3);
	assert_memory_equal(buf, "\x01\0\0\0\x04text\x02\0\0\0\0\x01\0\0\0\0", 19);
	decode_every_split(FRAMING_LENGTH_PREFIXED, buf, len, m, 6);
}

static void many_frames_in_one_buffer(void **state)
{
	enum { N = 1000 };
	struct msg *m = calloc(N, sizeof(*m));
	unsigned char *buf = malloc(N * 16);
	char(*text)[8] = calloc(N, 8);
	size_t len;

	assert_non_null(m);
	assert_non_null(buf);
	assert_non_null(text);
	for (int i = 0; i < N; i++) {
		snprintf(text[i], 8, "m%d", i);
		m[i] = (struct msg){text[i], strlen(text[i]), false};
	}
	len = encode_all(FRAMING_LINES, m, N, buf, N * 16);
	decode_stream(FRAMING_LINES, buf, len, len, len, m, N);
	for (int i = 0; i < N; i++)
		m[i].binary = i % 2;
	len = encode_all(FRAMING_LENGTH_PREFIXED, m, N, buf, N * 16);
	decode_stream(FRAMING_LENGTH_PREFIXED, buf, len, len, len, m, N);
	free(text);
	free(buf);
	free(m);
}

static void oversized_lines_are_errors(void **state)
{
	unsigned char buf[16];
	struct frame fr;
	size_t used = 99;
	const char *why = NULL;

	/* exactly max bytes before the newline is fine */
	memcpy(buf, "abcd\n", 5);
	assert_int_equal(framing_decode(FRAMING_LINES, buf, 5, 4, &fr, &used, &why), 1);
	assert_int_equal(fr.len, 4);
	assert_int_equal(used, 5);
	/* max bytes without a newline yet: wait */
	assert_int_equal(framing_decode(FRAMING_LINES, buf, 4, 4, &fr, &used, &why), 0);
	/* one more byte and no newline: it can only be too long */
	memcpy(buf, "abcde", 5);
	assert_int_equal(framing_decode(FRAMING_LINES, buf, 5, 4, &fr, &used, &why), -1);
	assert_string_equal(why, "oversized line");
	memcpy(buf, "abcde\n", 6);
	assert_int_equal(framing_decode(FRAMING_LINES, buf, 6, 4, &fr, &used, &why), -1);
	/* max 0: only empty lines */
	assert_int_equal(
	    framing_decode(FRAMING_LINES, (const unsigned char *)"\n", 1, 0, &fr, &used, &why), 1);
	assert_int_equal(
	    framing_decode(FRAMING_LINES, (const unsigned char *)"a", 1, 0, &fr, &used, &why), -1);
	/* an empty buffer is never an error */
	assert_int_equal(framing_decode(FRAMING_LINES, NULL, 0, 0, &fr, &used, &why), 0);
	/* a good line is returned even when oversized data follows it */
	memcpy(buf, "ab\nxxxxxxxx", 11);
	assert_int_equal(framing_decode(FRAMING_LINES, buf, 11, 4, &fr, &used, &why), 1);
	assert_int_equal(framing_decode(FRAMING_LINES, buf + used, 11 - used, 4, &fr, &used, &why),
			 -1);
}

static void oversized_prefixed_is_detected_from_the_header(void **state)
{
	unsigned char hdr[5] = {0x02, 0x00, 0x00, 0x03, 0xe9}; /* 1001 */
	struct frame fr;
	size_t used;
	const char *why = NULL;

	for (size_t n = 1; n < 5; n++)
		assert_int_equal(
		    framing_decode(FRAMING_LENGTH_PREFIXED, hdr, n, 1000, &fr, &used, &why), 0);
	assert_int_equal(framing_decode(FRAMING_LENGTH_PREFIXED, hdr, 5, 1000, &fr, &used, &why),
			 -1);
	assert_string_equal(why, "oversized message");
	hdr[4] = 0xe8; /* 1000: fine, wait for the payload */
	assert_int_equal(framing_decode(FRAMING_LENGTH_PREFIXED, hdr, 5, 1000, &fr, &used, &why),
			 0);
	/* the largest length on the wire */
	memset(hdr + 1, 0xff, 4);
	assert_int_equal(framing_decode(FRAMING_LENGTH_PREFIXED, hdr, 5, 1000, &fr, &used, &why),
			 -1);
	assert_int_equal(
	    framing_decode(FRAMING_LENGTH_PREFIXED, hdr, 5, SIZE_MAX, &fr, &used, &why), 0);
}

static void unknown_type_is_an_error_at_once(void **state)
{
	const unsigned char types[] = {0x00, 0x03, 0x7f, 0x80, 0xff, '\n'};
	struct frame fr;
	size_t used;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(types); i++) {
		assert_int_equal(
		    framing_decode(FRAMING_LENGTH_PREFIXED, &types[i], 1, 1000, &fr, &used, &why),
		    -1);
		assert_string_equal(why, "unknown message type");
	}
	assert_int_equal(framing_decode((enum framing)42, types, 1, 1000, &fr, &used, &why), -1);
	/* why may be NULL */
	assert_int_equal(framing_decode(FRAMING_LENGTH_PREFIXED, types, 1, 1000, &fr, &used, NULL),
			 -1);
}

static void binary_with_ff_bytes(void **state)
{
	unsigned char payload[300], buf[400];
	struct framing_wrap w;
	struct frame fr;
	size_t used, n;
	const char *why = NULL;

	memset(payload, 0xff, sizeof(payload));
	payload[7] = '\n';
	assert_int_equal(framing_encode(FRAMING_LENGTH_PREFIXED, true, payload, 300, &w, &why), 0);
	assert_int_equal(w.head_len, 5);
	assert_memory_equal(w.head, "\x02\x00\x00\x01\x2c", 5);
	assert_int_equal(w.tail_len, 0);
	n = encode_into(FRAMING_LENGTH_PREFIXED, true, payload, 300, buf, sizeof(buf));
	assert_int_equal(n, 305);
	assert_int_equal(framing_decode(FRAMING_LENGTH_PREFIXED, buf, n, 300, &fr, &used, &why), 1);
	assert_true(fr.binary);
	assert_int_equal(fr.len, 300);
	assert_ptr_equal(fr.data, buf + 5); /* no copy */
	assert_memory_equal(fr.data, payload, 300);
}

static void encoder_refuses_what_lines_cannot_carry(void **state)
{
	struct framing_wrap w;
	const char *why = NULL;

	assert_int_equal(framing_encode(FRAMING_LINES, false, "abc", 3, &w, &why), 0);
	assert_int_equal(w.head_len, 0);
	assert_int_equal(w.tail_len, 1);
	assert_memory_equal(w.tail, "\n", 1);
	assert_int_equal(framing_encode(FRAMING_LINES, true, "abc", 3, &w, &why), -1);
	assert_string_equal(why, "binary message cannot be framed as a line");
	assert_int_equal(framing_encode(FRAMING_LINES, false, "a\nb", 3, &w, &why), -1);
	assert_string_equal(why, "text containing a newline cannot be framed as a line");
	assert_int_equal(framing_encode(FRAMING_LINES, false, "", 0, &w, &why), 0);
	assert_int_equal(framing_encode(FRAMING_LINES, false, NULL, 0, &w, &why), 0);
	assert_int_equal(framing_encode(FRAMING_LINES, false, NULL, 1, &w, &why), -1);

	assert_int_equal(framing_encode((enum framing)42, false, "", 0, &w, &why), -1);
}

static void event_frames_are_daemon_to_program_only(void **state)
{
	const unsigned char in[] = { FRAMING_TYPE_EVENT, 0, 0, 0, 2, '{', '}' };
	struct framing_wrap w;
	struct frame f;
	const char *why = NULL;
	size_t used;

	assert_int_equal(framing_encode_event(FRAMING_LENGTH_PREFIXED, "{}", 2, &w, &why), 0);
	assert_int_equal(w.head_len, 5);
	assert_memory_equal(w.head, in, 5);
	assert_int_equal(w.tail_len, 0);
	assert_int_equal(framing_encode_event(FRAMING_LINES, "{}", 2, &w, &why), -1);
	assert_string_equal(why, "event frames need length-prefixed framing");
	/* a program that sends one breaks the framing, like any unknown type */
	assert_int_equal(framing_decode(FRAMING_LENGTH_PREFIXED, in, sizeof(in), 64, &f, &used, &why),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lines_survive_every_split),
	    cmocka_unit_test(length_prefixed_survives_every_split),
	    cmocka_unit_test(many_frames_in_one_buffer),
	    cmocka_unit_test(oversized_lines_are_errors),
	    cmocka_unit_test(oversized_prefixed_is_detected_from_the_header),
	    cmocka_unit_test(unknown_type_is_an_error_at_once),
	    cmocka_unit_test(binary_with_ff_bytes),
	    cmocka_unit_test(encoder_refuses_what_lines_cannot_carry),
	    cmocka_unit_test(event_frames_are_daemon_to_program_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

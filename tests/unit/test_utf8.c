#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static void validates_utf8(void **state)
{
	assert_true(utf8_valid("", 0));
	assert_true(utf8_valid(NULL, 0));
	assert_false(utf8_valid(NULL, 1));
	assert_true(utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	assert_true(utf8_valid("\0\x7f", 2));
	assert_true(utf8_valid("\xed\x9f\xbf\xf4\x8f\xbf\xbf", 7));
	assert_true(utf8_valid("an ASCII run longer than eight bytes \xc3\xa9 and on", 46));
	assert_false(utf8_valid("\xff", 1));
	assert_false(utf8_valid("\xc0\xaf", 2));
	assert_false(utf8_valid("\xe0\x80\xaf", 3));
	assert_false(utf8_valid("\xed\xa0\x80", 3));
	assert_false(utf8_valid("\xf4\x90\x80\x80", 4));
	assert_false(utf8_valid("\xe2\x82", 2));
	assert_false(utf8_valid("a\x80", 2));
	assert_false(utf8_valid("\xc3\xa9\xc3", 3));
	assert_false(utf8_valid("0123456789abcdef\x80", 17));
}

/* The length of a valid sequence, or of the maximal invalid subpart (one U+FFFD each). */
static void measures_sequences(void **state)
{
	size_t bad = 99;

	assert_int_equal(utf8_seq((const unsigned char *)"a", 1, &bad), 1);
	assert_int_equal(utf8_seq((const unsigned char *)"\xc3\xa9", 2, &bad), 2);
	assert_int_equal(utf8_seq((const unsigned char *)"\xe2\x82\xac", 3, &bad), 3);
	assert_int_equal(utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4, &bad), 4);
	assert_int_equal(bad, 99);
	assert_int_equal(utf8_seq((const unsigned char *)"\xff", 1, &bad), 0);
	assert_int_equal(bad, 1);
	assert_int_equal(utf8_seq((const unsigned char *)"\xe2\x82", 2, &bad), 0);
	assert_int_equal(bad, 2);
	assert_int_equal(utf8_seq((const unsigned char *)"\xf0\x9f\x98x", 4, &bad), 0);
	assert_int_equal(bad, 3);
	assert_int_equal(utf8_seq((const unsigned char *)"\xed\xa0\x80", 3, &bad), 0);
	assert_int_equal(bad, 1);
}

/* Feeds s in the pieces cut at the given offsets; returns where it failed, or len. */
static size_t feed_split(const char *s, size_t len, const size_t *cuts, size_t ncuts,
			 bool *complete)
{
	struct utf8_stream st;
	size_t from = 0;

	utf8_stream_init(&st);
	for (size_t c = 0; c <= ncuts; c++) {
		size_t to = c < ncuts ? cuts[c] : len, k;

		k = utf8_stream_feed(&st, s + from, to - from);
		if (k != to - from)
			return from + k;
		from = to;
	}
	*complete = utf8_stream_complete(&st);
	return len;
}

/* Every one- and two-cut split of text that is valid as a whole is valid, and complete. */
static void stream_accepts_valid_text_split_anywhere(void **state)
{
	static const char s[] =
	    "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 0123456789\xed\x9f\xbf\xf4\x8f\xbf\xbf"
	    "\xee\x80\x80\xf0\x90\x80\x80\xc2\x80";
	size_t len = sizeof(s) - 1;
	bool complete;

	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			size_t cuts[2] = {i, j};

			complete = false;
			assert_int_equal(feed_split(s, len, cuts, 2, &complete), len);
			assert_true(complete);
		}
	}
}

/*
 * Invalid text fails at the first byte that no continuation could make
 * valid, wherever the pieces were cut, and not one byte later.
 */
static void stream_fails_at_the_first_hopeless_byte(void **state)
{
	static const struct {
		const char *s;
		size_t len, at;
	} cases[] = {
	    {"\xff", 1, 0},	  /* never a lead byte */
	    {"ab\xc0\xaf", 4, 2}, /* C0/C1 only start overlongs */
	    {"\xc1\xbf", 2, 0},
	    {"\xe0\x80\xaf", 3, 1}, /* overlong 3-byte form */
	    {"\xe0\x9f\xbf", 3, 1},
	    {"\xf0\x8f\xbf\xbf", 4, 1},	    /* overlong 4-byte form */
	    {"\xed\xa0\x80", 3, 1},	    /* a high surrogate */
	    {"\xed\xbf\xbf", 3, 1},	    /* a low surrogate */
	    {"\xf4\x90\x80\x80", 4, 1},	    /* U+110000 */
	    {"\xf5\x80\x80\x80", 4, 0},	    /* beyond any plane */
	    {"x\x80", 2, 1},		    /* a lone continuation */
	    {"\xe2\x82x", 3, 2},	    /* a sequence cut short by ASCII */
	    {"\xf0\x9f\x98\xc3\xa9", 5, 3}, /* ... or by a new lead byte */
	    {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
	     "edited",
	     20, 12},
	    {"0123456789abcdef0123\x80", 21, 20},
	};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (size_t i = 0; i <= cases[c].len; i++) {
			size_t cuts[1] = {i};
			bool complete;

			assert_int_equal(feed_split(cases[c].s, cases[c].len, cuts, 1, &complete),
					 cases[c].at);
		}
		assert_false(utf8_valid(cases[c].s, cases[c].len));
	}
}

/* A sequence still open when the text ends: every byte could continue, but it is not complete. */
static void stream_reports_truncated_text_at_the_end(void **state)
{
	static const char *open[] = {"\xc3",	 "\xe2",	 "\xe2\x82",
				     "\xf0\x9f", "\xf0\x9f\x98", "ok \xf4\x8f\xbf"};

	for (size_t c = 0; c < sizeof(open) / sizeof(open[0]); c++) {
		size_t len = strlen(open[c]);

		for (size_t i = 0; i <= len; i++) {
			size_t cuts[1] = {i};
			bool complete = true;

			assert_int_equal(feed_split(open[c], len, cuts, 1, &complete), len);
			assert_false(complete);
		}
	}
}

/* Byte by byte, every code point of every length round-trips. */
static void stream_takes_every_code_point_a_byte_at_a_time(void **state)
{
	struct utf8_stream st;
	unsigned char b[4];

	utf8_stream_init(&st);
	for (uint32_t cp = 0; cp <= 0x10ffff; cp += cp < 0x800 ? 1 : 7) {
		size_t n;

		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		if (cp < 0x80) {
			b[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			b[0] = (unsigned char)(0xc0 | cp >> 6);
			b[1] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			b[0] = (unsigned char)(0xe0 | cp >> 12);
			b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			b[2] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			b[0] = (unsigned char)(0xf0 | cp >> 18);
			b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
			b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			b[3] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(utf8_stream_feed(&st, b + i, 1), 1);
			assert_true(utf8_stream_complete(&st) == (i == n - 1));
		}
		assert_true(utf8_valid(b, n));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(validates_utf8),
	    cmocka_unit_test(measures_sequences),
	    cmocka_unit_test(stream_accepts_valid_text_split_anywhere),
	    cmocka_unit_test(stream_fails_at_the_first_hopeless_byte),
	    cmocka_unit_test(stream_reports_truncated_text_at_the_end),
	    cmocka_unit_test(stream_takes_every_code_point_a_byte_at_a_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

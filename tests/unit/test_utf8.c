#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(validates_utf8),
	    cmocka_unit_test(measures_sequences),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

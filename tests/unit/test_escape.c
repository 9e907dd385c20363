#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "escape.h"

static const char *esc(const char *s, size_t len, size_t room)
{
	static char out[512];

	assert_true(room <= sizeof(out));
	escape_text(out, room, s, len);
	assert_true(strlen(out) < room);
	return out;
}

static void keeps_printable_text_and_utf8(void **state)
{
	assert_string_equal(esc("going away", 10, 64), "going away");
	assert_string_equal(esc("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, 64),
			    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5");
	assert_string_equal(esc("\xf0\x9f\x98\x80", 4, 64), "\xf0\x9f\x98\x80");
}

static void escapes_controls_backslash_and_invalid_utf8(void **state)
{
	assert_string_equal(esc("a\nb\x1b[31m\x7f", 9, 64), "a\\x0ab\\x1b[31m\\x7f");
	assert_string_equal(esc("c:\\x", 4, 64), "c:\\x5cx");
	/* C1 controls, though valid UTF-8 */
	assert_string_equal(esc("\xc2\x85", 2, 64), "\\xc2\\x85");
	assert_string_equal(esc("\xc2\x9f", 2, 64), "\\xc2\\x9f");
	assert_string_equal(esc("\xc2\xa0", 2, 64), "\xc2\xa0"); /* U+00A0 follows C1: kept */
	/* overlong, surrogate, beyond U+10FFFF, truncated, stray continuation */
	assert_string_equal(esc("\xc0\xaf", 2, 64), "\\xc0\\xaf");
	assert_string_equal(esc("\xed\xa0\x80", 3, 64), "\\xed\\xa0\\x80");
	assert_string_equal(esc("\xf4\x90\x80\x80", 4, 64), "\\xf4\\x90\\x80\\x80");
	assert_string_equal(esc("\xe1\xbd", 2, 64), "\\xe1\\xbd");
	assert_string_equal(esc("\x80z", 2, 64), "\\x80z");
	assert_string_equal(esc("a\0b", 3, 64), "a\\x00b");
}

static void cuts_whole_and_marks_the_cut(void **state)
{
	assert_string_equal(esc("abcdefghij", 10, 11), "abcdefghij");
	assert_string_equal(esc("abcdefghijk", 11, 11), "abcdefg...");
	/* never inside an escape or a character */
	assert_string_equal(esc("abcd\x01\x02", 6, 11), "abcd...");
	assert_string_equal(esc("abcde\xce\xba\xce\xba\xce\xba", 11, 11), "abcde\xce\xba...");
	assert_string_equal(esc("", 0, 4), "");
	assert_string_equal(esc("abcdef", 6, 4), "...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(keeps_printable_text_and_utf8),
	    cmocka_unit_test(escapes_controls_backslash_and_invalid_utf8),
	    cmocka_unit_test(cuts_whole_and_marks_the_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

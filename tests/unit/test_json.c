#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

/* One string value, as the writer renders it. */
static void check_str(const char *in, size_t len, const char *want)
{
	struct json j;
	size_t n;
	const char *out;

	json_init(&j);
	json_strn(&j, in, len);
	out = json_result(&j, &n);
	assert_non_null(out);
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
	json_finish(&j);
}

static void writes_the_status_answer(void **state)
{
	struct json j;
	size_t n;

	json_init(&j);
	json_obj_begin(&j);
	json_key(&j, "ok");
	json_bool(&j, true);
	json_key(&j, "state");
	json_str(&j, "connected");
	json_key(&j, "url");
	json_str(&j, "wss://h/p");
	json_key(&j, "queue");
	json_obj_begin(&j);
	json_key(&j, "messages");
	json_uint(&j, 3);
	json_key(&j, "bytes");
	json_uint(&j, 10);
	json_key(&j, "dropped");
	json_uint(&j, 0);
	json_obj_end(&j);
	json_key(&j, "last_error");
	json_str(&j, NULL);
	json_obj_end(&j);
	assert_string_equal(json_result(&j, &n),
			    "{\"ok\":true,\"state\":\"connected\",\"url\":\"wss://h/p\","
			    "\"queue\":{\"messages\":3,\"bytes\":10,\"dropped\":0},"
			    "\"last_error\":null}");
	assert_int_equal(n, strlen(json_result(&j, NULL)));
	assert_int_equal(json_error(&j), JSON_OK);
	json_finish(&j);
}

static void escapes_quotes_backslashes_and_controls(void **state)
{
	check_str("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
	check_str("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"");
	check_str("\x01\x1f\x0b", 3, "\"\\u0001\\u001f\\u000b\"");
	check_str("\x7f", 1, "\"\x7f\""); /* DEL is a valid JSON character */
	check_str("", 0, "\"\"");
}

static void keeps_embedded_nul(void **state)
{
	check_str("a\0b", 3, "\"a\\u0000b\"");
	check_str("\0", 1, "\"\\u0000\"");
}

static void replaces_invalid_utf8(void **state)
{
	check_str("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
		  "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	check_str("\xff", 1, "\"\\ufffd\"");
	check_str("a\x80z", 3, "\"a\\ufffdz\"");
	/* overlong forms: every byte is its own bad subpart */
	check_str("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");
	check_str("\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\"");
	/* a surrogate, and beyond U+10FFFF */
	check_str("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");
	check_str("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	check_str("\xf8\x88\x80\x80\x80", 5, "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
	/* a truncated sequence is one replacement, then what follows */
	check_str("\xe2\x82", 2, "\"\\ufffd\"");
	check_str("\xe2\x82"
		  "A",
		  3, "\"\\ufffdA\"");
	check_str("\xf0\x9f\x98", 3, "\"\\ufffd\"");
	check_str("\xf0\x9f\x98\"", 4, "\"\\ufffd\\\"\"");
	/* the edges that are valid */
	check_str("\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\xc2\x80", 12,
		  "\"\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\xc2\x80\"");
}

static void every_byte_gives_valid_output(void **state)
{
	unsigned char in[256];
	struct json j;
	const char *out;

	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	json_init(&j);
	json_strn(&j, in, sizeof(in));
	out = json_result(&j, NULL);
	assert_non_null(out);
	/* no raw control character nor byte >= 0x80 survives: those are all invalid alone */
	for (const unsigned char *p = (const unsigned char *)out; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x80);
	json_finish(&j);
}

static void nests_arrays_and_objects(void **state)
{
	struct json j;

	json_init(&j);
	json_arr_begin(&j);
	json_arr_begin(&j);
	json_arr_end(&j);
	json_obj_begin(&j);
	json_obj_end(&j);
	json_obj_begin(&j);
	json_key(&j, "a\"k");
	json_arr_begin(&j);
	json_int(&j, 1);
	json_obj_begin(&j);
	json_key(&j, "x");
	json_null(&j);
	json_key(&j, "y");
	json_bool(&j, false);
	json_obj_end(&j);
	json_str(&j, "s");
	json_arr_end(&j);
	json_key(&j, "b");
	json_arr_begin(&j);
	json_arr_end(&j);
	json_obj_end(&j);
	json_int(&j, -2);
	json_arr_end(&j);
	assert_string_equal(json_result(&j, NULL),
			    "[[],{},{\"a\\\"k\":[1,{\"x\":null,\"y\":false},\"s\"],\"b\":[]},-2]");
	json_finish(&j);
}

static void writes_integer_extremes(void **state)
{
	struct json j;

	json_init(&j);
	json_arr_begin(&j);
	json_int(&j, INT64_MIN);
	json_int(&j, INT64_MAX);
	json_int(&j, 0);
	json_int(&j, -1);
	json_uint(&j, UINT64_MAX);
	json_uint(&j, 0);
	json_arr_end(&j);
	assert_string_equal(json_result(&j, NULL), "[-9223372036854775808,9223372036854775807,0,-1,"
						   "18446744073709551615,0]");
	json_finish(&j);
}

static void writes_doubles_and_null_for_non_finite(void **state)
{
	struct json j;

	json_init(&j);
	json_arr_begin(&j);
	json_double(&j, 0.1);
	json_double(&j, 1.5);
	json_double(&j, -0.0);
	json_double(&j, 1e300);
	json_double(&j, 0.1 + 0.2); /* needs 17 digits to read back */
	json_double(&j, NAN);
	json_double(&j, INFINITY);
	json_double(&j, -INFINITY);
	json_arr_end(&j);
	assert_string_equal(json_result(&j, NULL),
			    "[0.1,1.5,-0,1e+300,0.30000000000000004,null,null,null]");
	json_finish(&j);
}

static void misuse_sets_an_error_and_never_crashes(void **state)
{
	struct json j;

	/* a key outside an object */
	json_init(&j);
	json_key(&j, "k");
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	assert_null(json_result(&j, NULL));
	json_obj_begin(&j); /* later calls do nothing */
	json_obj_end(&j);
	assert_null(json_result(&j, NULL));
	json_finish(&j);

	/* a value in an object without a key */
	json_init(&j);
	json_obj_begin(&j);
	json_int(&j, 1);
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	json_finish(&j);

	/* two keys in a row, and closing after a key */
	json_init(&j);
	json_obj_begin(&j);
	json_key(&j, "a");
	json_key(&j, "b");
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	json_finish(&j);
	json_init(&j);
	json_obj_begin(&j);
	json_key(&j, "a");
	json_obj_end(&j);
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	json_finish(&j);

	/* mismatched and extra ends */
	json_init(&j);
	json_arr_begin(&j);
	json_obj_end(&j);
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	json_finish(&j);
	json_init(&j);
	json_arr_end(&j);
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	json_finish(&j);

	/* a second top-level value */
	json_init(&j);
	json_int(&j, 1);
	assert_string_equal(json_result(&j, NULL), "1");
	json_int(&j, 2);
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	assert_null(json_result(&j, NULL));
	json_finish(&j);

	/* NULL pointers */
	json_init(&j);
	json_obj_begin(&j);
	json_key(&j, NULL);
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	json_finish(&j);
	json_init(&j);
	json_strn(&j, NULL, 3);
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	json_finish(&j);

	/* unfinished, and nothing at all */
	json_init(&j);
	assert_null(json_result(&j, NULL));
	json_obj_begin(&j);
	assert_null(json_result(&j, NULL));
	assert_int_equal(json_error(&j), JSON_OK);
	json_finish(&j);
}

static void limits_nesting_depth(void **state)
{
	struct json j;
	size_t n;

	json_init(&j);
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		json_arr_begin(&j);
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		json_arr_end(&j);
	assert_non_null(json_result(&j, &n));
	assert_int_equal(n, 2 * JSON_MAX_DEPTH);
	json_finish(&j);

	json_init(&j);
	for (int i = 0; i <= JSON_MAX_DEPTH; i++)
		json_obj_begin(&j), json_key(&j, "k");
	assert_int_equal(json_error(&j), JSON_EMISUSE);
	for (int i = 0; i <= JSON_MAX_DEPTH; i++)
		json_obj_end(&j);
	assert_null(json_result(&j, NULL));
	json_finish(&j);
}

static void grows_and_resets(void **state)
{
	struct json j;
	char *big = malloc(100000);
	size_t n;

	assert_non_null(big);
	memset(big, 'x', 100000);
	json_init(&j);
	json_strn(&j, big, 100000);
	assert_non_null(json_result(&j, &n));
	assert_int_equal(n, 100002);
	json_reset(&j);
	assert_null(json_result(&j, NULL));
	json_obj_begin(&j);
	json_obj_end(&j);
	assert_string_equal(json_result(&j, NULL), "{}");
	json_finish(&j);
	json_finish(&j); /* twice is harmless */
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(writes_the_status_answer),
	    cmocka_unit_test(escapes_quotes_backslashes_and_controls),
	    cmocka_unit_test(keeps_embedded_nul),
	    cmocka_unit_test(replaces_invalid_utf8),
	    cmocka_unit_test(every_byte_gives_valid_output),
	    cmocka_unit_test(nests_arrays_and_objects),
	    cmocka_unit_test(writes_integer_extremes),
	    cmocka_unit_test(writes_doubles_and_null_for_non_finite),
	    cmocka_unit_test(misuse_sets_an_error_and_never_crashes),
	    cmocka_unit_test(limits_nesting_depth),
	    cmocka_unit_test(grows_and_resets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "hello.h"

static void expect_messages(const struct hello *h, const char *const *want, size_t n)
{
	const char *p = h->data;

	assert_int_equal(h->n, n);
	for (size_t i = 0; i < n; p += h->lens[i++]) {
		assert_int_equal(h->lens[i], strlen(want[i]));
		assert_memory_equal(p, want[i], h->lens[i]);
	}
}

static void one_message_per_line(void **state)
{
	static const char *const want[] = {"{\"op\":\"auth\"}", "sub a", "sub b"};
	const char text[] = "{\"op\":\"auth\"}\r\n\nsub a\nsub b";
	struct hello h;
	char err[256];

	assert_int_equal(hello_parse(text, sizeof(text) - 1, 64, &h, err, sizeof(err)), 0);
	expect_messages(&h, want, 3);
	assert_int_equal(h.total, 23);
	hello_free(&h);
	assert_int_equal(hello_parse("\n\n", 2, 64, &h, err, sizeof(err)), 0);
	assert_int_equal(h.n, 0);
	hello_free(&h);
}

static void refuses_long_and_non_utf8_lines(void **state)
{
	struct hello h;
	char err[256];

	assert_int_equal(hello_parse("ok\n12345\n", 9, 4, &h, err, sizeof(err)), -1);
	assert_string_equal(err, "line 2: 5 bytes, more than link.max_message_bytes (4)");
	assert_null(h.data);
	assert_int_equal(hello_parse("a\n\nb\xff\n", 6, 64, &h, err, sizeof(err)), -1);
	assert_string_equal(err, "line 3: not valid UTF-8 (hello messages are text)");
}

static const struct wst_config *load(const char *text)
{
	char path[] = "/tmp/test_hello_conf_XXXXXX";
	int fd = mkstemp(path);
	struct config_error err;
	const struct wst_config *c;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	c = config_load(path, NULL, &err);
	unlink(path);
	if (!c)
		fail_msg("%s", err.msg);
	return c;
}

static void loads_the_string_or_the_file_at_each_call(void **state)
{
	static const char *const one[] = {"line one\nstill one"};
	static const char *const two[] = {"a", "b"};
	char file[] = "/tmp/test_hello_XXXXXX", text[256], err[512];
	int fd = mkstemp(file);
	const struct wst_config *c;
	struct hello h;
	FILE *f;

	assert_true(fd >= 0);
	close(fd);
	c = load("link = { url = \"ws://a:1/\"; hello = \"line one\\nstill one\"; };\n");
	assert_int_equal(hello_load(c, &h, err, sizeof(err)), 0);
	expect_messages(&h, one, 1);
	hello_free(&h);
	config_free(c);

	snprintf(text, sizeof(text), "link = { url = \"ws://a:1/\"; hello_file = \"%s\"; };\n",
		 file);
	c = load(text);
	assert_int_equal(hello_load(c, &h, err, sizeof(err)), 0);
	assert_int_equal(h.n, 0);
	hello_free(&h);
	/* re-read at every attempt */
	f = fopen(file, "w");
	fputs("a\nb\n", f);
	fclose(f);
	assert_int_equal(hello_load(c, &h, err, sizeof(err)), 0);
	expect_messages(&h, two, 2);
	hello_free(&h);
	/* too big */
	f = fopen(file, "w");
	for (int i = 0; i <= HELLO_FILE_MAX / 8; i++)
		fputs("1234567\n", f);
	fclose(f);
	assert_int_equal(hello_load(c, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "larger than 1048576 bytes"));
	assert_non_null(strstr(err, file));
	unlink(file);
	assert_int_equal(hello_load(c, &h, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot read it: No such file or directory"));
	config_free(c);
}

static void config_refuses_both_keys_and_bad_strings(void **state)
{
	static const char *const bad[][2] = {
	    {"link = { url = \"ws://a:1/\"; hello = \"x\"; hello_file = \"/etc/passwd\"; };\n",
	     "link.hello and link.hello_file: set one or neither"},
	    {"link = { url = \"ws://a:1/\"; max_message_bytes = 3; hello = \"1234\"; };\n"
	     "queue = { max_bytes = 100; };\n",
	     "link.hello (4 bytes) is larger than link.max_message_bytes (3)"},
	    {"link = { url = \"ws://a:1/\"; hello = \"\\xff\"; };\n",
	     "link.hello is not valid UTF-8"},
	    {"link = { url = \"ws://a:1/\"; };\nbridge = { socket = \"/x\"; events = true; };\n",
	     "bridge.events needs bridge.framing = \"length-prefixed\""},
	    {"link = { url = \"ws://a:1/\"; };\nexec = { command = [\"/bin/cat\"]; events = true; "
	     "};\n",
	     "exec.events needs exec.framing = \"length-prefixed\""},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[] = "/tmp/test_hello_conf_XXXXXX";
		int fd = mkstemp(path);
		struct config_error err;

		assert_true(fd >= 0);
		assert_int_equal(write(fd, bad[i][0], strlen(bad[i][0])),
				 (ssize_t)strlen(bad[i][0]));
		close(fd);
		assert_null(config_load(path, NULL, &err));
		unlink(path);
		assert_int_equal(err.status, 78);
		if (!strstr(err.msg, bad[i][1]))
			fail_msg("%s: got '%s'", bad[i][1], err.msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(one_message_per_line),
	    cmocka_unit_test(refuses_long_and_non_utf8_lines),
	    cmocka_unit_test(loads_the_string_or_the_file_at_each_call),
	    cmocka_unit_test(config_refuses_both_keys_and_bad_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

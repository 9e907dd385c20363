/* The config text with @include expanded, and its map back to files and lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config_file.h"

static char dir[64];

static void put(const char *name, const char *text)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	char sub[96];

	snprintf(dir, sizeof(dir), "test_config_file_%d", (int)getpid());
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	return mkdir(dir, 0700) < 0 || mkdir(sub, 0700) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void expect_where(const struct conf_text *t, int line, const char *file, int file_line)
{
	char want[128];
	int fl;
	const char *got = conf_text_where(t, line, &fl);

	snprintf(want, sizeof(want), "%s/%s", dir, file);
	if (strcmp(got, want) || fl != file_line)
		fail_msg("line %d: %s:%d, want %s:%d", line, got, fl, want, file_line);
}

static void expands_includes_beside_the_including_file(void **state)
{
	struct conf_text t;
	char path[128], err[512];

	put("main.conf",
	    "a = 1;\n  @include \"sub/one.conf\"\nb = 2;\n@include \"sub/empty.conf\"\nc = 3;");
	put("sub/one.conf", "# one\n@include \"two.conf\"\nx = 1;\n");
	put("sub/two.conf", "y = 2;");
	put("sub/empty.conf", "");
	snprintf(path, sizeof(path), "%s/main.conf", dir);
	assert_int_equal(conf_text_read(&t, path, err, sizeof(err)), 0);
	assert_string_equal(t.text, "a = 1;\n# one\ny = 2;\nx = 1;\nb = 2;\nc = 3;");
	expect_where(&t, 1, "main.conf", 1);
	expect_where(&t, 2, "sub/one.conf", 1);
	expect_where(&t, 3, "sub/two.conf", 1);
	expect_where(&t, 4, "sub/one.conf", 3);
	expect_where(&t, 5, "main.conf", 3);
	expect_where(&t, 6, "main.conf", 5);
	conf_text_free(&t);
}

static void errors_name_the_file_and_the_include(void **state)
{
	struct conf_text t;
	char path[128], err[512], want[256];

	snprintf(path, sizeof(path), "%s/main.conf", dir);
	put("main.conf", "a = 1;\n@include \"nope.conf\"\n");
	assert_int_equal(conf_text_read(&t, path, err, sizeof(err)), -1);
	conf_text_free(&t);
	snprintf(want, sizeof(want), "%s:2: @include \"nope.conf\": %s/nope.conf: cannot open",
		 path, dir);
	if (strncmp(err, want, strlen(want)))
		fail_msg("got '%s', want '%s...'", err, want);

	put("main.conf", "@include \"main.conf\"\n");
	assert_int_equal(conf_text_read(&t, path, err, sizeof(err)), -1);
	conf_text_free(&t);
	assert_non_null(strstr(err, "nested more than 10 deep"));

	put("main.conf", "@include \"sub/x.conf\" a = 1;\n");
	assert_int_equal(conf_text_read(&t, path, err, sizeof(err)), -1);
	conf_text_free(&t);
	assert_non_null(strstr(err, ":1: @include \"FILE\" must be alone on its line"));

	put("main.conf", "a = 1;\n@include \"sub\"\n");
	assert_int_equal(conf_text_read(&t, path, err, sizeof(err)), -1);
	conf_text_free(&t);
	assert_non_null(strstr(err, "is a directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(expands_includes_beside_the_including_file),
	    cmocka_unit_test(errors_name_the_file_and_the_include),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

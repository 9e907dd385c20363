/* What --check says of a path a key names, by how the key uses it. */
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

#include "config_check.h"

static char dir[64], missing[96], fifo[96], creds[96];

static int setup(void **state)
{
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "test_config_check_%d", (int)getpid());
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	snprintf(creds, sizeof(creds), "%s/creds", dir);
	if (mkdir(dir, 0700) < 0 || mkfifo(fifo, 0600) < 0 || !(f = fopen(creds, "w")))
		return -1;
	fputs("agent:s3cret\n", f);
	return fclose(f);
}

static int teardown(void **state)
{
	(void)state;
	unlink(fifo);
	unlink(creds);
	return rmdir(dir);
}

static void a_missing_file_is_fine_an_error_or_a_warning_by_use(void **state)
{
	char why[256];

	(void)state;
	assert_int_equal(config_check_path(CONFIG_PATH_FILE, missing, why, sizeof(why)), 0);
	assert_int_equal(config_check_path(CONFIG_PATH_TEXT, missing, why, sizeof(why)), -1);
	assert_string_equal(why, "No such file or directory");
	/* a refresher may write a token or credentials after the start */
	for (int use = CONFIG_PATH_TOKEN; use <= CONFIG_PATH_CREDS; use++) {
		assert_int_equal(config_check_path(use, missing, why, sizeof(why)), 1);
		assert_string_equal(why, "No such file or directory; it is read at every attempt, "
					 "and each fails until it can be");
	}
}

static void a_directory_or_fifo_is_an_error_for_every_file(void **state)
{
	char why[256];

	(void)state;
	for (int use = CONFIG_PATH_FILE; use <= CONFIG_PATH_CREDS; use++) {
		assert_int_equal(config_check_path(use, dir, why, sizeof(why)), -1);
		assert_string_equal(why, "is a directory");
		assert_int_equal(config_check_path(use, fifo, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "FIFO"));
	}
}

static void credentials_others_may_read_draw_a_warning(void **state)
{
	static const struct {
		mode_t mode;
		int rc;
		const char *why;
	} cases[] = {
	    {0600, 0, ""},
	    {0400, 0, ""},
	    {0640, 1, "readable by group or others (mode 0640): chmod 600 it"},
	    {0644, 1, "readable by group or others (mode 0644): chmod 600 it"},
	    {0602, 1, "readable by group or others (mode 0602): chmod 600 it"},
	};
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(chmod(creds, cases[i].mode), 0);
		why[0] = '\0';
		assert_int_equal(config_check_path(CONFIG_PATH_CREDS, creds, why, sizeof(why)),
				 cases[i].rc);
		assert_string_equal(why, cases[i].why);
		/* a header's token file says nothing of its mode */
		assert_int_equal(config_check_path(CONFIG_PATH_TOKEN, creds, why, sizeof(why)), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_missing_file_is_fine_an_error_or_a_warning_by_use),
	    cmocka_unit_test(a_directory_or_fifo_is_an_error_for_every_file),
	    cmocka_unit_test(credentials_others_may_read_draw_a_warning),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

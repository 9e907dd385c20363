#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "instance.h"

static void name(const char *path, const char *want)
{
	char buf[16];

	instance_name(path, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

/* The template unit's config /etc/wstether/NAME.conf gives NAME, as %i does. */
static void base_name_without_conf(void **state)
{
	name("/etc/wstether/backend.conf", "backend");
	name("/etc/wstether/wstether.conf", "wstether");
	name("site-a.conf", "site-a");
	name("/etc/wstether/edge.cfg", "edge.cfg");
	name("/etc/wstether/.conf", ".conf");
	name(NULL, "wstether");		/* --url alone */
	name("/etc/wstether/", "wstether");
	name("/x/a-very-long-instance-name.conf", "a-very-long-ins"); /* cut to the buffer */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base_name_without_conf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

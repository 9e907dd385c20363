#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "journal.h"
#include "log.h"

static void field(const struct iovec *iov, const char *want)
{
	assert_int_equal(iov->iov_len, strlen(want));
	assert_memory_equal(iov->iov_base, want, iov->iov_len);
}

static void builds_priority_message_and_identifier(void **state)
{
	struct iovec iov[JOURNAL_MAX_FIELDS];
	char buf[256];

	assert_int_equal(journal_fields(LOG_WARNING, NULL, "link lost", iov, buf, sizeof(buf)), 3);
	field(&iov[0], "PRIORITY=4");
	field(&iov[1], "SYSLOG_IDENTIFIER=wstether");
	field(&iov[2], "MESSAGE=link lost");
}

static void adds_wstether_fields_that_apply(void **state)
{
	struct iovec iov[JOURNAL_MAX_FIELDS];
	struct log_ctx ctx = { .url = "wss://h/p", .event = "disconnect", .attempt = 3,
			       .close_code = 1001 };
	char buf[512];

	assert_int_equal(journal_fields(LOG_NOTICE, &ctx, "m", iov, buf, sizeof(buf)), 7);
	field(&iov[3], "WSTETHER_EVENT=disconnect");
	field(&iov[4], "WSTETHER_URL=wss://h/p");
	field(&iov[5], "WSTETHER_ATTEMPT=3");
	field(&iov[6], "WSTETHER_CLOSE_CODE=1001");

	ctx.attempt = 0;
	ctx.close_code = 0;
	assert_int_equal(journal_fields(LOG_NOTICE, &ctx, "m", iov, buf, sizeof(buf)), 5);
}

static void fails_cleanly_when_the_buffer_is_small(void **state)
{
	struct iovec iov[JOURNAL_MAX_FIELDS];
	char buf[20];

	assert_int_equal(journal_fields(LOG_ERR, NULL, "a long message here", iov, buf, sizeof(buf)),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(builds_priority_message_and_identifier),
		cmocka_unit_test(adds_wstether_fields_that_apply),
		cmocka_unit_test(fails_cleanly_when_the_buffer_is_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

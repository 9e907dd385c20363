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
			       .close_code = 1001, .close_ours = true, .link = "down",
			       .cause = "closed" };
	char buf[1024];

	assert_int_equal(journal_fields(LOG_NOTICE, &ctx, "m", iov, buf, sizeof(buf)), 11);
	field(&iov[3], "MESSAGE_ID=5c82dc0be7e24f5296f15fdb74a57722");
	field(&iov[4], "WSTETHER_EVENT=disconnect");
	field(&iov[5], "WSTETHER_URL=wss://h/p");
	field(&iov[6], "WSTETHER_ATTEMPT=3");
	field(&iov[7], "WSTETHER_CLOSE_CODE=1001");
	field(&iov[8], "WSTETHER_CLOSE_BY=wstether");
	field(&iov[9], "WSTETHER_LINK=down");
	field(&iov[10], "WSTETHER_CAUSE=closed");

	/* an attempt that never came up, refused with an HTTP status */
	ctx = (struct log_ctx){ .event = "disconnect", .link = "failed", .cause = "http",
				.http_status = 503 };
	assert_int_equal(journal_fields(LOG_WARNING, &ctx, "m", iov, buf, sizeof(buf)), 8);
	field(&iov[3], "MESSAGE_ID=6ac5c82e574440edb969f6a06d6efe29");
	field(&iov[7], "WSTETHER_HTTP_STATUS=503");
}

/* Each event has its MESSAGE_ID; a reload's result picks one of its own. */
static void message_ids_by_event(void **state)
{
	struct log_ctx ok = { .event = "reload", .result = "ok" };
	struct log_ctx failed = { .event = "reload", .result = "failed" };

	assert_string_equal(journal_message_id(&ok), "08a80e79b1854140bcfa294a13bd18c6");
	assert_string_equal(journal_message_id(&failed), "595618e684c14bf8ba8e6a80cd213694");
	assert_string_equal(journal_message_id(&(struct log_ctx){ .event = "exec" }),
			    "2cc0adb700ca45e394da77184f5244a0");
	assert_null(journal_message_id(&(struct log_ctx){ .event = "nonesuch" }));
	assert_string_equal(log_source_event("../src/store/spool_recover.c"), "spool");
	assert_string_equal(log_source_event("../src/local/stdio_bridge.c"), "stdio");
	assert_string_equal(log_source_event("src/local/bridge.c"), "bridge");
	assert_string_equal(log_source_event("daemon_link.c"), "daemon");
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
		cmocka_unit_test(message_ids_by_event),
		cmocka_unit_test(fails_cleanly_when_the_buffer_is_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

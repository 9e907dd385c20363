#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "link.h"
#include "metrics.h"
#include "status.h"

static char *render(const struct wst_status *st)
{
	size_t len;
	char *t = metrics_text(st, &len);

	assert_non_null(t);
	assert_int_equal(len, strlen(t));
	assert_true(len > 0 && t[len - 1] == '\n');
	return t;
}

/* Every sample follows the HELP and TYPE lines of its family, in that order. */
static void check_families(const char *t)
{
	char family[128] = "";
	const char *line = t;

	while (*line) {
		const char *nl = strchr(line, '\n');
		int n = (int)(nl - line);
		char name[128];

		if (!strncmp(line, "# HELP ", 7)) {
			sscanf(line + 7, "%127s", family);
			assert_true(!strncmp(nl + 1, "# TYPE ", 7));
			assert_true(!strncmp(nl + 8, family, strlen(family)));
		} else if (line[0] != '#') {
			sscanf(line, "%127[^{ ]", name);
			if (strcmp(name, family))
				fail_msg("sample '%.*s' outside its family '%s'", n, line, family);
		}
		line = nl + 1;
	}
}

static void renders_every_family_with_help_and_type(void **state)
{
	struct wst_status st = {.up = true,
				.up_ms = 61500,
				.attempts = 4,
				.reconnects = 2,
				.sent = 10,
				.sent_bytes = 100,
				.received = 7,
				.received_bytes = 70,
				.confirmed = 9,
				.confirmed_bytes = 90,
				.resent = 1,
				.resent_bytes = 10,
				.dropped = 3,
				.dropped_bytes = 30,
				.rejected = 5,
				.unframable = 6,
				.queue_messages = 2,
				.queue_bytes = 20,
				.spool_on = true,
				.oldest_queued_ms = 2500,
				.ping_rtt_us = 1234,
				.cert_expiry = 1800000000,
				.tls_version = "TLSv1.3",
				.tls_cipher = "TLS_AES_256_GCM_SHA384"};
	char *t;

	st.spool.bytes = 4096;
	st.spool.oldest_age_ms = 1500; /* younger than the queue's: the queue's counts */
	st.failures[LINK_FAIL_CONNECT] = 2;
	st.failures[LINK_FAIL_CLOSED] = 1;
	st.failures[13] = 4; /* a kind without a name */
	t = render(&st);
	check_families(t);
	assert_non_null(strstr(t, "# HELP wstether_link_up Whether the WebSocket link is up"));
	assert_non_null(strstr(t, "# TYPE wstether_link_up gauge\nwstether_link_up 1\n"));
	assert_non_null(strstr(t, "\nwstether_link_up_seconds 61.500\n"));
	assert_non_null(strstr(t, "# TYPE wstether_connect_attempts_total counter\n"
				  "wstether_connect_attempts_total 4\n"));
	assert_non_null(strstr(t, "\nwstether_link_failures_total{cause=\"connect\"} 2\n"));
	assert_non_null(strstr(t, "\nwstether_link_failures_total{cause=\"closed\"} 1\n"));
	assert_non_null(strstr(t, "\nwstether_link_failures_total{cause=\"tls\"} 0\n"));
	assert_non_null(strstr(t, "\nwstether_link_failures_total{cause=\"other\"} 4\n"));
	assert_non_null(strstr(t, "\nwstether_messages_sent_total 10\n"));
	assert_non_null(strstr(t, "\nwstether_received_bytes_total 70\n"));
	assert_non_null(strstr(t, "\nwstether_messages_confirmed_total 9\n"));
	assert_non_null(strstr(t, "\nwstether_resent_bytes_total 10\n"));
	assert_non_null(
	    strstr(t, "\nwstether_messages_dropped_total{reason=\"queue_overflow\"} 3\n"));
	assert_non_null(strstr(t, "\nwstether_messages_dropped_total{reason=\"rejected\"} 5\n"));
	assert_non_null(strstr(t, "\nwstether_messages_dropped_total{reason=\"unframable\"} 6\n"));
	assert_non_null(strstr(t, "\nwstether_queue_messages 2\n"));
	assert_non_null(strstr(t, "\nwstether_spool_bytes 4096\n"));
	assert_non_null(strstr(t, "\nwstether_queue_oldest_age_seconds 2.500\n"));
	assert_non_null(strstr(t, "\nwstether_ping_rtt_seconds 0.001234\n"));
	assert_non_null(strstr(t, "\nwstether_client_cert_expiry_timestamp_seconds 1800000000\n"));
	assert_non_null(strstr(t, "# TYPE wstether_tls_info gauge\nwstether_tls_info{"
				  "version=\"TLSv1.3\",cipher=\"TLS_AES_256_GCM_SHA384\"} 1\n"));
	free(t);
}

static void unknown_values_have_no_sample(void **state)
{
	struct wst_status st = {.oldest_queued_ms = -1, .ping_rtt_us = -1};
	char *t = render(&st);

	check_families(t);
	assert_non_null(strstr(t, "\nwstether_link_up 0\n"));
	assert_non_null(strstr(t, "\nwstether_link_up_seconds 0.000\n"));
	assert_non_null(strstr(t, "\nwstether_queue_oldest_age_seconds 0.000\n"));
	assert_null(strstr(t, "\nwstether_ping_rtt_seconds "));
	assert_null(strstr(t, "\nwstether_client_cert_expiry_timestamp_seconds "));
	assert_null(strstr(t, "\nwstether_tls_info"));
	assert_null(strstr(t, "cause=\"other\""));
	free(t);
	/* a spool read back at start knows older messages than the queue does */
	st.spool_on = true;
	st.spool.oldest_age_ms = 90000;
	st.oldest_queued_ms = 10;
	t = render(&st);
	assert_non_null(strstr(t, "\nwstether_queue_oldest_age_seconds 90.000\n"));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(renders_every_family_with_help_and_type),
	    cmocka_unit_test(unknown_values_have_no_sample),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

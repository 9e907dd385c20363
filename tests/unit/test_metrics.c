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
	struct wst_status st = {.instance = "t",
				.up = true,
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
	assert_non_null(
	    strstr(t, "# TYPE wstether_link_up gauge\nwstether_link_up{instance=\"t\"} 1\n"));
	assert_non_null(strstr(t, "\nwstether_link_up_seconds{instance=\"t\"} 61.500\n"));
	assert_non_null(strstr(t, "# TYPE wstether_connect_attempts_total counter\n"
				  "wstether_connect_attempts_total{instance=\"t\"} 4\n"));
	assert_non_null(
	    strstr(t, "\nwstether_link_failures_total{instance=\"t\",cause=\"connect\"} 2\n"));
	assert_non_null(
	    strstr(t, "\nwstether_link_failures_total{instance=\"t\",cause=\"closed\"} 1\n"));
	assert_non_null(
	    strstr(t, "\nwstether_link_failures_total{instance=\"t\",cause=\"tls\"} 0\n"));
	assert_non_null(
	    strstr(t, "\nwstether_link_failures_total{instance=\"t\",cause=\"other\"} 4\n"));
	assert_non_null(strstr(t, "\nwstether_messages_sent_total{instance=\"t\"} 10\n"));
	assert_non_null(strstr(t, "\nwstether_received_bytes_total{instance=\"t\"} 70\n"));
	assert_non_null(strstr(t, "\nwstether_messages_confirmed_total{instance=\"t\"} 9\n"));
	assert_non_null(strstr(t, "\nwstether_resent_bytes_total{instance=\"t\"} 10\n"));
	assert_non_null(strstr(
	    t, "\nwstether_messages_dropped_total{instance=\"t\",reason=\"queue_overflow\"} 3\n"));
	assert_non_null(
	    strstr(t, "\nwstether_messages_dropped_total{instance=\"t\",reason=\"rejected\"} 5\n"));
	assert_non_null(strstr(
	    t, "\nwstether_messages_dropped_total{instance=\"t\",reason=\"unframable\"} 6\n"));
	assert_non_null(strstr(t, "\nwstether_queue_messages{instance=\"t\"} 2\n"));
	assert_non_null(strstr(t, "\nwstether_spool_bytes{instance=\"t\"} 4096\n"));
	assert_non_null(strstr(t, "\nwstether_queue_oldest_age_seconds{instance=\"t\"} 2.500\n"));
	assert_non_null(strstr(t, "\nwstether_ping_rtt_seconds{instance=\"t\"} 0.001234\n"));
	assert_non_null(strstr(
	    t, "\nwstether_client_cert_expiry_timestamp_seconds{instance=\"t\"} 1800000000\n"));
	assert_non_null(strstr(t, "# TYPE wstether_tls_info gauge\nwstether_tls_info{instance=\"t\","
				  "version=\"TLSv1.3\",cipher=\"TLS_AES_256_GCM_SHA384\"} 1\n"));
	free(t);
}

static void unknown_values_have_no_sample(void **state)
{
	struct wst_status st = {.instance = "t", .oldest_queued_ms = -1, .ping_rtt_us = -1};
	char *t = render(&st);

	check_families(t);
	assert_non_null(strstr(t, "\nwstether_link_up{instance=\"t\"} 0\n"));
	assert_non_null(strstr(t, "\nwstether_link_up_seconds{instance=\"t\"} 0.000\n"));
	assert_non_null(strstr(t, "\nwstether_queue_oldest_age_seconds{instance=\"t\"} 0.000\n"));
	assert_null(strstr(t, "\nwstether_ping_rtt_seconds{"));
	assert_null(strstr(t, "\nwstether_client_cert_expiry_timestamp_seconds{"));
	assert_null(strstr(t, "\nwstether_link_start_time_seconds{"));
	assert_null(strstr(t, "\nwstether_tls_info{"));
	assert_null(strstr(t, "cause=\"other\""));
	free(t);
	/* a spool read back at start knows older messages than the queue does */
	st.spool_on = true;
	st.spool.oldest_age_ms = 90000;
	st.oldest_queued_ms = 10;
	t = render(&st);
	assert_non_null(strstr(t, "\nwstether_queue_oldest_age_seconds{instance=\"t\"} 90.000\n"));
	free(t);
}

/* The families a fleet needs, and an instance name that needs escaping. */
static void fleet_families_and_escaped_instance(void **state)
{
	struct wst_status st = {.instance = "a\"b\\c",
				.oldest_queued_ms = -1,
				.ping_rtt_us = -1,
				.connected_since = 1700000000,
				.rotations = 3,
				.reloads_ok = 2,
				.reloads_failed = 1,
				.last_reload_ok = 1700000100,
				.insecure = true,
				.exec_restarts = 4,
				.invalid_utf8 = 2,
				.invalid_utf8_bytes = 17,
				.too_big = 1,
				.too_big_bytes = 99,
				.slow_readers = 5,
				.bridge_clients_dropped = 4,
				.spool_on = true};
	char *t;

	st.spool.skipped_records = 6;
	st.spool.set_aside = 1;
	st.spool.holding = true;
	t = render(&st);
	check_families(t);
	assert_non_null(strstr(t, "\nwstether_build_info{instance=\"a\\\"b\\\\c\",version=\""));
	assert_non_null(strstr(t, "\nwstether_link_start_time_seconds{instance=\"a\\\"b\\\\c\"} "
				  "1700000000\n"));
	assert_non_null(strstr(t, "\nwstether_rotations_total{instance=\"a\\\"b\\\\c\"} 3\n"));
	assert_non_null(strstr(t, ",result=\"ok\"} 2\n"));
	assert_non_null(strstr(t, ",result=\"failed\"} 1\n"));
	assert_non_null(strstr(t,
			       "_last_reload_success_timestamp_seconds{instance=\"a\\\"b\\\\c\"} "
			       "1700000100\n"));
	assert_non_null(strstr(t, "\nwstether_tls_insecure{instance=\"a\\\"b\\\\c\"} 1\n"));
	assert_non_null(strstr(t, "\nwstether_exec_restarts_total{instance=\"a\\\"b\\\\c\"} 4\n"));
	assert_non_null(strstr(
	    t, "messages_dropped_total{instance=\"a\\\"b\\\\c\",reason=\"invalid_utf8\"} 2\n"));
	assert_non_null(strstr(
	    t, "dropped_bytes_total{instance=\"a\\\"b\\\\c\",reason=\"invalid_utf8\"} 17\n"));
	assert_non_null(strstr(
	    t, "dropped_bytes_total{instance=\"a\\\"b\\\\c\",reason=\"larger_than_queue\"} 99\n"));
	assert_non_null(strstr(
	    t, "local_clients_dropped_total{instance=\"a\\\"b\\\\c\",reason=\"slow_reader\"} 5\n"));
	assert_non_null(strstr(t, "spool_skipped_records_total{instance=\"a\\\"b\\\\c\"} 6\n"));
	assert_non_null(strstr(t, "bridge_clients_dropped_total{instance=\"a\\\"b\\\\c\"} 4\n"));
	assert_non_null(strstr(t, "spool_segments_set_aside_total{instance=\"a\\\"b\\\\c\"} 1\n"));
	assert_non_null(strstr(t, "spool_holding_senders{instance=\"a\\\"b\\\\c\"} 1\n"));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(renders_every_family_with_help_and_type),
	    cmocka_unit_test(unknown_values_have_no_sample),
	    cmocka_unit_test(fleet_families_and_escaped_instance),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

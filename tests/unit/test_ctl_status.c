#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_status.h"

/* The status answer of wstetherctl(1)'s example, trimmed. */
static const char ANSWER[] =
    "{\"ok\":true,\"state\":\"connected\",\"url\":\"wss://backend.example/agent\","
    "\"connected_since\":\"2026-11-24T03:00:00Z\",\"attempts\":3,\"reconnects\":2,"
    "\"rotations\":0,\"next_retry_ms\":null,\"sent\":120,\"received\":118,\"resent\":2,"
    "\"queue\":{\"messages\":5,\"bytes\":2048,\"dropped\":0,\"dropped_bytes\":0,"
    "\"max_messages\":10000,\"max_bytes\":16777216,\"overflow\":\"drop-oldest\"},"
    "\"drops\":{\"queue_overflow\":0,\"rejected\":0,\"unframable\":0,"
    "\"bridge_clients_dropped\":1,\"undelivered\":0,\"invalid_utf8\":3,\"oversized\":0,"
    "\"larger_than_queue\":0,\"slow_readers\":1,\"bad_framing\":0},"
    "\"spool\":{\"bytes\":4096,\"segments\":1,\"oldest_age_ms\":1200,"
    "\"holding_senders\":\"disk full\",\"skipped_records\":0,\"skipped_bytes\":0,"
    "\"segments_set_aside\":0,\"last_error\":null},"
    "\"last_error\":\"cannot connect to backend.example:443 (refused)\","
    "\"last_close\":{\"code\":1001,\"reason\":\"restarting\"},"
    "\"tls\":{\"cert_not_after\":\"2027-01-31 12:00:00 UTC\",\"insecure\":false,"
    "\"version\":\"TLSv1.3\",\"cipher\":\"TLS_AES_256_GCM_SHA384\"},"
    "\"bridge_clients\":2,\"exec_pid\":4711,\"exec_restarts\":1,"
    "\"network\":{\"proxy\":\"http://10.0.0.1:3128 (from https_proxy)\",\"probes\":1,"
    "\"fast_retries\":0},\"config_error\":null,\"compression\":null}";

static char *render(const char *json, time_t now)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(ctl_status_render(json, "/run/wstether/b.ctl", now, f), 0);
	fclose(f);
	return buf;
}

static void renders_every_part(void **state)
{
	/* 1 h 2 min 5 s after connected_since */
	char *t = render(ANSWER, 1795489200 + 3725);

	assert_true(!strncmp(t, "wstether at /run/wstether/b.ctl\n", 32));
	assert_non_null(strstr(t, "\n        State: connected since 2026-11-24 03:00:00 UTC; "
				  "up 1h 2min\n"));
	assert_non_null(strstr(t, "\n          URL: wss://backend.example/agent\n"));
	assert_non_null(strstr(t, "\n     Attempts: 3; 2 reconnects, 0 rotations\n"));
	assert_non_null(strstr(t, "\n   Last error: cannot connect to backend.example:443 (refused)\n"));
	assert_non_null(strstr(t, "\n   Last close: 1001 restarting\n"));
	assert_non_null(strstr(t, "\n     Messages: 120 sent, 118 received, 2 resent\n"));
	assert_non_null(strstr(t, "\n        Queue: 5 of 10000 messages, 2.0 KiB of 16.0 MiB "
				  "(drop-oldest)\n"));
	/* only what counts something; the bridge's share is not counted twice */
	assert_non_null(strstr(t, "\n        Drops: 3 invalid_utf8, 1 slow_readers\n"));
	assert_non_null(strstr(t, "\n        Spool: 4.0 KiB in 1 segment(s), oldest 1s; "
				  "HOLDING SENDERS: disk full\n"));
	assert_non_null(strstr(t, "\n          TLS: server certificate verified; client "
				  "certificate valid until 2027-01-31 12:00:00 UTC; TLSv1.3, "
				  "TLS_AES_256_GCM_SHA384\n"));
	assert_non_null(strstr(t, "\n        Proxy: http://10.0.0.1:3128 (from https_proxy)\n"));
	assert_non_null(strstr(t, "\n        Local: 2 bridge client(s); exec handler pid 4711, "
				  "1 restart(s)\n"));
	assert_null(strstr(t, "Config error"));
	assert_null(strstr(t, "Compression"));
	free(t);
}

static void waiting_and_insecure(void **state)
{
	static const char w[] =
	    "{\"ok\":true,\"state\":\"waiting\",\"url\":\"wss://h/\",\"connected_since\":null,"
	    "\"next_retry_ms\":4200,\"queue\":{},\"drops\":{},\"spool\":null,"
	    "\"tls\":{\"insecure\":true},\"network\":{},\"config_error\":\"a.conf:3: bad\"}";
	char *t = render(w, 0);

	assert_non_null(strstr(t, "\n        State: waiting; next attempt in 4.2 s\n"));
	assert_non_null(strstr(t, "\n          TLS: INSECURE: the server's certificate is not "
				  "checked (tls.insecure)\n"));
	assert_non_null(strstr(t, "\n        Spool: off (memory only)\n"));
	assert_non_null(strstr(t, "\n Config error: a.conf:3: bad (the running configuration is "
				  "kept)\n"));
	assert_null(strstr(t, "Drops"));
	free(t);
}

static void not_a_status_answer(void **state)
{
	FILE *f = fopen("/dev/null", "w");

	assert_int_equal(ctl_status_render("{\"ok\":false,\"error\":\"x\"}", "s", 0, f), -1);
	assert_int_equal(ctl_status_render("not json", "s", 0, f), -1);
	fclose(f);
}

static void durations_and_sizes(void **state)
{
	char b[32];

	ctl_status_duration(b, sizeof(b), 42);
	assert_string_equal(b, "42s");
	ctl_status_duration(b, sizeof(b), 3 * 86400 + 5 * 3600 + 7);
	assert_string_equal(b, "3d 5h");
	ctl_status_bytes(b, sizeof(b), 1023);
	assert_string_equal(b, "1023 B");
	ctl_status_bytes(b, sizeof(b), 3ULL << 30);
	assert_string_equal(b, "3.0 GiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(renders_every_part),
		cmocka_unit_test(waiting_and_insecure),
		cmocka_unit_test(not_a_status_answer),
		cmocka_unit_test(durations_and_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

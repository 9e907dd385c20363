#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control.h"
#include "status.h"
#include "supervisor.h"

static char last_send[256];
static int last_code;

static void snapshot(void *ud, struct wst_status *st)
{
	st->state = "waiting";
	st->url = "ws://h:1/";
	st->attempts = 3;
	st->next_retry_ms = 250;
	st->queue_messages = 2;
	st->queue_max_messages = 10;
	st->last_error = "server h:1 closed the link: 1011 bad \xff\"x\"\n";
	st->last_close_code = 1011;
	st->last_close_reason = "bad \xc3";
	st->exec_pid = -1;
	st->proxy = "http://p:3128 (from https_proxy)";
	st->net_probes = 2;
	st->net_retries = 1;
	st->compression = true;
	st->compression_params = "permessage-deflate; client_max_window_bits=15";
	st->deflate.zlib_bytes = 268096;
	st->deflate.tx_plain = 1000;
	st->deflate.tx_wire = 250;
}

static const char *send_cb(void *ud, const char *text, size_t len)
{
	snprintf(last_send, sizeof(last_send), "%.*s", (int)len, text);
	return strcmp(last_send, "full") ? NULL : "queue full";
}

static const char *nothing(void *ud)
{
	return NULL;
}

static enum sup_request last_req = SUP_REQ_STOP;

/* reconnect is refused (paused), pause and resume succeed */
static const char *request_cb(void *ud, enum sup_request r)
{
	last_req = r;
	return r == SUP_REQ_PAUSE || r == SUP_REQ_RESUME ? NULL : "paused: use resume";
}

static const char *close_cb(void *ud, int code, const char *reason)
{
	last_code = code;
	return NULL;
}

static const struct control_ops ops = { NULL, snapshot, send_cb, request_cb, close_cb, nothing };

static void expect(const char *req, const char *want)
{
	size_t len = 0;
	char *out = control_handle(&ops, req, strlen(req), &len);

	assert_non_null(out);
	assert_int_equal(len, strlen(out));
	if (strcmp(out, want))
		fail_msg("request '%s':\n got  %s\n want %s", req, out, want);
	free(out);
}

static void answers_commands(void **state)
{
	expect("send hello world\n", "{\"ok\":true}");
	assert_string_equal(last_send, "hello world");
	expect("send full", "{\"ok\":false,\"error\":\"queue full\"}");
	expect("send", "{\"ok\":false,\"error\":\"usage: send TEXT\"}");
	expect("send \xff", "{\"ok\":false,\"error\":\"send: TEXT is not valid UTF-8\"}");
	expect("reconnect", "{\"ok\":false,\"error\":\"paused: use resume\"}");
	assert_int_equal(last_req, SUP_REQ_ROTATE);
	expect("reconnect --now", "{\"ok\":false,\"error\":\"paused: use resume\"}");
	assert_int_equal(last_req, SUP_REQ_RECONNECT);
	expect("reconnect later", "{\"ok\":false,\"error\":\"usage: reconnect [--now]\"}");
	expect("pause\r\n", "{\"ok\":true}");
	assert_int_equal(last_req, SUP_REQ_PAUSE);
	expect("resume", "{\"ok\":true}");
	assert_int_equal(last_req, SUP_REQ_RESUME);
	expect("pause now", "{\"ok\":false,\"error\":\"'pause' takes no arguments\"}");
	expect("close 4000 bye", "{\"ok\":true}");
	assert_int_equal(last_code, 4000);
	expect("close 1005", "{\"ok\":false,\"error\":\"close: invalid code '1005' (use 1000, "
			     "1001-1003, 1007-1014 or 3000-4999)\"}");
	/* past int: not taken modulo 2^32 for 1000 */
	expect("close 4294968296", "{\"ok\":false,\"error\":\"close: invalid code "
				   "'4294968296' (use 1000, 1001-1003, 1007-1014 or 3000-4999)\"}");
}

static void unknown_verbs_are_escaped_valid_json(void **state)
{
	expect("fr\xc3\x28/b\x01",
	       "{\"ok\":false,\"error\":\"unknown command (use status, metrics, watch, send, "
	       "reconnect, close, pause, resume, reload)\",\"command\":\"fr\xef\xbf\xbd(/b\\u0001\"}");
}

static void status_is_built_from_the_snapshot(void **state)
{
	size_t len;
	char *out = control_handle(&ops, "status", 6, &len);

	assert_non_null(out);
	assert_non_null(strstr(out, "{\"ok\":true,\"state\":\"waiting\",\"url\":\"ws://h:1/\","
				    "\"connected_since\":null,\"attempts\":3,\"reconnects\":0,\"rotations\":0,"
				    "\"next_retry_ms\":250,"));
	assert_non_null(strstr(out, "\"queue\":{\"messages\":2,\"bytes\":0,"));
	/* server text: invalid UTF-8 replaced, quotes and newlines escaped */
	assert_non_null(strstr(out, "\"last_error\":\"server h:1 closed the link: 1011 bad "
				    "\xef\xbf\xbd\\\"x\\\"\\n\""));
	assert_non_null(strstr(out, "\"last_close\":{\"code\":1011,\"reason\":\"bad \xef\xbf\xbd\"}"));
	assert_non_null(strstr(out, "\"exec_pid\":-1,"));
	assert_non_null(strstr(out, "\"network\":{\"proxy\":\"http://p:3128 (from https_proxy)\","
				    "\"probes\":2,\"fast_retries\":1},"));
	assert_non_null(strstr(out, "\"config_error\":null,"));
	assert_non_null(strstr(out, "\"compression\":{\"negotiated\":\"permessage-deflate; "
				    "client_max_window_bits=15\",\"zlib_bytes\":268096,\"buffer_bytes\":0,"
				    "\"sent_bytes\":1000,\"sent_wire_bytes\":250,"
				    "\"received_wire_bytes\":0,\"received_bytes\":0}}"));
	free(out);
}

static void metrics_and_watch_answer_in_json(void **state)
{
	size_t len;
	char *out = control_handle(&ops, "metrics", 7, &len);

	assert_non_null(out);
	/* the text format inside one JSON string: newlines escaped */
	assert_non_null(strstr(out, "{\"ok\":true,\"metrics\":\"# HELP wstether_build_info "));
	assert_non_null(strstr(out, "\\nwstether_connect_attempts_total{instance=\\\"\\\"} 3\\n"));
	assert_null(strchr(out, '\n'));
	free(out);
	expect("watch", "{\"ok\":true,\"state\":\"waiting\",\"url\":\"ws://h:1/\"}");
	expect("watch now", "{\"ok\":false,\"error\":\"'watch' takes no arguments\"}");
}

static void expect_event(const struct sup_event *ev, const char *want)
{
	size_t len;
	/* 2026-12-01T10:00:00.250Z */
	char *out = control_event_json(ev, 1796119200250LL, &len);

	assert_non_null(out);
	assert_int_equal(len, strlen(out));
	if (strcmp(out, want))
		fail_msg("event:\n got  %s\n want %s", out, want);
	free(out);
}

static void events_are_one_json_object(void **state)
{
	struct sup_event up = { .change = SUP_CHANGE_UP, .url = "ws://h:1/", .attempt = 2,
				.retry_ms = -1 };
	struct sup_event down = { .change = SUP_CHANGE_DOWN, .url = "ws://h:1/", .attempt = 0,
				  .fail = 6, .close_code = 1012, .close_reason = "restart \xff",
				  .msg = "server h:1 closed the link: 1012", .retry_ms = 1750 };
	struct sup_event failed = { .change = SUP_CHANGE_FAILED, .url = "ws://h:1/", .attempt = 3,
				    .fail = 4, .http_status = 503, .msg = "refused",
				    .retry_ms = 2000 };
	struct sup_event paused = { .change = SUP_CHANGE_DOWN, .url = "ws://h:1/", .fail = 6,
				    .by_request = true, .msg = "closed", .retry_ms = -1 };
	size_t len;

	expect_event(&up, "{\"event\":\"up\",\"time\":\"2026-12-01T10:00:00.250Z\","
			  "\"url\":\"ws://h:1/\",\"attempt\":2}");
	up.url = "wss://h:1/";
	up.tls_version = "TLSv1.3";
	up.tls_cipher = "TLS_AES_128_GCM_SHA256";
	expect_event(&up, "{\"event\":\"up\",\"time\":\"2026-12-01T10:00:00.250Z\","
			  "\"url\":\"wss://h:1/\",\"attempt\":2,\"tls_version\":\"TLSv1.3\","
			  "\"tls_cipher\":\"TLS_AES_128_GCM_SHA256\"}");
	expect_event(&down,
		     "{\"event\":\"down\",\"time\":\"2026-12-01T10:00:00.250Z\",\"url\":\"ws://h:1/\","
		     "\"attempt\":0,\"cause\":\"closed\",\"by_request\":false,\"close_code\":1012,"
		     "\"close_reason\":\"restart \xef\xbf\xbd\",\"http_status\":null,"
		     "\"message\":\"server h:1 closed the link: 1012\",\"retry_in_ms\":1750,"
		     "\"next_attempt\":\"2026-12-01T10:00:02.000Z\"}");
	expect_event(&failed,
		     "{\"event\":\"failed\",\"time\":\"2026-12-01T10:00:00.250Z\",\"url\":\"ws://h:1/\","
		     "\"attempt\":3,\"cause\":\"http\",\"by_request\":false,\"close_code\":null,"
		     "\"close_reason\":null,\"http_status\":503,\"message\":\"refused\","
		     "\"retry_in_ms\":2000,\"next_attempt\":\"2026-12-01T10:00:02.250Z\"}");
	expect_event(&paused,
		     "{\"event\":\"down\",\"time\":\"2026-12-01T10:00:00.250Z\",\"url\":\"ws://h:1/\","
		     "\"attempt\":0,\"cause\":\"closed\",\"by_request\":true,\"close_code\":null,"
		     "\"close_reason\":null,\"http_status\":null,\"message\":\"closed\","
		     "\"retry_in_ms\":null,\"next_attempt\":null}");
	assert_null(control_event_json(&(struct sup_event){ 0 }, 0, &len));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(answers_commands),
		cmocka_unit_test(unknown_verbs_are_escaped_valid_json),
		cmocka_unit_test(status_is_built_from_the_snapshot),
		cmocka_unit_test(metrics_and_watch_answer_in_json),
		cmocka_unit_test(events_are_one_json_object),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * libFuzzer target for the control-socket command parser (control_handle):
 * one request line from a local client. Every line must get exactly one
 * JSON object back, and the ops may only be called with what the line
 * said: a send with the bytes after "send ", a close with a valid code.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "json.h"

static const char *line_seen;
static size_t len_seen;
static int calls;

static void st_status(void *ud, struct json *j)
{
	calls++;
	json_key(j, "state");
	json_str(j, "connected");
}

static const char *st_send(void *ud, const char *text, size_t len)
{
	calls++;
	if (text < line_seen || text + len > line_seen + len_seen)
		abort();
	return len % 2 ? NULL : "queue full";
}

static const char *st_close(void *ud, int code, const char *reason)
{
	calls++;
	if (code < 1000 || code > 4999 || !reason)
		abort();
	return NULL;
}

static const char *st_plain(void *ud)
{
	calls++;
	return NULL;
}

static const struct control_ops ops = {
    .status = st_status,
    .send = st_send,
    .reconnect = st_plain,
    .close = st_close,
    .pause = st_plain,
    .resume = st_plain,
    .reload = st_plain,
};

/* control.c reaches the socket helper only from control_create, never called here */
int unix_listen(const char *path, unsigned mode, char *err, size_t errlen);
int unix_listen(const char *path, unsigned mode, char *err, size_t errlen)
{
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json j;
	const char *out;
	size_t n;

	line_seen = (const char *)data;
	len_seen = size;
	calls = 0;
	json_init(&j);
	control_handle(&ops, (const char *)data, size, &j);
	out = json_result(&j, &n);
	if (!out || n < 2 || out[0] != '{' || out[n - 1] != '}' || calls > 1)
		abort();
	json_finish(&j);
	return 0;
}

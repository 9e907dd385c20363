/*
 * libFuzzer target for the control-socket command parser (control_handle):
 * one request line from a local client. Every line must get exactly one
 * JSON object back, and the ops may only be called with what the line
 * said: a send with the bytes after "send ", a close with a valid code.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "status.h"

static const char *line_seen;
static size_t len_seen;
static int calls;

static void st_snapshot(void *ud, struct wst_status *st)
{
	calls++;
	st->state = "connected";
	st->url = "ws://h/";
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

static const char *st_request(void *ud, enum sup_request r)
{
	calls++;
	return r == SUP_REQ_RECONNECT ? "paused: use resume" : NULL;
}

static const struct control_ops ops = {
    .snapshot = st_snapshot,
    .send = st_send,
    .request = st_request,
    .close = st_close,
    .reload = st_plain,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out;
	size_t n = 0;

	line_seen = (const char *)data;
	len_seen = size;
	calls = 0;
	out = control_handle(&ops, (const char *)data, size, &n);
	if (!out || n < 2 || out[0] != '{' || out[n - 1] != '}' || strlen(out) != n || calls > 1)
		abort();
	free(out);
	return 0;
}

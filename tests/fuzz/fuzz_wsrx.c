/*
 * libFuzzer target for the receive-side WebSocket frame parser (wsrx). The
 * first byte picks the message limit and the read size; the input's length
 * whether permessage-deflate allows RSV1; the rest is what a server sent.
 * Parsing it whole and read by read must give the same callbacks and the
 * same verdict (a compressed message's bytes, however they were cut); every
 * message must fit the limit, text must be valid UTF-8 unless it came
 * compressed (RSV1: the consumer checks it as it inflates), control
 * payloads at most 125 bytes, and nothing may be delivered after the parser
 * stopped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "utf8.h"
#include "wsrx.h"

struct got {
	uint32_t h; /* a running hash of every callback and its bytes */
	size_t max;
	size_t zlen; /* bytes of the compressed message so far */
	bool stopped;
	const struct wsrx *rx;
};

static void mix(struct got *g, int kind, const unsigned char *p, size_t n)
{
	if (g->stopped)
		abort(); /* a callback after close or violation */
	g->h = (g->h ^ (uint32_t)kind) * 16777619u;
	for (size_t i = 0; i < n; i++)
		g->h = (g->h ^ p[i]) * 16777619u;
	g->h = (g->h ^ (uint32_t)n) * 16777619u;
}

static void on_message(void *ud, const unsigned char *d, size_t n, bool binary)
{
	struct got *g = ud;

	/* text is valid; a compressed message never comes whole */
	if (n > g->max || (!binary && !utf8_valid(d, n)) || g->rx->msg_compressed)
		abort();
	mix(g, binary ? 'B' : 'T', d, n);
}

static void on_ping(void *ud, const unsigned char *d, size_t n)
{
	if (n > 125)
		abort();
	mix(ud, 'P', d, n);
}

static void on_pong(void *ud, const unsigned char *d, size_t n)
{
	if (n > 125)
		abort();
	mix(ud, 'O', d, n);
}

static void on_close(void *ud, int code, const unsigned char *d, size_t n)
{
	if ((code && !wsrx_close_code_valid(code)) || n > 123 || !utf8_valid(d, n))
		abort();
	mix(ud, code, d, n);
	((struct got *)ud)->stopped = true;
}

/*
 * A compressed message's pieces depend on the reads: hash its bytes alone,
 * then its kind and length at its end, so that both runs agree.
 */
static void on_compressed(void *ud, const unsigned char *d, size_t n, bool fin, bool binary)
{
	struct got *g = ud;

	if (g->stopped || !(g->rx->rsv_allowed & 0x40) || (fin && n))
		abort();
	g->zlen += n;
	if (g->zlen > g->max)
		abort();
	for (size_t i = 0; i < n; i++)
		g->h = (g->h ^ d[i]) * 16777619u;
	if (fin) {
		g->h = (g->h ^ (binary ? 'Y' : 'Z')) * 16777619u;
		g->h = (g->h ^ (uint32_t)g->zlen) * 16777619u;
		g->zlen = 0;
	}
}

static const struct wsrx_ops ops = {.message = on_message,
				    .compressed = on_compressed,
				    .ping = on_ping,
				    .pong = on_pong,
				    .close = on_close};

static enum wsrx_status run(const uint8_t *p, size_t len, size_t max, size_t step, struct got *g,
			    struct wsrx *rx)
{
	enum wsrx_status st = WSRX_OK;

	memset(g, 0, sizeof(*g));
	g->h = 2166136261u;
	g->max = max;
	g->rx = rx;
	wsrx_init(rx, max, len & 1 ? 0x40 : 0);
	for (size_t i = 0; i < len; i += step) {
		st = wsrx_feed(rx, p + i, len - i < step ? len - i : step, &ops, g);
		if (st != WSRX_OK)
			break;
	}
	if (st == WSRX_VIOLATION || st == WSRX_TOO_BIG)
		g->stopped = true;
	wsrx_finish(rx);
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsrx rx1 = {0}, rx2 = {0};
	struct got g1, g2;
	size_t max, step;
	enum wsrx_status s1, s2;

	if (size < 1)
		return 0;
	max = (size_t)1 << (data[0] & 0x0f);
	step = 1 + (data[0] >> 4);
	s1 = run(data + 1, size - 1, max, size, &g1, &rx1);
	s2 = run(data + 1, size - 1, max, step, &g2, &rx2);
	if (s1 != s2 || g1.h != g2.h || rx1.err_code != rx2.err_code ||
	    strcmp(rx1.err_what, rx2.err_what))
		abort();
	return 0;
}

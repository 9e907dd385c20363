/*
 * libFuzzer target for the local framing decoder. The first byte picks the
 * size limit and how the rest is cut into reads; the rest is the stream. For
 * both framings: decoding it whole and decoding it read by read must give
 * the same frames, each inside the buffer and within the limit, and each
 * must survive an encode/decode round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"

#define MAX_FRAMES 4096

struct got {
	size_t n;
	size_t len[MAX_FRAMES];
	uint32_t sum[MAX_FRAMES];
	bool binary[MAX_FRAMES];
	int end; /* what decoding stopped with: 0 or -1 */
};

static uint32_t sum(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void check_frame(enum framing f, const unsigned char *buf, size_t len, size_t max,
			const struct frame *fr, size_t used)
{
	unsigned char *enc;
	size_t n, used2;
	struct framing_wrap w;
	struct frame back;
	const char *why;

	if (used == 0 || used > len || fr->len > max || fr->len > used)
		abort();
	if (fr->data < buf || fr->data + fr->len > buf + used)
		abort();
	if (f == FRAMING_LINES && (fr->binary || memchr(fr->data, '\n', fr->len)))
		abort();

	enc = malloc(fr->len + FRAMING_HEADER_MAX + 1);
	if (!enc || framing_encode(f, fr->binary, fr->data, fr->len, &w, &why) != 0)
		abort(); /* whatever decodes must encode */
	memcpy(enc, w.head, w.head_len);
	memcpy(enc + w.head_len, fr->data, fr->len);
	memcpy(enc + w.head_len + fr->len, w.tail, w.tail_len);
	n = w.head_len + fr->len + w.tail_len;
	if (n != used || memcmp(enc, buf, n) != 0)
		abort();
	if (framing_decode(f, enc, n, max, &back, &used2, &why) != 1 || used2 != n ||
	    back.len != fr->len || back.binary != fr->binary)
		abort();
	free(enc);
}

static void record(struct got *g, const struct frame *fr)
{
	if (g->n < MAX_FRAMES) {
		g->len[g->n] = fr->len;
		g->sum[g->n] = sum(fr->data, fr->len);
		g->binary[g->n] = fr->binary;
	}
	g->n++;
}

static void decode_whole(enum framing f, const unsigned char *buf, size_t len, size_t max,
			 struct got *g)
{
	size_t off = 0;

	for (;;) {
		struct frame fr;
		size_t used;
		const char *why = NULL;
		int r = framing_decode(f, buf + off, len - off, max, &fr, &used, &why);

		if (r != 1) {
			if (r == -1 && !why)
				abort();
			if (r == 0 && used != 0)
				abort();
			g->end = r;
			return;
		}
		check_frame(f, buf + off, len - off, max, &fr, used);
		record(g, &fr);
		off += used;
	}
}

/* Like a reader: step bytes arrive at a time; exact-size heap copies let ASan see over-reads. */
static void decode_reads(enum framing f, const unsigned char *buf, size_t len, size_t max,
			 size_t step, struct got *g)
{
	size_t fed = 0, start = 0;

	for (;;) {
		int r;

		fed += len - fed < step ? len - fed : step;
		for (;;) {
			size_t have = fed - start, used;
			unsigned char *acc = malloc(have ? have : 1);
			struct frame fr;
			const char *why = NULL;

			if (!acc)
				abort();
			memcpy(acc, buf + start, have);
			r = framing_decode(f, acc, have, max, &fr, &used, &why);
			if (r == 1)
				record(g, &fr);
			free(acc);
			if (r != 1)
				break;
			start += used;
		}
		if (r == -1 || fed == len) {
			g->end = r;
			return;
		}
	}
}

static bool same(const struct got *a, const struct got *b)
{
	size_t n = a->n < MAX_FRAMES ? a->n : MAX_FRAMES;

	if (a->n != b->n || a->end != b->end)
		return false;
	for (size_t i = 0; i < n; i++)
		if (a->len[i] != b->len[i] || a->sum[i] != b->sum[i] ||
		    a->binary[i] != b->binary[i])
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct got whole, reads;
	size_t max, step;

	if (size < 1)
		return 0;
	max = data[0] & 0x80 ? SIZE_MAX : (size_t)(data[0] & 0x3f) * 4;
	step = (size_t)((data[0] >> 6) & 1) * 7 + 1;
	data++;
	size--;
	for (int f = 0; f < 2; f++) {
		memset(&whole, 0, sizeof(whole));
		memset(&reads, 0, sizeof(reads));
		decode_whole((enum framing)f, data, size, max, &whole);
		decode_reads((enum framing)f, data, size, max, step, &reads);
		if (!same(&whole, &reads))
			abort();
	}
	return 0;
}

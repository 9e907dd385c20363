/*
 * libFuzzer target for the permessage-deflate inflater and its cap. The
 * first two bytes pick the cap, the negotiated parameters, how many messages
 * the rest is cut into and how each is cut into frames. Every message must
 * end in PMD_OK within the cap, or in PMD_TOO_BIG or PMD_CORRUPT, with our
 * buffers never past the cap. Then the same bytes, as a plain message, must
 * survive a compress/inflate round trip, inflated frame by frame with what
 * came out so far a prefix of the message at every step.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pmdeflate.h"

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static void inflate_messages(const uint8_t *data, size_t size, uint8_t a, uint8_t b)
{
	struct pmd_params p = {.client_max_window_bits = 15,
			       .server_max_window_bits = 8 + (a & 7),
			       .server_no_context_takeover = a & 8};
	size_t cap = (size_t)1 << (b & 15), frame = 1 + (b >> 4) * 97;
	size_t n_msgs = 1 + ((a >> 4) & 3), per = size / n_msgs + 1, off = 0;
	struct pmd *d = pmd_create(&p, cap);
	struct pmd_report r;

	if (!d)
		abort();
	for (size_t m = 0; m < n_msgs && off <= size; m++) {
		size_t end = min_sz(size, off + per);
		enum pmd_status st = PMD_OK;

		do {
			size_t k = min_sz(frame, end - off), len;

			st = pmd_inflate(d, data + off, k, off + k == end);
			off += k;
			pmd_message(d, &len);
			pmd_report(d, &r);
			if (len > cap || r.buffer_bytes > cap)
				abort();
		} while (st == PMD_OK && off < end);
		if (st == PMD_CORRUPT && !pmd_error(d)[0])
			abort();
		if (st != PMD_OK && st != PMD_TOO_BIG && st != PMD_CORRUPT)
			abort();
		if (st != PMD_OK)
			break; /* the link closes: the stream is lost */
		if (off == size)
			break;
	}
	pmd_destroy(d);
}

static void round_trip(const uint8_t *data, size_t size, uint8_t a)
{
	struct pmd_params tx = {.client_max_window_bits = 8 + (a & 7),
				.server_max_window_bits = 15,
				.client_no_context_takeover = a & 8};
	struct pmd_params rx = {.client_max_window_bits = 15,
				.server_max_window_bits = tx.client_max_window_bits,
				.server_no_context_takeover = tx.client_no_context_takeover};
	struct pmd *c = pmd_create(&tx, size), *d = pmd_create(&rx, size);
	const unsigned char *out, *back;
	size_t out_len, len, step = 1 + (a >> 4) * 61;

	if (!c || !d)
		abort();
	/* twice, so that the second message can refer back to the first */
	for (int i = 0; i < 2; i++) {
		int rc = pmd_compress(c, data, size, &out, &out_len);

		if (rc < 0)
			abort();
		if (rc == 0)
			continue;
		/* frame by frame, as link_rx inflates: what came out so far is a prefix */
		for (size_t off = 0, k; off < out_len || off == 0; off += k) {
			k = min_sz(step, out_len - off);
			if (pmd_inflate(d, out + off, k, off + k == out_len) != PMD_OK)
				abort();
			back = pmd_message(d, &len);
			if (len > size || memcmp(back, data, len))
				abort();
			if (off + k == out_len)
				break;
		}
		back = pmd_message(d, &len);
		if (len != size || memcmp(back, data, size))
			abort();
	}
	pmd_destroy(c);
	pmd_destroy(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	inflate_messages(data + 2, size - 2, data[0], data[1]);
	round_trip(data + 2, size - 2, data[0]);
	return 0;
}

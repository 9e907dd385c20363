/*
 * libFuzzer target for the incremental UTF-8 check (utf8_stream). The first
 * two bytes seed the places the rest is cut at, as frames and reads would
 * cut a message. However it is cut, the stream must agree with the
 * whole-buffer check (utf8_valid), stop at the same byte, and that byte must
 * be the first one the sequence walk (utf8_seq) says no continuation could
 * mend.
 */
#include <stdint.h>
#include <stdlib.h>

#include "utf8.h"

/* Where the sequence walk finds the first hopeless byte; len if there is none. */
static size_t first_hopeless(const unsigned char *p, size_t len, bool *open_at_end)
{
	size_t i = 0, k, bad;

	*open_at_end = false;
	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((k = utf8_seq(p + i, len - i, &bad))) {
			i += k;
			continue;
		}
		/* a lead byte no sequence begins with is itself hopeless */
		if (p[i] < 0xc2 || p[i] > 0xf4)
			return i;
		if (i + bad >= len) {
			*open_at_end = true;
			return len;
		}
		return i + bad;
	}
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct utf8_stream st;
	uint32_t seed;
	size_t at = 0, want;
	bool open, ok;

	if (size < 2)
		return 0;
	seed = (uint32_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	want = first_hopeless(data, size, &open);
	utf8_stream_init(&st);
	while (at < size) {
		size_t n, k;

		seed = seed * 1103515245u + 12345u;
		/* mostly short pieces, so that code points are cut everywhere */
		n = 1 + (seed >> 16) % (seed & 0x100 ? 64 : 4);
		if (n > size - at)
			n = size - at;
		k = utf8_stream_feed(&st, data + at, n);
		if (k < n) {
			at += k;
			break;
		}
		at += n;
	}
	ok = at == size && utf8_stream_complete(&st);
	if (ok != utf8_valid(data, size) || at != want)
		abort();
	if (at == size && utf8_stream_complete(&st) == open)
		abort();
	return 0;
}

/*
 * libFuzzer target for the log escaper. The first byte picks the output
 * size; the rest is text from outside. The result must fit, be valid UTF-8
 * without control characters, escape every byte it did not keep, and, when
 * it was not cut, decode back to the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "utf8.h"

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[1024];
	unsigned char back[1024];
	size_t room, n, b = 0;

	if (size < 1)
		return 0;
	room = 4 + data[0] * 4;
	n = escape_text(out, room, data + 1, size - 1);
	if (n >= room || strlen(out) != n || !utf8_valid(out, n))
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c < 0x20 || c == 0x7f)
			abort();
		/* C1 controls are U+0080-U+009F: 0xc2 0x80-0x9f */
		if (c == 0xc2 && i + 1 < n && (unsigned char)out[i + 1] <= 0x9f)
			abort();
	}
	if (n >= 3 && !memcmp(out + n - 3, "...", 3))
		return 0; /* cut: no round trip */
	for (size_t i = 0; i < n; i++) {
		if (out[i] == '\\') {
			if (i + 3 >= n || out[i + 1] != 'x' || hexval(out[i + 2]) < 0 ||
			    hexval(out[i + 3]) < 0)
				abort();
			back[b++] = (unsigned char)(hexval(out[i + 2]) << 4 | hexval(out[i + 3]));
			i += 3;
		} else {
			back[b++] = (unsigned char)out[i];
		}
	}
	if (b != size - 1 || memcmp(back, data + 1, b))
		abort();
	return 0;
}

#include "escape.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "utf8.h"

/* Bytes the item at p takes in and out: a character kept as is, or one byte as \xNN. */
static size_t item(const unsigned char *p, size_t len, size_t *out_len)
{
	size_t bad, n = utf8_seq(p, len, &bad);
	/* C0 controls, DEL, C1 controls (U+0080..U+009F: C2 80..C2 9F) and the escape's backslash
	 */
	bool control =
	    p[0] < 0x20 || p[0] == '\\' || p[0] == 0x7f || (n == 2 && p[0] == 0xc2 && p[1] <= 0x9f);

	if (n && !control) {
		*out_len = n;
		return n;
	}
	*out_len = 4;
	return 1;
}

size_t escape_text(char *dst, size_t dstlen, const void *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = src;
	size_t out = 0, total = 0, limit, in, o;
	bool cut;

	if (!dstlen)
		return 0;
	for (size_t i = 0; i < len; i += in) {
		in = item(p + i, len - i, &o);
		total += o;
	}
	cut = total > dstlen - 1;
	limit = cut ? (dstlen - 1 > 3 ? dstlen - 1 - 3 : 0) : dstlen - 1;
	for (size_t i = 0; i < len; i += in) {
		in = item(p + i, len - i, &o);
		if (out + o > limit)
			break;
		if (o == in) {
			memcpy(dst + out, p + i, in);
		} else {
			dst[out] = '\\';
			dst[out + 1] = 'x';
			dst[out + 2] = hex[p[i] >> 4];
			dst[out + 3] = hex[p[i] & 0xf];
		}
		out += o;
	}
	if (cut) {
		size_t dots = dstlen - 1 - out < 3 ? dstlen - 1 - out : 3;

		memcpy(dst + out, "...", dots);
		out += dots;
	}
	dst[out] = '\0';
	return out;
}

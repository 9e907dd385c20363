#include "escape.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 character at p (RFC 3629), or 0. */
static size_t utf8_char(const unsigned char *p, size_t len, uint32_t *cp)
{
	size_t n;
	uint32_t c = p[0], min;

	if (c < 0x80)
		n = 1, min = 0;
	else if ((c & 0xe0) == 0xc0)
		n = 2, c &= 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		n = 3, c &= 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		n = 4, c &= 0x07, min = 0x10000;
	else
		return 0;
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

static int is_control(uint32_t c)
{
	return c < 0x20 || c == '\\' || (c >= 0x7f && c <= 0x9f);
}

/* Bytes the item at p[i] takes in and out: a character kept as is, or one byte as \xNN. */
static size_t item(const unsigned char *p, size_t len, size_t *out_len)
{
	uint32_t c = 0;
	size_t n = utf8_char(p, len, &c);

	if (n && !is_control(c)) {
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

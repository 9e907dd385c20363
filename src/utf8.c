#include "utf8.h"

#include <stdint.h>
#include <string.h>

size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char b = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf) {
		need = 1;
	} else if (b >= 0xe0 && b <= 0xef) {
		need = 2;
		lo = b == 0xe0 ? 0xa0 : 0x80; /* overlong */
		hi = b == 0xed ? 0x9f : 0xbf; /* surrogates */
	} else if (b >= 0xf0 && b <= 0xf4) {
		need = 3;
		lo = b == 0xf0 ? 0x90 : 0x80; /* overlong */
		hi = b == 0xf4 ? 0x8f : 0xbf; /* beyond U+10FFFF */
	} else {
		*bad = 1;
		return 0;
	}
	for (i = 1; i <= need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

bool utf8_valid(const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t i = 0, k, bad;

	if (!p)
		return len == 0;
	while (i < len) {
		if (p[i] < 0x80) {
			uint64_t w;

			/* ASCII runs, eight bytes at a time */
			i++;
			while (i + 8 <= len) {
				memcpy(&w, p + i, 8);
				if (w & 0x8080808080808080ULL)
					break;
				i += 8;
			}
			continue;
		}
		if (!(k = utf8_seq(p + i, len - i, &bad)))
			return false;
		i += k;
	}
	return true;
}

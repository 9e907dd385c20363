#include "utf8.h"

#include <stdint.h>
#include <string.h>

/*
 * The lead byte b of a sequence: how many continuation bytes it needs
 * (0 for ASCII), with the range the first of them must fall in; -1 if b
 * cannot begin a sequence. The one table both checks share.
 */
static int lead(unsigned char b, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (b < 0x80)
		return 0;
	if (b >= 0xc2 && b <= 0xdf)
		return 1;
	if (b >= 0xe0 && b <= 0xef) {
		*lo = b == 0xe0 ? 0xa0 : 0x80; /* overlong */
		*hi = b == 0xed ? 0x9f : 0xbf; /* surrogates */
		return 2;
	}
	if (b >= 0xf0 && b <= 0xf4) {
		*lo = b == 0xf0 ? 0x90 : 0x80; /* overlong */
		*hi = b == 0xf4 ? 0x8f : 0xbf; /* beyond U+10FFFF */
		return 3;
	}
	return -1;
}

/* Past the ASCII bytes from i on, eight at a time; returns where they end. */
static size_t skip_ascii(const unsigned char *p, size_t i, size_t len)
{
	uint64_t w;

	while (i + 8 <= len) {
		memcpy(&w, p + i, 8);
		if (w & 0x8080808080808080ULL)
			break;
		i += 8;
	}
	while (i < len && p[i] < 0x80)
		i++;
	return i;
}

size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char lo, hi;
	int need = lead(s[0], &lo, &hi);

	if (need < 0) {
		*bad = 1;
		return 0;
	}
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= n || s[i] < lo || s[i] > hi) {
			*bad = (size_t)i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return (size_t)need + 1;
}

bool utf8_valid(const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t i = 0, k, bad;

	if (!p)
		return len == 0;
	while ((i = skip_ascii(p, i, len)) < len) {
		if (!(k = utf8_seq(p + i, len - i, &bad)))
			return false;
		i += k;
	}
	return true;
}

size_t utf8_stream_feed(struct utf8_stream *st, const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t i = 0;
	int need;

	while (i < len) {
		unsigned char b = p[i];

		if (st->need) {
			if (b < st->lo || b > st->hi)
				return i;
			st->lo = 0x80;
			st->hi = 0xbf;
			st->need--;
			i++;
		} else if (b < 0x80) {
			i = skip_ascii(p, i + 1, len);
		} else if ((need = lead(b, &st->lo, &st->hi)) < 0) {
			return i;
		} else {
			st->need = (unsigned char)need;
			i++;
		}
	}
	return len;
}

#include "wsframe.h"

#include <string.h>

size_t wsframe_header_len(size_t len)
{
	return 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + 4;
}

size_t wsframe_encode(unsigned char *dst, int opcode, const void *payload, size_t len,
		      uint32_t mask)
{
	unsigned char *p = dst, m[4];
	const unsigned char *src = payload;
	size_t i = 0;

	*p++ = (unsigned char)(0x80 | (opcode & (WSF_RSV1 | 0x0f)));
	if (len < 126) {
		*p++ = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		*p++ = 0x80 | 126;
		*p++ = (unsigned char)(len >> 8);
		*p++ = (unsigned char)len;
	} else {
		*p++ = 0x80 | 127;
		for (int s = 56; s >= 0; s -= 8)
			*p++ = (unsigned char)((uint64_t)len >> s);
	}
	for (int k = 0; k < 4; k++)
		*p++ = m[k] = (unsigned char)(mask >> (24 - 8 * k));

	/* eight bytes at a time: the mask repeats every four */
	if (len >= 8) {
		uint64_t m8;
		unsigned char mm[8];

		memcpy(mm, m, 4);
		memcpy(mm + 4, m, 4);
		memcpy(&m8, mm, 8);
		for (; i + 8 <= len; i += 8) {
			uint64_t v;

			memcpy(&v, src + i, 8);
			v ^= m8;
			memcpy(p + i, &v, 8);
		}
	}
	for (; i < len; i++)
		p[i] = src[i] ^ m[i & 3];
	return (size_t)(p - dst) + len;
}

#include "spool_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const unsigned char spool_magic[4] = {'W', 'S', 'Q', '1'};

/* The table-driven CRC of the reflected Castagnoli polynomial, the table made at first use. */
uint32_t spool_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	const unsigned char *p = data;

	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int b = 0; b < 8; b++)
				c = c & 1 ? c >> 1 ^ 0x82f63b78 : c >> 1;
			table[i] = c;
		}
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

#if defined(__x86_64__)
/* SSE 4.2 has CRC-32C in hardware: about ten times the table's speed */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
							    size_t len)
{
	const unsigned char *p = data;
	uint64_t c = ~crc;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = (uint32_t)c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return ~crc;
}
#endif

uint32_t spool_crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, data, len);
#endif
	return spool_crc32c_sw(crc, data, len);
}

void spool_put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t spool_get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void spool_record_header(unsigned char h[HDR], int type, bool binary, uint64_t seq,
			 const void *data, uint32_t len)
{
	memcpy(h, spool_magic, 4);
	h[4] = (unsigned char)type;
	h[5] = binary ? REC_FLAG_BINARY : 0;
	h[6] = h[7] = 0;
	spool_put_le(h + 8, len, 4);
	spool_put_le(h + 12, seq, 8);
	spool_put_le(h + CRC_OFFSET, spool_crc32c(spool_crc32c(0, h, CRC_OFFSET), data, len), 4);
}

/* NULL when the header is well-formed, else what is wrong with it. */
const char *spool_record_parse(const unsigned char h[HDR], struct record *r)
{
	if (memcmp(h, spool_magic, 4) != 0)
		return "bad magic";
	r->type = h[4];
	r->binary = h[5] & REC_FLAG_BINARY;
	r->len = (uint32_t)spool_get_le(h + 8, 4);
	r->seq = spool_get_le(h + 12, 8);
	r->crc = (uint32_t)spool_get_le(h + CRC_OFFSET, 4);
	if (h[6] || h[7])
		return "bad reserved bytes";
	if (r->type == REC_MESSAGE)
		return h[5] & ~REC_FLAG_BINARY ? "bad flags" : NULL;
	if (r->type == REC_CONFIRM)
		return h[5] || r->len ? "bad confirm record" : NULL;
	if (r->type == REC_TIME)
		return h[5] || r->len != TIME_LEN ? "bad time record" : NULL;
	return "bad record type";
}

bool spool_record_crc_ok(const unsigned char h[HDR], const struct record *r,
			 const unsigned char *payload)
{
	return spool_crc32c(spool_crc32c(0, h, CRC_OFFSET), payload, r->len) == r->crc;
}

void spool_seg_name(char buf[SEG_NAME_SIZE], uint64_t name)
{
	snprintf(buf, SEG_NAME_SIZE, "seg-%016" PRIx64 ".wsq", name);
}

bool spool_seg_parse_name(const char *s, uint64_t *name)
{
	/* lower case only: one name per seq */
	if (strlen(s) != 24 || strncmp(s, "seg-", 4) != 0 || strcmp(s + 20, ".wsq") != 0 ||
	    strspn(s + 4, "0123456789abcdef") != 16)
		return false;
	*name = strtoull(s + 4, NULL, 16);
	return true;
}

/* "seg-<16 hex>.wsq.bad..." as set_aside names it; *name is the seq in it. */
bool spool_seg_parse_bad_name(const char *s, uint64_t *name)
{
	char head[25];

	if (strlen(s) < 28 || strncmp(s + 24, ".bad", 4) != 0)
		return false;
	memcpy(head, s, 24);
	head[24] = '\0';
	return spool_seg_parse_name(head, name);
}

int spool_segs_reserve(struct segment **segs, size_t n, size_t *cap)
{
	struct segment *s;
	size_t c = *cap ? *cap * 2 : 16;

	if (n < *cap)
		return 0;
	if (!(s = reallocarray(*segs, c, sizeof(*s))))
		return -1;
	*segs = s;
	*cap = c;
	return 0;
}

void spool_segs_remove(struct segment *segs, size_t *n, size_t i)
{
	memmove(&segs[i], &segs[i + 1], (*n - i - 1) * sizeof(segs[0]));
	(*n)--;
}

void spool_marks_add(struct marks *m, uint64_t seq, int64_t ms)
{
	if (m->n && m->v[m->n - 1].seq >= seq) {
		if (m->v[m->n - 1].seq == seq)
			m->v[m->n - 1].ms = ms; /* a retried append */
		return;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct mark *v = reallocarray(m->v, cap, sizeof(*v));

		if (!v)
			return;
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n++] = (struct mark){seq, ms};
}

void spool_marks_prune(struct marks *m, uint64_t confirmed)
{
	size_t i = 0;

	while (i + 1 < m->n && m->v[i + 1].seq <= confirmed + 1)
		i++;
	if (i) {
		memmove(m->v, m->v + i, (m->n - i) * sizeof(m->v[0]));
		m->n -= i;
	}
}

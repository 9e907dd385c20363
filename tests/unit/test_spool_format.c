#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spool_format.h"

static void crc32c_matches_known_vectors(void **state)
{
	uint32_t (*fns[])(uint32_t, const void *, size_t) = {spool_crc32c, spool_crc32c_sw};
	unsigned char zeros[32] = {0}, ones[32], up[32], down[32];
	unsigned char big[4099];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++) {
		up[i] = (unsigned char)i;
		down[i] = (unsigned char)(31 - i);
	}
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7 + (i >> 5));
	for (int f = 0; f < 2; f++) {
		/* the check value, and RFC 3720 B.4 */
		assert_int_equal(fns[f](0, "123456789", 9), 0xe3069283);
		assert_int_equal(fns[f](0, zeros, 32), 0x8a9136aa);
		assert_int_equal(fns[f](0, ones, 32), 0x62a8ab43);
		assert_int_equal(fns[f](0, up, 32), 0x46dd794e);
		assert_int_equal(fns[f](0, down, 32), 0x113fdb5c);
		assert_int_equal(fns[f](0, NULL, 0), 0);
		/* chaining is the same as one call */
		assert_int_equal(fns[f](fns[f](0, "12345", 5), "6789", 4), 0xe3069283);
	}
	/* every length and alignment agrees between the two */
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= 80; len++)
			assert_int_equal(spool_crc32c(0, big + off, len),
					 spool_crc32c_sw(0, big + off, len));
	assert_int_equal(spool_crc32c(0, big, sizeof(big)), spool_crc32c_sw(0, big, sizeof(big)));
}

/* A header written by the codec reads back the same, and its CRC covers the payload. */
static void record_header_round_trips(void **state)
{
	unsigned char h[HDR], payload[] = "hello";
	struct record r;

	spool_record_header(h, REC_MESSAGE, true, 0x0102030405060708ULL, payload, 5);
	assert_memory_equal(h, "WSQ1\x01\x01\0\0\x05\0\0\0\x08\x07\x06\x05\x04\x03\x02\x01", 20);
	assert_null(spool_record_parse(h, &r));
	assert_int_equal(r.type, REC_MESSAGE);
	assert_true(r.binary);
	assert_int_equal(r.len, 5);
	assert_int_equal(r.seq, 0x0102030405060708ULL);
	assert_true(spool_record_crc_ok(h, &r, payload));
	payload[0] ^= 1;
	assert_false(spool_record_crc_ok(h, &r, payload));
}

/* Each malformed header is named. */
static void record_parse_names_what_is_wrong(void **state)
{
	unsigned char h[HDR], t[TIME_LEN] = {0};
	struct record r;

	spool_record_header(h, REC_MESSAGE, false, 1, "x", 1);
	h[0] = 'X';
	assert_string_equal(spool_record_parse(h, &r), "bad magic");
	spool_record_header(h, REC_MESSAGE, false, 1, "x", 1);
	h[6] = 1;
	assert_string_equal(spool_record_parse(h, &r), "bad reserved bytes");
	spool_record_header(h, 9, false, 1, "x", 1);
	assert_string_equal(spool_record_parse(h, &r), "bad record type");
	spool_record_header(h, REC_MESSAGE, false, 1, "x", 1);
	h[5] = 2;
	assert_string_equal(spool_record_parse(h, &r), "bad flags");
	spool_record_header(h, REC_CONFIRM, false, 1, "x", 1);
	assert_string_equal(spool_record_parse(h, &r), "bad confirm record");
	spool_record_header(h, REC_TIME, false, 1, t, 4);
	assert_string_equal(spool_record_parse(h, &r), "bad time record");
	spool_record_header(h, REC_TIME, false, 1, t, TIME_LEN);
	assert_null(spool_record_parse(h, &r));
}

static void segment_names(void **state)
{
	char name[SEG_NAME_SIZE];
	uint64_t n;

	spool_seg_name(name, 0xabc);
	assert_string_equal(name, "seg-0000000000000abc.wsq");
	assert_true(spool_seg_parse_name(name, &n));
	assert_int_equal(n, 0xabc);
	assert_false(spool_seg_parse_name("seg-0000000000000ABC.wsq", &n)); /* one name per seq */
	assert_false(spool_seg_parse_name("seg-0000000000000abc.wsq.bad", &n));
	assert_false(spool_seg_parse_name("seg-abc.wsq", &n));
	assert_true(spool_seg_parse_bad_name("seg-0000000000000abd.wsq.bad.3", &n));
	assert_int_equal(n, 0xabd);
	assert_false(spool_seg_parse_bad_name(name, &n));
}

/* Marks keep ascending seqs; pruning keeps the one that dates the first unconfirmed message. */
static void marks_date_the_oldest_unconfirmed_message(void **state)
{
	struct marks m = {0};

	spool_marks_add(&m, 1, 100);
	spool_marks_add(&m, 5, 200);
	spool_marks_add(&m, 5, 250); /* a retried append */
	spool_marks_add(&m, 3, 300); /* not ascending: ignored */
	spool_marks_add(&m, 9, 400);
	assert_int_equal(m.n, 3);
	assert_int_equal(m.v[1].ms, 250);
	spool_marks_prune(&m, 6); /* 7 is first unconfirmed: dated by the mark at 5 */
	assert_int_equal(m.n, 2);
	assert_int_equal(m.v[0].seq, 5);
	spool_marks_prune(&m, 8);
	assert_int_equal(m.v[0].seq, 9);
	free(m.v);
}

static void segment_list_grows_and_shrinks(void **state)
{
	struct segment *segs = NULL;
	size_t n = 0, cap = 0;

	for (uint64_t i = 0; i < 40; i++) {
		assert_int_equal(spool_segs_reserve(&segs, n, &cap), 0);
		segs[n++] = (struct segment){.name = i};
	}
	assert_true(cap >= 40);
	spool_segs_remove(segs, &n, 0);
	spool_segs_remove(segs, &n, 38);
	assert_int_equal(n, 38);
	assert_int_equal(segs[0].name, 1);
	assert_int_equal(segs[37].name, 38);
	free(segs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(crc32c_matches_known_vectors),
	    cmocka_unit_test(record_header_round_trips),
	    cmocka_unit_test(record_parse_names_what_is_wrong),
	    cmocka_unit_test(segment_names),
	    cmocka_unit_test(marks_date_the_oldest_unconfirmed_message),
	    cmocka_unit_test(segment_list_grows_and_shrinks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

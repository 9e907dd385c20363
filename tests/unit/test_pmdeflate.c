#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "pmdeflate.h"

/* ---- negotiation ---- */

static void offer_header_lists_what_is_offered(void **state)
{
	char buf[256];
	struct pmd_offer all = {.server_max_window_bits = 10,
				.client_max_window_bits = true,
				.server_no_context_takeover = true,
				.client_no_context_takeover = true};

	assert_int_equal(pmd_offer_header(&pmd_default_offer, buf, sizeof(buf)),
			 strlen("permessage-deflate; client_max_window_bits"));
	assert_string_equal(buf, "permessage-deflate; client_max_window_bits");
	assert_true(pmd_offer_header(&all, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "permessage-deflate; client_max_window_bits; "
				 "server_no_context_takeover; client_no_context_takeover; "
				 "server_max_window_bits=10");
	assert_int_equal(pmd_offer_header(&all, buf, 20), 0);
	assert_int_equal(pmd_offer_header(&all, buf, 90), 0);
}

struct nego_case {
	const char *header;
	int rc;
	int cbits, sbits;
	bool cnct, snct;
	const char *why; /* a part of the reason when rc is -1 */
};

static const struct nego_case accepted[] = {
    {NULL, 0, 15, 15, false, false, NULL},
    {"", 0, 15, 15, false, false, NULL},
    {"permessage-deflate", 1, 15, 15, false, false, NULL},
    {" permessage-deflate ,", 1, 15, 15, false, false, NULL},
    {"permessage-deflate; client_max_window_bits=10", 1, 10, 15, false, false, NULL},
    {"permessage-deflate;client_max_window_bits=\"9\";server_max_window_bits=8", 1, 9, 8, false,
     false, NULL},
    {"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 1, 15, 15, true,
     true, NULL},
    {"permessage-deflate; server_max_window_bits=15", 1, 15, 15, false, false, NULL},
};

static const struct nego_case refused[] = {
    {"x-webkit-deflate-frame", -1, 0, 0, 0, 0, "x-webkit-deflate-frame, not offered"},
    {"permessage-deflate, permessage-deflate", -1, 0, 0, 0, 0, "twice"},
    {"permessage-deflate, foo", -1, 0, 0, 0, 0, "foo, not offered"},
    {"permessage-deflate; mystery", -1, 0, 0, 0, 0, "unknown parameter mystery"},
    {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", -1, 0, 0, 0, 0,
     "server_no_context_takeover appears twice"},
    {"permessage-deflate; client_max_window_bits=9; client_max_window_bits=9", -1, 0, 0, 0, 0,
     "appears twice"},
    {"permessage-deflate; client_max_window_bits", -1, 0, 0, 0, 0, "needs a value"},
    {"permessage-deflate; server_max_window_bits=7", -1, 0, 0, 0, 0, "not a number 8..15"},
    {"permessage-deflate; server_max_window_bits=16", -1, 0, 0, 0, 0, "not a number"},
    {"permessage-deflate; server_max_window_bits=08", -1, 0, 0, 0, 0, "not a number"},
    {"permessage-deflate; server_max_window_bits=", -1, 0, 0, 0, 0, "not a token"},
    {"permessage-deflate; server_max_window_bits=\"1 5\"", -1, 0, 0, 0, 0, "not a token"},
    {"permessage-deflate; server_no_context_takeover=1", -1, 0, 0, 0, 0, "must not have a value"},
    {"permessage-deflate; ; client_max_window_bits=9", -1, 0, 0, 0, 0, "not a token"},
    {"permessage-deflate client_max_window_bits", -1, 0, 0, 0, 0, "malformed"},
    {"\x01", -1, 0, 0, 0, 0, "not a list of tokens"},
};

static void check_case(const struct pmd_offer *o, const struct nego_case *c)
{
	struct pmd_params p;
	char why[160] = "";
	int rc = pmd_negotiate(o, c->header, &p, why, sizeof(why));

	print_message("%s -> %d %s\n", c->header ? c->header : "(none)", rc, why);
	assert_int_equal(rc, c->rc);
	if (rc < 0) {
		assert_non_null(strstr(why, c->why));
		return;
	}
	if (rc == 0)
		return;
	assert_int_equal(p.client_max_window_bits, c->cbits);
	assert_int_equal(p.server_max_window_bits, c->sbits);
	assert_int_equal(p.client_no_context_takeover, c->cnct);
	assert_int_equal(p.server_no_context_takeover, c->snct);
}

static void negotiation_accepts_valid_answers(void **state)
{
	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
		check_case(&pmd_default_offer, &accepted[i]);
}

static void negotiation_refuses_rule_breaking_answers(void **state)
{
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		check_case(&pmd_default_offer, &refused[i]);
}

static void negotiation_follows_the_offer(void **state)
{
	struct pmd_offer no_client_bits = {0};
	struct pmd_offer limits = {.server_max_window_bits = 10,
				   .server_no_context_takeover = true,
				   .client_no_context_takeover = true};
	static const struct nego_case not_offered = {
	    "permessage-deflate; client_max_window_bits=10", -1, 0, 0, 0, 0,
	    "client_max_window_bits was not offered"};
	static const struct nego_case too_wide = {
	    "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
	    -1,
	    0,
	    0,
	    0,
	    0,
	    "server_max_window_bits=11 exceeds the 10 offered"};
	static const struct nego_case missing_bits = {
	    "permessage-deflate; server_no_context_takeover",
	    -1,
	    0,
	    0,
	    0,
	    0,
	    "offered but not answered"};
	static const struct nego_case missing_nct = {
	    "permessage-deflate; server_max_window_bits=9",	      -1, 0, 0, 0, 0,
	    "server_no_context_takeover was offered but not answered"};
	/* client_no_context_takeover binds us once offered, answered or not */
	static const struct nego_case ok = {
	    "permessage-deflate; server_max_window_bits=10; server_no_context_takeover",
	    1,
	    15,
	    10,
	    true,
	    true,
	    NULL};
	static const struct nego_case nothing_offered = {"permessage-deflate", -1, 0, 0, 0, 0,
							 "not offered"};

	check_case(&no_client_bits, &not_offered);
	check_case(&limits, &too_wide);
	check_case(&limits, &missing_bits);
	check_case(&limits, &missing_nct);
	check_case(&limits, &ok);
	check_case(NULL, &nothing_offered);
	check_case(NULL, &accepted[1]);
}

/* ---- compressor and inflater ---- */

/* A peer whose inflater reads what d's compressor writes. */
static struct pmd *peer_of(const struct pmd_params *p, size_t max)
{
	struct pmd_params sw = {.client_max_window_bits = p->server_max_window_bits,
				.server_max_window_bits = p->client_max_window_bits,
				.client_no_context_takeover = p->server_no_context_takeover,
				.server_no_context_takeover = p->client_no_context_takeover};

	return pmd_create(&sw, max);
}

static size_t telemetry(char *buf, size_t cap, unsigned i)
{
	return (size_t)snprintf(buf, cap,
				"{\"device\":\"sensor-%04u\",\"seq\":%u,\"temp_c\":%u.%u,"
				"\"humidity\":%u,\"status\":\"ok\",\"fw\":\"1.4.2\"}",
				i % 16, i, 20 + i % 7, i % 10, 40 + i % 13);
}

/* Sends n telemetry messages from a to b; returns the bytes on the wire. */
static size_t send_many(struct pmd *a, struct pmd *b, unsigned n, size_t chunk)
{
	size_t wire = 0;

	for (unsigned i = 0; i < n; i++) {
		char msg[256];
		size_t len = telemetry(msg, sizeof(msg), i), got, clen;
		const unsigned char *c, *back;

		assert_int_equal(pmd_compress(a, msg, len, &c, &clen), 1);
		wire += clen;
		for (size_t off = 0; off < clen || off == 0; off += chunk) {
			size_t k = clen - off < chunk ? clen - off : chunk;

			assert_int_equal(pmd_inflate(b, c + off, k, off + k >= clen), PMD_OK);
			if (off + k >= clen)
				break;
			/* what inflated so far, for text checked as it comes: a prefix */
			back = pmd_message(b, &got);
			assert_true(got <= len);
			assert_memory_equal(back, msg, got);
		}
		back = pmd_message(b, &got);
		assert_int_equal(got, len);
		assert_memory_equal(back, msg, len);
	}
	return wire;
}

static void round_trips_with_context_takeover(void **state)
{
	struct pmd_params p = {15, 15, false, false};
	struct pmd *a = pmd_create(&p, 1 << 20), *b = peer_of(&p, 1 << 20);
	size_t first, rest;

	first = send_many(a, b, 1, 4096);
	rest = send_many(a, b, 200, 7); /* also frame by frame, 7 bytes a frame */
	print_message("first %zu bytes, then %zu per message\n", first, rest / 200);
	/* later messages refer back to earlier ones */
	assert_true(rest / 200 < first / 2);
	pmd_destroy(a);
	pmd_destroy(b);
}

static void round_trips_without_context_takeover(void **state)
{
	struct pmd_params p = {15, 15, true, true};
	struct pmd *a = pmd_create(&p, 1 << 20), *b = peer_of(&p, 1 << 20), *fresh;
	char msg[300];
	size_t len = 0, clen;
	const unsigned char *c;

	send_many(a, b, 50, 4096);
	/* each message stands alone: a fresh inflater reads any of them */
	while (len < 200)
		len += telemetry(msg + len, sizeof(msg) - len, 3);
	assert_int_equal(pmd_compress(a, msg, len, &c, &clen), 1);
	fresh = peer_of(&p, 1 << 20);
	assert_int_equal(pmd_inflate(fresh, c, clen, true), PMD_OK);
	pmd_destroy(fresh);
	pmd_destroy(a);
	pmd_destroy(b);
}

static void small_or_incompressible_messages_go_out_plain(void **state)
{
	struct pmd_params p = {15, 15, true, false};
	struct pmd *a = pmd_create(&p, 1 << 20);
	unsigned char rnd[200];
	const unsigned char *c;
	size_t clen;
	uint64_t x = 88172645463325252ull;

	assert_int_equal(pmd_compress(a, "short", 5, &c, &clen), 0);
	for (size_t i = 0; i < sizeof(rnd); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		rnd[i] = (unsigned char)x;
	}
	/* without context takeover nothing has to stay in step, so plain wins */
	assert_int_equal(pmd_compress(a, rnd, sizeof(rnd), &c, &clen), 0);
	pmd_destroy(a);
}

static void window_of_8_bits_is_honoured(void **state)
{
	struct pmd_params p = {8, 15, false, false};
	struct pmd *a = pmd_create(&p, 1 << 20);
	z_stream z = {0};
	unsigned char out[4096];
	char msg[2048];
	size_t len = 0, clen;
	const unsigned char *c;

	while (len < 1500)
		len += telemetry(msg + len, sizeof(msg) - len, (unsigned)len);
	assert_int_equal(pmd_compress(a, msg, len, &c, &clen), 1);
	/* a strict 256-byte-window inflater reads it: no distance reaches further */
	assert_int_equal(inflateInit2(&z, -8), Z_OK);
	z.next_in = (unsigned char *)(uintptr_t)c;
	z.avail_in = (uInt)clen;
	z.next_out = out;
	z.avail_out = sizeof(out);
	assert_int_equal(inflate(&z, Z_SYNC_FLUSH), Z_OK);
	assert_int_equal(z.total_out, len);
	assert_memory_equal(out, msg, len);
	inflateEnd(&z);
	pmd_destroy(a);
}

/* Raw deflate of n zero bytes, flushed, trailer stripped, as a server would send it. */
static unsigned char *zeros_deflated(size_t n, size_t *len)
{
	static unsigned char zero[65536];
	z_stream z = {0};
	size_t cap = n / 500 + 1024;
	unsigned char *out = malloc(cap);

	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_out = out;
	z.avail_out = (uInt)cap;
	while (n) {
		size_t k = n < sizeof(zero) ? n : sizeof(zero);

		n -= k;
		z.next_in = zero;
		z.avail_in = (uInt)k;
		assert_int_equal(deflate(&z, n ? Z_NO_FLUSH : Z_SYNC_FLUSH), Z_OK);
		assert_true(z.avail_out > 0);
	}
	*len = z.total_out - 4;
	deflateEnd(&z);
	return out;
}

static void deflate_bomb_stops_at_the_cap(void **state)
{
	struct pmd_params p = {15, 15, false, false};
	const size_t cap = 1 << 20;
	struct pmd *b = pmd_create(&p, cap);
	struct pmd_report r;
	size_t blen, off = 0;
	unsigned char *bomb = zeros_deflated((size_t)64 << 20, &blen); /* 64 MiB inflated */
	enum pmd_status st = PMD_OK;

	print_message("bomb: %zu bytes inflate to 64 MiB\n", blen);
	while (off < blen && st == PMD_OK) {
		size_t k = blen - off < 1000 ? blen - off : 1000;

		st = pmd_inflate(b, bomb + off, k, off + k == blen);
		off += k;
	}
	assert_int_equal(st, PMD_TOO_BIG);
	assert_true(off < blen); /* stopped at the cap, not at the end */
	pmd_report(b, &r);
	assert_true(r.buffer_bytes <= cap);
	pmd_destroy(b);
	free(bomb);
}

static void message_of_exactly_the_cap_passes(void **state)
{
	struct pmd_params p = {15, 15, false, false};
	struct pmd *b = pmd_create(&p, 100000), *c = pmd_create(&p, 99999);
	size_t blen, got;
	unsigned char *z = zeros_deflated(100000, &blen);

	assert_int_equal(pmd_inflate(b, z, blen, true), PMD_OK);
	pmd_message(b, &got);
	assert_int_equal(got, 100000);
	assert_int_equal(pmd_inflate(c, z, blen, true), PMD_TOO_BIG);
	pmd_destroy(b);
	pmd_destroy(c);
	free(z);
}

static void corrupt_streams_are_reported(void **state)
{
	struct pmd_params p = {15, 15, false, false};
	struct pmd_params small = {15, 9, false, false};
	struct pmd *b = pmd_create(&p, 1 << 20), *s = pmd_create(&small, 1 << 20);
	static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x12};
	/* a stored block (BFINAL) holding "abc", then a byte after it */
	static const unsigned char after_final[] = {0x01, 0x03, 0x00, 0xfc, 0xff,
						    'a',  'b',	'c',  0x00};
	struct pmd *wide = pmd_create(&p, 1 << 20);
	unsigned char far[3600];
	const unsigned char *c;
	size_t clen;
	uint64_t x = 88172645463325252ull;

	assert_int_equal(pmd_inflate(b, junk, sizeof(junk), true), PMD_CORRUPT);
	print_message("junk: %s\n", pmd_error(b));
	assert_true(strlen(pmd_error(b)) > 0);
	pmd_destroy(b);
	b = pmd_create(&p, 1 << 20);
	assert_int_equal(pmd_inflate(b, after_final, sizeof(after_final), true), PMD_CORRUPT);
	/*
	 * A distance beyond the negotiated 512-byte window, into the previous
	 * message (zlib checks the window only across inflate calls).
	 */
	for (size_t i = 0; i < sizeof(far); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		far[i] = (unsigned char)x;
	}
	assert_int_equal(pmd_compress(wide, far, sizeof(far), &c, &clen), 1);
	assert_int_equal(pmd_inflate(s, c, clen, true), PMD_OK);
	assert_int_equal(pmd_compress(wide, far, 300, &c, &clen), 1);
	assert_true(clen < 100);
	assert_int_equal(pmd_inflate(s, c, clen, true), PMD_CORRUPT);
	print_message("far: %s\n", pmd_error(s));
	pmd_destroy(wide);
	pmd_destroy(b);
	pmd_destroy(s);
}

/* RFC 7692 7.2.3.4: a sender may end a message with BFINAL and keep its history. */
static void final_block_keeps_the_history(void **state)
{
	struct pmd_params p = {15, 15, false, false};
	struct pmd *b = pmd_create(&p, 1 << 20);
	z_stream z = {0};
	unsigned char out[1024];
	char msg[256];
	size_t len = telemetry(msg, sizeof(msg), 1), got, n1;
	const unsigned char *back;

	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (unsigned char *)msg;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = sizeof(out);
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	n1 = z.total_out;
	assert_int_equal(pmd_inflate(b, out, n1, true), PMD_OK);
	/* the second message refers back into the first */
	assert_int_equal(deflateReset(&z), Z_OK);
	assert_int_equal(deflateSetDictionary(&z, (unsigned char *)msg, (uInt)len), Z_OK);
	z.next_in = (unsigned char *)msg;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = sizeof(out);
	assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
	assert_true(z.total_out < n1);
	assert_int_equal(pmd_inflate(b, out, z.total_out - 4, true), PMD_OK);
	back = pmd_message(b, &got);
	assert_int_equal(got, len);
	assert_memory_equal(back, msg, len);
	deflateEnd(&z);
	pmd_destroy(b);
}

static void zlib_memory_is_lazy_bounded_and_reported(void **state)
{
	struct pmd_params p = {15, 15, false, false};
	struct pmd *a = pmd_create(&p, 1 << 20), *b = peer_of(&p, 1 << 20);
	struct pmd_report r;

	pmd_report(a, &r);
	assert_int_equal(r.zlib_bytes, 0);
	send_many(a, b, 20, 4096);
	pmd_report(a, &r);
	print_message("compressor: zlib %zu, buffers %zu; ratio %llu -> %llu\n", r.zlib_bytes,
		      r.buffer_bytes, r.tx_plain, r.tx_wire);
	/* 2^17 window + 2^17 hash + state */
	assert_true(r.zlib_bytes > 256 * 1024 && r.zlib_bytes < 300 * 1024);
	assert_true(r.tx_wire < r.tx_plain);
	pmd_report(b, &r);
	print_message("inflater: zlib %zu, buffers %zu\n", r.zlib_bytes, r.buffer_bytes);
	assert_true(r.zlib_bytes > 32 * 1024 && r.zlib_bytes < 48 * 1024);
	assert_true(r.rx_plain > r.rx_wire);
	pmd_destroy(a);
	pmd_destroy(b);
}

/*
 * Every client window from 9 to 15 bits: the server's inflater, held to that
 * window, reads what we send, with and without context takeover. A small
 * window gets a small hash table too (issue 17: a 9-bit window at memory
 * level 8 spent most of its time sliding a 32768-entry table).
 */
static void every_client_window_round_trips_with_a_hash_to_match(void **state)
{
	for (int bits = 9; bits <= 15; bits++) {
		for (int nct = 0; nct <= 1; nct++) {
			struct pmd_params p = {bits, 15, nct, false};
			struct pmd *a = pmd_create(&p, 1 << 20), *b = peer_of(&p, 1 << 20);
			size_t level = bits - 4 < 8 ? (size_t)bits - 4 : 8;
			struct pmd_report r;

			send_many(a, b, 100, 4096);
			pmd_report(a, &r);
			/* zlib's 2^(w+2) + 2^(m+9), and its state of under 8 KiB */
			assert_true(r.zlib_bytes <=
				    ((size_t)1 << (bits + 2)) + ((size_t)1 << (level + 9)) + 8192);
			if (bits == 9)
				assert_true(r.zlib_bytes < 32 * 1024);
			pmd_destroy(a);
			pmd_destroy(b);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(offer_header_lists_what_is_offered),
	    cmocka_unit_test(negotiation_accepts_valid_answers),
	    cmocka_unit_test(negotiation_refuses_rule_breaking_answers),
	    cmocka_unit_test(negotiation_follows_the_offer),
	    cmocka_unit_test(round_trips_with_context_takeover),
	    cmocka_unit_test(round_trips_without_context_takeover),
	    cmocka_unit_test(small_or_incompressible_messages_go_out_plain),
	    cmocka_unit_test(window_of_8_bits_is_honoured),
	    cmocka_unit_test(every_client_window_round_trips_with_a_hash_to_match),
	    cmocka_unit_test(deflate_bomb_stops_at_the_cap),
	    cmocka_unit_test(message_of_exactly_the_cap_passes),
	    cmocka_unit_test(corrupt_streams_are_reported),
	    cmocka_unit_test(final_block_keeps_the_history),
	    cmocka_unit_test(zlib_memory_is_lazy_bounded_and_reported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wsframe.h"

/* A minimal server-side decoder, to check our frames independently. */
static size_t decode(const unsigned char *f, int *op, unsigned char *out, size_t *len)
{
	size_t n = f[1] & 0x7f, off = 2;
	const unsigned char *mask;

	assert_true(f[0] & 0x80); /* FIN */
	assert_true(f[1] & 0x80); /* client frames are masked */
	*op = f[0] & 0x0f;
	if (n == 126) {
		n = (size_t)f[2] << 8 | f[3];
		off = 4;
	} else if (n == 127) {
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | f[2 + i];
		off = 10;
	}
	mask = f + off;
	off += 4;
	for (size_t i = 0; i < n; i++)
		out[i] = f[off + i] ^ mask[i & 3];
	*len = n;
	return off + n;
}

static void roundtrip(size_t len, int opcode)
{
	unsigned char *src = malloc(len + 1), *frame = malloc(len + WSFRAME_MAX_HEADER),
		      *back = malloc(len + 1);
	size_t n, got;
	int op;

	for (size_t i = 0; i < len; i++)
		src[i] = (unsigned char)(i * 31 + 7);
	n = wsframe_encode(frame, opcode, src, len, 0xdeadbeef);
	assert_int_equal(n, wsframe_header_len(len) + len);
	assert_int_equal(decode(frame, &op, back, &got), n);
	assert_int_equal(op, opcode);
	assert_int_equal(got, len);
	assert_memory_equal(back, src, len);
	free(src);
	free(frame);
	free(back);
}

static void encodes_every_length_form(void **state)
{
	const size_t lens[] = { 0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 1 << 20 };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		roundtrip(lens[i], WSF_TEXT);
	roundtrip(33, WSF_BINARY);
	roundtrip(8, WSF_PING);
}

static void header_has_the_rfc_layout(void **state)
{
	unsigned char f[32];

	assert_int_equal(wsframe_encode(f, WSF_TEXT, "Hi", 2, 0x01020304), 8);
	assert_int_equal(f[0], 0x81);
	assert_int_equal(f[1], 0x82);
	assert_int_equal(f[2], 1);
	assert_int_equal(f[5], 4);
	assert_int_equal(f[6], 'H' ^ 1);
	assert_int_equal(f[7], 'i' ^ 2);
	/* permessage-deflate: RSV1 beside FIN; other high bits of the argument ignored */
	wsframe_encode(f, WSF_BINARY | WSF_RSV1, "Hi", 2, 0);
	assert_int_equal(f[0], 0xc2);
	wsframe_encode(f, WSF_TEXT | 0x30, "Hi", 2, 0);
	assert_int_equal(f[0], 0x81);
	assert_int_equal(wsframe_header_len(125), 6);
	assert_int_equal(wsframe_header_len(126), 8);
	assert_int_equal(wsframe_header_len(65536), 14);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(encodes_every_length_form),
		cmocka_unit_test(header_has_the_rfc_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"

static void append(struct buf *b, const char *s)
{
	unsigned char *dst = buf_reserve(b, strlen(s));

	assert_non_null(dst);
	memcpy(dst, s, strlen(s));
	buf_commit(b, strlen(s));
}

static void keeps_fifo_order_across_growth(void **state)
{
	struct buf b = {0};
	char big[40000];

	append(&b, "hello ");
	buf_consume(&b, 2);
	assert_int_equal(b.len, 4);
	assert_memory_equal(buf_head(&b), "llo ", 4);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	append(&b, big); /* grows past the first capacity: the head moves to the front */
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 4 + sizeof(big) - 1);
	assert_memory_equal(buf_head(&b), "llo xx", 6);
	buf_consume(&b, b.len);
	assert_int_equal(b.off, 0);
	buf_trim(&b, 1024);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	buf_finish(&b);
}

static void trim_keeps_small_or_busy_buffers(void **state)
{
	struct buf b = {0};

	append(&b, "abc");
	buf_trim(&b, 0);
	assert_non_null(b.data); /* not empty */
	buf_consume(&b, 3);
	buf_trim(&b, 1024 * 1024);
	assert_non_null(b.data); /* small */
	buf_finish(&b);
	assert_null(b.data);
}

static void writes_until_the_pipe_is_full_and_reads_back(void **state)
{
	struct buf out = {0}, in = {0};
	int p[2];
	ssize_t n, total = 0;
	unsigned char *dst;

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	dst = buf_reserve(&out, 1 << 20);
	assert_non_null(dst);
	for (size_t i = 0; i < 1 << 20; i++)
		dst[i] = (unsigned char)i;
	buf_commit(&out, 1 << 20);
	n = buf_write(&out, p[1]);
	assert_true(n > 0 && out.len == (1u << 20) - (size_t)n); /* stopped at EAGAIN */
	while ((n = buf_read(&in, p[0], 4096)) > 0)
		total += n;
	assert_int_equal(n, -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(in.len, (size_t)total);
	assert_int_equal(buf_head(&in)[1000], (unsigned char)1000);
	close(p[1]);
	assert_int_equal(buf_read(&in, p[0], 4096), 0); /* EOF */
	assert_int_equal(buf_write(&out, p[0]), -1);	/* not writable: an error, not EAGAIN */
	close(p[0]);
	buf_finish(&out);
	buf_finish(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(keeps_fifo_order_across_growth),
	    cmocka_unit_test(trim_keeps_small_or_busy_buffers),
	    cmocka_unit_test(writes_until_the_pipe_is_full_and_reads_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

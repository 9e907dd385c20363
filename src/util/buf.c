#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_CAP (16 * 1024)

unsigned char *buf_reserve(struct buf *b, size_t n)
{
	if (b->off + b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap : FIRST_CAP;

		if (b->off) {
			memmove(b->data, b->data + b->off, b->len);
			b->off = 0;
		}
		while (ncap < b->len + n)
			ncap *= 2;
		if (ncap > b->cap) {
			unsigned char *nb = realloc(b->data, ncap);

			if (!nb)
				return NULL;
			b->data = nb;
			b->cap = ncap;
		}
	}
	return b->data + b->off + b->len;
}

int mem_reserve(unsigned char **data, size_t *cap, size_t need)
{
	unsigned char *n;

	if (need <= *cap)
		return 0;
	if (!(n = realloc(*data, need)))
		return -1;
	*data = n;
	*cap = need;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (!b->len)
		b->off = 0;
}

void buf_trim(struct buf *b, size_t keep)
{
	if (!b->len && b->cap > keep)
		buf_finish(b);
}

void buf_finish(struct buf *b)
{
	free(b->data);
	*b = (struct buf){0};
}

ssize_t buf_read(struct buf *b, int fd, size_t chunk)
{
	/* half: a partial message left at the head must not double the buffer */
	unsigned char *dst = buf_reserve(b, chunk / 2);
	ssize_t n;

	if (!dst) {
		errno = ENOMEM;
		return -1;
	}
	n = read(fd, dst, b->cap - b->off - b->len);
	if (n > 0)
		buf_commit(b, (size_t)n);
	return n;
}

ssize_t buf_write(struct buf *b, int fd)
{
	ssize_t total = 0;

	while (b->len) {
		ssize_t n = write(fd, buf_head(b), b->len);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -1;
		}
		buf_consume(b, (size_t)n);
		total += n;
	}
	return total;
}

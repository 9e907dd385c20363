#ifndef WST_BUF_H
#define WST_BUF_H

#include <stddef.h>
#include <sys/types.h>

/*
 * A byte FIFO: append at the tail, consume at the head. The one input and
 * output buffer of the local endpoints (peer, stdio) and the control socket.
 */
struct buf {
	unsigned char *data;
	size_t off, len, cap; /* the bytes are data[off .. off+len) */
};

/* Room for n more bytes after the tail, or NULL (out of memory); buf_commit(n) keeps them. */
unsigned char *buf_reserve(struct buf *b, size_t n);

static inline void buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}

static inline unsigned char *buf_head(const struct buf *b)
{
	return b->data + b->off;
}

void buf_consume(struct buf *b, size_t n);
/* Make the block *data of *cap bytes hold need (realloc'd to exactly need); -1: no memory. */
int mem_reserve(unsigned char **data, size_t *cap, size_t need);
/* Free the memory when empty and larger than keep: a burst should not pin it. */
void buf_trim(struct buf *b, size_t keep);
void buf_finish(struct buf *b);

/* One read() into the free space after the tail, at least chunk / 2 bytes; its result
 * (-1 with errno, ENOMEM too). */
ssize_t buf_read(struct buf *b, int fd, size_t chunk);
/*
 * write() from the head until empty or EAGAIN: the bytes written, or -1
 * (errno) on an error other than EAGAIN/EINTR.
 */
ssize_t buf_write(struct buf *b, int fd);

#endif

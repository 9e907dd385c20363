#include "stdio_bridge.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "framing.h"
#include "log.h"
#include "ratelimit.h"

#define READ_CHUNK (256 * 1024)

struct stdio_bridge {
	struct ev_loop *loop;
	struct stdio_events ev;
	size_t max_line;

	ev_io in_w, out_w;
	int in_flags, out_flags;	/* to restore at exit; -1 = untouched */
	bool in_done, in_paused, in_eof, discarding, high, out_broken;

	struct buf in, out;
	struct endpoint_drops drops;
	struct ratelimit unframable_log;
};

/* Only pipes and sockets are ours alone; a terminal shared with the shell stays blocking. */
static int make_nonblocking(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return -1;
	return fd_nonblock(fd);
}

static void restore_flags(int fd, int fl)
{
	if (fl >= 0 && fcntl(fd, F_SETFL, fl) < 0)
		log_errno(LOG_DEBUG, "restoring flags of fd %d", fd);
}

/* A line over max_line: drop it whole, also the part still to come. */
static void drop_long_line(struct stdio_bridge *s)
{
	const unsigned char *p = buf_head(&s->in), *nl = memchr(p, '\n', s->in.len);

	s->drops.oversized++;
	if (nl) {
		log_msg(LOG_WARNING,
			"stdin line of %zu bytes exceeds link.max_message_bytes (%zu): dropped",
			(size_t)(nl - p), s->max_line);
		s->drops.oversized_bytes += (size_t)(nl - p);
		buf_consume(&s->in, (size_t)(nl - p) + 1);
		return;
	}
	log_msg(LOG_WARNING, "stdin line longer than link.max_message_bytes (%zu): dropped",
		s->max_line);
	s->discarding = true;
	s->drops.oversized_bytes += s->in.len;
	buf_consume(&s->in, s->in.len);
}

/* Queue each complete line; returns false when the queue is full. */
static bool take_lines(struct stdio_bridge *s)
{
	while (s->in.len) {
		const unsigned char *p = buf_head(&s->in), *nl;
		struct frame f;
		size_t used;
		int r;

		if (s->discarding) {
			nl = memchr(p, '\n', s->in.len);
			s->drops.oversized_bytes += nl ? (size_t)(nl - p) : s->in.len;
			buf_consume(&s->in, nl ? (size_t)(nl - p) + 1 : s->in.len);
			s->discarding = !nl;
			continue;
		}
		r = framing_decode(FRAMING_LINES, p, s->in.len, s->max_line, &f, &used, NULL);
		if (r == 0)
			break;
		if (r < 0) {
			drop_long_line(s);
			continue;
		}
		if (!utf8_valid(f.data, f.len)) {
			/* the server would fail the link with 1007, and we would resend it forever */
			log_msg(LOG_WARNING, "stdin line of %zu bytes is not valid UTF-8: dropped",
				f.len);
			s->drops.invalid_utf8++;
			s->drops.invalid_utf8_bytes += f.len;
		} else if (!s->ev.message(s->ev.ud, (const char *)f.data, f.len)) {
			return false;
		}
		buf_consume(&s->in, used);
	}
	return true;
}

static void input_finished(struct stdio_bridge *s)
{
	ev_io_stop(s->loop, &s->in_w);
	s->in_done = true;
	if (s->ev.eof)
		s->ev.eof(s->ev.ud);
}

static void pause_input(struct stdio_bridge *s)
{
	ev_io_stop(s->loop, &s->in_w);
	s->in_paused = true;
}

static void in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stdio_bridge *s = w->data;
	ssize_t n = buf_read(&s->in, w->fd, READ_CHUNK);
	unsigned char *nl;

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (errno == ENOMEM) {
			log_msg(LOG_ERR, "out of memory reading stdin: pausing input");
			pause_input(s);
			return;
		}
		log_errno(LOG_ERR, "reading stdin");
		input_finished(s);
		return;
	}
	if (n > 0) {
		if (!take_lines(s))
			pause_input(s);
		return;
	}
	/* a last line without '\n' is still a line */
	if (s->in.len && !s->discarding && (nl = buf_reserve(&s->in, 1))) {
		*nl = '\n';
		buf_commit(&s->in, 1);
	}
	if (!take_lines(s)) {
		/* wait for room, then finish: a terminal's EOF does not come twice */
		pause_input(s);
		s->in_eof = true;
		return;
	}
	input_finished(s);
}

static void out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stdio_bridge *s = w->data;

	if (buf_write(&s->out, w->fd) < 0) {
		log_errno(LOG_ERR, "writing stdout");
		s->out_broken = true;
		s->out.len = 0;
		ev_io_stop(loop, w);
		if (s->ev.broken)
			s->ev.broken(s->ev.ud);
		return;
	}
	if (!s->out.len)
		ev_io_stop(loop, w);
	if (s->high && s->out.len <= ENDPOINT_LOW_WATER) {
		s->high = false;
		s->ev.drained(s->ev.ud);
	}
}

struct stdio_bridge *stdio_create(struct ev_loop *loop, size_t max_line,
				  const struct stdio_events *ev)
{
	struct stdio_bridge *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = loop;
	s->ev = *ev;
	s->max_line = max_line;
	s->in_flags = make_nonblocking(STDIN_FILENO);
	s->out_flags = make_nonblocking(STDOUT_FILENO);
	ev_io_init(&s->in_w, in_cb, STDIN_FILENO, EV_READ);
	ev_io_init(&s->out_w, out_cb, STDOUT_FILENO, EV_WRITE);
	s->in_w.data = s->out_w.data = s;
	ev_io_start(loop, &s->in_w);
	return s;
}

/* Write what is buffered for stdout, blocking, and free it all; at exit. */
static void stdio_destroy(void *self)
{
	struct stdio_bridge *s = self;

	ev_io_stop(s->loop, &s->in_w);
	ev_io_stop(s->loop, &s->out_w);
	restore_flags(STDIN_FILENO, s->in_flags);
	restore_flags(STDOUT_FILENO, s->out_flags);
	while (s->out.len && !s->out_broken) {
		ssize_t n = buf_write(&s->out, STDOUT_FILENO);

		if (n < 0 || (!n && errno != EINTR)) {
			log_errno(LOG_ERR, "writing stdout");
			break;
		}
	}
	buf_finish(&s->in);
	buf_finish(&s->out);
	free(s);
}

static void stdio_resume(void *self)
{
	struct stdio_bridge *s = self;

	if (!s->in_paused || s->in_done)
		return;
	if (!take_lines(s))
		return;
	s->in_paused = false;
	if (s->in_eof) {
		input_finished(s);
		return;
	}
	ev_io_start(s->loop, &s->in_w);
}

static void stdio_stop_input(void *self)
{
	struct stdio_bridge *s = self;

	ev_io_stop(s->loop, &s->in_w);
	s->in_done = true;
}

/* One message from the server; binary or multi-line text cannot be a line. */
static void stdio_output(void *self, const unsigned char *data, size_t len, bool binary)
{
	struct stdio_bridge *s = self;
	unsigned char *dst;

	if (s->out_broken)
		return;
	if (binary || memchr(data, '\n', len)) {
		/* a line can carry neither: never write half a message */
		s->drops.unframable++;
		s->drops.unframable_bytes += len;
		log_msg(ratelimit_allow(&s->unframable_log, 0) ? LOG_WARNING : LOG_DEBUG,
			"%s message of %zu bytes from the server cannot be a stdout line: skipped "
			"(%llu so far)",
			binary ? "binary" : "multi-line text", len, s->drops.unframable);
		return;
	}
	if (!(dst = buf_reserve(&s->out, len + 1))) {
		log_msg(LOG_ERR, "out of memory buffering stdout: message lost");
		s->drops.undelivered++;
		s->drops.undelivered_bytes += len;
		return;
	}
	memcpy(dst, data, len);
	dst[len] = '\n';
	buf_commit(&s->out, len + 1);
	ev_io_start(s->loop, &s->out_w);
	if (s->out.len > ENDPOINT_LOW_WATER)
		s->high = true;
}

/* A pipe is waited for, never dropped: all of its backlog counts. */
static size_t stdio_pending(const void *self, double active_s)
{
	return ((const struct stdio_bridge *)self)->out.len;
}

static void stdio_status(const void *self, struct wst_status *st)
{
	const struct stdio_bridge *s = self;

	endpoint_add_drops(st, &s->drops);
}

const struct endpoint_impl stdio_endpoint = {
	stdio_output, stdio_resume, stdio_stop_input, stdio_pending, NULL, stdio_destroy,
	NULL, /* stdout carries lines: no events */
	stdio_status,
};

#include "stdio_bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "framing.h"
#include "log.h"

#define READ_CHUNK (256 * 1024)
/* stdout back-pressure: pause the server above HIGH, resume below LOW */
#define OUT_HIGH (1024 * 1024)
#define OUT_LOW (256 * 1024)

struct stdio_bridge {
	struct ev_loop *loop;
	struct stdio_events ev;
	size_t max_line;

	ev_io in_w, out_w;
	int in_flags, out_flags;	/* to restore at exit; -1 = untouched */
	bool in_done, in_paused, in_eof, discarding, rx_paused, out_broken;

	char *in;		/* unparsed stdin bytes */
	size_t in_len, in_cap;

	char *out;
	size_t out_off, out_len, out_cap;

	unsigned long long unframable;
};

/* Only pipes and sockets are ours alone; a terminal shared with the shell stays blocking. */
static int make_nonblocking(int fd)
{
	struct stat st;
	int fl;

	if (fstat(fd, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return -1;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fl;
}

static void restore_flags(int fd, int fl)
{
	if (fl >= 0 && fcntl(fd, F_SETFL, fl) < 0)
		log_errno(LOG_DEBUG, "restoring flags of fd %d", fd);
}

/* Queue each complete line; returns false when the queue is full. */
static bool take_lines(struct stdio_bridge *s)
{
	size_t pos = 0;
	bool room = true;

	while (pos < s->in_len) {
		char *nl = memchr(s->in + pos, '\n', s->in_len - pos);
		size_t len;

		if (!nl) {
			if (s->in_len - pos > s->max_line) {
				if (!s->discarding)
					log_msg(LOG_WARNING,
						"stdin line longer than link.max_message_bytes (%zu): "
						"dropped",
						s->max_line);
				s->discarding = true;
				pos = s->in_len;
			}
			break;
		}
		len = (size_t)(nl - (s->in + pos));
		if (s->discarding) {
			s->discarding = false;
			pos += len + 1;
			continue;
		}
		if (len > s->max_line) {
			log_msg(LOG_WARNING,
				"stdin line of %zu bytes exceeds link.max_message_bytes (%zu): dropped",
				len, s->max_line);
			pos += len + 1;
			continue;
		}
		if (!framing_utf8_valid(s->in + pos, len)) {
			/* the server would fail the link with 1007, and we would resend it forever */
			log_msg(LOG_WARNING, "stdin line of %zu bytes is not valid UTF-8: dropped", len);
			pos += len + 1;
			continue;
		}
		if (!s->ev.message(s->ev.ud, s->in + pos, len)) {
			room = false;
			break;
		}
		pos += len + 1;
	}
	if (pos) {
		memmove(s->in, s->in + pos, s->in_len - pos);
		s->in_len -= pos;
	}
	return room;
}

static void input_finished(struct stdio_bridge *s)
{
	ev_io_stop(s->loop, &s->in_w);
	s->in_done = true;
	if (s->ev.eof)
		s->ev.eof(s->ev.ud);
}

static void in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stdio_bridge *s = w->data;
	ssize_t n;

	if (s->in_cap - s->in_len < READ_CHUNK) {
		size_t ncap = s->in_len + READ_CHUNK;
		char *nb = realloc(s->in, ncap);

		if (!nb) {
			log_msg(LOG_ERR, "out of memory reading stdin: pausing input");
			ev_io_stop(loop, w);
			s->in_paused = true;
			return;
		}
		s->in = nb;
		s->in_cap = ncap;
	}
	n = read(w->fd, s->in + s->in_len, s->in_cap - s->in_len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		log_errno(LOG_ERR, "reading stdin");
		input_finished(s);
		return;
	}
	if (n == 0) {
		/* a last line without '\n' is still a line */
		if (s->in_len && !s->discarding) {
			if (s->in_len < s->in_cap) {
				s->in[s->in_len++] = '\n';
			}
		}
		if (!take_lines(s)) {
			/* wait for room, then finish: a terminal's EOF does not come twice */
			ev_io_stop(loop, w);
			s->in_paused = true;
			s->in_eof = true;
			return;
		}
		input_finished(s);
		return;
	}
	s->in_len += (size_t)n;
	if (!take_lines(s)) {
		ev_io_stop(loop, w);
		s->in_paused = true;
	}
}

static void out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct stdio_bridge *s = w->data;

	while (s->out_len) {
		ssize_t n = write(w->fd, s->out + s->out_off, s->out_len);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			log_errno(LOG_ERR, "writing stdout");
			s->out_broken = true;
			s->out_len = 0;
			ev_io_stop(loop, w);
			if (s->ev.broken)
				s->ev.broken(s->ev.ud);
			return;
		}
		s->out_off += (size_t)n;
		s->out_len -= (size_t)n;
		if (s->rx_paused && s->out_len < OUT_LOW && s->ev.rx_pause) {
			s->rx_paused = false;
			s->ev.rx_pause(s->ev.ud, false);
		}
	}
	s->out_off = 0;
	ev_io_stop(loop, w);
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

void stdio_destroy(struct stdio_bridge *s)
{
	if (!s)
		return;
	ev_io_stop(s->loop, &s->in_w);
	ev_io_stop(s->loop, &s->out_w);
	restore_flags(STDIN_FILENO, s->in_flags);
	restore_flags(STDOUT_FILENO, s->out_flags);
	free(s->in);
	free(s->out);
	free(s);
}

void stdio_resume(struct stdio_bridge *s)
{
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

void stdio_stop_input(struct stdio_bridge *s)
{
	ev_io_stop(s->loop, &s->in_w);
	s->in_done = true;
}

void stdio_output(struct stdio_bridge *s, const unsigned char *data, size_t len, bool binary)
{
	if (s->out_broken)
		return;
	if (binary || memchr(data, '\n', len)) {
		/* a line can carry neither: never write half a message */
		s->unframable++;
		log_msg(s->unframable == 1 ? LOG_WARNING : LOG_DEBUG,
			"%s message of %zu bytes from the server cannot be a stdout line: skipped "
			"(%llu so far)",
			binary ? "binary" : "multi-line text", len, s->unframable);
		return;
	}
	if (s->out_off + s->out_len + len + 1 > s->out_cap) {
		size_t ncap = s->out_cap ? s->out_cap : 64 * 1024;
		char *nb;

		if (s->out_off) {
			memmove(s->out, s->out + s->out_off, s->out_len);
			s->out_off = 0;
		}
		while (ncap < s->out_len + len + 1)
			ncap *= 2;
		if (ncap > s->out_cap) {
			nb = realloc(s->out, ncap);
			if (!nb) {
				log_msg(LOG_ERR, "out of memory buffering stdout: message lost");
				return;
			}
			s->out = nb;
			s->out_cap = ncap;
		}
	}
	memcpy(s->out + s->out_off + s->out_len, data, len);
	s->out[s->out_off + s->out_len + len] = '\n';
	s->out_len += len + 1;
	ev_io_start(s->loop, &s->out_w);
	if (!s->rx_paused && s->out_len > OUT_HIGH && s->ev.rx_pause) {
		s->rx_paused = true;
		s->ev.rx_pause(s->ev.ud, true);
	}
}

void stdio_flush(struct stdio_bridge *s)
{
	restore_flags(STDOUT_FILENO, s->out_flags);
	s->out_flags = -1;
	while (s->out_len && !s->out_broken) {
		ssize_t n = write(STDOUT_FILENO, s->out + s->out_off, s->out_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_errno(LOG_ERR, "writing stdout");
			break;
		}
		s->out_off += (size_t)n;
		s->out_len -= (size_t)n;
	}
}

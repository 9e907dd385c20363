#include "stdio_bridge.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "peer.h"
#include "ratelimit.h"

struct stdio_bridge {
	struct endpoint_events ev;
	struct peer *p;		 /* reads stdin, writes stdout */
	int in_flags, out_flags; /* to restore at exit; -1 = untouched */
	bool broken, exiting;	 /* stdout is gone; destroy runs: that is not reported */
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

static void stdin_ended(void *ud, struct peer *p)
{
	struct stdio_bridge *s = ud;

	s->ev.eof(s->ev.ud);
}

/* Only a write error ends the peer: stdin's errors and overlong lines do not (ops.stdio). */
static void stdout_failed(void *ud, struct peer *p, const char *why)
{
	struct stdio_bridge *s = ud;

	log_msg(LOG_ERR, "writing stdout: %s", why);
	s->broken = true;
	if (!s->exiting)
		s->ev.broken(s->ev.ud);
}

struct stdio_bridge *stdio_create(struct ev_loop *loop, size_t max_line,
				  const struct endpoint_events *ev)
{
	struct stdio_bridge *s = calloc(1, sizeof(*s));
	struct peer_ops ops = {.ev = *ev,
			       .ud = s,
			       .closed = stdout_failed,
			       .eof = stdin_ended,
			       .drops = &s->drops,
			       .stdio = true};

	if (!s)
		return NULL;
	s->ev = *ev;
	s->in_flags = make_nonblocking(STDIN_FILENO);
	s->out_flags = make_nonblocking(STDOUT_FILENO);
	/* a pipe is waited for, never dropped: no output limit */
	s->p = peer_create(loop, STDIN_FILENO, STDOUT_FILENO, FRAMING_LINES, max_line, SIZE_MAX,
			   "stdio", &ops);
	if (!s->p) {
		restore_flags(STDIN_FILENO, s->in_flags);
		restore_flags(STDOUT_FILENO, s->out_flags);
		free(s);
		return NULL;
	}
	return s;
}

/* Write what is buffered for stdout, blocking, and free it all; at exit. */
static void stdio_destroy(void *self)
{
	struct stdio_bridge *s = self;

	s->exiting = true;
	peer_stop_input(s->p);
	restore_flags(STDIN_FILENO, s->in_flags);
	restore_flags(STDOUT_FILENO, s->out_flags);
	while (!s->broken && peer_pending_output(s->p)) {
		size_t before = peer_pending_output(s->p);

		peer_flush(s->p); /* stdout blocks again: a write error ends in stdout_failed */
		if (!s->broken && peer_pending_output(s->p) == before && errno != EINTR) {
			log_errno(LOG_ERR, "writing stdout");
			break;
		}
	}
	peer_destroy(s->p);
	free(s);
}

static void stdio_resume(void *self)
{
	peer_resume(((struct stdio_bridge *)self)->p);
}

static void stdio_stop_input(void *self)
{
	peer_stop_input(((struct stdio_bridge *)self)->p);
}

/* One message from the server; binary or multi-line text cannot be a line. */
static void stdio_output(void *self, const unsigned char *data, size_t len, bool binary)
{
	struct stdio_bridge *s = self;
	enum peer_send r;

	if (s->broken)
		return;
	r = peer_send(s->p, data, len, binary);
	if (r == PEER_UNFRAMABLE) {
		/* a line can carry neither: never write half a message */
		s->drops.unframable++;
		s->drops.unframable_bytes += len;
		log_msg(ratelimit_allow(&s->unframable_log, 0) ? LOG_WARNING : LOG_DEBUG,
			"%s message of %zu bytes from the server cannot be a stdout line: skipped "
			"(%llu so far)",
			binary ? "binary" : "multi-line text", len, s->drops.unframable);
	} else if (r == PEER_FULL) {
		/* with no output limit, only memory runs out */
		log_msg(LOG_ERR, "out of memory buffering stdout: message lost");
		s->drops.undelivered++;
		s->drops.undelivered_bytes += len;
	}
}

/* A pipe is waited for, never dropped: all of its backlog counts. */
static size_t stdio_pending(const void *self, double active_s)
{
	const struct stdio_bridge *s = self;

	return s->broken ? 0 : peer_pending_output(s->p);
}

static void stdio_status(const void *self, struct wst_status *st)
{
	const struct stdio_bridge *s = self;

	endpoint_add_drops(st, &s->drops);
}

const struct endpoint_impl stdio_endpoint = {
    stdio_output,  stdio_resume, stdio_stop_input, stdio_pending, NULL,
    stdio_destroy, NULL, /* stdout carries lines: no events */
    stdio_status,
};

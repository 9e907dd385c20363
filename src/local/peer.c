#include "peer.h"
#include "sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "framing.h"
#include "log.h"

#define READ_CHUNK (64 * 1024)

struct peer {
	struct ev_loop *loop;
	struct peer_ops ops;
	enum framing framing;
	size_t max_message, out_limit;
	char name[64];

	ev_io rw, ww;
	bool paused, input_stopped, close_output, dead, high;
	bool in_owner, ignoring; /* in an owner's callback; input discarded */
	bool skipping, at_eof;	 /* in an overlong line; its input ended */
	const char *why;	 /* why it died in an owner's callback */

	struct buf in, out;
	ev_tstamp progress; /* last write that took bytes, or when output became pending */
};

void peer_drop(struct peer *p, const char *why)
{
	if (p->dead)
		return;
	p->dead = true;
	ev_io_stop(p->loop, &p->rw);
	ev_io_stop(p->loop, &p->ww);
	p->why = why;
	if (!p->in_owner)
		p->ops.closed(p->ops.ud, p, why);
}

/* Back from the owner's callback: false once p died there (then closed is called now). */
static bool owner_returned(struct peer *p)
{
	p->in_owner = false;
	if (!p->dead)
		return true;
	p->ops.closed(p->ops.ud, p, p->why);
	return false;
}

/* An overlong stdin line: dropped whole, also the part still to come. */
static void skip_line(struct peer *p)
{
	const unsigned char *h = buf_head(&p->in), *nl = memchr(h, '\n', p->in.len);
	size_t n = nl ? (size_t)(nl - h) : p->in.len;

	if (!p->skipping && nl)
		log_msg(LOG_WARNING,
			"stdin line of %zu bytes exceeds link.max_message_bytes (%zu): "
			"dropped",
			n, p->max_message);
	else if (!p->skipping)
		log_msg(LOG_WARNING, "stdin line longer than link.max_message_bytes (%zu): dropped",
			p->max_message);
	p->ops.drops->oversized += !p->skipping;
	p->ops.drops->oversized_bytes += n;
	buf_consume(&p->in, nl ? n + 1 : n);
	p->skipping = !nl;
}

/* The server would fail the link with 1007, and we would resend it forever. */
static void drop_invalid_text(struct peer *p, size_t len)
{
	if (p->ops.stdio)
		log_msg(LOG_WARNING, "stdin line of %zu bytes is not valid UTF-8: dropped", len);
	else
		log_msg(LOG_WARNING,
			"%s: text message of %zu bytes is not valid UTF-8: dropped "
			"(send it as binary)",
			p->name, len);
	p->ops.drops->invalid_utf8++;
	p->ops.drops->invalid_utf8_bytes += len;
}

/* Hand complete frames to the owner; false once the peer is dead or refused. */
static bool take_frames(struct peer *p)
{
	bool ok = true, took;

	while (p->in.len && !p->ignoring) {
		struct frame f;
		size_t used;
		const char *why;
		int r = p->skipping ? -1
				    : framing_decode(p->framing, buf_head(&p->in), p->in.len,
						     p->max_message, &f, &used, &why);

		if (r == 0)
			break;
		if (r < 0 && p->ops.stdio) {
			skip_line(p);
			continue;
		}
		if (r < 0) {
			char msg[160];

			snprintf(msg, sizeof(msg), "framing error: %s", why);
			p->ops.drops->bad_framing++;
			p->in_owner = true;
			if (p->ops.bad_frame)
				p->ops.bad_frame(p->ops.ud, p, why);
			if (owner_returned(p))
				peer_drop(p, msg);
			return false;
		}
		if (!f.binary && !p->ops.any_text && !utf8_valid(f.data, f.len)) {
			drop_invalid_text(p, f.len);
			buf_consume(&p->in, used);
			continue;
		}
		p->in_owner = true;
		took = p->ops.ev.message(p->ops.ev.ud, f.data, f.len, f.binary);
		if (!owner_returned(p))
			return false;
		if (!took) {
			ok = false;
			break;
		}
		buf_consume(&p->in, used);
	}
	if (p->ignoring)
		buf_consume(&p->in, p->in.len);
	if (!ok && !p->dead) {
		p->paused = true;
		ev_io_stop(p->loop, &p->rw);
	}
	return ok && !p->dead;
}

/* The writer closed its end: a pipe may still take our output, a socket is gone. */
static void input_ended(struct peer *p)
{
	unsigned char *nl;

	if (p->in.len && p->ops.stdio) {
		p->at_eof = true;
		if (!(nl = buf_reserve(&p->in, 1))) {
			buf_consume(&p->in, p->in.len);
		} else {
			*nl = '\n';
			buf_commit(&p->in, 1);
			if (!take_frames(p))
				return; /* taken on peer_resume, which ends input then */
		}
	}
	if (p->in.len || !p->ops.eof || p->rw.fd == p->ww.fd) {
		peer_drop(p, p->in.len ? "closed in the middle of a message" : "closed");
		return;
	}
	peer_stop_input(p);
	p->ops.eof(p->ops.ud, p);
}

/* One read. 1: read some and p lives on; 0: nothing to read now; -1: p is gone or paused. */
static int read_some(struct peer *p)
{
	ssize_t n;

	/* a frame may be up to max_message plus its header */
	if (p->in.len > p->max_message + FRAMING_HEADER_MAX + 1) {
		peer_drop(p, "input buffer overflow");
		return -1;
	}
	n = buf_read(&p->in, p->rw.fd, READ_CHUNK);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		if (p->ops.stdio && errno == ENOMEM) {
			log_msg(LOG_ERR, "out of memory reading stdin: pausing input");
			p->paused = true;
			ev_io_stop(p->loop, &p->rw);
		} else if (p->ops.stdio) {
			log_errno(LOG_ERR, "reading stdin");
			peer_stop_input(p);
			p->ops.eof(p->ops.ud, p);
		} else {
			peer_drop(p, errno == ENOMEM ? "out of memory" : strerror(errno));
		}
		return -1;
	}
	if (n == 0) {
		input_ended(p);
		return -1;
	}
	return take_frames(p) ? 1 : -1;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	read_some(w->data);
}

void peer_drain_input(struct peer *p)
{
	/* bounded: a writer that never stops must not hold the loop */
	for (int i = 0; i < 4096 && !p->input_stopped; i++)
		if (read_some(p) <= 0)
			return; /* p may be gone: do not touch it */
}

static void note_drained(struct peer *p)
{
	if (p->high && p->out.len <= ENDPOINT_LOW_WATER) {
		p->high = false;
		if (p->ops.ev.drained)
			p->ops.ev.drained(p->ops.ev.ud);
	}
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct peer *p = w->data;
	ssize_t n = buf_write(&p->out, w->fd);

	if (n < 0) {
		peer_drop(p, strerror(errno));
		return;
	}
	if (n > 0)
		p->progress = ev_now(loop);
	if (p->out.len) {
		note_drained(p);
		return;
	}
	ev_io_stop(loop, w);
	note_drained(p);
	if (p->close_output && w->fd != p->rw.fd) {
		close(w->fd);
		w->fd = -1;
	}
	buf_trim(&p->out, 1024 * 1024);
}

struct peer *peer_create(struct ev_loop *loop, int rfd, int wfd, enum framing framing,
			 size_t max_message, size_t out_limit, const char *name,
			 const struct peer_ops *ops)
{
	struct peer *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (!ops->stdio &&
	    ((rfd >= 0 && fd_nonblock(rfd) < 0) || (wfd >= 0 && fd_nonblock(wfd) < 0))) {
		log_errno(LOG_ERR, "%s: cannot make its descriptors non-blocking", name);
		free(p);
		return NULL;
	}
	p->loop = loop;
	p->ops = *ops;
	p->framing = framing;
	p->max_message = max_message;
	p->out_limit = out_limit;
	snprintf(p->name, sizeof(p->name), "%s", name);
	ev_io_init(&p->rw, read_cb, rfd, EV_READ);
	ev_io_init(&p->ww, write_cb, wfd, EV_WRITE);
	p->rw.data = p->ww.data = p;
	if (rfd >= 0)
		ev_io_start(loop, &p->rw);
	return p;
}

void peer_destroy(struct peer *p)
{
	if (!p)
		return;
	ev_io_stop(p->loop, &p->rw);
	ev_io_stop(p->loop, &p->ww);
	if (p->rw.fd >= 0 && !p->ops.stdio)
		close(p->rw.fd);
	if (p->ww.fd >= 0 && p->ww.fd != p->rw.fd && !p->ops.stdio)
		close(p->ww.fd);
	buf_finish(&p->in);
	buf_finish(&p->out);
	free(p);
}

const char *peer_name(const struct peer *p)
{
	return p->name;
}

/* Append one message, framed (encoded: framing_encode's result), to the output buffer. */
static enum peer_send put(struct peer *p, int encoded, const struct framing_wrap *w,
			  const void *data, size_t len)
{
	size_t need = w->head_len + len + w->tail_len;
	unsigned char *dst;

	if (p->dead || p->ww.fd < 0 || p->close_output)
		return PEER_FULL;
	if (encoded < 0)
		return PEER_UNFRAMABLE;
	/* one message larger than the limit still goes to a peer that has caught up */
	if (p->out.len && p->out.len + need > p->out_limit)
		return PEER_FULL;
	if (!p->out.len)
		p->progress = ev_now(p->loop);
	if (!(dst = buf_reserve(&p->out, need)))
		return PEER_FULL;
	memcpy(dst, w->head, w->head_len);
	memcpy(dst + w->head_len, data, len);
	memcpy(dst + w->head_len + len, w->tail, w->tail_len);
	buf_commit(&p->out, need);
	if (p->out.len > ENDPOINT_LOW_WATER)
		p->high = true;
	ev_io_start(p->loop, &p->ww);
	return PEER_SENT;
}

enum peer_send peer_send(struct peer *p, const unsigned char *data, size_t len, bool binary)
{
	struct framing_wrap w;

	return put(p, framing_encode(p->framing, binary, data, len, &w, NULL), &w, data, len);
}

enum peer_send peer_send_event(struct peer *p, const char *json, size_t len)
{
	struct framing_wrap w;

	return put(p, framing_encode_event(p->framing, json, len, &w, NULL), &w, json, len);
}

void peer_resume(struct peer *p)
{
	if (!p->paused || p->dead || p->input_stopped)
		return;
	p->paused = false;
	if (!take_frames(p))
		return;
	if (p->at_eof)
		input_ended(p);
	else
		ev_io_start(p->loop, &p->rw);
}

void peer_ignore_input(struct peer *p)
{
	p->ignoring = true;
}

void peer_flush(struct peer *p)
{
	if (!p->dead && p->out.len && p->ww.fd >= 0)
		write_cb(p->loop, &p->ww, EV_WRITE);
}

void peer_stop_input(struct peer *p)
{
	p->input_stopped = true;
	ev_io_stop(p->loop, &p->rw);
}

void peer_close_output(struct peer *p)
{
	p->close_output = true;
	if (!p->out.len && p->ww.fd >= 0 && p->ww.fd != p->rw.fd) {
		close(p->ww.fd);
		p->ww.fd = -1;
	}
}

size_t peer_pending_output(const struct peer *p)
{
	return p->out.len;
}

double peer_stalled_for(const struct peer *p)
{
	return p->out.len ? ev_now(p->loop) - p->progress : 0;
}

void last_event_keep(struct last_event *le, const char *json, size_t len)
{
	char *copy = malloc(len);

	if (!copy)
		return;
	memcpy(copy, json, len);
	free(le->json);
	le->json = copy;
	le->len = len;
}

void last_event_replay(const struct last_event *le, struct peer *p)
{
	if (le->json)
		peer_send_event(p, le->json, le->len);
}

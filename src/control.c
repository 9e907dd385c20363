#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "bridge.h"
#include "framing.h"
#include "json.h"
#include "log.h"

#define MAX_CLIENTS 64
#define OUT_LIMIT (1024 * 1024)

struct client {
	struct control *c;
	ev_io rw, ww;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len;
};

struct control {
	struct ev_loop *loop;
	struct control_ops ops;
	char path[108];
	int fd;
	size_t max_line;
	ev_io lw;
	struct client *clients[MAX_CLIENTS];
	size_t n;
	struct json j;
};

static void answer_error(struct json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void answer_error(struct json *j, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_reset(j);
	json_obj_begin(j);
	json_key(j, "ok");
	json_bool(j, false);
	json_key(j, "error");
	json_str(j, msg);
	json_obj_end(j);
}

static void answer(struct json *j, const char *err)
{
	if (err) {
		answer_error(j, "%s", err);
		return;
	}
	json_reset(j);
	json_obj_begin(j);
	json_key(j, "ok");
	json_bool(j, true);
	json_obj_end(j);
}

/* Codes an endpoint may send (RFC 6455 7.4): not 1004-1006 or 1015. */
static bool valid_close_code(long code)
{
	return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
	       (code >= 3000 && code <= 4999);
}

static bool is(const char *verb, size_t vlen, const char *name)
{
	return vlen == strlen(name) && !memcmp(verb, name, vlen);
}

void control_handle(const struct control_ops *ops, const char *line, size_t len, struct json *j)
{
	const char *sp, *args;
	size_t vlen, alen;

	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	sp = memchr(line, ' ', len);
	vlen = sp ? (size_t)(sp - line) : len;
	args = sp ? sp + 1 : line + len;
	alen = sp ? len - vlen - 1 : 0;

	if (is(line, vlen, "send")) {
		if (!sp) {
			answer_error(j, "usage: send TEXT");
			return;
		}
		if (!framing_utf8_valid(args, alen)) {
			answer_error(j, "send: TEXT is not valid UTF-8");
			return;
		}
		answer(j, ops->send(ops->ud, args, alen));
		return;
	}
	if (is(line, vlen, "close")) {
		char buf[160], *end;
		long code;

		if (!sp || alen >= sizeof(buf)) {
			answer_error(j, "usage: close CODE [REASON] (REASON at most 123 bytes)");
			return;
		}
		memcpy(buf, args, alen);
		buf[alen] = '\0';
		code = strtol(buf, &end, 10);
		if (end == buf || (*end && *end != ' ') || !valid_close_code(code)) {
			answer_error(j, "close: invalid code '%.*s' (use 1000, 1001-1003, 1007-1014 or "
				     "3000-4999)", (int)strcspn(buf, " "), buf);
			return;
		}
		if (*end == ' ')
			end++;
		if (strlen(end) > 123 || !framing_utf8_valid(end, strlen(end))) {
			answer_error(j, "close: REASON must be valid UTF-8 of at most 123 bytes");
			return;
		}
		answer(j, ops->close(ops->ud, (int)code, end));
		return;
	}
	if (sp && alen) {
		answer_error(j, "'%.*s' takes no arguments", (int)(vlen > 32 ? 32 : vlen), line);
		return;
	}
	if (is(line, vlen, "status")) {
		json_reset(j);
		json_obj_begin(j);
		json_key(j, "ok");
		json_bool(j, true);
		ops->status(ops->ud, j);
		json_obj_end(j);
		return;
	}
	if (is(line, vlen, "reconnect")) {
		answer(j, ops->reconnect(ops->ud));
		return;
	}
	if (is(line, vlen, "pause")) {
		answer(j, ops->pause(ops->ud));
		return;
	}
	if (is(line, vlen, "resume")) {
		answer(j, ops->resume(ops->ud));
		return;
	}
	if (is(line, vlen, "reload")) {
		answer(j, ops->reload(ops->ud));
		return;
	}
	/* the verb may be any bytes: json_strn escapes them */
	json_reset(j);
	json_obj_begin(j);
	json_key(j, "ok");
	json_bool(j, false);
	json_key(j, "error");
	json_str(j, "unknown command (use status, send, reconnect, close, pause, resume, reload)");
	json_key(j, "command");
	json_strn(j, line, vlen > 64 ? 64 : vlen);
	json_obj_end(j);
}

static void client_free(struct client *cl)
{
	struct control *c = cl->c;

	for (size_t i = 0; i < c->n; i++) {
		if (c->clients[i] == cl) {
			c->clients[i] = c->clients[--c->n];
			break;
		}
	}
	ev_io_stop(c->loop, &cl->rw);
	ev_io_stop(c->loop, &cl->ww);
	close(cl->rw.fd);
	free(cl->in);
	free(cl->out);
	free(cl);
}

static void flush(struct client *cl)
{
	while (cl->out_len) {
		ssize_t n = send(cl->ww.fd, cl->out, cl->out_len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				ev_io_start(cl->c->loop, &cl->ww);
				return;
			}
			client_free(cl);
			return;
		}
		memmove(cl->out, cl->out + n, cl->out_len - (size_t)n);
		cl->out_len -= (size_t)n;
	}
	ev_io_stop(cl->c->loop, &cl->ww);
}

/* Queue one answer line; false when the client was dropped. */
static bool reply(struct client *cl, const char *s, size_t len)
{
	char *nb;

	if (cl->out_len + len + 1 > OUT_LIMIT) {
		log_msg(LOG_WARNING, "%s: a control client stopped reading answers: dropped",
			cl->c->path);
		client_free(cl);
		return false;
	}
	nb = realloc(cl->out, cl->out_len + len + 1);
	if (!nb) {
		client_free(cl);
		return false;
	}
	cl->out = nb;
	memcpy(cl->out + cl->out_len, s, len);
	cl->out[cl->out_len + len] = '\n';
	cl->out_len += len + 1;
	return true;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *cl = w->data;
	struct control *c = cl->c;
	char buf[16384];
	ssize_t n = recv(w->fd, buf, sizeof(buf), 0);
	size_t pos = 0;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(cl);
		return;
	}
	{
		char *nb = realloc(cl->in, cl->in_len + (size_t)n);

		if (!nb) {
			client_free(cl);
			return;
		}
		cl->in = nb;
	}
	memcpy(cl->in + cl->in_len, buf, (size_t)n);
	cl->in_len += (size_t)n;
	for (;;) {
		char *nl = memchr(cl->in + pos, '\n', cl->in_len - pos);
		const char *out;
		size_t olen;

		if (!nl)
			break;
		control_handle(&c->ops, cl->in + pos, (size_t)(nl - (cl->in + pos)), &c->j);
		out = json_result(&c->j, &olen);
		if (!out) {
			out = "{\"ok\":false,\"error\":\"internal: answer could not be built\"}";
			olen = strlen(out);
		}
		pos = (size_t)(nl - cl->in) + 1;
		if (!reply(cl, out, olen))
			return;
	}
	memmove(cl->in, cl->in + pos, cl->in_len - pos);
	cl->in_len -= pos;
	if (cl->in_len > c->max_line) {
		const char *e = "{\"ok\":false,\"error\":\"request line too long\"}";

		/* the rest of the stream cannot be trusted to be in step: answer, then drop */
		if (reply(cl, e, strlen(e))) {
			flush(cl);
			for (size_t i = 0; i < c->n; i++)
				if (c->clients[i] == cl) {
					client_free(cl);
					break;
				}
		}
		return;
	}
	flush(cl);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	flush(w->data);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *c = w->data;

	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *cl;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_errno(LOG_WARNING, "%s: accept", c->path);
			return;
		}
		if (c->n == MAX_CLIENTS || !(cl = calloc(1, sizeof(*cl)))) {
			log_msg(LOG_WARNING, "%s: too many control clients: refusing one", c->path);
			close(fd);
			continue;
		}
		cl->c = c;
		ev_io_init(&cl->rw, read_cb, fd, EV_READ);
		ev_io_init(&cl->ww, write_cb, fd, EV_WRITE);
		cl->rw.data = cl->ww.data = cl;
		ev_io_start(loop, &cl->rw);
		c->clients[c->n++] = cl;
	}
}

struct control *control_create(struct ev_loop *loop, const char *path, unsigned mode,
			       size_t max_line, const struct control_ops *ops, char *err,
			       size_t errlen)
{
	struct control *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->fd = unix_listen(path, mode, err, errlen);
	if (c->fd < 0) {
		free(c);
		return NULL;
	}
	c->loop = loop;
	c->ops = *ops;
	c->max_line = max_line;
	snprintf(c->path, sizeof(c->path), "%s", path);
	json_init(&c->j);
	ev_io_init(&c->lw, accept_cb, c->fd, EV_READ);
	c->lw.data = c;
	ev_io_start(loop, &c->lw);
	return c;
}

void control_destroy(struct control *c)
{
	if (!c)
		return;
	ev_io_stop(c->loop, &c->lw);
	close(c->fd);
	if (unlink(c->path) < 0 && errno != ENOENT)
		log_errno(LOG_WARNING, "%s: unlink", c->path);
	while (c->n)
		client_free(c->clients[c->n - 1]);
	json_finish(&c->j);
	free(c);
}

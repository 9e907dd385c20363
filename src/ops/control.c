#include "control.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "link.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "peer.h"
#include "status.h"
#include "utf8.h"
#include "supervisor.h"
#include "wsrx.h"

#define MAX_CLIENTS 64
#define OUT_LIMIT (1024 * 1024)
#define OOM_ANSWER "{\"ok\":false,\"error\":\"internal: answer could not be built\"}"

struct client {
	struct control *c;
	struct peer *p; /* lines framing; its output bound is OUT_LIMIT */
	bool watching;	/* after `watch`: events out, input ignored */
};

struct control {
	struct control_ops ops;
	struct listener li;
	size_t max_line;
	struct client *clients[MAX_CLIENTS];
	size_t n;
	struct endpoint_drops unreported; /* a peer counts drops; these are not the data's */
};

/* Server and local text may be any bytes: each invalid UTF-8 sequence becomes U+FFFD. */
static json_object *jstr(const char *s, size_t len)
{
	char *buf, *o;
	json_object *v;

	if (!s)
		return NULL;
	if (utf8_valid(s, len))
		return json_object_new_string_len(s, (int)len);
	buf = malloc(len * 3 + 1);
	if (!buf)
		return NULL;
	o = buf;
	for (size_t i = 0; i < len;) {
		size_t bad, n = utf8_seq((const unsigned char *)s + i, len - i, &bad);

		if (n) {
			memcpy(o, s + i, n);
			o += n;
			i += n;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	v = json_object_new_string_len(buf, (int)(o - buf));
	free(buf);
	return v;
}

/* NULL as "" */
static json_object *jtext(const char *s)
{
	return jstr(s ? s : "", s ? strlen(s) : 0);
}

static void put_str(json_object *o, const char *key, const char *s)
{
	json_object_object_add(o, key, s && *s ? jtext(s) : NULL);
}

static void put_u(json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static json_object *answer_new(bool ok)
{
	json_object *o = json_object_new_object();

	if (o)
		json_object_object_add(o, "ok", json_object_new_boolean(ok));
	return o;
}

static __attribute__((format(printf, 1, 2))) json_object *answer_error(const char *fmt, ...)
{
	json_object *o = answer_new(false);
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o)
		json_object_object_add(o, "error", jstr(msg, strlen(msg)));
	return o;
}

static json_object *answer(const char *err)
{
	return err ? answer_error("%s", err) : answer_new(true);
}

static json_object *status_queue(const struct wst_status *st)
{
	json_object *q = json_object_new_object();

	put_u(q, "messages", st->queue_messages);
	put_u(q, "bytes", st->queue_bytes);
	put_u(q, "dropped", st->dropped);
	put_u(q, "dropped_bytes", st->dropped_bytes);
	put_u(q, "max_messages", st->queue_max_messages);
	put_u(q, "max_bytes", st->queue_max_bytes);
	put_str(q, "overflow", st->reject_overflow ? "reject" : "drop-oldest");
	return q;
}

static json_object *status_drops(const struct wst_status *st)
{
	json_object *d = json_object_new_object();

	put_u(d, "queue_overflow", st->dropped);
	put_u(d, "rejected", st->rejected);
	put_u(d, "unframable", st->unframable);
	put_u(d, "bridge_clients_dropped", st->bridge_clients_dropped);
	put_u(d, "undelivered", st->undelivered);
	put_u(d, "invalid_utf8", st->invalid_utf8);
	put_u(d, "oversized", st->oversized);
	put_u(d, "larger_than_queue", st->too_big);
	put_u(d, "slow_readers", st->slow_readers);
	put_u(d, "bad_framing", st->bad_framing);
	return d;
}

static json_object *status_link(const struct wst_status *st, json_object *o)
{
	struct tm tm;
	char ts[32];

	put_str(o, "state", st->state);
	put_str(o, "url", st->url);
	if (st->connected_since)
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&st->connected_since, &tm));
	put_str(o, "connected_since", st->connected_since ? ts : NULL);
	put_u(o, "attempts", st->attempts);
	put_u(o, "reconnects", st->reconnects);
	put_u(o, "rotations", st->rotations);
	json_object_object_add(
	    o, "next_retry_ms",
	    st->next_retry_ms < 0 ? NULL : json_object_new_uint64((uint64_t)st->next_retry_ms));
	put_u(o, "sent", st->sent);
	put_u(o, "received", st->received);
	put_u(o, "resent", st->resent);
	return o;
}

static json_object *status_spool(const struct wst_status *st)
{
	const struct spool_status *sp = &st->spool;
	json_object *o;

	if (!st->spool_on)
		return NULL;
	o = json_object_new_object();
	put_u(o, "bytes", sp->bytes);
	put_u(o, "segments", sp->segments);
	json_object_object_add(o, "oldest_age_ms",
			       sp->oldest_age_ms < 0 ? NULL
						     : json_object_new_int64(sp->oldest_age_ms));
	put_str(o, "holding_senders",
		sp->holding ? (sp->disk_full ? "disk full" : "write error") : NULL);
	put_u(o, "skipped_records", sp->skipped_records);
	put_u(o, "skipped_bytes", sp->skipped_bytes);
	put_u(o, "segments_set_aside", sp->set_aside);
	put_str(o, "last_error", sp->last_error);
	return o;
}

/* null when link.compression is off; "negotiated" null while no link uses it */
static json_object *status_compression(const struct wst_status *st)
{
	json_object *c;

	if (!st->compression)
		return NULL;
	c = json_object_new_object();
	put_str(c, "negotiated", st->compression_params);
	put_u(c, "zlib_bytes", st->deflate.zlib_bytes);
	put_u(c, "buffer_bytes", st->deflate.buffer_bytes);
	put_u(c, "sent_bytes", st->deflate.tx_plain);
	put_u(c, "sent_wire_bytes", st->deflate.tx_wire);
	put_u(c, "received_wire_bytes", st->deflate.rx_wire);
	put_u(c, "received_bytes", st->deflate.rx_plain);
	return c;
}

/* The status document: one place, built from the daemon's snapshot. */
static json_object *status_answer(const struct control_ops *ops)
{
	struct wst_status st = {.next_retry_ms = -1};
	json_object *o = answer_new(true), *x;

	if (!o)
		return NULL;
	ops->snapshot(ops->ud, &st);
	status_link(&st, o);
	json_object_object_add(o, "queue", status_queue(&st));
	json_object_object_add(o, "drops", status_drops(&st));
	json_object_object_add(o, "spool", status_spool(&st));
	put_str(o, "last_error", st.last_error);
	x = NULL;
	if (st.last_close_code) {
		x = json_object_new_object();
		json_object_object_add(x, "code", json_object_new_int(st.last_close_code));
		json_object_object_add(x, "reason", jtext(st.last_close_reason));
	}
	json_object_object_add(o, "last_close", x);
	x = json_object_new_object();
	put_str(x, "cert_not_after", st.cert_not_after);
	put_str(x, "version", st.tls_version);
	put_str(x, "cipher", st.tls_cipher);
	json_object_object_add(x, "insecure", json_object_new_boolean(st.insecure));
	json_object_object_add(x, "resumed",
			       st.tls_resumed < 0 ? NULL : json_object_new_boolean(st.tls_resumed));
	json_object_object_add(o, "tls", x);
	put_u(o, "bridge_clients", st.bridge_clients);
	json_object_object_add(o, "exec_pid", json_object_new_int(st.exec_pid));
	put_u(o, "exec_restarts", st.exec_restarts);
	x = json_object_new_object();
	put_str(x, "proxy", st.proxy && *st.proxy ? st.proxy : NULL);
	put_u(x, "probes", st.net_probes);
	put_u(x, "fast_retries", st.net_retries);
	json_object_object_add(o, "network", x);
	put_str(o, "config_error", st.config_error);
	json_object_object_add(o, "compression", status_compression(&st));
	return o;
}

static json_object *metrics_answer(const struct control_ops *ops)
{
	struct wst_status st = {.next_retry_ms = -1, .oldest_queued_ms = -1, .ping_rtt_us = -1};
	json_object *o;
	size_t len;
	char *text;

	ops->snapshot(ops->ud, &st);
	text = metrics_text(&st, &len);
	if (!text)
		return NULL;
	o = answer_new(true);
	if (o)
		json_object_object_add(o, "metrics", json_object_new_string_len(text, (int)len));
	free(text);
	return o;
}

/* The state a watcher starts from; events follow. */
static json_object *watch_answer(const struct control_ops *ops)
{
	struct wst_status st = {.next_retry_ms = -1};
	json_object *o = answer_new(true);

	if (!o)
		return NULL;
	ops->snapshot(ops->ud, &st);
	put_str(o, "state", st.state);
	put_str(o, "url", st.url);
	return o;
}

static void iso_time_ms(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char s[32];

	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
	snprintf(buf, len, "%s.%03dZ", s, (int)(ms % 1000));
}

static void put_int_or_null(json_object *o, const char *key, int v)
{
	json_object_object_add(o, key, v ? json_object_new_int(v) : NULL);
}

static void event_end(json_object *o, const struct sup_event *ev, int64_t wall_ms)
{
	char ts[40];

	put_str(o, "cause", link_fail_name(ev->fail));
	json_object_object_add(o, "by_request", json_object_new_boolean(ev->by_request));
	put_int_or_null(o, "close_code", ev->close_code);
	json_object_object_add(o, "close_reason", ev->close_code ? jtext(ev->close_reason) : NULL);
	put_int_or_null(o, "http_status", ev->http_status);
	put_str(o, "message", ev->msg);
	json_object_object_add(o, "retry_in_ms",
			       ev->retry_ms < 0 ? NULL : json_object_new_int64(ev->retry_ms));
	if (ev->retry_ms >= 0)
		iso_time_ms(wall_ms + ev->retry_ms, ts, sizeof(ts));
	put_str(o, "next_attempt", ev->retry_ms >= 0 ? ts : NULL);
}

char *control_event_json(const struct sup_event *ev, int64_t wall_ms, size_t *len)
{
	static const char *const names[] = {
	    [SUP_CHANGE_UP] = "up", [SUP_CHANGE_DOWN] = "down", [SUP_CHANGE_FAILED] = "failed"};
	json_object *o = json_object_new_object();
	const char *s;
	char ts[40], *out;

	if (!o || ev->change <= SUP_CHANGE_NONE || ev->change > SUP_CHANGE_FAILED) {
		json_object_put(o);
		return NULL;
	}
	iso_time_ms(wall_ms, ts, sizeof(ts));
	put_str(o, "event", names[ev->change]);
	put_str(o, "time", ts);
	put_str(o, "url", ev->url);
	put_u(o, "attempt", ev->attempt);
	if (ev->change != SUP_CHANGE_UP) {
		event_end(o, ev, wall_ms);
	} else if (ev->tls_version) {
		/* over TLS only: a ws:// link's event stays as it was */
		put_str(o, "tls_version", ev->tls_version);
		put_str(o, "tls_cipher", ev->tls_cipher);
	}
	s = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
	out = s ? strdup(s) : NULL;
	json_object_put(o);
	return out;
}

static bool is(const char *verb, size_t vlen, const char *name)
{
	return vlen == strlen(name) && !memcmp(verb, name, vlen);
}

static json_object *handle_close(const struct control_ops *ops, const char *args, size_t alen)
{
	char buf[160], *end;
	long code;

	if (alen >= sizeof(buf))
		return answer_error("usage: close CODE [REASON] (REASON at most 123 bytes)");
	memcpy(buf, args, alen);
	buf[alen] = '\0';
	code = strtol(buf, &end, 10);
	/* what a server may send (RFC 6455 7.4), we may send too */
	if (end == buf || (*end && *end != ' ') || code > 4999 || !wsrx_close_code_valid((int)code))
		return answer_error("close: invalid code '%.*s' (use 1000, 1001-1003, 1007-1014 or "
				    "3000-4999)",
				    (int)strcspn(buf, " "), buf);
	if (*end == ' ')
		end++;
	if (strlen(end) > 123 || !utf8_valid(end, strlen(end)))
		return answer_error("close: REASON must be valid UTF-8 of at most 123 bytes");
	return answer(ops->close(ops->ud, (int)code, end));
}

static json_object *handle(const struct control_ops *ops, const char *line, size_t len)
{
	const char *sp, *args;
	size_t vlen, alen;
	json_object *o;

	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	sp = memchr(line, ' ', len);
	vlen = sp ? (size_t)(sp - line) : len;
	args = sp ? sp + 1 : line + len;
	alen = sp ? len - vlen - 1 : 0;

	if (is(line, vlen, "send")) {
		if (!sp)
			return answer_error("usage: send TEXT");
		if (!utf8_valid(args, alen))
			return answer_error("send: TEXT is not valid UTF-8");
		return answer(ops->send(ops->ud, args, alen));
	}
	if (is(line, vlen, "close")) {
		if (!sp)
			return answer_error(
			    "usage: close CODE [REASON] (REASON at most 123 bytes)");
		return handle_close(ops, args, alen);
	}
	if (is(line, vlen, "reconnect") && sp && alen == 5 && !memcmp(args, "--now", 5))
		return answer(ops->request(ops->ud, SUP_REQ_RECONNECT));
	if (is(line, vlen, "reconnect") && sp)
		return answer_error("usage: reconnect [--now]");
	if (sp && alen)
		return answer_error("'%.*s' takes no arguments", (int)(vlen > 32 ? 32 : vlen),
				    line);
	if (is(line, vlen, "status"))
		return status_answer(ops);
	if (is(line, vlen, "metrics"))
		return metrics_answer(ops);
	if (is(line, vlen, "watch"))
		return watch_answer(ops);
	if (is(line, vlen, "reconnect"))
		return answer(ops->request(ops->ud, SUP_REQ_ROTATE));
	if (is(line, vlen, "pause"))
		return answer(ops->request(ops->ud, SUP_REQ_PAUSE));
	if (is(line, vlen, "resume"))
		return answer(ops->request(ops->ud, SUP_REQ_RESUME));
	if (is(line, vlen, "reload"))
		return answer(ops->reload(ops->ud));
	o = answer_error("unknown command (use status, metrics, watch, send, reconnect, close, "
			 "pause, resume, reload)");
	/* the verb may be any bytes: jstr makes them valid UTF-8, json-c escapes the rest */
	if (o)
		json_object_object_add(o, "command", jstr(line, vlen > 64 ? 64 : vlen));
	return o;
}

char *control_handle(const struct control_ops *ops, const char *line, size_t len, size_t *olen)
{
	json_object *o = handle(ops, line, len);
	const char *s = o ? json_object_to_json_string_length(
				o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, olen)
			  : NULL;
	char *out = s ? strdup(s) : NULL;

	json_object_put(o);
	return out;
}

/* Gone, a write failed, or dropped below: silently, as a control client may just go. */
static void client_closed(void *ud, struct peer *p, const char *why)
{
	struct client *cl = ud;
	struct control *c = cl->c;

	for (size_t i = 0; i < c->n; i++) {
		if (c->clients[i] == cl) {
			c->clients[i] = c->clients[--c->n];
			break;
		}
	}
	peer_destroy(cl->p);
	free(cl);
}

/* Queue one answer line and write what the socket takes; false: the client is dropped. */
static bool reply(struct client *cl, const char *s, size_t len)
{
	size_t unread = peer_pending_output(cl->p);

	if (peer_send(cl->p, (const unsigned char *)s, len, false) == PEER_SENT) {
		peer_flush(cl->p);
		return true;
	}
	if (unread + len + 1 > OUT_LIMIT)
		log_msg(LOG_WARNING, "%s: a control client stopped reading answers: dropped",
			cl->c->li.path);
	peer_drop(cl->p, "stopped reading");
	return false;
}

static bool is_watch(const char *line, size_t len)
{
	while (len && line[len - 1] == '\r')
		len--;
	return len == 5 && !memcmp(line, "watch", 5);
}

/* One request line (any bytes: each command checks its own text) gets one answer. */
static bool request(void *ud, const unsigned char *line, size_t len, bool binary)
{
	struct client *cl = ud;
	size_t olen = 0;
	char *out = control_handle(&cl->c->ops, (const char *)line, len, &olen);
	bool ok = out ? reply(cl, out, olen) : reply(cl, OOM_ANSWER, strlen(OOM_ANSWER));

	if (ok && out && is_watch((const char *)line, len)) {
		cl->watching = true;
		peer_ignore_input(cl->p); /* an event stream: input is ignored */
	}
	free(out);
	return true;
}

/* The rest of the stream cannot be trusted to be in step: answer, then the peer drops it. */
static void request_too_long(void *ud, struct peer *p, const char *why)
{
	static const char e[] = "{\"ok\":false,\"error\":\"request line too long\"}";

	reply(ud, e, sizeof(e) - 1);
}

void control_event(struct control *c, const char *json, size_t len)
{
	/* backwards: a client dropped here is replaced by one already done */
	for (size_t i = c ? c->n : 0; i-- > 0;) {
		struct client *cl = c->clients[i];

		if (cl->watching)
			reply(cl, json, len); /* false: dropped, which the loop allows */
	}
}

static void accepted(void *ud, int fd)
{
	struct control *c = ud;
	struct peer_ops ops = {.ev.message = request,
			       .closed = client_closed,
			       .drops = &c->unreported,
			       .bad_frame = request_too_long,
			       .any_text = true};
	struct client *cl;

	if (c->n == MAX_CLIENTS || !(cl = calloc(1, sizeof(*cl)))) {
		log_msg(LOG_WARNING, "%s: too many control clients: refusing one", c->li.path);
		close(fd);
		return;
	}
	ops.ev.ud = ops.ud = cl;
	cl->c = c;
	cl->p = peer_create(c->li.loop, fd, fd, FRAMING_LINES, c->max_line, OUT_LIMIT,
			    "control client", &ops);
	if (!cl->p) {
		close(fd);
		free(cl);
		return;
	}
	c->clients[c->n++] = cl;
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
	c->ops = *ops;
	c->max_line = max_line;
	if (listener_open(&c->li, loop, path, mode, accepted, c, err, errlen) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

void control_destroy(struct control *c)
{
	if (!c)
		return;
	listener_close(&c->li);
	while (c->n)
		client_closed(c->clients[c->n - 1], NULL, "exit");
	free(c);
}

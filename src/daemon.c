#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "bridge.h"
#include "config.h"
#include "control.h"
#include "endpoint.h"
#include "exec.h"
#include "json.h"
#include "link.h"
#include "log.h"
#include "notify.h"
#include "spool.h"
#include "queue.h"
#include "stdio_bridge.h"
#include "supervisor.h"
#include "tls.h"

struct daemon {
	struct ev_loop *loop;
	const struct wst_config *cfg;
	struct daemon_opts opts;
	struct queue q;
	struct link *link;
	struct supervisor sup;
	struct stdio_bridge *sio;
	struct bridge *bridge;
	struct exec_handler *exec;
	struct endpoint local[3];	/* stdio, bridge, exec: the ones configured */
	size_t n_local;
	struct control *control;
	struct spool *spool;
	ev_prepare spool_sync;
	ev_timer spool_retry;
	uint64_t spool_confirmed;	/* every seq below this is gone from the spool */
	bool spool_failing;

	ev_signal sig_term, sig_int, sig_hup;
	ev_timer flow_timer;
	bool rx_pause_local;
	ev_timer retry_timer, drain_timer, linger_timer;
	ev_tstamp linger_deadline;

	bool stopping;		/* SIGTERM: drain, close with 1001, exit */
	bool eof;		/* stdin ended: deliver, close with 1000, exit */
	bool closing;		/* the final close was requested */
	bool lingered;		/* after stdin EOF, the server had its quiet moment */
	bool reconnect_pending;	/* reload or `reconnect`: connect again at once when it ends */
	bool paused;		/* `pause`: stay down until `resume` */
	int exit_code;

	enum link_fail last_fail;
	unsigned streak;		/* failures and short-lived links in a row */
	unsigned tries;			/* attempts since the last good link */
	int last_sig;			/* close code or HTTP status of the last failure */
	bool flapping;			/* the last link dropped before reset_after_s */
	double repeat_tokens;
	uint64_t repeat_refill_ms;
	unsigned suppressed;
	size_t url_idx;		/* into link.url + link.fallback_urls */
	time_t connected_since;
	char last_error[512];
	char config_error[1024];
	int last_close_code;
	char last_close_reason[124];
	unsigned long long drops_logged;
};

/*
 * After stdin EOF and the last confirmation, answers to our last messages
 * may still be on their way (a pong can overtake a server's reply), and lws
 * drops data that arrives after our close. So wait until the server has
 * been quiet this long, at most link.drain_timeout_s, before closing.
 */
#define EOF_QUIET_S 0.3

static const char *cur_url(const struct daemon *d)
{
	return config_url(d->cfg, d->url_idx % config_url_count(d->cfg));
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void connect_now(struct daemon *d);

static void quit(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->retry_timer);
	ev_timer_stop(d->loop, &d->drain_timer);
	ev_timer_stop(d->loop, &d->linger_timer);
	ev_timer_stop(d->loop, &d->flow_timer);
	ev_break(d->loop, EVBREAK_ALL);
}

/* The end of the run: once everything we owe the server is delivered. */
static void maybe_finish(struct daemon *d)
{
	int code;
	const char *reason;

	if (!d->stopping && !(d->eof && !queue_len(&d->q)))
		return;
	if (d->stopping) {
		code = LWS_CLOSE_STATUS_GOINGAWAY;
		reason = "going away";
		if (link_up(d->link) && queue_len(&d->q) && ev_is_active(&d->drain_timer))
			return; /* still draining */
	} else {
		code = LWS_CLOSE_STATUS_NORMAL;
		reason = "";
		if (link_up(d->link) && !d->lingered) {
			if (!ev_is_active(&d->linger_timer)) {
				d->linger_deadline = ev_now(d->loop) + d->cfg->drain_timeout_s;
				ev_timer_set(&d->linger_timer, 0, EOF_QUIET_S);
				ev_timer_again(d->loop, &d->linger_timer);
			}
			return;
		}
	}
	if (link_up(d->link)) {
		if (!d->closing) {
			d->closing = true;
			link_request_close(d->link, code, reason);
		}
	} else if (link_active(d->link)) {
		link_abort(d->link, "shutting down");
	} else {
		quit(d);
	}
}

static void linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	ev_timer_stop(loop, w);
	d->lingered = true;
	maybe_finish(d);
}

/* ---- messages in and out ---- */

/* Keep the spool in step with the queue: what left the queue leaves the spool. */
static void spool_catch_up(struct daemon *d)
{
	uint64_t head = queue_head_seq(&d->q);

	if (!d->spool || head <= d->spool_confirmed)
		return;
	if (spool_confirm(d->spool, head - 1) < 0)
		log_errno(LOG_WARNING, "spool %s: recording confirmations", d->cfg->spool_dir);
	d->spool_confirmed = head;
}

/*
 * A message from a local program. false: refused for now, and the sender is
 * held back until there is room (overflow = reject and full, or hold set and
 * full, or the spool cannot take it).
 */
/*
 * While the link is up the queue drains within a round trip or two, so a
 * stream (stdin, a bridge client, the exec handler) need not run further
 * ahead than this: reading on would only turn its data into queue memory.
 */
#define READ_AHEAD_BYTES (1024 * 1024)

enum source {
	SRC_ONE,	/* a single message (wstetherctl send) */
	SRC_STREAM,	/* a bridge client or the exec handler */
	SRC_STDIN,	/* a pipe: held back when full, never dropped */
};

static bool enqueue(struct daemon *d, const unsigned char *data, size_t len, bool binary,
		    enum source src)
{
	unsigned long long dropped = d->q.dropped;
	bool hold = src == SRC_STDIN;

	if (d->stopping)
		return false;
	/* while the link drains the queue, a stream waits rather than push out older messages */
	if (src != SRC_ONE && link_up(d->link) &&
	    (d->q.bytes > READ_AHEAD_BYTES || !queue_has_room(&d->q, len)))
		return false;
	if (len > d->q.max_bytes) {
		/* larger than the whole queue can never fit: drop it rather than stall */
		log_msg(LOG_WARNING, "a local message of %zu bytes exceeds queue.max_bytes: dropped",
			len);
		return true;
	}
	if (!queue_has_room(&d->q, len) && (hold || d->q.overflow == QUEUE_REJECT)) {
		if (!hold)
			d->q.rejected++;
		return false;
	}
	if (d->spool && spool_append(d->spool, d->q.next_seq, data, len, binary) < 0) {
		/* a full disk is an overflow too: hold the sender back, lose nothing */
		if (!d->spool_failing)
			log_errno(LOG_WARNING, "spool %s: cannot write a message (holding local "
				  "senders back until the queue drains)", d->cfg->spool_dir);
		d->spool_failing = true;
		/* with nothing in flight no confirmation will come to wake them: poll */
		if (!ev_is_active(&d->spool_retry))
			ev_timer_again(d->loop, &d->spool_retry);
		return false;
	}
	if (d->spool_failing) {
		log_msg(LOG_NOTICE, "spool %s: writing again", d->cfg->spool_dir);
		d->spool_failing = false;
		ev_timer_stop(d->loop, &d->spool_retry);
	}
	if (queue_push(&d->q, data, len, binary) < 0) {
		log_msg(LOG_ERR, "out of memory queueing a local message");
		/* the spool has this seq: never hand it out again */
		d->q.next_seq++;
		return false;
	}
	if (d->q.dropped != dropped) {
		if ((d->drops_logged++ % 1000) == 0)
			log_msg(LOG_WARNING, "queue full (queue.max_messages %zu, max_bytes %zu): "
				"dropped the oldest message(s), %llu so far", d->q.max_messages,
				d->q.max_bytes, (unsigned long long)d->q.dropped);
		spool_catch_up(d);
	}
	link_kick(d->link);
	return true;
}

/* One fdatasync per loop iteration that wrote, not one per message. */
static void spool_sync_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct daemon *d = w->data;

	if (spool_dirty(d->spool) && spool_sync(d->spool) < 0)
		log_errno(LOG_WARNING, "spool %s: fdatasync", d->cfg->spool_dir);
}

static int spool_replay(void *ud, uint64_t seq, const void *data, size_t len, bool binary)
{
	struct daemon *d = ud;

	/* the queue's limits may have shrunk since: never drop what was spooled */
	size_t mm = d->q.max_messages, mb = d->q.max_bytes;

	d->q.max_messages = d->q.max_bytes = SIZE_MAX;
	d->q.next_seq = seq;
	if (queue_push(&d->q, data, len, binary) < 0) {
		d->q.max_messages = mm;
		d->q.max_bytes = mb;
		errno = ENOMEM;
		return -1;
	}
	d->q.max_messages = mm;
	d->q.max_bytes = mb;
	return 0;
}

static void resume_local(struct daemon *d);

static void spool_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	if (d->spool_failing)
		resume_local(d);
	else
		ev_timer_stop(loop, w);
}

static void spool_warn(void *ud, const char *msg)
{
	log_msg(LOG_WARNING, "spool: %s", msg);
}

static int open_spool(struct daemon *d)
{
	struct spool_params p = { 0, spool_replay, spool_warn, d };
	struct spool_stats st;

	d->spool = spool_open(d->cfg->spool_dir, &p, &st);
	if (!d->spool) {
		if (errno == EWOULDBLOCK)
			log_msg(LOG_ERR, "spool %s: in use by another process", d->cfg->spool_dir);
		else
			log_errno(LOG_ERR, "spool %s: cannot open (queue.spool_dir)",
				  d->cfg->spool_dir);
		return -1;
	}
	if (d->q.next_seq <= st.last_seq)
		d->q.next_seq = st.last_seq + 1;
	d->spool_confirmed = queue_head_seq(&d->q);
	if (st.replayed)
		log_msg(LOG_NOTICE, "spool %s: %zu message(s) (%llu bytes) from before the restart "
			"will be sent", d->cfg->spool_dir, st.replayed,
			(unsigned long long)st.replayed_bytes);
	ev_prepare_init(&d->spool_sync, spool_sync_cb);
	ev_timer_init(&d->spool_retry, spool_retry_cb, 0, 1.0);
	d->spool_sync.data = d->spool_retry.data = d;
	ev_prepare_start(d->loop, &d->spool_sync);
	return 0;
}

static bool on_local_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	return enqueue(ud, data, len, binary, SRC_STREAM);
}

/* A pipe can wait: stdin is held back when the queue is full, never dropped. */
static bool on_stdin_line(void *ud, const char *line, size_t len)
{
	return enqueue(ud, (const unsigned char *)line, len, false, SRC_STDIN);
}

/*
 * Back-pressure from local readers to the server: above ENDPOINT_HIGH_WATER
 * bytes waiting for stdout, the exec handler, or a bridge client that read
 * some in the last FLOW_ACTIVE_S, stop reading from the server; at
 * ENDPOINT_LOW_WATER, read on. A client that reads nothing does not count:
 * its backlog grows until it is dropped, and one that stalls while the link
 * waits is dropped (a handler terminated) after FLOW_STALL_S.
 */
#define FLOW_ACTIVE_S 0.2
#define FLOW_STALL_S 5.0

static void update_rx_pause(struct daemon *d)
{
	link_pause_rx(d->link, d->rx_pause_local);
}

static void flow_check(struct daemon *d)
{
	size_t pending = 0;

	for (size_t i = 0; i < d->n_local; i++) {
		size_t p = d->local[i].impl->pending(d->local[i].self, FLOW_ACTIVE_S);

		if (p > pending)
			pending = p;
	}
	if (!d->rx_pause_local && pending > ENDPOINT_HIGH_WATER) {
		d->rx_pause_local = true;
		update_rx_pause(d);
		ev_timer_again(d->loop, &d->flow_timer);
	} else if (d->rx_pause_local && pending <= ENDPOINT_LOW_WATER) {
		d->rx_pause_local = false;
		update_rx_pause(d);
		ev_timer_stop(d->loop, &d->flow_timer);
	}
}

static void on_local_drained(void *ud)
{
	struct daemon *d = ud;

	if (d->rx_pause_local)
		flow_check(d);
}

static void flow_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	for (size_t i = 0; i < d->n_local; i++)
		if (d->local[i].impl->stalled)
			d->local[i].impl->stalled(d->local[i].self, FLOW_STALL_S);
	flow_check(d);
}

static void on_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct daemon *d = ud;

	if (ev_is_active(&d->linger_timer) && ev_now(d->loop) < d->linger_deadline)
		ev_timer_again(d->loop, &d->linger_timer);
	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->deliver(d->local[i].self, data, len, binary);
	flow_check(d);
}

/* Local senders held back (full queue, read-ahead) may go on. */
static void resume_local(struct daemon *d)
{
	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->resume(d->local[i].self);
}

static void on_confirmed(void *ud)
{
	struct daemon *d = ud;

	spool_catch_up(d);
	resume_local(d);
	if (d->stopping && !queue_len(&d->q))
		ev_timer_stop(d->loop, &d->drain_timer);
	maybe_finish(d);
}

/* ---- the link's life ---- */

/*
 * Repeats of one failure (a server down for hours, one that accepts and
 * drops) are logged from a bucket of REPEAT_BURST lines that refills at one
 * line a second; the lines in between go to debug and are counted.
 */
#define REPEAT_BURST 10.0
#define REPEAT_PER_S 1.0
/* A link that drops sooner than this is "flapping": its drops count as repeats. */
#define FLAP_MS 1000

static bool repeat_should_log(struct daemon *d, uint64_t now)
{
	d->repeat_tokens += (double)(now - d->repeat_refill_ms) / 1000.0 * REPEAT_PER_S;
	if (d->repeat_tokens > REPEAT_BURST)
		d->repeat_tokens = REPEAT_BURST;
	d->repeat_refill_ms = now;
	if (d->repeat_tokens >= 1.0) {
		d->repeat_tokens -= 1.0;
		return true;
	}
	d->suppressed++;
	return false;
}

static void on_up(void *ud)
{
	struct daemon *d = ud;
	uint64_t now = now_ms(), down = sup_up(&d->sup, now);
	struct log_ctx lc = { .url = cur_url(d), .event = "connect", .attempt = 0 };

	d->connected_since = time(NULL);
	/* a link that dropped at once, again and again: no notice for every return */
	if (d->flapping && d->streak > 1)
		log_event(repeat_should_log(d, now) ? LOG_INFO : LOG_DEBUG, &lc,
			  "connected to %s again after %.1f s down (it dropped %u time(s) in a row)",
			  cur_url(d), (double)down / 1000.0, d->streak);
	else if (down)
		log_event(LOG_NOTICE, &lc, "connected to %s after %.1f s down", cur_url(d),
			  (double)down / 1000.0);
	else
		log_event(LOG_NOTICE, &lc, "connected to %s", cur_url(d));
	notify_status("connected to %s", cur_url(d));
	maybe_finish(d);
}

static enum sup_cause cause_of(const struct link_end *e)
{
	if (e->fail == LINK_FAIL_HTTP) {
		if (e->http_status == 401 || e->http_status == 403)
			return SUP_AUTH_REJECTED;
		if (e->http_status == 429 || e->http_status == 503)
			return SUP_RETRY_AFTER;
	}
	if (e->close_code == 1001 || e->close_code == 1012)
		return SUP_SERVER_RESTART;
	return e->was_up ? SUP_CLOSED : SUP_FAILED;
}

static void on_down(void *ud)
{
	struct daemon *d = ud;
	const struct link_end *e = link_last_end(d->link);
	struct log_ctx lc = { .url = cur_url(d), .event = "disconnect",
			      .attempt = d->tries, .close_code = e->close_code };
	uint64_t now = now_ms();
	unsigned delay;
	bool good;
	int level, sig;

	d->connected_since = 0;
	/* the read-ahead limit applies only while the link is up */
	resume_local(d);
	if (e->close_code) {
		d->last_close_code = e->close_code;
		snprintf(d->last_close_reason, sizeof(d->last_close_reason), "%s", e->close_reason);
	}
	if (!e->by_request)
		snprintf(d->last_error, sizeof(d->last_error), "%s", e->msg);
	if (d->stopping || d->eof) {
		if (d->closing || d->stopping || !queue_len(&d->q)) {
			log_event(LOG_INFO, &lc, "%s", e->msg);
			quit(d);
			return;
		}
	}
	if (d->paused) {
		log_event(LOG_NOTICE, &lc, "link closed: paused until `wstetherctl resume`");
		sup_down(&d->sup, now_ms(), SUP_SERVER_RESTART, 0);
		sup_set_state(&d->sup, SUP_PAUSED);
		notify_status("paused");
		return;
	}
	if (d->reconnect_pending) {
		d->reconnect_pending = false;
		log_event(LOG_NOTICE, &lc, "reconnecting on request");
		sup_down(&d->sup, now_ms(), SUP_SERVER_RESTART, 0);
		backoff_reset(&d->sup.bo);
		connect_now(d);
		return;
	}

	/*
	 * The first failure after a good state warns, as does a different failure
	 * (another kind, close code or HTTP status); repeats are info, rate-limited.
	 */
	good = e->was_up && d->sup.state == SUP_CONNECTED &&
	       now - d->sup.connected_since >= FLAP_MS;
	sig = e->close_code ? e->close_code : e->http_status;
	if (good)
		d->tries = 0;
	if (e->by_request) {
		level = LOG_NOTICE;
	} else if (good || e->fail != d->last_fail || sig != d->last_sig) {
		level = LOG_WARNING;
		d->streak = 1;
		d->repeat_tokens = REPEAT_BURST;
		d->repeat_refill_ms = now;
		d->suppressed = 0;
	} else {
		d->streak++;
		level = repeat_should_log(d, now) ? LOG_INFO : LOG_DEBUG;
	}
	d->last_fail = e->fail;
	d->last_sig = sig;
	d->flapping = e->was_up && !good && !e->by_request;
	delay = sup_down(&d->sup, now, cause_of(e), e->retry_after_s);
	if (level == LOG_INFO && d->suppressed) {
		log_event(level, &lc, "%s (attempt %u; %u similar line(s) not shown)", e->msg,
			  d->tries, d->suppressed);
		d->suppressed = 0;
	} else if (level == LOG_INFO || level == LOG_DEBUG) {
		log_event(level, &lc, "%s (attempt %u)", e->msg, d->tries);
	} else {
		log_event(level, &lc, "%s", e->msg);
	}
	/* after a failure, the next URL of link.fallback_urls, wrapping around */
	if (!e->by_request)
		d->url_idx = (d->url_idx + 1) % config_url_count(d->cfg);
	lc.event = "retry";
	lc.url = cur_url(d);
	lc.attempt = d->tries + 1;
	log_event(level == LOG_DEBUG ? LOG_DEBUG : LOG_INFO, &lc,
		  "reconnecting to %s in %.1f s (attempt %u)", cur_url(d), delay / 1000.0,
		  lc.attempt);
	notify_status("reconnecting in %.1f s (attempt %u): %s", delay / 1000.0, lc.attempt,
		      e->msg);
	ev_timer_set(&d->retry_timer, delay / 1000.0, 0);
	ev_timer_start(d->loop, &d->retry_timer);
}

static void connect_now(struct daemon *d)
{
	struct log_ctx lc = { .url = cur_url(d), .event = "connecting" };

	ev_timer_stop(d->loop, &d->retry_timer);
	sup_attempt(&d->sup);
	lc.attempt = ++d->tries;
	log_event(LOG_DEBUG, &lc, "connecting to %s (attempt %u)", cur_url(d), d->tries);
	notify_status("connecting to %s (attempt %u)", cur_url(d), d->tries);
	d->closing = false;
	if (link_start(d->link, d->cfg, cur_url(d)) < 0) {
		/* nothing to destroy: take the down path straight away */
		on_down(d);
	}
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	connect_now(w->data);
}

static void drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	log_msg(LOG_WARNING, "drain timeout: %zu message(s) not delivered before shutdown",
		queue_len(&d->q));
	maybe_finish(d);
}

static void stop_local_input(struct daemon *d)
{
	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->stop_input(d->local[i].self);
}

static void begin_stop(struct daemon *d, const char *why)
{
	if (d->stopping) {
		log_msg(LOG_NOTICE, "%s again: exiting now", why);
		quit(d);
		return;
	}
	d->stopping = true;
	notify_stopping();
	log_msg(LOG_NOTICE, "%s: stopping", why);
	stop_local_input(d);
	ev_timer_stop(d->loop, &d->retry_timer);
	if (link_up(d->link) && queue_len(&d->q) && d->cfg->drain_timeout_s) {
		ev_timer_set(&d->drain_timer, d->cfg->drain_timeout_s, 0);
		ev_timer_start(d->loop, &d->drain_timer);
	}
	maybe_finish(d);
}

static void sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	begin_stop(w->data, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- reload ---- */

static bool str_differ(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

/* What the link was built from: a change needs a new connection. */
static bool link_settings_changed(const struct wst_config *a, const struct wst_config *b)
{
	size_t n = config_url_count(a);

	if (n != config_url_count(b) || a->n_headers != b->n_headers)
		return true;
	for (size_t i = 0; i < n; i++)
		if (str_differ(config_url(a, i), config_url(b, i)))
			return true;
	for (size_t i = 0; i < a->n_headers; i++)
		if (str_differ(a->headers[i].name, b->headers[i].name) ||
		    str_differ(a->headers[i].value, b->headers[i].value) ||
		    str_differ(a->headers[i].value_file, b->headers[i].value_file))
			return true;
	return str_differ(a->subprotocol, b->subprotocol) || str_differ(a->origin, b->origin) ||
	       str_differ(a->ca_file, b->ca_file) || str_differ(a->cert_file, b->cert_file) ||
	       str_differ(a->key_file, b->key_file) || str_differ(a->server_name, b->server_name) ||
	       a->insecure != b->insecure || a->connect_timeout_s != b->connect_timeout_s ||
	       a->max_message_bytes != b->max_message_bytes ||
	       a->ping_interval_s != b->ping_interval_s || a->pong_timeout_s != b->pong_timeout_s;
}

/* Local endpoints are set up at start; a reload that moves them needs a restart. */
static void warn_restart_only(const struct wst_config *a, const struct wst_config *b)
{
	bool exec_differs = false;

	for (size_t i = 0; a->exec_command[i] || b->exec_command[i]; i++)
		if (str_differ(a->exec_command[i], b->exec_command[i])) {
			exec_differs = true;
			break;
		}
	if (str_differ(a->bridge_socket, b->bridge_socket) || a->bridge_mode != b->bridge_mode ||
	    a->bridge_framing != b->bridge_framing || str_differ(a->control_socket, b->control_socket) ||
	    exec_differs || a->exec_framing != b->exec_framing ||
	    str_differ(a->spool_dir, b->spool_dir))
		log_msg(LOG_WARNING, "reload: bridge, exec, control and spool settings take effect "
			"only at the next restart");
}

static const char *reload(struct daemon *d)
{
	struct config_error err;
	const struct wst_config *n;
	struct log_ctx lc = { .url = cur_url(d), .event = "reload" };

	notify_reloading();
	n = config_load(d->opts.config_path, d->opts.url_override, &err);
	if (n && tls_check(n, err.msg, sizeof(err.msg)) < 0) {
		config_free(n);
		n = NULL;
	}
	if (!n) {
		log_event(LOG_ERR, &lc, "reload failed, keeping the running configuration: %s",
			  err.msg);
		snprintf(d->config_error, sizeof(d->config_error), "%s", err.msg);
		notify_ready();
		return d->config_error;
	}
	d->config_error[0] = '\0';
	if (!d->opts.log_level_forced)
		log_set_level(n->log_level);
	warn_restart_only(d->cfg, n);
	d->q.max_messages = n->queue_max_messages;
	d->q.max_bytes = n->queue_max_bytes;
	d->q.overflow = n->queue_overflow == OVERFLOW_REJECT ? QUEUE_REJECT : QUEUE_DROP_OLDEST;
	if (link_settings_changed(d->cfg, n)) {
		d->url_idx = 0;
		if (link_active(d->link)) {
			d->reconnect_pending = true;
			link_request_close(d->link, LWS_CLOSE_STATUS_NORMAL, "reconfigured");
		} else if (ev_is_active(&d->retry_timer)) {
			/* waiting: the new settings may work at once */
			ev_timer_stop(d->loop, &d->retry_timer);
			ev_timer_set(&d->retry_timer, 0, 0);
			ev_timer_start(d->loop, &d->retry_timer);
		}
	}
	/* the link, bridge and exec copied what they need: the old config can go */
	config_free(d->cfg);
	d->cfg = n;
	lc.url = cur_url(d);
	log_event(LOG_NOTICE, &lc, "configuration reloaded from %s",
		  n->path ? n->path : "the command line");
	notify_ready();
	return NULL;
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	if (!d->stopping)
		reload(d);
}

/* ---- control socket ---- */

static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

static void ctl_status(void *ud, struct json *j)
{
	struct daemon *d = ud;
	const struct link_stats *st = link_stats(d->link);
	const char *state;
	char ts[32];

	state = d->paused && !link_active(d->link) ? "paused"
		: link_up(d->link)		   ? "connected"
		: link_active(d->link)		   ? "connecting"
		: d->stopping			   ? "stopping"
						   : "waiting";
	json_key(j, "state");
	json_str(j, state);
	json_key(j, "url");
	json_str(j, cur_url(d));
	json_key(j, "connected_since");
	if (d->connected_since) {
		iso_time(d->connected_since, ts, sizeof(ts));
		json_str(j, ts);
	} else {
		json_null(j);
	}
	json_key(j, "attempts");
	json_uint(j, d->sup.attempts);
	json_key(j, "reconnects");
	json_uint(j, d->sup.reconnects);
	json_key(j, "next_retry_ms");
	if (ev_is_active(&d->retry_timer))
		json_uint(j, (uint64_t)(ev_timer_remaining(d->loop, &d->retry_timer) * 1000));
	else
		json_null(j);
	json_key(j, "sent");
	json_uint(j, st->sent);
	json_key(j, "received");
	json_uint(j, st->received);
	json_key(j, "resent");
	json_uint(j, d->q.resent);
	json_key(j, "queue");
	json_obj_begin(j);
	json_key(j, "messages");
	json_uint(j, queue_len(&d->q));
	json_key(j, "bytes");
	json_uint(j, d->q.bytes);
	json_key(j, "dropped");
	json_uint(j, d->q.dropped);
	json_key(j, "dropped_bytes");
	json_uint(j, d->q.dropped_bytes);
	json_key(j, "max_messages");
	json_uint(j, d->q.max_messages);
	json_key(j, "max_bytes");
	json_uint(j, d->q.max_bytes);
	json_key(j, "overflow");
	json_str(j, d->q.overflow == QUEUE_REJECT ? "reject" : "drop-oldest");
	json_obj_end(j);
	json_key(j, "drops");
	json_obj_begin(j);
	json_key(j, "queue_overflow");
	json_uint(j, d->q.dropped);
	json_key(j, "rejected");
	json_uint(j, d->q.rejected);
	json_key(j, "unframable");
	json_uint(j, bridge_unframable(d->bridge));
	json_key(j, "bridge_clients_dropped");
	json_uint(j, bridge_dropped_clients(d->bridge));
	json_obj_end(j);
	json_key(j, "last_error");
	if (d->last_error[0])
		json_str(j, d->last_error);
	else
		json_null(j);
	json_key(j, "last_close");
	if (d->last_close_code) {
		json_obj_begin(j);
		json_key(j, "code");
		json_int(j, d->last_close_code);
		json_key(j, "reason");
		json_str(j, d->last_close_reason);
		json_obj_end(j);
	} else {
		json_null(j);
	}
	json_key(j, "tls");
	json_obj_begin(j);
	json_key(j, "cert_not_after");
	if (*link_cert_not_after(d->link))
		json_str(j, link_cert_not_after(d->link));
	else
		json_null(j);
	json_key(j, "insecure");
	json_bool(j, d->cfg->insecure);
	json_obj_end(j);
	json_key(j, "bridge_clients");
	json_uint(j, bridge_clients(d->bridge));
	json_key(j, "exec_pid");
	json_int(j, exec_pid(d->exec));
	json_key(j, "exec_restarts");
	json_uint(j, exec_restarts(d->exec));
	json_key(j, "config_error");
	if (d->config_error[0])
		json_str(j, d->config_error);
	else
		json_null(j);
}

static const char *ctl_send(void *ud, const char *text, size_t len)
{
	struct daemon *d = ud;

	if (d->stopping)
		return "stopping";
	if (len > d->cfg->max_message_bytes)
		return "message larger than link.max_message_bytes";
	return enqueue(d, (const unsigned char *)text, len, false, SRC_ONE) ? NULL : "queue full";
}

static const char *ctl_reconnect(void *ud)
{
	struct daemon *d = ud;

	if (d->stopping)
		return "stopping";
	if (d->paused)
		return "paused: use resume";
	backoff_reset(&d->sup.bo);
	if (link_active(d->link)) {
		d->reconnect_pending = true;
		link_request_close(d->link, LWS_CLOSE_STATUS_NORMAL, "reconnect");
	} else {
		connect_now(d);
	}
	return NULL;
}

static const char *ctl_close(void *ud, int code, const char *reason)
{
	struct daemon *d = ud;

	if (!link_up(d->link))
		return "not connected";
	link_request_close(d->link, code, reason);
	return NULL;
}

static const char *ctl_pause(void *ud)
{
	struct daemon *d = ud;

	if (d->paused)
		return NULL;
	d->paused = true;
	log_msg(LOG_NOTICE, "pausing the link on request");
	ev_timer_stop(d->loop, &d->retry_timer);
	if (link_active(d->link)) {
		link_request_close(d->link, LWS_CLOSE_STATUS_NORMAL, "paused");
	} else {
		sup_set_state(&d->sup, SUP_PAUSED);
		notify_status("paused");
	}
	return NULL;
}

static const char *ctl_resume(void *ud)
{
	struct daemon *d = ud;

	if (!d->paused)
		return NULL;
	d->paused = false;
	log_msg(LOG_NOTICE, "resuming the link on request");
	if (!link_active(d->link) && !d->stopping)
		connect_now(d);
	return NULL;
}

static const char *ctl_reload(void *ud)
{
	struct daemon *d = ud;

	return d->stopping ? "stopping" : reload(d);
}

/* ---- stdio events ---- */

static void on_eof(void *ud)
{
	struct daemon *d = ud;

	log_msg(LOG_DEBUG, "stdin closed: %zu message(s) left to deliver", queue_len(&d->q));
	d->eof = true;
	maybe_finish(d);
}

static void on_stdout_broken(void *ud)
{
	begin_stop(ud, "stdout closed");
}

/* ---- start and stop ---- */

static void add_local(struct daemon *d, const struct endpoint_impl *impl, void *self)
{
	d->local[d->n_local++] = (struct endpoint){ impl, self };
}

static int open_local(struct daemon *d)
{
	const struct wst_config *cfg = d->cfg;
	struct endpoint_events lev = { d, on_local_message, on_local_drained };
	struct control_ops cops = { d, ctl_status, ctl_send, ctl_reconnect, ctl_close,
				    ctl_pause, ctl_resume, ctl_reload };
	struct stdio_events sev = { d, on_stdin_line, on_eof, on_local_drained, on_stdout_broken };
	char err[512];

	if (*cfg->spool_dir && open_spool(d) < 0)
		return -1;
	if (d->opts.use_stdio && !(d->sio = stdio_create(d->loop, cfg->max_message_bytes, &sev))) {
		log_msg(LOG_ERR, "out of memory");
		return -1;
	}
	if (d->sio)
		add_local(d, &stdio_endpoint, d->sio);
	if (*cfg->bridge_socket &&
	    !(d->bridge = bridge_create(d->loop, cfg, &lev, err, sizeof(err)))) {
		log_msg(LOG_ERR, "bridge.socket %s", err);
		return -1;
	}
	if (d->bridge)
		add_local(d, &bridge_endpoint, d->bridge);
	if (*cfg->control_socket &&
	    !(d->control = control_create(d->loop, cfg->control_socket, 0660,
					  cfg->max_message_bytes + 16, &cops, err, sizeof(err)))) {
		log_msg(LOG_ERR, "control.socket %s", err);
		return -1;
	}
	if (cfg->exec_command[0] && !(d->exec = exec_create(d->loop, cfg, &lev))) {
		log_msg(LOG_ERR, "exec.command: cannot set up the handler");
		return -1;
	}
	if (d->exec)
		add_local(d, &exec_endpoint, d->exec);
	return 0;
}

static void close_local(struct daemon *d)
{
	if (d->spool) {
		ev_prepare_stop(d->loop, &d->spool_sync);
		ev_timer_stop(d->loop, &d->spool_retry);
		spool_catch_up(d);
		if (spool_close(d->spool) < 0)
			log_errno(LOG_WARNING, "spool %s: closing", d->cfg->spool_dir);
		d->spool = NULL;
	}
	/* the handler first: it may take a while to stop, and stdout is written last */
	while (d->n_local) {
		struct endpoint *ep = &d->local[--d->n_local];

		ep->impl->destroy(ep->self);
	}
	d->sio = NULL;
	d->bridge = NULL;
	d->exec = NULL;
	control_destroy(d->control);
}

int daemon_run(const struct wst_config *cfg, const struct daemon_opts *opts)
{
	struct daemon d = { .cfg = cfg, .opts = *opts };
	struct link_events lev = { &d, on_up, on_message, on_confirmed, on_down };
	struct sup_params sp = {
		cfg->backoff_initial_ms, cfg->backoff_max_ms, cfg->backoff_multiplier,
		cfg->backoff_jitter, cfg->backoff_reset_after_s,
	};
	uint64_t seed = (uint64_t)getpid() << 32 ^ now_ms();
	int rc = 1;

	/* mbedTLS writes without MSG_NOSIGNAL; lws also sets this per context */
	signal(SIGPIPE, SIG_IGN);
	/* a spool write past RLIMIT_FSIZE should fail with EFBIG, not kill us */
	signal(SIGXFSZ, SIG_IGN);
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (!d.loop) {
		log_msg(LOG_ERR, "cannot create the event loop");
		config_free(cfg);
		return 1;
	}
	queue_init(&d.q, LWS_PRE, cfg->queue_max_messages, cfg->queue_max_bytes,
		   cfg->queue_overflow == OVERFLOW_REJECT ? QUEUE_REJECT : QUEUE_DROP_OLDEST);
	sup_init(&d.sup, &sp, seed);
	ev_signal_init(&d.sig_term, sig_cb, SIGTERM);
	ev_signal_init(&d.sig_int, sig_cb, SIGINT);
	ev_signal_init(&d.sig_hup, hup_cb, SIGHUP);
	ev_timer_init(&d.retry_timer, retry_cb, 0, 0);
	ev_timer_init(&d.drain_timer, drain_cb, 0, 0);
	ev_timer_init(&d.linger_timer, linger_cb, 0, EOF_QUIET_S);
	ev_timer_init(&d.flow_timer, flow_cb, 0, 0.1);
	d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
	d.retry_timer.data = d.drain_timer.data = d.linger_timer.data = d.flow_timer.data = &d;
	ev_signal_start(d.loop, &d.sig_term);
	ev_signal_start(d.loop, &d.sig_int);
	ev_signal_start(d.loop, &d.sig_hup);

	d.link = link_create(d.loop, &d.q, &lev);
	if (!d.link) {
		log_msg(LOG_ERR, "out of memory");
		goto out;
	}
	if (open_local(&d) < 0)
		goto out;

	notify_init(d.loop);
	notify_ready();
	connect_now(&d);
	ev_run(d.loop, 0);
	rc = d.exit_code;
out:
	link_destroy(d.link);
	close_local(&d);
	if (queue_len(&d.q))
		log_msg(LOG_WARNING, "exiting with %zu undelivered message(s)%s", queue_len(&d.q),
			*d.cfg->spool_dir ? ", kept in the spool" : "");
	queue_finish(&d.q);
	notify_finish();
	ev_signal_stop(d.loop, &d.sig_term);
	ev_signal_stop(d.loop, &d.sig_int);
	ev_signal_stop(d.loop, &d.sig_hup);
	ev_loop_destroy(d.loop);
	config_free(d.cfg);
	return rc;
}

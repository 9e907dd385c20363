#include "daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "notify.h"
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

	ev_signal sig_term, sig_int, sig_hup;
	ev_timer retry_timer, drain_timer, linger_timer;
	ev_tstamp linger_deadline;

	bool stopping;		/* SIGTERM: drain, close with 1001, exit */
	bool eof;		/* stdin ended: deliver, close with 1000, exit */
	bool closing;		/* the final close was requested */
	bool lingered;		/* after stdin EOF, the server had its quiet moment */
	bool reconnect_pending;	/* reload changed the link: reconnect when it ends */
	int exit_code;

	enum link_fail last_fail;
	unsigned same_fail;
	size_t url_idx;		/* into link.url + link.fallback_urls */
};

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

/*
 * After stdin EOF and the last confirmation, answers to our last messages
 * may still be on their way (a pong can overtake a server's reply), and lws
 * drops data that arrives after our close. So wait until the server has
 * been quiet this long, at most link.drain_timeout_s, before closing.
 */
#define EOF_QUIET_S 0.3

static void quit(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->retry_timer);
	ev_timer_stop(d->loop, &d->drain_timer);
	ev_timer_stop(d->loop, &d->linger_timer);
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

static void on_up(void *ud)
{
	struct daemon *d = ud;
	uint64_t down = sup_up(&d->sup, now_ms());
	struct log_ctx lc = { .url = cur_url(d), .event = "connect", .attempt = 0 };

	if (down)
		log_event(LOG_NOTICE, &lc, "connected to %s after %.1f s down", cur_url(d),
			  (double)down / 1000.0);
	else
		log_event(LOG_NOTICE, &lc, "connected to %s", cur_url(d));
	notify_status("connected to %s", cur_url(d));
	d->last_fail = LINK_FAIL_NONE;
	d->same_fail = 0;
	maybe_finish(d);
}

static void linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	ev_timer_stop(loop, w);
	d->lingered = true;
	maybe_finish(d);
}

static void on_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct daemon *d = ud;

	if (ev_is_active(&d->linger_timer) && ev_now(d->loop) < d->linger_deadline)
		ev_timer_again(d->loop, &d->linger_timer);

	if (d->sio)
		stdio_output(d->sio, data, len, binary);
}

static void on_confirmed(void *ud)
{
	struct daemon *d = ud;

	if (d->sio)
		stdio_resume(d->sio);
	if (d->stopping && !queue_len(&d->q))
		ev_timer_stop(d->loop, &d->drain_timer);
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
			      .attempt = d->sup.failures, .close_code = e->close_code };
	unsigned delay;
	int level;

	if (d->stopping || d->eof) {
		if (d->closing || d->stopping || !queue_len(&d->q)) {
			log_event(LOG_INFO, &lc, "%s", e->msg);
			quit(d);
			return;
		}
	}
	if (d->reconnect_pending) {
		d->reconnect_pending = false;
		log_event(LOG_NOTICE, &lc, "reconnecting with the reloaded configuration");
		sup_down(&d->sup, now_ms(), SUP_SERVER_RESTART, 0);
		connect_now(d);
		return;
	}

	/* the first failure after a good state warns; repeats are info */
	if (e->was_up || e->fail != d->last_fail) {
		level = LOG_WARNING;
		d->same_fail = 1;
	} else {
		level = LOG_INFO;
		d->same_fail++;
	}
	d->last_fail = e->was_up ? LINK_FAIL_NONE : e->fail;
	delay = sup_down(&d->sup, now_ms(), cause_of(e), e->retry_after_s);
	/* after a failure, the next URL of link.fallback_urls, wrapping around */
	if (!e->by_request)
		d->url_idx = (d->url_idx + 1) % config_url_count(d->cfg);
	if (level == LOG_INFO)
		log_event(level, &lc, "%s (attempt %u)", e->msg, d->sup.failures);
	else
		log_event(level, &lc, "%s", e->msg);
	lc.event = "retry";
	lc.url = cur_url(d);
	log_event(LOG_INFO, &lc, "reconnecting to %s in %.1f s (attempt %u)", cur_url(d),
		  delay / 1000.0, d->sup.failures + 1);
	notify_status("reconnecting in %.1f s (attempt %u): %s", delay / 1000.0,
		      d->sup.failures + 1, e->msg);
	ev_timer_set(&d->retry_timer, delay / 1000.0, 0);
	ev_timer_start(d->loop, &d->retry_timer);
}

static void connect_now(struct daemon *d)
{
	struct log_ctx lc = { .url = cur_url(d), .event = "connecting" };

	ev_timer_stop(d->loop, &d->retry_timer);
	sup_attempt(&d->sup);
	lc.attempt = d->sup.failures;
	log_event(LOG_DEBUG, &lc, "connecting to %s (attempt %u)", cur_url(d), d->sup.failures);
	notify_status("connecting to %s (attempt %u)", cur_url(d), d->sup.failures);
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
	if (d->sio)
		stdio_stop_input(d->sio);
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

static void reload(struct daemon *d)
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
		notify_ready();
		return;
	}
	if (!d->opts.log_level_forced)
		log_set_level(n->log_level);
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
	config_free(d->cfg);
	d->cfg = n;
	lc.url = cur_url(d);
	log_event(LOG_NOTICE, &lc, "configuration reloaded from %s",
		  n->path ? n->path : "the command line");
	notify_ready();
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	if (!d->stopping)
		reload(d);
}

static void on_queued(void *ud)
{
	struct daemon *d = ud;

	link_kick(d->link);
}

static void on_eof(void *ud)
{
	struct daemon *d = ud;

	log_msg(LOG_DEBUG, "stdin closed: %zu message(s) left to deliver", queue_len(&d->q));
	d->eof = true;
	maybe_finish(d);
}

static void on_rx_pause(void *ud, bool pause)
{
	struct daemon *d = ud;

	link_pause_rx(d->link, pause);
}

static void on_stdout_broken(void *ud)
{
	begin_stop(ud, "stdout closed");
}

int daemon_run(const struct wst_config *cfg, const struct daemon_opts *opts)
{
	struct daemon d = { .cfg = cfg, .opts = *opts };
	struct link_events lev = { &d, on_up, on_message, on_confirmed, on_down };
	struct stdio_events sev = { &d, on_queued, on_eof, on_rx_pause, on_stdout_broken };
	struct sup_params sp = {
		cfg->backoff_initial_ms, cfg->backoff_max_ms, cfg->backoff_multiplier,
		cfg->backoff_jitter, cfg->backoff_reset_after_s,
	};
	uint64_t seed = (uint64_t)getpid() << 32 ^ now_ms();

	/* mbedTLS writes without MSG_NOSIGNAL; lws also sets this per context */
	signal(SIGPIPE, SIG_IGN);
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (!d.loop) {
		log_msg(LOG_ERR, "cannot create the event loop");
		config_free(cfg);
		return 1;
	}
	queue_init(&d.q, LWS_PRE, cfg->queue_max_messages, cfg->queue_max_bytes,
		   QUEUE_DROP_OLDEST);
	sup_init(&d.sup, &sp, seed);
	d.link = link_create(d.loop, &d.q, &lev);
	if (!d.link) {
		log_msg(LOG_ERR, "out of memory");
		config_free(cfg);
		return 1;
	}
	if (opts->use_stdio) {
		d.sio = stdio_create(d.loop, &d.q, cfg->max_message_bytes, &sev);
		if (!d.sio) {
			log_msg(LOG_ERR, "out of memory");
			link_destroy(d.link);
			config_free(cfg);
			return 1;
		}
	}
	ev_signal_init(&d.sig_term, sig_cb, SIGTERM);
	ev_signal_init(&d.sig_int, sig_cb, SIGINT);
	ev_signal_init(&d.sig_hup, hup_cb, SIGHUP);
	ev_timer_init(&d.retry_timer, retry_cb, 0, 0);
	ev_timer_init(&d.drain_timer, drain_cb, 0, 0);
	ev_timer_init(&d.linger_timer, linger_cb, 0, EOF_QUIET_S);
	d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
	d.retry_timer.data = d.drain_timer.data = d.linger_timer.data = &d;
	ev_signal_start(d.loop, &d.sig_term);
	ev_signal_start(d.loop, &d.sig_int);
	ev_signal_start(d.loop, &d.sig_hup);

	notify_init(d.loop);
	notify_ready();
	connect_now(&d);
	ev_run(d.loop, 0);

	link_destroy(d.link);
	if (d.sio) {
		stdio_flush(d.sio);
		stdio_destroy(d.sio);
	}
	if (queue_len(&d.q))
		log_msg(LOG_WARNING, "exiting with %zu undelivered message(s)", queue_len(&d.q));
	queue_finish(&d.q);
	notify_finish();
	ev_signal_stop(d.loop, &d.sig_term);
	ev_signal_stop(d.loop, &d.sig_int);
	ev_signal_stop(d.loop, &d.sig_hup);
	ev_loop_destroy(d.loop);
	config_free(d.cfg);
	return d.exit_code;
}

#include "daemon.h"
#include "daemon_int.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "bridge.h"
#include "config.h"
#include "control.h"
#include "endpoint.h"
#include "exec.h"
#include "instance.h"
#include "link.h"
#include "log.h"
#include "netwatch.h"
#include "notify.h"
#include "outbox.h"
#include "queue.h"
#include "status.h"
#include "stdio_bridge.h"
#include "rng.h"
#include "supervisor.h"
#include "tls.h"

/*
 * After stdin EOF and the last confirmation, answers to our last messages
 * may still be on their way (a pong can overtake a server's reply), and lws
 * drops data that arrives after our close. So wait until the server has
 * been quiet this long, at most link.drain_timeout_s, before closing.
 */
#define EOF_QUIET_S 0.3

static void daemon_quit(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->retry_timer);
	ev_timer_stop(d->loop, &d->drain_timer);
	ev_timer_stop(d->loop, &d->linger_timer);
	ev_timer_stop(d->loop, &d->flow_timer);
	ev_break(d->loop, EVBREAK_ALL);
}

/* The end of the run: once everything we owe the server is delivered. */
static void daemon_maybe_finish(struct daemon *d)
{
	int code;
	const char *reason;

	if (!d->stopping && !(d->eof && !queue_len(&d->out.q)))
		return;
	if (d->stopping) {
		code = LWS_CLOSE_STATUS_GOINGAWAY;
		reason = "going away";
		if (link_up(d->link) && queue_len(&d->out.q) && ev_is_active(&d->drain_timer))
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
	/* a rotation's other link owes nothing: the primary has all that is unconfirmed */
	for (size_t i = 0; i < 2; i++)
		if (d->slots[i].link != d->link && link_active(d->slots[i].link))
			link_abort(d->slots[i].link, "shutting down");
	if (link_up(d->link)) {
		if (!d->closing) {
			d->closing = true;
			link_request_close(d->link, code, reason);
		}
	} else if (link_active(d->link)) {
		link_abort(d->link, "shutting down");
	} else if (!daemon_links_active(d)) {
		daemon_quit(d);
	}
}

static void linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	ev_timer_stop(loop, w);
	d->lingered = true;
	daemon_maybe_finish(d);
}

/* ---- messages in and out ---- */

/*
 * While the link is up the queue drains within a round trip or two, so a
 * stream (stdin, a bridge client, the exec handler) need not run further
 * ahead than this: reading on would only turn its data into queue memory.
 */
#define READ_AHEAD_BYTES (1024 * 1024)

/*
 * A message from a local program. false: refused for now, and the sender is
 * held back until there is room (overflow = reject and full, or hold set and
 * full, or the spool cannot take it).
 */
static bool daemon_enqueue(struct daemon *d, const unsigned char *data, size_t len, bool binary,
			   enum source src)
{
	if (d->stopping)
		return false;
	/* while the link drains the queue, a stream waits rather than push out older messages */
	if (src != SRC_ONE && link_up(d->link) &&
	    (d->out.q.bytes > READ_AHEAD_BYTES || !queue_has_room(&d->out.q, len)))
		return false;
	if (!outbox_put(&d->out, data, len, binary, src == SRC_STDIN))
		return false;
	link_kick(d->link);
	return true;
}

static void daemon_resume_local(struct daemon *d);

static void wake_senders(void *ud)
{
	daemon_resume_local(ud);
}

static bool on_local_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	return daemon_enqueue(ud, data, len, binary, SRC_STREAM);
}

/* A pipe can wait: stdin is held back when the queue is full, never dropped. */
static bool on_stdin_line(void *ud, const char *line, size_t len)
{
	return daemon_enqueue(ud, (const unsigned char *)line, len, false, SRC_STDIN);
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

static void daemon_deliver(struct daemon *d, const unsigned char *data, size_t len, bool binary)
{
	if (ev_is_active(&d->linger_timer) && ev_now(d->loop) < d->linger_deadline)
		ev_timer_again(d->loop, &d->linger_timer);
	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->deliver(d->local[i].self, data, len, binary);
	flow_check(d);
}

/* Local senders held back (full queue, read-ahead) may go on. */
static void daemon_resume_local(struct daemon *d)
{
	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->resume(d->local[i].self);
}

static void daemon_confirmed(struct daemon *d)
{
	outbox_confirmed(&d->out);
	daemon_resume_local(d);
	if (d->stopping && !queue_len(&d->out.q))
		ev_timer_stop(d->loop, &d->drain_timer);
	daemon_maybe_finish(d);
}

static void drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;

	log_msg(LOG_WARNING,
		"drain timeout: %zu message(s) not confirmed by the server before shutdown",
		queue_len(&d->out.q));
	daemon_maybe_finish(d);
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
		daemon_quit(d);
		return;
	}
	d->stopping = true;
	sup_request(&d->sup, SUP_REQ_STOP, daemon_now_ms(), &(struct sup_verdict){ 0 });
	notify_stopping();
	log_event(LOG_NOTICE, &(struct log_ctx){ .event = "stop", .url = daemon_url(d) },
		  "%s: stopping", why);
	stop_local_input(d);
	ev_timer_stop(d->loop, &d->retry_timer);
	if (link_up(d->link) && queue_len(&d->out.q) && d->cfg->drain_timeout_s) {
		ev_timer_set(&d->drain_timer, d->cfg->drain_timeout_s, 0);
		ev_timer_start(d->loop, &d->drain_timer);
	}
	daemon_maybe_finish(d);
}

static void sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	begin_stop(w->data, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	if (!d->stopping)
		daemon_reload(d);
}

/* ---- stdio events ---- */

static void on_eof(void *ud)
{
	struct daemon *d = ud;

	log_msg(LOG_DEBUG, "stdin closed: %zu message(s) left to deliver", queue_len(&d->out.q));
	d->eof = true;
	daemon_maybe_finish(d);
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
	struct control_ops cops;
	struct stdio_events sev = { d, on_stdin_line, on_eof, on_local_drained, on_stdout_broken };
	char err[512];

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
	daemon_control_ops(d, &cops);
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

/* The daemon's own signals and timers, on its loop for its whole life. */
static void init_watchers(struct daemon *d, uint64_t seed)
{
	ev_signal_init(&d->sig_term, sig_cb, SIGTERM);
	ev_signal_init(&d->sig_int, sig_cb, SIGINT);
	ev_signal_init(&d->sig_hup, hup_cb, SIGHUP);
	d->rng = seed ^ 0x9e3779b97f4a7c15ULL;
	ev_timer_init(&d->drain_timer, drain_cb, 0, 0);
	ev_timer_init(&d->linger_timer, linger_cb, 0, EOF_QUIET_S);
	ev_timer_init(&d->flow_timer, flow_cb, 0, 0.1);
	d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
	d->drain_timer.data = d->linger_timer.data = d->flow_timer.data = d;
	ev_signal_start(d->loop, &d->sig_term);
	ev_signal_start(d->loop, &d->sig_int);
	ev_signal_start(d->loop, &d->sig_hup);
}

int daemon_run(const struct wst_config *cfg, const struct daemon_opts *opts)
{
	struct daemon d = { .up = { daemon_deliver, daemon_confirmed, daemon_resume_local,
				    daemon_maybe_finish, daemon_quit, daemon_enqueue },
			    .cfg = cfg, .opts = *opts };
	struct sup_params sp;
	struct sup_verdict v;
	uint64_t seed = (uint64_t)getpid() << 32 ^ daemon_now_ms();
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
	daemon_sup_params(cfg, &sp);
	sup_init(&d.sup, &sp, NULL, 0, seed);
	d.cfg = NULL;
	if (daemon_use_config(&d, cfg, false) < 0) {
		log_msg(LOG_ERR, "out of memory");
		config_free(cfg);
		ev_loop_destroy(d.loop);
		return 1;
	}
	init_watchers(&d, seed);
	instance_name(opts->config_path, d.instance, sizeof(d.instance));
	d.last_reload_ok = time(NULL);
	if (daemon_links_init(&d) < 0) {
		log_msg(LOG_ERR, "out of memory");
		goto out;
	}
	if (outbox_init(&d.out, d.loop, LWS_PRE, cfg->queue_max_messages, cfg->queue_max_bytes,
			cfg->queue_overflow == OVERFLOW_REJECT ? QUEUE_REJECT : QUEUE_DROP_OLDEST,
			cfg->spool_dir, wake_senders, &d) < 0 ||
	    open_local(&d) < 0)
		goto out;

	d.net = netwatch_create(d.loop, daemon_net_change, &d);
	if (!d.net)
		log_errno(LOG_WARNING, "cannot watch network changes (rtnetlink); a lost route is "
			  "noticed by the keepalive only");
	notify_init(d.loop);
	notify_ready();
	sup_start(&d.sup, &v);
	daemon_apply(&d, &v);
	ev_run(d.loop, 0);
	rc = 0;
out:
	netwatch_destroy(d.net);
	daemon_links_finish(&d);
	close_local(&d);
	outbox_finish(&d.out);
	notify_finish();
	ev_signal_stop(d.loop, &d.sig_term);
	ev_signal_stop(d.loop, &d.sig_int);
	ev_signal_stop(d.loop, &d.sig_hup);
	ev_loop_destroy(d.loop);
	config_free(d.cfg);
	free(d.urls);
	return rc;
}

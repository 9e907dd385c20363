#include "daemon.h"
#include "daemon_int.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "bridge.h"
#include "config.h"
#include "control.h"
#include "exec.h"
#include "instance.h"
#include "links.h"
#include "log.h"
#include "netwatch.h"
#include "notify.h"
#include "outbox.h"
#include "queue.h"
#include "stdio_bridge.h"

static void daemon_quit(void *ud)
{
	struct daemon *d = ud;

	ev_timer_stop(d->loop, &d->flow_timer);
	ev_break(d->loop, EVBREAK_ALL);
}

/* ---- messages in and out ---- */

/*
 * While the link is up the queue drains within a round trip or two, so a
 * stream (stdin, a bridge client, the exec handler) need not run further
 * ahead than this: reading on would only turn its data into queue memory.
 */
#define READ_AHEAD_BYTES (1024 * 1024)

enum source {
	SRC_ONE,    /* a single message (wstetherctl send) */
	SRC_STREAM, /* a bridge client or the exec handler */
	SRC_STDIN,  /* a pipe: held back when full, never dropped */
};

/*
 * A message from a local program. false: refused for now, and the sender is
 * held back until there is room (overflow = reject and full, or hold set and
 * full, or the spool cannot take it).
 */
static bool daemon_enqueue(struct daemon *d, const unsigned char *data, size_t len, bool binary,
			   enum source src)
{
	if (links_stopping(d->links))
		return false;
	/* while the link drains the queue, a stream waits rather than push out older messages */
	if (src != SRC_ONE && links_up(d->links) &&
	    (d->out.q.bytes > READ_AHEAD_BYTES || !queue_has_room(&d->out.q, len)))
		return false;
	if (!outbox_put(&d->out, data, len, binary, src == SRC_STDIN))
		return false;
	links_kick(d->links);
	return true;
}

static const char *ctl_send(void *ud, const char *text, size_t len)
{
	struct daemon *d = ud;

	if (links_stopping(d->links))
		return "stopping";
	if (len > d->cfg->max_message_bytes)
		return "message larger than link.max_message_bytes";
	if (daemon_enqueue(d, (const unsigned char *)text, len, false, SRC_ONE))
		return NULL;
	return outbox_refusal(&d->out);
}

/* Local senders held back (full queue, read-ahead) may go on. */
static void resume_local(void *ud)
{
	struct daemon *d = ud;

	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->resume(d->local[i].self);
}

static bool on_local_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	return daemon_enqueue(ud, data, len, binary, SRC_STREAM);
}

/* A pipe can wait: stdin is held back when the queue is full, never dropped. */
static bool on_stdin_line(void *ud, const unsigned char *line, size_t len, bool binary)
{
	return daemon_enqueue(ud, line, len, false, SRC_STDIN);
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
		links_pause_rx(d->links, d->rx_pause_local);
		ev_timer_again(d->loop, &d->flow_timer);
	} else if (d->rx_pause_local && pending <= ENDPOINT_LOW_WATER) {
		d->rx_pause_local = false;
		links_pause_rx(d->links, d->rx_pause_local);
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

static void deliver(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct daemon *d = ud;

	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->deliver(d->local[i].self, data, len, binary);
	flow_check(d);
}

/* Tell local programs that asked (watchers, event frames). */
static void publish_event(void *ud, const struct sup_event *ev)
{
	struct daemon *d = ud;
	struct timespec ts;
	size_t len;
	char *json;

	clock_gettime(CLOCK_REALTIME, &ts);
	json = control_event_json(ev, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &len);
	if (!json) {
		log_msg(LOG_ERR, "out of memory: a link event was not published");
		return;
	}
	control_event(d->control, json, len);
	for (size_t i = 0; i < d->n_local; i++)
		if (d->local[i].impl->event)
			d->local[i].impl->event(d->local[i].self, json, len);
	free(json);
}

static void begin_stop(struct daemon *d, const char *why)
{
	if (links_stopping(d->links)) {
		log_msg(LOG_NOTICE, "%s again: exiting now", why);
		daemon_quit(d);
		return;
	}
	notify_stopping();
	log_event(LOG_NOTICE, &(struct log_ctx){.event = "stop", .url = links_url(d->links)},
		  "%s: stopping", why);
	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->stop_input(d->local[i].self);
	links_stop(d->links);
}

static void sig_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	begin_stop(w->data, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	daemon_reload(w->data);
}

/* ---- stdio events ---- */

static void on_eof(void *ud)
{
	struct daemon *d = ud;

	log_msg(LOG_DEBUG, "stdin closed: %zu message(s) left to deliver", queue_len(&d->out.q));
	links_eof(d->links);
}

static void on_stdout_broken(void *ud)
{
	begin_stop(ud, "stdout closed");
}

/* ---- start and stop ---- */

static void add_local(struct daemon *d, const struct endpoint_impl *impl, void *self)
{
	d->local[d->n_local++] = (struct endpoint){impl, self};
}

static int open_local(struct daemon *d)
{
	const struct wst_config *cfg = d->cfg;
	struct endpoint_events lev = {d, on_local_message, on_local_drained, NULL, NULL};
	struct endpoint_events sev = {d, on_stdin_line, on_local_drained, on_eof, on_stdout_broken};
	struct control_ops cops;
	char err[512];
	void *ep;

	if (d->opts.use_stdio) {
		if (!(ep = stdio_create(d->loop, cfg->max_message_bytes, &sev))) {
			log_msg(LOG_ERR, "out of memory");
			return -1;
		}
		add_local(d, &stdio_endpoint, ep);
	}
	if (*cfg->bridge_socket) {
		if (!(ep = bridge_create(d->loop, cfg, &lev, err, sizeof(err)))) {
			log_msg(LOG_ERR, "bridge.socket %s", err);
			return -1;
		}
		add_local(d, &bridge_endpoint, ep);
	}
	daemon_control_ops(d, &cops);
	cops.send = ctl_send;
	if (*cfg->control_socket &&
	    !(d->control = control_create(d->loop, cfg->control_socket, 0660,
					  cfg->max_message_bytes + 16, &cops, err, sizeof(err)))) {
		log_msg(LOG_ERR, "control.socket %s", err);
		return -1;
	}
	if (cfg->exec_command[0]) {
		if (!(ep = exec_create(d->loop, cfg, &lev))) {
			log_msg(LOG_ERR, "exec.command: cannot set up the handler");
			return -1;
		}
		add_local(d, &exec_endpoint, ep);
	}
	return 0;
}

static void close_local(struct daemon *d)
{
	/* the links are gone: stdout draining as it is written last must not resume them */
	d->rx_pause_local = false;
	/* the handler first: it may take a while to stop, and stdout is written last */
	while (d->n_local) {
		struct endpoint *ep = &d->local[--d->n_local];

		ep->impl->destroy(ep->self);
	}
	control_destroy(d->control);
}

/* The daemon's own signals and timers, on its loop for its whole life. */
static void init_watchers(struct daemon *d)
{
	ev_signal_init(&d->sig_term, sig_cb, SIGTERM);
	ev_signal_init(&d->sig_int, sig_cb, SIGINT);
	ev_signal_init(&d->sig_hup, hup_cb, SIGHUP);
	ev_timer_init(&d->flow_timer, flow_cb, 0, 0.1);
	d->sig_term.data = d->sig_int.data = d->sig_hup.data = d->flow_timer.data = d;
	ev_signal_start(d->loop, &d->sig_term);
	ev_signal_start(d->loop, &d->sig_int);
	ev_signal_start(d->loop, &d->sig_hup);
}

int daemon_run(const struct wst_config *cfg, const struct daemon_opts *opts)
{
	struct daemon d = {.cfg = cfg, .opts = *opts};
	struct links_events lev = {&d, deliver, resume_local, publish_event, daemon_quit};
	uint64_t seed = (uint64_t)getpid() << 32 ^ links_now_ms();
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
	init_watchers(&d);
	instance_name(opts->config_path, d.instance, sizeof(d.instance));
	d.last_reload_ok = time(NULL);
	if (!(d.links = links_create(d.loop, &d.out, cfg, seed, &lev))) {
		log_msg(LOG_ERR, "out of memory");
		goto out;
	}
	if (outbox_init(&d.out, d.loop, LWS_PRE, cfg->queue_max_messages, cfg->queue_max_bytes,
			cfg->queue_overflow == OVERFLOW_REJECT ? QUEUE_REJECT : QUEUE_DROP_OLDEST,
			cfg->spool_dir, resume_local, &d) < 0 ||
	    open_local(&d) < 0)
		goto out;

	d.net = netwatch_create(d.loop, links_net_change, d.links);
	if (!d.net)
		log_errno(LOG_WARNING, "cannot watch network changes (rtnetlink); a lost route is "
				       "noticed by the keepalive only");
	notify_init(d.loop);
	notify_ready();
	links_start(d.links);
	ev_run(d.loop, 0);
	rc = 0;
out:
	netwatch_destroy(d.net);
	links_destroy(d.links);
	close_local(&d);
	outbox_finish(&d.out);
	notify_finish();
	ev_timer_stop(d.loop, &d.flow_timer);
	ev_signal_stop(d.loop, &d.sig_term);
	ev_signal_stop(d.loop, &d.sig_int);
	ev_signal_stop(d.loop, &d.sig_hup);
	ev_loop_destroy(d.loop);
	config_free(d.cfg);
	return rc;
}

/*
 * What operators ask of the daemon: the control socket's commands, the
 * status snapshot control.c builds its document from, and reload (SIGHUP or
 * `wstetherctl reload`).
 */
#include "daemon_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bridge.h"
#include "config.h"
#include "control.h"
#include "exec.h"
#include "hello.h"
#include "link.h"
#include "log.h"
#include "notify.h"
#include "spool.h"
#include "status.h"
#include "stdio_bridge.h"
#include "tls.h"

/* ---- reload ---- */

void daemon_sup_params(const struct wst_config *c, struct sup_params *p)
{
	*p = (struct sup_params){ c->backoff_initial_ms, c->backoff_max_ms, c->backoff_multiplier,
				  c->backoff_jitter, c->backoff_reset_after_s };
}

/*
 * Make c the running config: the supervisor gets its policy (APPLY_SUPERVISOR)
 * and URLs; reset_url starts at link.url. Its one allocation comes first, so
 * -1 (out of memory) changes nothing. The link, bridge and exec copied what
 * they need, so the old config can go.
 */
int daemon_use_config(struct daemon *d, const struct wst_config *c, bool reset_url)
{
	size_t n = config_url_count(c);
	const char **urls = calloc(n, sizeof(*urls));
	const struct wst_config *old = d->cfg;
	struct sup_params p;

	if (!urls)
		return -1;
	for (size_t i = 0; i < n; i++)
		urls[i] = config_url(c, i);
	daemon_sup_params(c, &p);
	sup_reconfigure(&d->sup, &p, urls, n, reset_url);
	free(d->urls);
	d->urls = urls;
	d->cfg = c;
	if (old && old != c)
		config_free(old);
	return 0;
}

/* The appliers of the live keys that changed (config.h's enum config_apply). */
static void apply_live(struct daemon *d, const struct wst_config *n, unsigned apply)
{
	if ((apply & APPLY_LOG) && !d->opts.log_level_forced)
		log_set_level(n->log_level);
	if (apply & APPLY_QUEUE)
		queue_set_limits(&d->out.q, n->queue_max_messages, n->queue_max_bytes,
				 n->queue_overflow == OVERFLOW_REJECT ? QUEUE_REJECT
								      : QUEUE_DROP_OLDEST);
	/* APPLY_SUPERVISOR: daemon_use_config; APPLY_AT_USE: read from d->cfg when used */
}

const char *daemon_reload(struct daemon *d)
{
	struct config_error err;
	const struct wst_config *n;
	struct log_ctx lc = { .url = daemon_url(d), .event = "reload" };
	struct config_change ch;

	notify_reloading();
	n = config_load(d->opts.config_path, d->opts.url_override, &err);
	if (n && (tls_check(n, err.msg, sizeof(err.msg)) < 0 ||
		  hello_check(n, err.msg, sizeof(err.msg)) < 0)) {
		config_free(n);
		n = NULL;
	}
	if (!n) {
		lc.result = "failed";
		log_event(LOG_ERR, &lc, "reload failed, keeping the running configuration: %s",
			  err.msg);
		snprintf(d->config_error, sizeof(d->config_error), "%s", err.msg);
		d->reloads_failed++;
		notify_ready();
		return d->config_error;
	}
	config_diff(d->cfg, n, &ch);
	/* first what can fail: a reload is applied whole or not at all */
	if (daemon_use_config(d, n, ch.reconnect) < 0) {
		log_msg(LOG_ERR, "reload: out of memory, keeping the running configuration");
		d->reloads_failed++;
		config_free(n);
		notify_ready();
		return "out of memory";
	}
	d->config_error[0] = '\0';
	if (ch.tls_identity && tls_sessions_count(&d->sessions)) {
		/* the next handshake is a full one: a new file or name is presented */
		tls_sessions_forget(&d->sessions);
		log_msg(LOG_INFO, "reload: tls.* or link.url changed: kept TLS sessions dropped");
	}
	apply_live(d, n, ch.apply);
	if (*ch.restart_keys)
		log_event(LOG_WARNING, &lc, "reload: %s take effect only at the next restart",
			  ch.restart_keys);
	if (ch.reconnect) {
		struct sup_verdict v;

		sup_request(&d->sup, SUP_REQ_RECONFIGURE, daemon_now_ms(), &v);
		daemon_apply(d, &v);
	}
	d->reloads_ok++;
	d->last_reload_ok = time(NULL);
	lc.url = daemon_url(d);
	lc.result = "ok";
	log_event(LOG_NOTICE, &lc, "configuration reloaded from %s",
		  n->path ? n->path : "the command line");
	notify_ready();
	return NULL;
}

/* ---- control socket: control.c owns the protocol; these fill and act ---- */

static void local_drops(const struct daemon *d, struct wst_status *st)
{
	struct endpoint_drops e[3] = { stdio_drops(d->sio), bridge_drops(d->bridge),
				       exec_drops(d->exec) };

	for (size_t i = 0; i < 3; i++) {
		st->unframable += e[i].unframable;
		st->undelivered += e[i].undelivered;
		st->invalid_utf8 += e[i].invalid_utf8;
		st->oversized += e[i].oversized;
		st->slow_readers += e[i].slow_readers;
		st->bad_framing += e[i].bad_framing;
		st->unframable_bytes += e[i].unframable_bytes;
		st->undelivered_bytes += e[i].undelivered_bytes;
		st->invalid_utf8_bytes += e[i].invalid_utf8_bytes;
		st->oversized_bytes += e[i].oversized_bytes;
	}
}

/* Both link objects' counters: a rotation's messages count wherever they went. */
static struct link_stats link_totals(const struct daemon *d)
{
	struct link_stats t = *link_stats(d->link);

	for (size_t i = 0; i < 2; i++) {
		const struct link_stats *o = link_stats(d->slots[i].link);

		if (d->slots[i].link == d->link)
			continue;
		t.sent += o->sent;
		t.sent_bytes += o->sent_bytes;
		t.received += o->received;
		t.received_bytes += o->received_bytes;
	}
	return t;
}

/* What only metrics show. */
static void snapshot_metrics(struct daemon *d, uint64_t now, struct wst_status *st)
{
	struct link_stats tot = link_totals(d);
	const struct link_stats *ls = &tot;
	const struct queue *q = &d->out.q;

	st->up = d->sup.state == SUP_CONNECTED;
	st->up_ms = st->up && now > d->sup.connected_since ? now - d->sup.connected_since : 0;
	for (size_t i = 0; i < SUP_FAIL_KINDS && i < WST_STATUS_CAUSES; i++)
		st->failures[i] = d->sup.failures[i];
	st->sent_bytes = ls->sent_bytes;
	st->received_bytes = ls->received_bytes;
	st->confirmed = q->confirmed;
	st->confirmed_bytes = q->confirmed_bytes;
	st->resent_bytes = q->resent_bytes;
	st->oldest_queued_ms = queue_oldest_age_ms(q);
	st->ping_rtt_us = ls->ping_rtt_us;
	st->cert_expiry = link_cert_expiry(d->link);
	st->instance = d->instance;
	st->rejected_bytes = q->rejected_bytes;
	st->too_big_bytes = d->out.too_big_bytes;
	st->reloads_ok = d->reloads_ok;
	st->reloads_failed = d->reloads_failed;
	st->last_reload_ok = d->last_reload_ok;
	st->tls_full = d->sessions.full;
	st->tls_resumed_total = d->sessions.resumed;
}

static void ctl_snapshot(void *ud, struct wst_status *st)
{
	struct daemon *d = ud;
	struct link_stats tot = link_totals(d);
	const struct link_stats *ls = &tot;
	uint64_t now = daemon_now_ms();

	st->state = d->sup.state == SUP_IDLE ? "waiting" : sup_state_name(d->sup.state);
	st->url = daemon_url(d);
	if (d->sup.state == SUP_CONNECTED)
		st->connected_since = time(NULL) - (time_t)((now - d->sup.connected_since) / 1000);
	st->attempts = d->sup.attempts;
	st->reconnects = d->sup.reconnects;
	st->rotations = d->sup.rotations;
	st->next_retry_ms = sup_next_retry_ms(&d->sup, now);
	st->sent = ls->sent;
	st->received = ls->received;
	st->resent = d->out.q.resent;
	snapshot_metrics(d, now, st);
	st->queue_messages = queue_len(&d->out.q);
	st->queue_bytes = d->out.q.bytes;
	st->queue_max_messages = d->out.q.max_messages;
	st->queue_max_bytes = d->out.q.max_bytes;
	st->reject_overflow = d->out.q.overflow == QUEUE_REJECT;
	st->dropped = d->out.q.dropped;
	st->dropped_bytes = d->out.q.dropped_bytes;
	st->rejected = d->out.q.rejected;
	local_drops(d, st);
	st->too_big = d->out.too_big;
	st->bridge_clients_dropped = bridge_dropped_clients(d->bridge);
	st->last_error = d->sup.last_error;
	st->last_close_code = d->sup.last_close_code;
	st->last_close_reason = d->sup.last_close_reason;
	st->cert_not_after = link_cert_not_after(d->link);
	if (!link_tls(d->link, &st->tls_version, &st->tls_cipher))
		st->tls_version = st->tls_cipher = NULL;
	st->insecure = d->cfg->insecure;
	st->tls_resumed = link_tls_resumed(d->link);
	st->bridge_clients = bridge_clients(d->bridge);
	st->exec_pid = exec_pid(d->exec);
	st->exec_restarts = exec_restarts(d->exec);
	st->config_error = d->config_error;
	st->spool_on = d->out.spool != NULL;
	if (st->spool_on)
		spool_status(d->out.spool, &st->spool);
	st->proxy = link_via(d->link);
	st->net_probes = d->net_probes;
	st->net_retries = d->net_retries;
	st->compression = d->cfg->compression != COMPRESSION_OFF;
	st->compression_params = link_compression(d->link, &st->deflate);
}

static const char *ctl_send(void *ud, const char *text, size_t len)
{
	struct daemon *d = ud;
	struct spool_status sp;

	if (d->stopping)
		return "stopping";
	if (len > d->cfg->max_message_bytes)
		return "message larger than link.max_message_bytes";
	if (d->up.enqueue(d, (const unsigned char *)text, len, false, SRC_ONE))
		return NULL;
	if (!d->out.failing || !d->out.spool)
		return "queue full";
	spool_status(d->out.spool, &sp);
	return sp.disk_full ? "no space for the spool (queue.spool_dir)"
			    : "the spool cannot be written (queue.spool_dir)";
}

static const char *request(struct daemon *d, enum sup_request r)
{
	struct sup_verdict v;

	sup_request(&d->sup, r, daemon_now_ms(), &v);
	if (v.refused)
		return v.refused;
	daemon_apply(d, &v);
	return NULL;
}

static const char *ctl_reconnect(void *ud, bool now)
{
	return request(ud, now ? SUP_REQ_RECONNECT : SUP_REQ_ROTATE);
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
	return request(ud, SUP_REQ_PAUSE);
}

static const char *ctl_resume(void *ud)
{
	return request(ud, SUP_REQ_RESUME);
}

static const char *ctl_reload(void *ud)
{
	struct daemon *d = ud;

	return d->stopping ? "stopping" : daemon_reload(d);
}

void daemon_control_ops(struct daemon *d, struct control_ops *ops)
{
	*ops = (struct control_ops){ d, ctl_snapshot, ctl_send, ctl_reconnect, ctl_close,
				     ctl_pause, ctl_resume, ctl_reload };
}

/*
 * What operators ask of the daemon: the control socket's commands, the
 * status snapshot control.c builds its document from, and reload (SIGHUP or
 * `wstetherctl reload`).
 */
#include "daemon_int.h"

#include <stdio.h>
#include <time.h>

#include "config.h"
#include "control.h"
#include "hello.h"
#include "links.h"
#include "log.h"
#include "notify.h"
#include "status.h"
#include "tls.h"

/* ---- reload ---- */

/* The appliers of the live keys that changed (config.h's enum config_apply). */
static void apply_live(struct daemon *d, const struct wst_config *n, unsigned apply)
{
	if ((apply & APPLY_LOG) && !d->opts.log_level_forced)
		log_set_level(n->log_level);
	if (apply & APPLY_QUEUE)
		queue_set_limits(&d->out.q, n->queue_max_messages, n->queue_max_bytes,
				 n->queue_overflow == OVERFLOW_REJECT ? QUEUE_REJECT
								      : QUEUE_DROP_OLDEST);
	/* APPLY_SUPERVISOR: links_use_config; APPLY_AT_USE: read from d->cfg when used */
}

const char *daemon_reload(struct daemon *d)
{
	struct config_error err;
	const struct wst_config *n;
	struct log_ctx lc = {.url = links_url(d->links), .event = "reload"};
	struct config_change ch;

	if (links_stopping(d->links))
		return "stopping";
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
	/*
	 * First what can fail: a reload is applied whole or not at all. The links
	 * take the supervisor's policy (APPLY_SUPERVISOR) and URLs; the link,
	 * bridge and exec copied what they need, so the old config can go.
	 */
	if (links_use_config(d->links, n, ch.reconnect) < 0) {
		log_msg(LOG_ERR, "reload: out of memory, keeping the running configuration");
		d->reloads_failed++;
		config_free(n);
		notify_ready();
		return "out of memory";
	}
	config_free(d->cfg);
	d->cfg = n;
	d->config_error[0] = '\0';
	/* the next handshake is a full one: a new file or name is presented */
	if (ch.tls_identity && links_forget_tls_sessions(d->links))
		log_msg(LOG_INFO, "reload: tls.* or link.url changed: kept TLS sessions dropped");
	apply_live(d, n, ch.apply);
	if (*ch.restart_keys)
		log_event(LOG_WARNING, &lc, "reload: %s take effect only at the next restart",
			  ch.restart_keys);
	if (ch.reconnect)
		links_request(d->links, SUP_REQ_RECONFIGURE);
	d->reloads_ok++;
	d->last_reload_ok = time(NULL);
	lc.url = links_url(d->links);
	lc.result = "ok";
	log_event(LOG_NOTICE, &lc, "configuration reloaded from %s",
		  n->path ? n->path : "the command line");
	notify_ready();
	return NULL;
}

/* ---- control socket: control.c owns the protocol; these fill and act ---- */

/* Each owner fills its part; the daemon adds its own. */
static void ctl_snapshot(void *ud, struct wst_status *st)
{
	struct daemon *d = ud;

	links_status(d->links, st);
	outbox_status(&d->out, st);
	for (size_t i = 0; i < d->n_local; i++)
		d->local[i].impl->status(d->local[i].self, st);
	st->instance = d->instance;
	st->reloads_ok = d->reloads_ok;
	st->reloads_failed = d->reloads_failed;
	st->last_reload_ok = d->last_reload_ok;
	st->config_error = d->config_error;
	st->insecure = d->cfg->insecure;
	st->compression = d->cfg->compression != COMPRESSION_OFF;
}

static const char *ctl_request(void *ud, enum sup_request r)
{
	return links_request(((struct daemon *)ud)->links, r);
}

static const char *ctl_close(void *ud, int code, const char *reason)
{
	return links_close(((struct daemon *)ud)->links, code, reason);
}

static const char *ctl_reload(void *ud)
{
	return daemon_reload(ud);
}

void daemon_control_ops(struct daemon *d, struct control_ops *ops)
{
	/* send is daemon.c's: it queues, as local programs' messages do */
	*ops = (struct control_ops){d, ctl_snapshot, NULL, ctl_request, ctl_close, ctl_reload};
}

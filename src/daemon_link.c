/*
 * The link's life: the supervisor decides, this carries it out on the two
 * link slots (two links exist only during a make-before-break rotation),
 * with the retry and age timers and the network-change probes.
 */
#include "daemon_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "config.h"
#include "control.h"
#include "endpoint.h"
#include "link.h"
#include "log.h"
#include "netwatch.h"
#include "notify.h"
#include "outbox.h"
#include "queue.h"
#include "rng.h"
#include "supervisor.h"

const char *daemon_url(const struct daemon *d)
{
	return sup_url(&d->sup);
}

uint64_t daemon_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool daemon_links_active(const struct daemon *d)
{
	return link_active(d->slots[0].link) || link_active(d->slots[1].link);
}

static void on_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct daemon *d = ((struct slot *)ud)->d;

	d->up.deliver(d, data, len, binary);
}

static void on_confirmed(void *ud)
{
	struct daemon *d = ((struct slot *)ud)->d;

	d->up.confirmed(d);
}

static void start_attempt(struct daemon *d, uint64_t id, const char *url);

/* Tell local programs that asked (watchers, event frames); before the link starts again. */
static void publish_event(struct daemon *d, const struct sup_event *ev)
{
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

static struct slot *slot_of(struct daemon *d, uint64_t id)
{
	for (size_t i = 0; id && i < 2; i++)
		if (d->slots[i].id == id)
			return &d->slots[i];
	return NULL;
}

/* The primary's link carries traffic; after a hand-over it may be the other slot. */
static void sync_primary(struct daemon *d)
{
	struct slot *p = slot_of(d, d->sup.primary);

	if (!p || p->link == d->link)
		return;
	d->link = p->link;
	link_set_carrier(d->link, true);
	link_pause_rx(d->link, d->rx_pause_local);
}

static void arm_age(struct daemon *d)
{
	double s = d->cfg->max_age_s;

	ev_timer_stop(d->loop, &d->age_timer);
	if (!s || d->sup.state != SUP_CONNECTED)
		return;
	/* +-10%: a fleet started together does not rotate together */
	s *= 0.9 + 0.2 * (double)(rng_next(&d->rng) >> 11) / (double)(1ULL << 53);
	ev_timer_set(&d->age_timer, s, 0);
	ev_timer_start(d->loop, &d->age_timer);
}

/*
 * Make before break: the new link writes from the oldest unconfirmed message
 * on (what the old one had in flight may arrive twice: at least once), the
 * old one writes nothing more and closes once its last fence is answered.
 */
static void promote(struct daemon *d, struct slot *new, struct slot *old)
{
	if (!new)
		return;
	queue_rewind(&d->out.q);
	d->link = new->link;
	link_set_carrier(new->link, true);
	link_pause_rx(new->link, d->rx_pause_local);
	if (old)
		link_retire(old->link);
	arm_age(d);
}

void daemon_apply(struct daemon *d, const struct sup_verdict *v)
{
	for (size_t i = 0; i < v->n_lines; i++) {
		const struct sup_line *l = &v->lines[i];
		static const char *const change[] = { [SUP_CHANGE_UP] = "up",
						      [SUP_CHANGE_DOWN] = "down",
						      [SUP_CHANGE_FAILED] = "failed" };
		struct log_ctx lc = { .url = l->url, .event = l->event, .attempt = l->attempt,
				      .close_code = l->close_code, .close_ours = l->close_ours,
				      .link = change[l->change], .http_status = l->http_status,
				      .cause = l->change > SUP_CHANGE_UP ? link_fail_name(l->fail)
									 : NULL };

		if (l->event)
			log_event(l->level, &lc, "%s", l->text);
		else
			log_msg(l->level, "%s", l->text);
	}
	if (v->lines_lost)
		log_msg(LOG_ERR, "bug: %u more supervisor line(s) lost, the last: %s",
			v->lines_lost, v->spill.text);
	if (*v->status)
		notify_status("%s", v->status);
	if (v->event.change != SUP_CHANGE_NONE)
		publish_event(d, &v->event);
	if (v->act != SUP_DO_WAIT && d->sup.state != SUP_WAITING)
		ev_timer_stop(d->loop, &d->retry_timer);
	switch (v->act) {
	case SUP_DO_CONNECT:
		start_attempt(d, v->id, v->url);
		break;
	case SUP_DO_WAIT:
		ev_timer_stop(d->loop, &d->retry_timer);
		ev_timer_set(&d->retry_timer, v->delay_ms / 1000.0, 0);
		ev_timer_start(d->loop, &d->retry_timer);
		break;
	case SUP_DO_CLOSE:
		if (slot_of(d, v->id))
			link_request_close(slot_of(d, v->id)->link, v->close_code, v->close_reason);
		break;
	case SUP_DO_PROMOTE:
		promote(d, slot_of(d, v->id), slot_of(d, v->old));
		break;
	case SUP_DO_NOTHING:
		break;
	}
	sync_primary(d);
}

static void on_up(void *ud)
{
	struct slot *sl = ud;
	struct daemon *d = sl->d;
	struct sup_verdict v;
	const char *tv, *tc;
	bool tls = link_tls(sl->link, &tv, &tc);

	sup_up(&d->sup, sl->id, daemon_now_ms(), &v);
	/* the supervisor names the URL; the link knows the proxy and what TLS negotiated */
	for (size_t i = 0; i < v.n_lines; i++) {
		size_t n = strlen(v.lines[i].text);

		if (*link_via(sl->link))
			n += (size_t)snprintf(v.lines[i].text + n, sizeof(v.lines[i].text) - n,
					      " via proxy %s", link_via(sl->link));
		if (tls && n < sizeof(v.lines[i].text))
			snprintf(v.lines[i].text + n, sizeof(v.lines[i].text) - n, " (%s, %s)", tv,
				 tc);
	}
	if (tls && v.event.change == SUP_CHANGE_UP) {
		v.event.tls_version = tv;
		v.event.tls_cipher = tc;
	}
	daemon_apply(d, &v);
	if (sl->id == d->sup.primary)
		arm_age(d);
	d->up.maybe_finish(d);
}

/* The server announced 1001/1012: open the replacement while the old link closes. */
static void on_restarting(void *ud)
{
	struct slot *sl = ud;
	struct daemon *d = sl->d;
	struct sup_verdict v;

	if (sl->id != d->sup.primary || d->stopping || d->eof)
		return;
	sup_request(&d->sup, SUP_REQ_SERVER_RESTART, daemon_now_ms(), &v);
	if (!v.refused)
		daemon_apply(d, &v);
}

static void age_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	struct sup_verdict v;

	if (d->stopping || d->eof)
		return;
	log_event(LOG_NOTICE, &(struct log_ctx){ .event = "rotate", .url = daemon_url(d) },
		  "the link to %s reached link.max_age_s (%u s): rotating it", daemon_url(d),
		  d->cfg->max_age_s);
	sup_request(&d->sup, SUP_REQ_ROTATE, daemon_now_ms(), &v);
	if (!v.refused)
		daemon_apply(d, &v);
}

/* Probes get a short deadline: the keepalive would take ping_interval_s + pong_timeout_s. */
#define NET_PROBE_S 3

void daemon_net_change(void *ud, enum net_change what, const struct sockaddr_storage *addr,
		       unsigned prefix)
{
	struct daemon *d = ud;
	const char *why = what == NET_ADDR_GONE ? "the link's local address went away"
			  : addr		? "a route to the link's peer went away"
						: "rtnetlink messages were lost, a route may be gone";

	if (what == NET_DEFAULT_ROUTE) {
		if (d->sup.state != SUP_WAITING || !ev_is_active(&d->retry_timer))
			return;
		d->net_retries++;
		log_msg(LOG_NOTICE, "network change: a default route appeared: connecting now, "
			"not in %.1f s", ev_timer_remaining(d->loop, &d->retry_timer));
		ev_timer_stop(d->loop, &d->retry_timer);
		ev_timer_set(&d->retry_timer, 0, 0);
		ev_timer_start(d->loop, &d->retry_timer);
		return;
	}
	if (what == NET_ADDR_GONE && !link_uses_address(d->link, addr))
		return;
	/* only a route that may have carried the link: not one of an unrelated network */
	if (what == NET_ROUTE_GONE && !link_uses_route(d->link, addr, prefix))
		return;
	if (!link_probe(d->link, NET_PROBE_S))
		return;
	d->net_probes++;
	log_msg(LOG_NOTICE, "network change: %s: pinging the link, answer due within %d s", why,
		NET_PROBE_S);
}

static void on_down(void *ud)
{
	struct slot *sl = ud;
	struct daemon *d = sl->d;
	const struct link_end *e = link_last_end(sl->link);
	struct sup_end se = { e->fail, e->was_up, e->by_request, e->http_status, e->retry_after_s,
			      e->close_code, e->close_reason, e->msg, e->clean_close,
			      e->sent_close_code };
	bool primary = sl->id == d->sup.primary;
	uint64_t id = sl->id;
	struct sup_verdict v;

	sl->id = 0;
	if (primary) {
		ev_timer_stop(d->loop, &d->age_timer);
		/* the read-ahead limit applies only while the link is up */
		d->up.resume_local(d);
	}
	/* the end of the run: nothing more is owed to the server */
	if (primary && (d->stopping || d->eof) &&
	    (d->closing || d->stopping || !queue_len(&d->out.q)))
		sup_request(&d->sup, SUP_REQ_STOP, daemon_now_ms(), &v);
	sup_down(&d->sup, id, daemon_now_ms(), &se, &v);
	daemon_apply(d, &v);
	if (d->sup.state == SUP_STOPPING && !daemon_links_active(d))
		d->up.quit(d);
}

static void start_attempt(struct daemon *d, uint64_t id, const char *url)
{
	struct slot *sl = !link_active(d->slots[0].link) ? &d->slots[0]
			  : !link_active(d->slots[1].link) ? &d->slots[1]
							   : NULL;

	if (!sl) {
		log_msg(LOG_ERR, "internal: no free link for attempt %llu", (unsigned long long)id);
		return;
	}
	d->closing = false;
	sl->id = id;
	if (link_start(sl->link, d->cfg, url) < 0) {
		/* nothing to destroy: take the down path straight away */
		on_down(sl);
		return;
	}
	/* a rotation's new link carries nothing until it is up and promoted */
	link_set_carrier(sl->link, id == d->sup.primary);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	struct sup_verdict v;

	sup_timer(&d->sup, daemon_now_ms(), &v);
	daemon_apply(d, &v);
}

int daemon_links_init(struct daemon *d)
{
	struct link_events lev = { NULL, on_up, on_message, on_confirmed, on_down, on_restarting };

	ev_timer_init(&d->retry_timer, retry_cb, 0, 0);
	ev_timer_init(&d->age_timer, age_cb, 0, 0);
	d->retry_timer.data = d->age_timer.data = d;
	for (size_t i = 0; i < 2; i++) {
		d->slots[i].d = d;
		lev.ud = &d->slots[i];
		if (!(d->slots[i].link = link_create(d->loop, &d->out.q, &lev)))
			return -1;
		link_use_sessions(d->slots[i].link, &d->sessions);
	}
	d->link = d->slots[0].link;
	return 0;
}

void daemon_links_finish(struct daemon *d)
{
	ev_timer_stop(d->loop, &d->retry_timer);
	ev_timer_stop(d->loop, &d->age_timer);
	for (size_t i = 0; i < 2; i++)
		link_destroy(d->slots[i].link);
	tls_sessions_forget(&d->sessions); /* wipes their secrets */
}

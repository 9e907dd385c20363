#include "links.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "config.h"
#include "link.h"
#include "log.h"
#include "notify.h"
#include "outbox.h"
#include "queue.h"
#include "rng.h"
#include "status.h"
#include "tls_session.h"

/* A link object and the supervisor's id of the last attempt started on it. */
struct slot {
	struct links *ls;
	struct link *link;
	uint64_t id;
};

struct links {
	struct links_events up;
	struct ev_loop *loop;
	const struct wst_config *cfg;
	struct outbox *out;
	struct supervisor sup;
	const char **urls; /* link.url then link.fallback_urls, for the supervisor */
	struct slot slots[2];
	ev_timer retry_timer, age_timer, finish_timer;
	uint64_t rng;  /* the age timer's jitter */
	bool rx_pause; /* local readers are behind: the carrier reads nothing */
	unsigned long long net_probes, net_retries;
	struct tls_sessions sessions; /* the one thing an attempt leaves to the next */
};

uint64_t links_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *links_url(const struct links *ls)
{
	return sup_url(&ls->sup);
}

static struct slot *slot_of(const struct links *ls, uint64_t id)
{
	for (size_t i = 0; id && i < 2; i++)
		if (ls->slots[i].id == id)
			return (struct slot *)&ls->slots[i];
	return NULL;
}

/*
 * The supervisor's primary; between attempts, the last one started (its
 * end, certificate and proxy are what status reports).
 */
static struct slot *carrier(const struct links *ls)
{
	struct slot *p = slot_of(ls, ls->sup.primary);

	return p ? p : (struct slot *)&ls->slots[ls->slots[1].id > ls->slots[0].id];
}

static struct slot *other(const struct links *ls, const struct slot *sl)
{
	return (struct slot *)&ls->slots[sl == &ls->slots[0]];
}

bool links_up(const struct links *ls)
{
	return link_up(carrier(ls)->link);
}

/* The link carries traffic while it holds the supervisor's primary: nothing else says so. */
static bool carries(void *ud)
{
	const struct slot *sl = ud;

	return sl->id && sl->id == sl->ls->sup.primary;
}

/* The one place a link takes over the traffic: it writes from the oldest unconfirmed message on. */
static void carry(struct links *ls, struct slot *sl)
{
	queue_rewind(&ls->out->q);
	link_kick(sl->link);
	link_pause_rx(sl->link, ls->rx_pause);
}

/* What the supervisor cannot see for itself. */
static struct sup_world world(const struct links *ls)
{
	const struct slot *c = carrier(ls);

	return (struct sup_world){queue_len(&ls->out->q), link_up(c->link), link_active(c->link),
				  link_active(other(ls, c)->link)};
}

/* Carry out the supervisor's end-of-run verdict for the world as it is now. */
static void settle(struct links *ls)
{
	struct slot *c = carrier(ls), *o = other(ls, c);
	struct sup_world w = world(ls);
	uint64_t now = links_now_ms();
	struct sup_finish f;

	sup_settle(&ls->sup, now, &w, &f);
	if (f.undelivered)
		log_msg(LOG_WARNING,
			"drain timeout: %zu message(s) not confirmed by the server before shutdown",
			f.undelivered);
	ev_timer_stop(ls->loop, &ls->finish_timer);
	if (f.wake_at > now) {
		ev_timer_set(&ls->finish_timer, (double)(f.wake_at - now) / 1000.0, 0);
		ev_timer_start(ls->loop, &ls->finish_timer);
	}
	if (f.abort_others)
		link_abort(o->link, "shutting down");
	switch (f.act) {
	case SUP_FIN_CLOSE:
		link_request_close(c->link, f.close_code, f.close_reason);
		break;
	case SUP_FIN_ABORT:
		link_abort(c->link, "shutting down");
		break;
	case SUP_FIN_QUIT:
		ls->up.quit(ls->up.ud);
		break;
	case SUP_FIN_NONE:
		break;
	}
}

static void finish_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	settle(w->data);
}

static void arm_age(struct links *ls)
{
	double s = ls->cfg->max_age_s;

	ev_timer_stop(ls->loop, &ls->age_timer);
	if (!s || ls->sup.state != SUP_CONNECTED)
		return;
	/* +-10%: a fleet started together does not rotate together */
	s *= 0.9 + 0.2 * (double)(rng_next(&ls->rng) >> 11) / (double)(1ULL << 53);
	ev_timer_set(&ls->age_timer, s, 0);
	ev_timer_start(ls->loop, &ls->age_timer);
}

/*
 * Make before break: the new link writes from the oldest unconfirmed message
 * on (what the old one had in flight may arrive twice: at least once), the
 * old one writes nothing more and closes once its last fence is answered.
 */
static void promote(struct links *ls, struct slot *new, struct slot *old)
{
	if (!new)
		return;
	carry(ls, new);
	if (old)
		link_retire(old->link);
	arm_age(ls);
}

static void on_down(void *ud, const struct link_end *e);

static void start_attempt(struct links *ls, uint64_t id, const char *url)
{
	const struct link_end *e;
	struct slot *sl = !link_active(ls->slots[0].link)   ? &ls->slots[0]
			  : !link_active(ls->slots[1].link) ? &ls->slots[1]
							    : NULL;

	if (!sl) {
		log_msg(LOG_ERR, "internal: no free link for attempt %llu", (unsigned long long)id);
		return;
	}
	sl->id = id;
	e = link_start(sl->link, ls->cfg, url);
	if (e) {
		/* nothing to destroy: take the down path straight away */
		on_down(sl, e);
		return;
	}
	/* a rotation's new link carries nothing until it is up and promoted */
	if (id == ls->sup.primary)
		carry(ls, sl);
}

static void log_lines(const struct sup_verdict *v)
{
	for (size_t i = 0; i < v->n_lines; i++)
		log_event(v->lines[i].level, &v->lines[i].ctx, "%s", v->lines[i].text);
	if (v->lines_lost)
		log_msg(LOG_ERR, "bug: %u more supervisor line(s) lost, the last: %s",
			v->lines_lost, v->spill.text);
}

/* Carry out what the supervisor decided. */
static void apply(struct links *ls, const struct sup_verdict *v)
{
	log_lines(v);
	if (*v->status)
		notify_status("%s", v->status);
	/* local programs hear of it before the link starts again */
	if (v->event.change != SUP_CHANGE_NONE)
		ls->up.event(ls->up.ud, &v->event);
	if (v->act == SUP_DO_WAIT || ls->sup.state != SUP_WAITING)
		ev_timer_stop(ls->loop, &ls->retry_timer);
	switch (v->act) {
	case SUP_DO_CONNECT:
		start_attempt(ls, v->id, v->url);
		break;
	case SUP_DO_WAIT:
		ev_timer_set(&ls->retry_timer, v->delay_ms / 1000.0, 0);
		ev_timer_start(ls->loop, &ls->retry_timer);
		break;
	case SUP_DO_CLOSE:
		if (slot_of(ls, v->id))
			link_request_close(slot_of(ls, v->id)->link, v->close_code,
					   v->close_reason);
		break;
	case SUP_DO_PROMOTE:
		promote(ls, slot_of(ls, v->id), slot_of(ls, v->old));
		break;
	case SUP_DO_NOTHING:
		break;
	}
}

static void on_up(void *ud)
{
	struct slot *sl = ud;
	struct links *ls = sl->ls;
	struct sup_verdict v;
	const char *tv, *tc;
	bool tls = link_tls(sl->link, &tv, &tc);

	sup_up(&ls->sup, sl->id, links_now_ms(), &v);
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
	apply(ls, &v);
	if (sl->id == ls->sup.primary)
		arm_age(ls);
	settle(ls);
}

static void on_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct links *ls = ((struct slot *)ud)->ls;

	sup_heard(&ls->sup, links_now_ms());
	ls->up.message(ls->up.ud, data, len, binary);
	if (sup_ending(&ls->sup))
		settle(ls);
}

static void on_confirmed(void *ud)
{
	struct links *ls = ((struct slot *)ud)->ls;

	ls->up.resume(ls->up.ud);
	settle(ls);
}

static void on_down(void *ud, const struct link_end *e)
{
	struct slot *sl = ud;
	struct links *ls = sl->ls;
	struct sup_verdict v;

	if (sl->id == ls->sup.primary) {
		ev_timer_stop(ls->loop, &ls->age_timer);
		/* the read-ahead limit applies only while the link is up */
		ls->up.resume(ls->up.ud);
	}
	sup_down(&ls->sup, sl->id, links_now_ms(), e, queue_len(&ls->out->q), &v);
	apply(ls, &v);
	settle(ls);
}

/* The server announced 1001/1012: open the replacement while the old link closes. */
static void on_restarting(void *ud)
{
	struct slot *sl = ud;

	if (sl->id == sl->ls->sup.primary && !sup_ending(&sl->ls->sup))
		links_request(sl->ls, SUP_REQ_SERVER_RESTART);
}

static void age_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct links *ls = w->data;

	if (sup_ending(&ls->sup))
		return;
	log_event(LOG_NOTICE, &(struct log_ctx){.event = "rotate", .url = links_url(ls)},
		  "the link to %s reached link.max_age_s (%u s): rotating it", links_url(ls),
		  ls->cfg->max_age_s);
	links_request(ls, SUP_REQ_ROTATE);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct links *ls = w->data;
	struct sup_verdict v;

	sup_timer(&ls->sup, links_now_ms(), &v);
	apply(ls, &v);
}

const char *links_request(struct links *ls, enum sup_request r)
{
	struct sup_verdict v;

	sup_request(&ls->sup, r, links_now_ms(), &v);
	if (v.refused)
		return v.refused;
	apply(ls, &v);
	return NULL;
}

void links_start(struct links *ls)
{
	struct sup_verdict v;

	sup_start(&ls->sup, &v);
	apply(ls, &v);
}

void links_stop(struct links *ls)
{
	struct sup_world w = world(ls);

	sup_stop(&ls->sup, links_now_ms(), &w);
	ev_timer_stop(ls->loop, &ls->retry_timer);
	settle(ls);
}

bool links_stopping(const struct links *ls)
{
	return ls->sup.fin.stop;
}

void links_eof(struct links *ls)
{
	sup_eof(&ls->sup);
	settle(ls);
}

void links_kick(struct links *ls)
{
	link_kick(carrier(ls)->link);
}

void links_pause_rx(struct links *ls, bool pause)
{
	ls->rx_pause = pause;
	link_pause_rx(carrier(ls)->link, pause);
}

const char *links_close(struct links *ls, int code, const char *reason)
{
	struct link *l = carrier(ls)->link;

	if (!link_up(l))
		return "not connected";
	link_request_close(l, code, reason);
	return NULL;
}

/* Probes get a short deadline: the keepalive would take ping_interval_s + pong_timeout_s. */
#define NET_PROBE_S 3

void links_net_change(void *ud, enum net_change what, const struct sockaddr_storage *addr,
		      unsigned prefix)
{
	struct links *ls = ud;
	const char *why = what == NET_ADDR_GONE ? "the link's local address went away"
			  : addr		? "a route to the link's peer went away"
				 : "rtnetlink messages were lost, a route may be gone";

	if (what == NET_DEFAULT_ROUTE) {
		if (ls->sup.state != SUP_WAITING || !ev_is_active(&ls->retry_timer))
			return;
		ls->net_retries++;
		log_msg(LOG_NOTICE,
			"network change: a default route appeared: connecting now, "
			"not in %.1f s",
			ev_timer_remaining(ls->loop, &ls->retry_timer));
		ev_timer_stop(ls->loop, &ls->retry_timer);
		ev_timer_set(&ls->retry_timer, 0, 0);
		ev_timer_start(ls->loop, &ls->retry_timer);
		return;
	}
	/* only a route that may have carried the link: not one of an unrelated network */
	if (!link_probe(carrier(ls)->link, what, addr, prefix, NET_PROBE_S))
		return;
	ls->net_probes++;
	log_msg(LOG_NOTICE, "network change: %s: pinging the link, answer due within %d s", why,
		NET_PROBE_S);
}

void links_status(const struct links *ls, struct wst_status *st)
{
	const struct slot *c = carrier(ls);

	sup_status(&ls->sup, links_now_ms(), time(NULL), st);
	st->sent = st->sent_bytes = st->received = st->received_bytes = 0;
	link_status(other(ls, c)->link, false, st);
	link_status(c->link, true, st);
	st->tls_full = ls->sessions.full;
	st->tls_resumed_total = ls->sessions.resumed;
	st->net_probes = ls->net_probes;
	st->net_retries = ls->net_retries;
}

/*
 * The supervisor gets its policy (APPLY_SUPERVISOR) and URLs; reset_url
 * starts at link.url. Its one allocation comes first, so -1 changes nothing.
 */
int links_use_config(struct links *ls, const struct wst_config *c, bool reset_url)
{
	size_t n = config_url_count(c);
	const char **urls = calloc(n, sizeof(*urls));
	struct sup_params p = {c->backoff_initial_ms,	 c->backoff_max_ms,
			       c->backoff_multiplier,	 c->backoff_jitter,
			       c->backoff_reset_after_s, c->drain_timeout_s * 1000};

	if (!urls)
		return -1;
	for (size_t i = 0; i < n; i++)
		urls[i] = config_url(c, i);
	sup_reconfigure(&ls->sup, &p, urls, n, reset_url);
	free(ls->urls);
	ls->urls = urls;
	ls->cfg = c;
	return 0;
}

struct links *links_create(struct ev_loop *loop, struct outbox *out, const struct wst_config *c,
			   uint64_t seed, const struct links_events *ev)
{
	struct links *ls = calloc(1, sizeof(*ls));
	struct link_events lev = {NULL,	   on_up,	  on_message, on_confirmed,
				  on_down, on_restarting, carries};

	if (!ls)
		return NULL;
	ls->up = *ev;
	ls->loop = loop;
	ls->out = out;
	ls->rng = seed ^ 0x9e3779b97f4a7c15ULL;
	/* its policy and URLs come from links_use_config below */
	sup_init(&ls->sup, &(struct sup_params){0}, NULL, 0, seed);
	ev_timer_init(&ls->retry_timer, retry_cb, 0, 0);
	ev_timer_init(&ls->age_timer, age_cb, 0, 0);
	ev_timer_init(&ls->finish_timer, finish_cb, 0, 0);
	ls->retry_timer.data = ls->age_timer.data = ls->finish_timer.data = ls;
	for (size_t i = 0; i < 2; i++) {
		ls->slots[i].ls = ls;
		lev.ud = &ls->slots[i];
		if (!(ls->slots[i].link = link_create(loop, out, &lev, &ls->sessions))) {
			links_destroy(ls);
			return NULL;
		}
	}
	if (links_use_config(ls, c, false) < 0) {
		links_destroy(ls);
		return NULL;
	}
	return ls;
}

void links_destroy(struct links *ls)
{
	if (!ls)
		return;
	ev_timer_stop(ls->loop, &ls->retry_timer);
	ev_timer_stop(ls->loop, &ls->age_timer);
	ev_timer_stop(ls->loop, &ls->finish_timer);
	for (size_t i = 0; i < 2; i++)
		link_destroy(ls->slots[i].link);
	tls_sessions_forget(&ls->sessions); /* wipes their secrets */
	free(ls->urls);
	free(ls);
}

size_t links_forget_tls_sessions(struct links *ls)
{
	size_t n = tls_sessions_count(&ls->sessions);

	tls_sessions_forget(&ls->sessions);
	return n;
}

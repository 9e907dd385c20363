#include "supervisor.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "status.h"

/*
 * Repeats of one failure (a server down for hours, one that accepts and
 * drops) are logged from a bucket of REPEAT_BURST lines that refills at one
 * line a second; the lines in between go to debug and are counted.
 */
#define REPEAT_BURST 10
#define REPEAT_PERIOD_MS 1000

static __attribute__((format(printf, 6, 7))) struct sup_line *
add_line(struct sup_verdict *v, int level, const char *event, unsigned attempt, const char *url,
	 const char *fmt, ...)
{
	struct sup_line *l = v->n_lines < SUP_MAX_LINES ? &v->lines[v->n_lines++] : &v->spill;
	va_list ap;

	if (l == &v->spill)
		v->lines_lost++;
	*l = (struct sup_line){.level = level,
			       .ctx = {.url = url, .event = event, .attempt = attempt}};
	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
	return l;
}

void sup_init(struct supervisor *s, const struct sup_params *p, const char *const *urls,
	      size_t n_urls, uint64_t seed)
{
	*s = (struct supervisor){.state = SUP_IDLE,
				 .p = *p,
				 .urls = urls,
				 .n_urls = n_urls,
				 .repeat = RATELIMIT(REPEAT_BURST, REPEAT_PERIOD_MS, 0)};
	backoff_init(&s->bo, p->initial_ms, p->max_ms, p->multiplier, p->jitter, seed);
}

void sup_reconfigure(struct supervisor *s, const struct sup_params *p, const char *const *urls,
		     size_t n_urls, bool reset_url)
{
	s->p = *p;
	s->bo.initial_ms = p->initial_ms;
	s->bo.max_ms = p->max_ms;
	s->bo.multiplier = p->multiplier;
	s->bo.jitter = p->jitter;
	s->urls = urls;
	s->n_urls = n_urls;
	if (reset_url || s->url_idx >= n_urls)
		s->url_idx = 0;
}

const char *sup_url(const struct supervisor *s)
{
	return s->urls[s->url_idx % s->n_urls];
}

static void connect_verdict(struct supervisor *s, struct sup_verdict *v)
{
	const char *url = sup_url(s);

	s->primary = ++s->next_id;
	s->state = SUP_CONNECTING;
	s->fin.closing = false;
	s->attempts++;
	s->tries++;
	v->act = SUP_DO_CONNECT;
	v->id = s->primary;
	v->url = url;
	add_line(v, LOG_DEBUG, "connecting", s->tries, url, "connecting to %s (attempt %u)", url,
		 s->tries);
	snprintf(v->status, sizeof(v->status), "connecting to %s (attempt %u)", url, s->tries);
}

void sup_start(struct supervisor *s, struct sup_verdict *v)
{
	memset(v, 0, sizeof(*v));
	connect_verdict(s, v);
}

void sup_timer(struct supervisor *s, uint64_t now, struct sup_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (s->state == SUP_WAITING)
		connect_verdict(s, v);
}

static void close_link(struct sup_verdict *v, uint64_t id, const char *reason)
{
	v->act = SUP_DO_CLOSE;
	v->id = id;
	v->close_code = 1000;
	v->close_reason = reason;
}

/* The standby carries traffic now. */
static void promote_standby(struct supervisor *s, struct sup_verdict *v)
{
	s->primary = s->standby;
	s->standby = 0;
	v->act = SUP_DO_PROMOTE;
	v->id = s->primary;
}

static void up_standby(struct supervisor *s, uint64_t now, struct sup_verdict *v)
{
	s->retiring = s->primary;
	promote_standby(s, v);
	s->connected_since = now;
	s->rotations++;
	v->old = s->retiring;
	add_line(v, LOG_NOTICE, "rotate", 0, sup_url(s),
		 "rotated to a new link to %s; the old one closes once its messages are confirmed",
		 sup_url(s));
	snprintf(v->status, sizeof(v->status), "connected to %s", sup_url(s));
}

void sup_up(struct supervisor *s, uint64_t id, uint64_t now, struct sup_verdict *v)
{
	uint64_t down = s->down_since && now > s->down_since ? now - s->down_since : 0;
	const char *url = sup_url(s);

	memset(v, 0, sizeof(*v));
	if (id && id == s->standby) {
		if (s->state == SUP_CONNECTED) {
			up_standby(s, now, v);
		} else {
			/* paused or stopping meanwhile: the rotation is moot */
			s->standby = 0;
			close_link(v, id, "not needed");
		}
		return;
	}
	if (s->down_since)
		s->reconnects++;
	v->event = (struct sup_event){
	    .change = SUP_CHANGE_UP, .url = url, .attempt = s->tries, .retry_ms = -1};
	s->state = SUP_CONNECTED;
	s->connected_since = now;
	/* a link that dropped at once, again and again: no notice for every return */
	if (s->flapping && s->streak > 1)
		add_line(v, ratelimit_allow(&s->repeat, now) ? LOG_INFO : LOG_DEBUG, "connect", 0,
			 url,
			 "connected to %s again after %.1f s down (it dropped %u time(s) in a row)",
			 url, (double)down / 1000.0, s->streak);
	else if (down)
		add_line(v, LOG_NOTICE, "connect", 0, url, "connected to %s after %.1f s down", url,
			 (double)down / 1000.0);
	else
		add_line(v, LOG_NOTICE, "connect", 0, url, "connected to %s", url);
	v->lines[v->n_lines - 1].ctx.link = "up";
	snprintf(v->status, sizeof(v->status), "connected to %s", url);
}

/*
 * A link up reset_after_s earns a fresh start (backoff, tries, log level): a
 * server that accepts and drops at once must not get a storm.
 */
static bool is_stable(const struct supervisor *s, uint64_t now)
{
	return s->state == SUP_CONNECTED &&
	       now - s->connected_since >= (uint64_t)s->p.reset_after_s * 1000;
}

/* The primary ended: note when, and give a stable link its fresh start. */
static void mark_down(struct supervisor *s, uint64_t now)
{
	if (is_stable(s, now)) {
		backoff_reset(&s->bo);
		s->quick_retry_used = false;
	}
	if (s->state == SUP_CONNECTED || !s->down_since)
		s->down_since = now;
	s->primary = 0;
}

static unsigned next_delay(struct supervisor *s, const struct link_end *e)
{
	uint64_t cap = (uint64_t)s->p.max_ms * 10, ra = (uint64_t)e->retry_after_s * 1000;
	unsigned d;

	if (e->http_status == 401 || e->http_status == 403)
		return s->p.max_ms;
	if (e->http_status == 429 || e->http_status == 503) {
		d = backoff_next(&s->bo);
		return ra > d ? (unsigned)(ra > cap ? cap : ra) : d;
	}
	/* one fast retry; a server that "restarts" at every connect gets backoff */
	if ((e->close_code == 1001 || e->close_code == 1012) && !s->quick_retry_used) {
		s->quick_retry_used = true;
		return s->p.initial_ms;
	}
	return backoff_next(&s->bo);
}

/*
 * The first failure after a good state warns, as does a different failure
 * (another kind, close code or HTTP status); repeats are info, rate-limited.
 */
static int failure_level(struct supervisor *s, const struct link_end *e, bool stable, uint64_t now)
{
	int sig = e->close_code ? e->close_code : e->http_status, level;

	if (e->by_request) {
		level = LOG_NOTICE;
	} else if (stable || e->fail != s->last_fail || sig != s->last_sig) {
		/* a server that closes normally (a restart, a deploy) did nothing wrong */
		level = e->clean_close ? LOG_NOTICE : LOG_WARNING;
		s->streak = 1;
		ratelimit_reset(&s->repeat, now);
	} else {
		s->streak++;
		level = ratelimit_allow(&s->repeat, now) ? LOG_INFO : LOG_DEBUG;
	}
	s->last_fail = e->fail;
	s->last_sig = sig;
	s->flapping = e->was_up && !stable && !e->by_request;
	return level;
}

static void failure_verdict(struct supervisor *s, uint64_t now, const struct link_end *e,
			    struct sup_verdict *v)
{
	bool stable = e->was_up && is_stable(s, now);
	int level = failure_level(s, e, stable, now);
	struct sup_line *l;
	unsigned delay;

	if (stable)
		s->tries = 0;
	mark_down(s, now);
	delay = next_delay(s, e);
	if (level == LOG_INFO && s->repeat.suppressed) {
		l = add_line(v, level, "disconnect", s->tries, sup_url(s),
			     "%s (attempt %u; %u similar line(s) not shown)", e->msg, s->tries,
			     s->repeat.suppressed);
		s->repeat.suppressed = 0;
	} else if (level == LOG_INFO || level == LOG_DEBUG) {
		l = add_line(v, level, "disconnect", s->tries, sup_url(s), "%s (attempt %u)",
			     e->msg, s->tries);
	} else {
		l = add_line(v, level, "disconnect", s->tries, sup_url(s), "%s", e->msg);
	}
	l->ctx.close_code = e->close_code;
	/* after a failure, the next URL of link.fallback_urls, wrapping around */
	if (!e->by_request)
		s->url_idx = (s->url_idx + 1) % s->n_urls;
	add_line(v, level == LOG_DEBUG ? LOG_DEBUG : LOG_INFO, "retry", s->tries + 1, sup_url(s),
		 "reconnecting to %s in %.1f s (attempt %u)", sup_url(s), delay / 1000.0,
		 s->tries + 1);
	snprintf(v->status, sizeof(v->status), "reconnecting in %.1f s (attempt %u): %s",
		 delay / 1000.0, s->tries + 1, v->event.msg);
	s->state = SUP_WAITING;
	s->retry_at = now + delay;
	v->act = SUP_DO_WAIT;
	v->delay_ms = delay;
}

static bool side_link_down(struct supervisor *s, uint64_t id, const struct link_end *e,
			   struct sup_verdict *v)
{
	if (id && id != s->primary && id != s->standby && id != s->retiring) {
		/* an abandoned rotation's link: nothing depends on it */
		add_line(v, LOG_DEBUG, "disconnect", 0, sup_url(s), "unused link: %s", e->msg);
		return true;
	}
	if (id && id == s->retiring) {
		s->retiring = 0;
		/* a server that closed it itself should still be heard */
		if (e->by_request)
			add_line(v, LOG_DEBUG, "disconnect", 0, sup_url(s), "old link: %s", e->msg);
		else
			add_line(v, LOG_NOTICE, "disconnect", 0, sup_url(s),
				 "%s; the link that replaces it was already up", e->msg)
			    ->ctx.close_code = e->close_code;
		return true;
	}
	if (id && id == s->standby && s->standby_for_restart) {
		/* the server is closing the old link anyway: its end takes the usual path */
		s->standby = 0;
		add_line(v, LOG_INFO, "disconnect", 0, sup_url(s),
			 "the link to replace the one the server is closing failed: %s", e->msg);
		return true;
	}
	if (id && id == s->standby) {
		/* a server may refuse a second connection: rotate the old way then */
		s->standby = 0;
		add_line(v, LOG_WARNING, "disconnect", 0, sup_url(s),
			 "could not open a second link to rotate to (%s): closing the current "
			 "link and reconnecting instead",
			 e->msg);
		if (s->state == SUP_CONNECTED && !s->reconnect_pending && !s->pause_pending) {
			s->reconnect_pending = true;
			close_link(v, s->primary, "reconnect");
		}
		return true;
	}
	return false;
}

/*
 * The primary ended while its replacement is being opened (the server said
 * 1001/1012, or it dropped during a rotation): that attempt is the next one.
 */
static bool take_over(struct supervisor *s, uint64_t now, const struct link_end *e,
		      struct sup_verdict *v)
{
	if (!s->standby || s->state == SUP_STOPPING || s->pause_pending || s->reconnect_pending)
		return false;
	mark_down(s, now);
	promote_standby(s, v);
	s->tries++;
	s->state = SUP_CONNECTING;
	add_line(v, e->by_request ? LOG_INFO : LOG_NOTICE, "disconnect", s->tries, sup_url(s),
		 "%s; its replacement is already connecting", e->msg)
	    ->ctx.close_code = e->close_code;
	snprintf(v->status, sizeof(v->status), "connecting to %s (attempt %u)", sup_url(s),
		 s->tries);
	return true;
}

/* The primary's end: its event (retry_ms filled once the verdict knows) and status' record. */
static void end_event(struct supervisor *s, const struct link_end *e, struct sup_verdict *v)
{
	v->event = (struct sup_event){
	    .change = e->was_up ? SUP_CHANGE_DOWN : SUP_CHANGE_FAILED,
	    .url = sup_url(s),
	    .attempt = s->tries,
	    .fail = e->fail,
	    .by_request = e->by_request,
	    .close_code = e->close_code,
	    .close_reason = e->close_reason,
	    .http_status = e->http_status,
	    .msg = e->msg,
	    .retry_ms = -1,
	};
	if (e->close_code) {
		s->last_close_code = e->close_code;
		snprintf(s->last_close_reason, sizeof(s->last_close_reason), "%s", e->close_reason);
	}
	if (e->by_request)
		return;
	s->failures[(unsigned)e->fail < SUP_FAIL_KINDS ? e->fail : SUP_FAIL_KINDS - 1]++;
	snprintf(s->last_error, sizeof(s->last_error), "%s", e->msg);
}

/* The lines that tell of the primary's end carry its change, cause and close code. */
static void tag_end_lines(struct sup_verdict *v, const struct link_end *e)
{
	for (size_t i = 0; i < v->n_lines && v->event.change != SUP_CHANGE_NONE; i++) {
		struct log_ctx *c = &v->lines[i].ctx;

		if (strcmp(c->event, "disconnect"))
			continue;
		c->link = v->event.change == SUP_CHANGE_DOWN ? "down" : "failed";
		c->cause = link_fail_name(e->fail);
		c->http_status = e->http_status;
		if (!c->close_code && e->by_request && e->sent_close_code) {
			c->close_code = e->sent_close_code;
			c->close_ours = true;
		}
	}
}

static void primary_down(struct supervisor *s, uint64_t now, const struct link_end *e,
			 size_t queued, struct sup_verdict *v)
{
	/* the end of the run: nothing more is owed to the server */
	if (s->fin.stop || (s->fin.eof && (s->fin.closing || !queued)))
		s->state = SUP_STOPPING;
	end_event(s, e, v);
	if (take_over(s, now, e, v))
		return;
	if (s->state == SUP_STOPPING) {
		mark_down(s, now);
		add_line(v, LOG_INFO, "disconnect", s->tries, sup_url(s), "%s", e->msg);
		return;
	}
	if (s->pause_pending) {
		mark_down(s, now);
		s->state = SUP_PAUSED;
		add_line(v, LOG_NOTICE, "disconnect", s->tries, sup_url(s),
			 "link closed: paused until `wstetherctl resume`")
		    ->ctx.close_code = e->close_code;
		snprintf(v->status, sizeof(v->status), "paused");
		return;
	}
	if (s->reconnect_pending) {
		s->reconnect_pending = false;
		mark_down(s, now);
		backoff_reset(&s->bo);
		add_line(v, LOG_NOTICE, "disconnect", s->tries, sup_url(s),
			 "reconnecting on request")
		    ->ctx.close_code = e->close_code;
		connect_verdict(s, v);
		v->event.retry_ms = 0;
		return;
	}
	failure_verdict(s, now, e, v);
	v->event.retry_ms = v->delay_ms;
}

void sup_down(struct supervisor *s, uint64_t id, uint64_t now, const struct link_end *e,
	      size_t queued, struct sup_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (side_link_down(s, id, e, v))
		return;
	primary_down(s, now, e, queued, v);
	tag_end_lines(v, e);
}

static bool link_exists(const struct supervisor *s)
{
	return s->state == SUP_CONNECTING || s->state == SUP_CONNECTED;
}

static void req_reconnect(struct supervisor *s, struct sup_verdict *v)
{
	if (s->pause_pending || s->state == SUP_PAUSED) {
		v->refused = "paused: use resume";
		return;
	}
	backoff_reset(&s->bo);
	if (link_exists(s)) {
		s->reconnect_pending = true;
		close_link(v, s->primary, "reconnect");
	} else {
		connect_verdict(s, v);
	}
}

static void req_reconfigure(struct supervisor *s, struct sup_verdict *v)
{
	if (s->pause_pending || s->state == SUP_PAUSED)
		return;
	if (link_exists(s)) {
		s->reconnect_pending = true;
		close_link(v, s->primary, "reconfigured");
	} else if (s->state == SUP_WAITING) {
		/* the new settings may work at once */
		connect_verdict(s, v);
	}
}

static void req_pause(struct supervisor *s, struct sup_verdict *v)
{
	if (s->pause_pending || s->state == SUP_PAUSED)
		return;
	s->pause_pending = true;
	add_line(v, LOG_NOTICE, "pause", 0, NULL, "pausing the link on request");
	if (link_exists(s)) {
		close_link(v, s->primary, "paused");
	} else {
		s->state = SUP_PAUSED;
		snprintf(v->status, sizeof(v->status), "paused");
	}
}

static void req_resume(struct supervisor *s, struct sup_verdict *v)
{
	if (!s->pause_pending && s->state != SUP_PAUSED)
		return;
	s->pause_pending = false;
	add_line(v, LOG_NOTICE, "resume", 0, NULL, "resuming the link on request");
	if (!link_exists(s))
		connect_verdict(s, v);
}

/* Make before break: open a standby; without a link to replace, this is a reconnect. */
static void req_rotate(struct supervisor *s, struct sup_verdict *v)
{
	if (s->standby || s->retiring || s->reconnect_pending) {
		v->refused = "a rotation is under way";
		return;
	}
	if (s->state != SUP_CONNECTED) {
		req_reconnect(s, v);
		return;
	}
	s->standby = ++s->next_id;
	s->standby_for_restart = false;
	s->attempts++;
	v->act = SUP_DO_CONNECT;
	v->id = s->standby;
	v->url = sup_url(s);
	add_line(v, LOG_INFO, "rotate", 0, v->url,
		 "opening a new link to %s to replace the current one", v->url);
}

/*
 * The server is going away or restarting: open the replacement now instead
 * of retrying after initial_ms. It uses up the streak's one fast retry, so a
 * server that says so at every connect still gets backoff, not a storm.
 */
static void req_server_restart(struct supervisor *s, uint64_t now, struct sup_verdict *v)
{
	if (s->state != SUP_CONNECTED || s->pause_pending ||
	    (s->quick_retry_used && !is_stable(s, now))) {
		v->refused = "no fast replacement now";
		return;
	}
	req_rotate(s, v);
	if (!v->refused) {
		s->quick_retry_used = true;
		s->standby_for_restart = true;
	}
}

void sup_request(struct supervisor *s, enum sup_request r, uint64_t now, struct sup_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (s->state == SUP_STOPPING && r != SUP_REQ_STOP) {
		v->refused = "stopping";
		return;
	}
	switch (r) {
	case SUP_REQ_RECONNECT:
		req_reconnect(s, v);
		break;
	case SUP_REQ_RECONFIGURE:
		req_reconfigure(s, v);
		break;
	case SUP_REQ_ROTATE:
		req_rotate(s, v);
		break;
	case SUP_REQ_SERVER_RESTART:
		req_server_restart(s, now, v);
		break;
	case SUP_REQ_PAUSE:
		req_pause(s, v);
		break;
	case SUP_REQ_RESUME:
		req_resume(s, v);
		break;
	case SUP_REQ_STOP:
		s->state = SUP_STOPPING;
		break;
	}
}

const char *sup_state_name(enum sup_state st)
{
	static const char *const n[] = {"idle",	   "connecting", "connected",
					"waiting", "paused",	 "stopping"};

	return st <= SUP_STOPPING ? n[st] : "unknown";
}

int64_t sup_next_retry_ms(const struct supervisor *s, uint64_t now)
{
	if (s->state != SUP_WAITING)
		return -1;
	return s->retry_at > now ? (int64_t)(s->retry_at - now) : 0;
}

void sup_status(const struct supervisor *s, uint64_t now, time_t wall, struct wst_status *st)
{
	st->state = s->state == SUP_IDLE ? "waiting" : sup_state_name(s->state);
	st->url = sup_url(s);
	st->up = s->state == SUP_CONNECTED;
	st->up_ms = st->up && now > s->connected_since ? now - s->connected_since : 0;
	if (st->up)
		st->connected_since = wall - (time_t)(st->up_ms / 1000);
	st->attempts = s->attempts;
	st->reconnects = s->reconnects;
	st->rotations = s->rotations;
	st->next_retry_ms = sup_next_retry_ms(s, now);
	for (size_t i = 0; i < SUP_FAIL_KINDS && i < WST_STATUS_CAUSES; i++)
		st->failures[i] = s->failures[i];
	st->last_error = s->last_error;
	st->last_close_code = s->last_close_code;
	st->last_close_reason = s->last_close_reason;
}

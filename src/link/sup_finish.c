/*
 * The end of the run as supervisor verdicts: SIGTERM (drain, then close with
 * 1001) and stdin's EOF (deliver, let the server answer, close with 1000).
 */
#include "supervisor.h"

#include <string.h>

/*
 * After EOF and the last confirmation, answers to our last messages may
 * still be on their way: close once the server has been quiet this long,
 * and stop waiting for quiet after drain_ms.
 */
#define QUIET_MS 300

bool sup_stop(struct supervisor *s, uint64_t now, const struct sup_world *w)
{
	if (s->fin.stop)
		return false;
	s->fin.stop = true;
	s->state = SUP_STOPPING;
	if (w->up && w->queued && s->p.drain_ms)
		s->fin.drain_until = now + s->p.drain_ms;
	return true;
}

void sup_eof(struct supervisor *s)
{
	s->fin.eof = true;
}

bool sup_ending(const struct supervisor *s)
{
	return s->fin.stop || s->fin.eof;
}

void sup_heard(struct supervisor *s, uint64_t now)
{
	if (s->fin.linger_until && !s->fin.lingered && now < s->fin.linger_until)
		s->fin.quiet_until = now + QUIET_MS;
}

/* Stop: confirmations may come until drain_until. false: wait for them. */
static bool drained(struct supervisor *s, uint64_t now, const struct sup_world *w,
		    struct sup_finish *f)
{
	if (!w->up || !w->queued || !s->fin.drain_until)
		return true;
	if (now < s->fin.drain_until) {
		f->wake_at = s->fin.drain_until;
		return false;
	}
	s->fin.drain_until = 0;
	f->undelivered = w->queued;
	return true;
}

/* EOF: the server's quiet moment. false: it has not had it yet. */
static bool quiet(struct supervisor *s, uint64_t now, const struct sup_world *w,
		  struct sup_finish *f)
{
	if (!w->up || s->fin.lingered)
		return true;
	if (!s->fin.linger_until) {
		s->fin.linger_until = now + s->p.drain_ms;
		s->fin.quiet_until = now + QUIET_MS;
	}
	if (now < s->fin.quiet_until) {
		f->wake_at = s->fin.quiet_until;
		return false;
	}
	s->fin.lingered = true;
	return true;
}

void sup_settle(struct supervisor *s, uint64_t now, const struct sup_world *w, struct sup_finish *f)
{
	/* a stop without a signal (SUP_REQ_STOP) is a stop too */
	bool stop = s->fin.stop || !s->fin.eof;

	memset(f, 0, sizeof(*f));
	if (s->state != SUP_STOPPING && !s->fin.stop && !(s->fin.eof && !w->queued))
		return;
	if (stop ? !drained(s, now, w, f) : !quiet(s, now, w, f))
		return;
	f->abort_others = w->others;
	if (w->up) {
		if (s->fin.closing)
			return;
		s->fin.closing = true;
		f->act = SUP_FIN_CLOSE;
		f->close_code = stop ? 1001 : 1000;
		f->close_reason = stop ? "going away" : "";
	} else if (w->active) {
		f->act = SUP_FIN_ABORT;
	} else if (!w->others) {
		f->act = SUP_FIN_QUIT;
	}
}

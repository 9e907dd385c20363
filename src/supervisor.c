#include "supervisor.h"

void sup_init(struct supervisor *s, const struct sup_params *p, uint64_t seed)
{
	*s = (struct supervisor){ .state = SUP_IDLE, .p = *p };
	backoff_init(&s->bo, p->initial_ms, p->max_ms, p->multiplier, p->jitter, seed);
}

void sup_attempt(struct supervisor *s)
{
	s->state = SUP_CONNECTING;
	s->attempts++;
	s->failures++;
}

uint64_t sup_up(struct supervisor *s, uint64_t now)
{
	uint64_t down = s->down_since && now > s->down_since ? now - s->down_since : 0;

	if (s->down_since)
		s->reconnects++;
	s->state = SUP_CONNECTED;
	s->connected_since = now;
	s->failures = 0;
	return down;
}

unsigned sup_down(struct supervisor *s, uint64_t now, enum sup_cause cause, unsigned retry_after_s)
{
	unsigned d;

	if (s->state == SUP_CONNECTED) {
		/* only a link that stayed up earns a fresh backoff: a server
		 * that accepts and drops at once must not get a storm */
		if (now - s->connected_since >= (uint64_t)s->p.reset_after_s * 1000) {
			backoff_reset(&s->bo);
			s->quick_retry_used = false;
		}
		s->down_since = now;
	} else if (!s->down_since) {
		s->down_since = now;
	}

	switch (cause) {
	case SUP_SERVER_RESTART:
		/* one fast retry; a server that "restarts" at every connect gets backoff */
		if (!s->quick_retry_used) {
			s->quick_retry_used = true;
			d = s->p.initial_ms;
		} else {
			d = backoff_next(&s->bo);
		}
		break;
	case SUP_AUTH_REJECTED:
		d = s->p.max_ms;
		break;
	case SUP_RETRY_AFTER: {
		uint64_t cap = (uint64_t)s->p.max_ms * 10, ra = (uint64_t)retry_after_s * 1000;

		d = backoff_next(&s->bo);
		if (ra > cap)
			ra = cap;
		if (ra > d)
			d = (unsigned)ra;
		break;
	}
	default:
		d = backoff_next(&s->bo);
		break;
	}
	s->state = SUP_WAITING;
	s->next_delay_ms = d;
	return d;
}

void sup_set_state(struct supervisor *s, enum sup_state st)
{
	s->state = st;
}

const char *sup_state_name(enum sup_state st)
{
	static const char *const n[] = { "idle", "connecting", "connected", "waiting", "paused",
					 "stopping" };

	return st <= SUP_STOPPING ? n[st] : "unknown";
}

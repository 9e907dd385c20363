#include "ratelimit.h"

bool ratelimit_allow(struct ratelimit *r, uint64_t now_ms)
{
	if (r->period_ms && now_ms > r->refill_at)
		r->tokens += (double)(now_ms - r->refill_at) / (double)r->period_ms;
	if (r->tokens > r->burst)
		r->tokens = r->burst;
	r->refill_at = now_ms;
	r->since++;
	if (!r->started || r->tokens >= 1.0 || (r->every && r->since >= r->every)) {
		if (r->tokens >= 1.0)
			r->tokens -= 1.0;
		r->started = true;
		r->since = 0;
		return true;
	}
	r->suppressed++;
	return false;
}

void ratelimit_reset(struct ratelimit *r, uint64_t now_ms)
{
	r->tokens = r->burst;
	r->refill_at = now_ms;
	r->since = 0;
	r->started = false;
	r->suppressed = 0;
}

#include "backoff.h"

#include "rng.h"

void backoff_init(struct backoff *b, unsigned initial_ms, unsigned max_ms, double multiplier,
		  double jitter, uint64_t seed)
{
	b->initial_ms = initial_ms;
	b->max_ms = max_ms < initial_ms ? initial_ms : max_ms;
	b->multiplier = multiplier < 1.0 ? 1.0 : multiplier;
	b->jitter = jitter < 0 ? 0 : jitter > 1 ? 1 : jitter;
	b->step = 0;
	b->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

unsigned backoff_next(struct backoff *b)
{
	double d = b->initial_ms;

	for (unsigned i = 0; i < b->step && d < b->max_ms; i++)
		d *= b->multiplier;
	if (d > b->max_ms)
		d = b->max_ms;
	else
		b->step++;
	/* uniform in [0, 1): good enough to spread clients apart */
	d *= 1.0 - b->jitter * (double)(rng_next(&b->rng) >> 11) / (double)(1ULL << 53);
	return d < 1 ? 1 : (unsigned)d;
}

void backoff_reset(struct backoff *b)
{
	b->step = 0;
}

#ifndef WST_BACKOFF_H
#define WST_BACKOFF_H

#include <stdint.h>

/*
 * Exponential backoff with proportional jitter: the n-th delay is drawn
 * uniformly from [d * (1 - jitter), d], d = min(max, initial * multiplier^n).
 * jitter = 1 is "full jitter"; jitter = 0 is plain exponential.
 */
struct backoff {
	unsigned initial_ms, max_ms;
	double multiplier, jitter;
	unsigned step;
	uint64_t rng;
};

void backoff_init(struct backoff *b, unsigned initial_ms, unsigned max_ms, double multiplier,
		  double jitter, uint64_t seed);
unsigned backoff_next(struct backoff *b);
void backoff_reset(struct backoff *b);

#endif

#ifndef WST_RNG_H
#define WST_RNG_H

#include <stdint.h>

/* xorshift64*: cheap, not cryptographic. The state must not be zero. */
static inline uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

#endif

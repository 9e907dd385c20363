#ifndef WST_RATELIMIT_H
#define WST_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Whether the next of a run of repeated events is worth a log line: the
 * first always is; then a bucket of `burst` lines, refilled at one line per
 * period_ms (0: never by time) and at one line per `every` events (0: never
 * by count). Zeroed, it allows the first event only. Pure: the caller passes
 * the clock, so unit tests use a fake one.
 */
struct ratelimit {
	double burst, tokens;
	uint64_t period_ms, refill_at;
	unsigned long every, since; /* events since the last line allowed */
	bool started;		    /* the run's first event came */
	unsigned suppressed;	    /* lines refused; the caller may report and zero it */
};

/* An initializer; (struct ratelimit)RATELIMIT(...) to assign one. */
#define RATELIMIT(b, period, n)                                                                    \
	{                                                                                          \
		.burst = (b), .tokens = (b), .period_ms = (period), .every = (n)                   \
	}

bool ratelimit_allow(struct ratelimit *r, uint64_t now_ms);
/* A new run: the bucket full again, nothing suppressed. */
void ratelimit_reset(struct ratelimit *r, uint64_t now_ms);

#endif

#ifndef WST_RATELIMIT_H
#define WST_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Whether the next of a run of repeated events is worth a log line: a bucket
 * of `burst` lines, refilled at one line per period_ms (0: never by time) and
 * at one line per `every` events (0: never by count). Pure: the caller passes
 * the clock, so unit tests use a fake one.
 */
struct ratelimit {
	double burst, tokens;
	uint64_t period_ms, refill_at;
	unsigned long every, since; /* events since the last line allowed */
	unsigned suppressed;	    /* lines refused; the caller may report and zero it */
};

/* An initializer; (struct ratelimit)RATELIMIT(...) to assign one. */
#define RATELIMIT(b, period, n)                                                                    \
	{                                                                                          \
		.burst = (b), .tokens = (b), .period_ms = (period), .every = (n)                   \
	}
/* The first event of a run says so; the rest go to debug. */
#define RATELIMIT_FIRST RATELIMIT(1, 0, 0)

bool ratelimit_allow(struct ratelimit *r, uint64_t now_ms);
/* A new run: the bucket full again, nothing suppressed. */
void ratelimit_reset(struct ratelimit *r, uint64_t now_ms);

#endif

#ifndef WST_SUPERVISOR_H
#define WST_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"

/*
 * The link's life as pure logic: which state, how long to wait before the
 * next attempt. The caller passes the clock in (milliseconds, monotonic),
 * so unit tests drive it with a fake one.
 */
enum sup_state { SUP_IDLE, SUP_CONNECTING, SUP_CONNECTED, SUP_WAITING, SUP_PAUSED, SUP_STOPPING };

enum sup_cause {
	SUP_FAILED,		/* the attempt failed before the link was up */
	SUP_CLOSED,		/* an established link ended */
	SUP_SERVER_RESTART,	/* the server closed with 1001 or 1012 */
	SUP_AUTH_REJECTED,	/* 401/403 on the upgrade */
	SUP_RETRY_AFTER,	/* 429/503, maybe with Retry-After */
};

struct sup_params {
	unsigned initial_ms, max_ms;
	double multiplier, jitter;
	unsigned reset_after_s;
};

struct supervisor {
	enum sup_state state;
	struct sup_params p;
	struct backoff bo;
	uint64_t connected_since;	/* valid in SUP_CONNECTED */
	uint64_t down_since;		/* when the last good link ended; 0 = never up */
	unsigned failures;		/* attempts since the last good link */
	uint64_t attempts, reconnects;
	unsigned next_delay_ms;
	bool quick_retry_used;		/* a restart close got its fast retry this streak */
};

void sup_init(struct supervisor *s, const struct sup_params *p, uint64_t seed);
void sup_attempt(struct supervisor *s);
/* Returns how long the link was down (ms) before this, 0 on the first connect. */
uint64_t sup_up(struct supervisor *s, uint64_t now);
/* The link ended: returns the delay before the next attempt. retry_after_s 0 = none. */
unsigned sup_down(struct supervisor *s, uint64_t now, enum sup_cause cause, unsigned retry_after_s);
void sup_set_state(struct supervisor *s, enum sup_state st);
const char *sup_state_name(enum sup_state st);

#endif

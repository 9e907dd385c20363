#ifndef WST_ENDPOINT_H
#define WST_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/*
 * A local endpoint: stdio, the bridge socket's clients, the exec handler.
 * Each kind gives one table of operations; the daemon walks a list.
 */
struct endpoint_impl {
	/* a message from the server */
	void (*deliver)(void *self, const unsigned char *data, size_t len, bool binary);
	/* the queue has room again: read on where a refusal paused reading */
	void (*resume)(void *self);
	/* stop reading local input for good (shutdown); output still drains */
	void (*stop_input)(void *self);
	/* the most output waiting for a reader that took some within active_s */
	size_t (*pending)(const void *self, double active_s);
	/* drop or terminate a reader that took none of its output for stall_s */
	void (*stalled)(void *self, double stall_s);
	/* flush what can be flushed and free it all (at exit) */
	void (*destroy)(void *self);
	/* optional: a link event, one JSON object (bridge.events, exec.events) */
	void (*event)(void *self, const char *json, size_t len);
	/* its part of the status: its drops added to the totals, its own fields set */
	void (*status)(const void *self, struct wst_status *st);
};

struct endpoint {
	const struct endpoint_impl *impl;
	void *self;
};

/* What an endpoint calls back. */
struct endpoint_events {
	void *ud;
	/* false: the queue refuses it for now; reading pauses until resume */
	bool (*message)(void *ud, const unsigned char *data, size_t len, bool binary);
	/* its output fell to ENDPOINT_LOW_WATER or below after being above */
	void (*drained)(void *ud);
	/* stdio only: stdin ended, and all of it is queued; stdout is gone */
	void (*eof)(void *ud);
	void (*broken)(void *ud);
};

/*
 * Back-pressure from local readers to the server: above HIGH bytes waiting
 * for a reader, reading from the server stops; at LOW or below, it goes on.
 */
#define ENDPOINT_HIGH_WATER (1024 * 1024)
#define ENDPOINT_LOW_WATER (256 * 1024)

/* Messages dropped, by reason (status "drops"). */
struct endpoint_drops {
	unsigned long long unframable;	 /* server messages its framing cannot carry */
	unsigned long long undelivered;	 /* server messages for a reader that was gone or full */
	unsigned long long invalid_utf8; /* local text that is not UTF-8 */
	unsigned long long oversized;	 /* local lines over link.max_message_bytes */
	unsigned long long slow_readers; /* clients dropped (handlers terminated): not reading */
	unsigned long long bad_framing;	 /* clients dropped (handlers terminated): framing error */
	/* payload bytes of the dropped messages */
	unsigned long long unframable_bytes, undelivered_bytes, invalid_utf8_bytes, oversized_bytes;
};

/* Status shows the local endpoints' drops together. */
static inline void endpoint_add_drops(struct wst_status *st, const struct endpoint_drops *e)
{
	st->unframable += e->unframable;
	st->undelivered += e->undelivered;
	st->invalid_utf8 += e->invalid_utf8;
	st->oversized += e->oversized;
	st->slow_readers += e->slow_readers;
	st->bad_framing += e->bad_framing;
	st->unframable_bytes += e->unframable_bytes;
	st->undelivered_bytes += e->undelivered_bytes;
	st->invalid_utf8_bytes += e->invalid_utf8_bytes;
	st->oversized_bytes += e->oversized_bytes;
}

#endif

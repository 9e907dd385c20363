#include "bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "listener.h"
#include "log.h"
#include "peer.h"
#include "ratelimit.h"

/*
 * Per client: this much unread output and the client is dropped at once.
 * Well before that, the daemon stops reading from the server for a client
 * that is reading, only slower (see bridge_max_pending), so it slows the
 * link instead of losing data; one that reads nothing is left to fill this
 * and is dropped, without holding up the link or the others.
 */
#define CLIENT_OUT_LIMIT (16 * 1024 * 1024)
#define MAX_CLIENTS 256

struct bridge {
	struct ev_loop *loop;
	struct endpoint_events ops;
	enum framing framing;
	size_t max_message;
	struct listener li;
	struct peer *clients[MAX_CLIENTS];
	size_t n;
	unsigned long long seq;
	struct endpoint_drops drops;
	struct ratelimit unframable_log;
	bool input_stopped;
	bool events;		/* bridge.events: event frames to every client */
	struct last_event last;	/* replayed to a client that connects */
};

static void remove_client(struct bridge *b, struct peer *p)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->clients[i] == p) {
			b->clients[i] = b->clients[--b->n];
			break;
		}
	}
	peer_destroy(p);
}

static void client_closed(void *ud, struct peer *p, const char *why)
{
	struct bridge *b = ud;
	bool clean = !strcmp(why, "closed");

	log_msg(clean ? LOG_DEBUG : LOG_WARNING, "%s: %s%s", peer_name(p),
		clean ? "disconnected" : "dropped: ", clean ? "" : why);
	remove_client(b, p);
}

static void accepted(void *ud, int fd)
{
	struct bridge *b = ud;
	struct peer_ops ops = { .ev = b->ops, .ud = b, .closed = client_closed, .drops = &b->drops };
	char name[64];
	struct peer *p;

	if (b->n == MAX_CLIENTS) {
		log_msg(LOG_WARNING, "%s: %d clients already: refusing another", b->li.path,
			MAX_CLIENTS);
		close(fd);
		return;
	}
	snprintf(name, sizeof(name), "bridge client %llu", ++b->seq);
	p = peer_create(b->loop, fd, fd, b->framing, b->max_message, CLIENT_OUT_LIMIT, name, &ops);
	if (!p) {
		close(fd);
		return;
	}
	if (b->input_stopped)
		peer_stop_input(p);
	/* where the link stands, for a client that connects between events */
	if (b->events)
		last_event_replay(&b->last, p);
	b->clients[b->n++] = p;
	log_msg(LOG_DEBUG, "%s: connected", name);
}

struct bridge *bridge_create(struct ev_loop *loop, const struct wst_config *cfg,
			     const struct endpoint_events *ops, char *err, size_t errlen)
{
	struct bridge *b = calloc(1, sizeof(*b));

	if (!b) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	b->loop = loop;
	b->ops = *ops;
	b->framing = cfg->bridge_framing;
	b->events = cfg->bridge_events;
	b->max_message = cfg->max_message_bytes;
	if (listener_open(&b->li, loop, cfg->bridge_socket, cfg->bridge_mode, accepted, b, err,
			  errlen) < 0) {
		free(b);
		return NULL;
	}
	return b;
}

static void bridge_destroy(void *self)
{
	struct bridge *b = self;

	listener_close(&b->li);
	while (b->n)
		peer_destroy(b->clients[--b->n]);
	free(b->last.json);
	free(b);
}

static void bridge_broadcast(void *self, const unsigned char *data, size_t len, bool binary)
{
	struct bridge *b = self;

	for (size_t i = 0; i < b->n;) {
		struct peer *p = b->clients[i];

		switch (peer_send(p, data, len, binary)) {
		case PEER_UNFRAMABLE:
			/* the same for every client: count it once */
			b->drops.unframable_bytes += len;
			b->drops.unframable++;
			if (ratelimit_allow(&b->unframable_log, 0) || log_enabled(LOG_DEBUG))
				log_msg(LOG_WARNING,
					"%s message of %zu bytes from the server cannot be framed as a "
					"line: not delivered to bridge clients (%llu so far)",
					binary ? "binary" : "multi-line text", len, b->drops.unframable);
			return;
		case PEER_FULL:
			log_msg(LOG_WARNING, "%s: dropped: it stopped reading or fell too far behind "
				"(%zu bytes unread, none read for %.1f s)", peer_name(p),
				peer_pending_output(p), peer_stalled_for(p));
			b->drops.slow_readers++;
			remove_client(b, p);
			continue; /* clients[i] is now another client */
		case PEER_SENT:
			break;
		}
		i++;
	}
}

/* A link event (JSON) to every client as an event frame, when bridge.events is on. */
static void bridge_event(void *self, const char *json, size_t len)
{
	struct bridge *b = self;

	if (!b->events)
		return;
	last_event_keep(&b->last, json, len);
	for (size_t i = 0; i < b->n;) {
		struct peer *p = b->clients[i];

		if (peer_send_event(p, json, len) == PEER_FULL) {
			log_msg(LOG_WARNING, "%s: dropped: it stopped reading (%zu bytes unread)",
				peer_name(p), peer_pending_output(p));
			b->drops.slow_readers++;
			remove_client(b, p);
			continue; /* clients[i] is now another client */
		}
		i++;
	}
}

static void bridge_resume(void *self)
{
	struct bridge *b = self;

	/* backwards: a client that dies here is replaced by one already done */
	for (size_t i = b->n; i-- > 0;)
		if (i < b->n)
			peer_resume(b->clients[i]);
}

static void bridge_stop_input(void *self)
{
	struct bridge *b = self;

	b->input_stopped = true;
	for (size_t i = 0; i < b->n; i++)
		peer_stop_input(b->clients[i]);
}

static void bridge_status(const void *self, struct wst_status *st)
{
	const struct bridge *b = self;

	endpoint_add_drops(st, &b->drops);
	st->bridge_clients = b->n;
	st->bridge_clients_dropped = b->drops.slow_readers + b->drops.bad_framing;
}

/* Reading, only slower than the server sends: worth waiting for (see CLIENT_OUT_LIMIT). */
static size_t bridge_max_pending(const void *self, double active_s)
{
	const struct bridge *b = self;
	size_t m = 0;

	for (size_t i = 0; i < b->n; i++) {
		struct peer *p = b->clients[i];

		if (peer_stalled_for(p) < active_s && peer_pending_output(p) > m)
			m = peer_pending_output(p);
	}
	return m;
}

static void bridge_drop_stalled(void *self, double stall_s)
{
	struct bridge *b = self;

	for (size_t i = b->n; i-- > 0;) {
		struct peer *p = b->clients[i];

		if (peer_stalled_for(p) >= stall_s) {
			log_msg(LOG_WARNING, "%s: dropped: it stopped reading (%zu bytes unread for "
				"%.0f s)", peer_name(p), peer_pending_output(p), stall_s);
			b->drops.slow_readers++;
			remove_client(b, p);
		}
	}
}

const struct endpoint_impl bridge_endpoint = {
    bridge_broadcast,	 bridge_resume,	 bridge_stop_input, bridge_max_pending,
    bridge_drop_stalled, bridge_destroy, bridge_event,	    bridge_status,
};

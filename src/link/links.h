#ifndef WST_LINKS_H
#define WST_LINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netwatch.h"
#include "supervisor.h"

struct ev_loop;
struct outbox;
struct wst_config;
struct wst_status;

/*
 * The link's life: the supervisor decides, this carries it out on two link
 * slots (two links exist only during a make-before-break rotation), with the
 * retry, age and end-of-run timers and the network-change probes. Which link
 * carries traffic is the supervisor's primary; nothing else stores it.
 */
struct links;

/* What the links report up, to the daemon. */
struct links_events {
	void *ud;
	/* a message from the server, for every local endpoint */
	void (*message)(void *ud, const unsigned char *data, size_t len, bool binary);
	/* held-back senders may go on: messages were confirmed, or the primary ended */
	void (*resume)(void *ud);
	/* a link event for local programs that asked (watchers, event frames) */
	void (*event)(void *ud, const struct sup_event *ev);
	/* everything owed is delivered or given up: end the loop */
	void (*quit)(void *ud);
};

/* Takes c's policy and URLs (links_use_config); NULL: out of memory. */
struct links *links_create(struct ev_loop *loop, struct outbox *out, const struct wst_config *c,
			   uint64_t seed, const struct links_events *ev);
void links_destroy(struct links *ls);
/* Make c the links' config (the caller frees the old one). -1: out of memory, nothing changed. */
int links_use_config(struct links *ls, const struct wst_config *c, bool reset_url);
/* The first attempt. */
void links_start(struct links *ls);
/* An operator's request: NULL, or why it was refused. */
const char *links_request(struct links *ls, enum sup_request r);
/* SIGTERM: drain for link.drain_timeout_s, close with 1001, then quit. */
void links_stop(struct links *ls);
bool links_stopping(const struct links *ls);
/* stdin ended: once the queue is empty and the server quiet, close with 1000, then quit. */
void links_eof(struct links *ls);

const char *links_url(const struct links *ls);
uint64_t links_now_ms(void);
/* The carrier is up: the queue drains within a round trip or two. */
bool links_up(const struct links *ls);
/* New messages are in the queue. */
void links_kick(struct links *ls);
/* Local readers are behind (true) or caught up: the carrier stops or resumes reading. */
void links_pause_rx(struct links *ls, bool pause);
/* `wstetherctl close`: NULL, or why not. */
const char *links_close(struct links *ls, int code, const char *reason);
/* netwatch's callback; ud is the links. */
void links_net_change(void *ud, enum net_change what, const struct sockaddr_storage *addr,
		      unsigned prefix);
/*
 * Drop the TLS sessions kept for resumption (a reload changed tls.* or
 * link.url): the next handshake is a full one. Returns how many went.
 */
size_t links_forget_tls_sessions(struct links *ls);
/* The links' and the supervisor's part of the status. */
void links_status(const struct links *ls, struct wst_status *st);

#endif

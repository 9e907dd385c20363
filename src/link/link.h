#ifndef WST_LINK_H
#define WST_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "netwatch.h"

struct ev_loop;
struct outbox;
struct wst_config;

/*
 * One WebSocket link attempt at a time: a fresh lws context per attempt on
 * the daemon's libev loop. The only owner of a wsi. Everything that acts on
 * the connection is recorded here and carried out in its own callback.
 */
struct link;

enum link_fail {
	LINK_FAIL_NONE,
	LINK_FAIL_CONNECT,   /* TCP: refused, unreachable, DNS */
	LINK_FAIL_TIMEOUT,   /* connect_timeout_s passed before the upgrade */
	LINK_FAIL_TLS,	     /* handshake or certificate */
	LINK_FAIL_HTTP,	     /* upgrade answered with a status other than 101 */
	LINK_FAIL_PROTOCOL,  /* bad upgrade response */
	LINK_FAIL_CLOSED,    /* an established link ended */
	LINK_FAIL_DEAD,	     /* no pong within pong_timeout_s */
	LINK_FAIL_LOCAL,     /* we could not set up the attempt */
	LINK_FAIL_VIOLATION, /* the server broke RFC 6455 on an open link: we closed it */
	LINK_FAIL_PROXY,     /* the proxy refused or broke its handshake */
};

struct link_end {
	enum link_fail fail;
	bool was_up;	 /* the upgrade had succeeded */
	bool by_request; /* we asked for the close */
	int http_status;
	unsigned retry_after_s; /* Retry-After of a 429/503, else 0 */
	int close_code;		/* from the server's close frame as received, 0 if none */
	int sent_close_code;	/* by_request: our own close frame's code, 0 if none */
	char close_reason[124]; /* escaped (escape_text) */
	char msg[512];		/* one line that explains it */
	bool clean_close;	/* it began with the server's close: 1000, or no code */
};

/* The first cause of the end, in fail and msg; later ones are consequences and ignored. */
void link_end_set(struct link_end *end, enum link_fail fail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct link_events {
	void *ud;
	void (*up)(void *ud);
	void (*message)(void *ud, const unsigned char *data, size_t len, bool binary);
	/* messages were confirmed and left the queue */
	void (*confirmed)(void *ud);
	/* the attempt is over and its context destroyed; end says why */
	void (*down)(void *ud, const struct link_end *end);
	/* the server closes with 1001 or 1012: it is going away or restarting */
	void (*restarting)(void *ud);
	/*
	 * Whether this link writes queued messages and fences them now: the
	 * owner's answer, never stored here. A rotation's new link does not
	 * until it takes over; the old one's pings fence nothing of the queue.
	 */
	bool (*carries)(void *ud);
};

struct tls_sessions;
/* sessions: the TLS sessions kept across attempts (the links', shared by both slots) */
struct link *link_create(struct ev_loop *loop, struct outbox *out, const struct link_events *ev,
			 struct tls_sessions *sessions);
void link_destroy(struct link *l);

/* Start an attempt: NULL, or it failed at once as this says and down() will not be called. */
const struct link_end *link_start(struct link *l, const struct wst_config *cfg, const char *url);
/* Abandon the attempt or link now, without a close handshake (destroys the context). */
void link_abort(struct link *l, const char *why);

bool link_active(const struct link *l); /* an attempt or link exists */
bool link_up(const struct link *l);

/* The TLS version ("TLSv1.3") and IANA cipher suite name of a link that is up; false: none. */
bool link_tls(const struct link *l, const char **version, const char **cipher);
struct wst_status;
/*
 * Its part of the status: its message counters add to st's (a rotation's
 * messages count wherever they went); the carrier's says the rest.
 */
void link_status(const struct link *l, bool carrier, struct wst_status *st);
/* A label for a failure kind ("connect", "tls", ...); NULL for none or unknown. */
const char *link_fail_name(int fail);
/* The proxy that carries the link, "http://host:port (from https_proxy)", or "" when direct. */
const char *link_via(const struct link *l);
/*
 * A network change (NET_ADDR_GONE, NET_ROUTE_GONE: netwatch_fn) that may
 * have cut the link: ping now, and call it dead without an answer in
 * deadline_s. false: it was not cut, not up, or cannot be probed now.
 */
bool link_probe(struct link *l, enum net_change what, const struct sockaddr_storage *addr,
		unsigned prefix, unsigned deadline_s);

/* New messages are in the queue, or the link carries them now. */
void link_kick(struct link *l);
/* Close with code and reason; before the link is up this abandons the attempt. */
void link_request_close(struct link *l, int code, const char *reason);
/* Replaced by a newer link: write nothing more, close with 1000 once its last fence is answered. */
void link_retire(struct link *l);

/* Stop (true) or resume reading from the server, for local back-pressure. */
void link_pause_rx(struct link *l, bool pause);

#endif

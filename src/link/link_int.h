#ifndef WST_LINK_INT_H
#define WST_LINK_INT_H

/*
 * The link's insides, shared by its files only: link.c (the lws callback,
 * writing, pings, timers and the public calls), link_attempt.c (starting an
 * attempt: header files, proxy, dial, lws context), link_upgrade.c (the
 * upgrade's headers and extensions) and link_session.c (the TLS session
 * kept). What the server sends is link_rx.c's pure receive session, and
 * why an attempt failed, in one line, link_classify.c's.
 */
#include "link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "config.h"
#include "escape.h"
#include "dial.h"
#include "hello.h"
#include "link_rx.h"
#include "log.h"
#include "pmdeflate.h"
#include "outbox.h"
#include "rng.h"
#include "tls.h"
#include "tls_session.h"
#include "tunnel.h"
#include "url.h"
#include "wsframe.h"

/* How much to hand lws per WRITEABLE: enough to fill a socket buffer. */
#define TX_BATCH (256 * 1024)
/* lws reads into its per-thread buffer; the default 4 KiB costs a loop turn per 4 KiB. */
#define RX_CHUNK (64 * 1024)

/* One attempt's state, cleared with one memset when it starts: nothing drifts across attempts. */
struct attempt {
	bool up;
	bool upgrade_sent;	       /* TCP (and TLS) were up: the HTTP upgrade went out */
	char via[PROXY_MAX_HOST + 64]; /* "" or the proxy that carries the link */
	struct sockaddr_storage local; /* our end of the dialled socket */
	struct sockaddr_storage peer;  /* the far end of the TCP connection: server or proxy */
	bool probing;		       /* a ping after a network change is out */
	unsigned probe_s;
	char deflate_offer[96]; /* link.compression = "deflate": the offer, else "" */

	/* requests carried out in our own WRITEABLE callback */
	bool close_req, close_sent;
	int close_code;
	char close_reason[124];
	bool ping_due;
	bool rx_paused;

	uint64_t fenced_seq; /* newest seq covered by a ping we sent */
	bool fence_in_flight;
	bool retiring; /* closes once its last fence is answered */

	struct link_rx rx; /* what the server sends; set up once the upgrade succeeded */

	/* what its TLS handshake negotiated, once up ("" before): link_tls_names() */
	char tls_version[16]; /* "TLSv1.3" */
	char tls_cipher[64];  /* IANA's name: "TLS_AES_256_GCM_SHA384" */

	bool hello_due;
	double ping_at; /* when the ping being timed went out (ev_time) */
	uint64_t ping_seq;
	bool ping_timing;

	unsigned char tls_id[TLS_SESSION_ID_LEN]; /* link_session.c: the TLS identity */
	bool tls_resumed;			  /* the handshake resumed a kept session */
	uint64_t tls_generation;		  /* the session cache's when the attempt began */
};

struct link {
	struct ev_loop *loop;
	struct outbox *out; /* what it writes, and confirms */
	struct link_events ev;

	struct lws_context *ctx;
	struct dial *dial;  /* before lws: resolve, connect, proxy */
	int fd;		    /* the dialled socket; lws holds a dup of it */
	struct proxy proxy; /* this attempt's; credentials wiped once dialled */
	struct lws *wsi;    /* set only between ESTABLISHED and CLOSED */
	bool ending, destroying;
	struct link_end end;
	struct attempt at;
	struct tls_sessions *sessions; /* the links', shared by both */
	bool resume;		       /* tls.session_resumption of this attempt */

	/* per-attempt scratch; lws may point into it until the context is gone */
	struct wst_url url;
	char host_hdr[URL_MAX_HOST + 16];
	char ca_file[4096];
	char url_text[URL_MAX_HOST + URL_MAX_PATH + 32];
	char *subprotocol, *origin;
	struct pmd *pmd;		/* permessage-deflate, once the server accepted it */
	char deflate_params[128];	/* what it accepted, for the log and status */
	char **hdr_names, **hdr_values; /* "Name:" and value; values never logged */
	size_t n_hdrs;
	struct tls_client_cert cert;
	struct tls_ca ca;
	char cert_file[4096];
	char server_name[URL_MAX_HOST + 1]; /* tls.server_name of this attempt */
	bool insecure;
	bool tls13_only; /* tls.min_version = "1.3" */
	unsigned connect_timeout_s, ping_interval_s, pong_timeout_s;
	size_t max_message;

	bool rx_pause_want;
	uint64_t rng;

	unsigned char *tx;
	size_t tx_cap;

	struct hello hello; /* this attempt's, read at link_start */

	ev_timer connect_timer, ping_timer, pong_timer, close_timer, reap_timer;

	unsigned long long sent, sent_bytes; /* written, resends included */
	unsigned long long received, received_bytes;
	int64_t ping_rtt_us; /* the last timed ping's round trip; -1: none yet */
	char cert_not_after[32];
	time_t cert_not_after_t;
};

/* The link is over: its context is destroyed from the loop, never from inside lws. */
void link_finish(struct link *l);
void link_free_scratch(struct link *l);
/* link_upgrade.c: the headers we add, the extensions the 101 accepted, why it failed */
int link_upgrade_headers(struct link *l, struct lws *wsi, void *in, size_t len);
int link_upgrade_extensions(struct link *l, struct lws *wsi);
void link_upgrade_failed(struct link *l, struct lws *wsi, const char *in);
void link_release_dial(struct link *l);
extern const struct lws_protocols link_protocols[];

/* link_session.c: the TLS session kept across attempts (tls_session.h) */
void link_session_offer(struct link *l);
void link_session_established(struct link *l, struct lws *wsi);
void link_session_end(struct link *l);

#endif

#include "link.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "config.h"
#include "escape.h"
#include "dial.h"
#include "framing.h"
#include "hello.h"
#include "linkerr.h"
#include "log.h"
#include "pmdeflate.h"
#include "queue.h"
#include "rng.h"
#include "tls.h"
#include "tunnel.h"
#include "url.h"
#include "utf8.h"
#include "wsframe.h"
#include "wsrx.h"

/* How much to hand lws per WRITEABLE: enough to fill a socket buffer. */
#define TX_BATCH (256 * 1024)
/* lws reads into its per-thread buffer; the default 4 KiB costs a loop turn per 4 KiB. */
#define RX_CHUNK (64 * 1024)

struct link {
	struct ev_loop *loop;
	struct queue *q;
	struct link_events ev;

	struct lws_context *ctx;
	struct dial *dial;	/* before lws: resolve, connect, proxy */
	int fd;			/* the dialled socket; lws holds a dup of it */
	struct proxy proxy;	/* this attempt's; credentials wiped once dialled */
	char via[PROXY_MAX_HOST + 64];	/* "" or the proxy that carries the link */
	struct sockaddr_storage local;	/* our end of the dialled socket */
	bool probing;			/* a ping after a network change is out */
	unsigned probe_s;
	struct lws *wsi;	/* set only between ESTABLISHED and CLOSED */
	bool up, ending, destroying;
	struct link_end end;

	/* per-attempt scratch; lws may point into it until the context is gone */
	struct wst_url url;
	char host_hdr[URL_MAX_HOST + 16];
	char ca_file[4096];
	char url_text[URL_MAX_HOST + URL_MAX_PATH + 32];
	char *subprotocol, *origin;
	const char *offered_extensions; /* comma-separated, NULL for none */
	bool deflate;			/* link.compression = "deflate": offer it */
	char deflate_offer[96];
	struct pmd *pmd;		/* permessage-deflate, once the server accepted it */
	char deflate_params[128];	/* what it accepted, for the log and status */
	char **hdr_names, **hdr_values; /* "Name:" and value; values never logged */
	size_t n_hdrs;
	struct tls_client_cert cert;
	struct tls_ca ca;
	bool upgrade_sent; /* TCP (and TLS) were up: the HTTP upgrade went out */
	char cert_file[4096];
	char server_name[URL_MAX_HOST + 1];	/* tls.server_name of this attempt */
	bool insecure;
	unsigned connect_timeout_s, ping_interval_s, pong_timeout_s;
	size_t max_message;

	/* requests carried out in our own WRITEABLE callback */
	bool close_req, close_sent;
	int close_code;
	char close_reason[124];
	bool ping_due;
	bool rx_pause_want, rx_paused;

	uint64_t fenced_seq; /* newest seq covered by a ping we sent */
	bool fence_in_flight;
	/*
	 * Only the carrier writes queued messages and fences them; during a
	 * rotation the other link's pings fence nothing of the queue, and a
	 * retiring one closes once its last fence is answered.
	 */
	bool carrier, retiring;
	uint64_t rng;

	struct wsrx rx;
	bool violated;	  /* we are failing the link for the server's protocol error */
	bool peer_closed; /* the server's close frame came: answer it, then wait for TCP */
	int peer_code;	  /* what to answer it with, 0 for an empty close */
	bool pong_due;
	unsigned char pong[125];
	size_t pong_len;

	unsigned char *tx;
	size_t tx_cap;

	struct hello hello;	/* this attempt's, read at link_start */
	bool hello_due;
	double ping_at;		/* when the ping being timed went out (ev_time) */
	uint64_t ping_seq;
	bool ping_timing;

	ev_timer connect_timer, ping_timer, pong_timer, close_timer, reap_timer;

	struct link_stats stats;
	char cert_not_after[32];
	time_t cert_not_after_t;
};

/* How long we wait for the server to answer our close frame. */
#define CLOSE_WAIT_S 2.0

static void set_end(struct link *l, enum link_fail fail, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_end(struct link *l, enum link_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (l->end.fail != LINK_FAIL_NONE)
		return; /* the first cause explains it; later ones are consequences */
	l->end.fail = fail;
	va_start(ap, fmt);
	vsnprintf(l->end.msg, sizeof(l->end.msg), fmt, ap);
	va_end(ap);
}

static void stop_timers(struct link *l)
{
	ev_timer_stop(l->loop, &l->connect_timer);
	ev_timer_stop(l->loop, &l->ping_timer);
	ev_timer_stop(l->loop, &l->pong_timer);
	ev_timer_stop(l->loop, &l->close_timer);
}

static void free_scratch(struct link *l)
{
	for (size_t i = 0; i < l->n_hdrs; i++) {
		free(l->hdr_names[i]);
		if (l->hdr_values[i])
			explicit_bzero(l->hdr_values[i], strlen(l->hdr_values[i]));
		free(l->hdr_values[i]);
	}
	free(l->hdr_names);
	free(l->hdr_values);
	l->hdr_names = l->hdr_values = NULL;
	l->n_hdrs = 0;
	free(l->subprotocol);
	free(l->origin);
	l->subprotocol = l->origin = NULL;
	tls_client_free(&l->cert);
	tls_ca_free(&l->ca);
	hello_free(&l->hello);
	pmd_destroy(l->pmd);
	l->pmd = NULL;
	l->deflate_params[0] = '\0';
}

static void release_dial(struct link *l)
{
	dial_free(l->dial);
	l->dial = NULL;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	explicit_bzero(&l->proxy, sizeof(l->proxy));
}

/* The link is over: destroy the context from the loop, never from inside lws. */
static void finish(struct link *l)
{
	if (l->ending || l->destroying)
		return;
	l->ending = true;
	stop_timers(l);
	ev_timer_set(&l->reap_timer, 0, 0);
	ev_timer_start(l->loop, &l->reap_timer);
}

static void reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;

	l->destroying = true;
	if (l->ctx)
		lws_context_destroy(l->ctx); /* runs CLOSED / CONNECTION_ERROR synchronously */
	l->ctx = NULL;
	l->wsi = NULL;
	release_dial(l);
	free_scratch(l);
	l->destroying = false;
	l->ending = false;
	l->up = false;
	l->close_req = l->close_sent = false;
	/* what it wrote and nobody confirmed goes out again, unless another link carries it */
	if (l->carrier)
		queue_rewind(l->q);
	if (l->end.fail == LINK_FAIL_NONE)
		set_end(l, LINK_FAIL_CLOSED, "link closed");
	if (l->ev.down)
		l->ev.down(l->ev.ud);
}

static void connect_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;
	char wait[640];

	if (l->dial) {
		dial_describe_wait(l->dial, wait, sizeof(wait));
		set_end(l, LINK_FAIL_TIMEOUT,
			"connection to %s timed out after %u s: %s (link.connect_timeout_s)",
			l->url_text, l->connect_timeout_s, wait);
	} else if (l->upgrade_sent)
		set_end(l, LINK_FAIL_TIMEOUT,
			"connection to %s timed out after %u s: the server accepted it but did not "
			"answer the WebSocket upgrade (link.connect_timeout_s)",
			l->url_text, l->connect_timeout_s);
	else
		set_end(l, LINK_FAIL_TIMEOUT,
			"connection to %s:%u timed out after %u s: %s never completed "
			"(link.connect_timeout_s)",
			l->url.host, l->url.port, l->connect_timeout_s,
			l->url.tls ? "the TCP connect or the TLS handshake" : "the TCP connect");
	finish(l);
}

static void close_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;

	set_end(l, LINK_FAIL_CLOSED, "server %s:%u did not answer our close within %.0f s",
		l->url.host, l->url.port, CLOSE_WAIT_S);
	finish(l);
}

static void pong_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;

	if (l->probing)
		set_end(l, LINK_FAIL_DEAD,
			"link to %s:%u is dead: no answer within %u s to a ping after a network "
			"change",
			l->url.host, l->url.port, l->probe_s);
	else
		set_end(l, LINK_FAIL_DEAD, "link to %s:%u is dead: no pong or frame within %u s",
			l->url.host, l->url.port, l->pong_timeout_s);
	finish(l);
}

static void ping_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;

	if (!l->wsi)
		return;
	l->ping_due = true;
	lws_callback_on_writable(l->wsi);
	/* a peer that vanished while we were sending blocks WRITEABLE, and so the ping */
	if (!ev_is_active(&l->pong_timer) && !l->rx_paused) {
		ev_timer_set(&l->pong_timer, l->pong_timeout_s, 0);
		ev_timer_start(l->loop, &l->pong_timer);
	}
}

/* Masks only keep proxies from mistaking frames for requests: no secrecy needed. */
static uint32_t next_mask(struct link *l)
{
	return (uint32_t)(rng_next(&l->rng) >> 32);
}

static int tx_reserve(struct link *l, size_t need)
{
	unsigned char *n;

	if (need <= l->tx_cap)
		return 0;
	n = realloc(l->tx, LWS_PRE + need);
	if (!n)
		return -1;
	l->tx = n;
	l->tx_cap = need;
	return 0;
}

static void send_ping(struct link *l, unsigned char *p, size_t *off)
{
	uint64_t seq = l->carrier ? queue_last_sent_seq(l->q) : l->fenced_seq;
	unsigned char payload[8];

	if (seq < l->fenced_seq)
		seq = l->fenced_seq;
	for (int i = 0; i < 8; i++)
		payload[i] = (unsigned char)(seq >> (56 - 8 * i));
	*off += wsframe_encode(p + *off, WSF_PING, payload, sizeof(payload), next_mask(l));
	if (!l->ping_timing) {
		l->ping_timing = true;
		l->ping_at = ev_time();
		l->ping_seq = seq;
	}
	l->fenced_seq = seq;
	l->fence_in_flight = true;
	if (!ev_is_active(&l->pong_timer) && !l->rx_paused) {
		ev_timer_set(&l->pong_timer, l->pong_timeout_s, 0);
		ev_timer_start(l->loop, &l->pong_timer);
	}
}

/* The next hello messages fit one write: they go before any queued message. */
static int write_hello(struct link *l, size_t *off)
{
	const char *m = l->hello.data;

	l->hello_due = false;
	if (tx_reserve(l, l->hello.total + l->hello.n * WSFRAME_MAX_HEADER) < 0) {
		set_end(l, LINK_FAIL_LOCAL, "out of memory framing the hello (link.hello)");
		return -1;
	}
	for (size_t i = 0; i < l->hello.n; m += l->hello.lens[i++])
		*off += wsframe_encode(l->tx + LWS_PRE + *off, WSF_TEXT, m, l->hello.lens[i],
				       next_mask(l));
	return 0;
}

/*
 * Pings carry the queue fence; the first in flight is timed. Pongs echo in
 * order, so the pong that carries its seq is its own.
 */
static void time_pong(struct link *l, uint64_t seq)
{
	if (l->ping_timing && seq == l->ping_seq) {
		l->stats.ping_rtt_us = (int64_t)((ev_time() - l->ping_at) * 1e6);
		l->ping_timing = false;
	}
}

/* RFC 7692 7.2.1: the queue and spool keep the message as it is; only the frame is compressed. */
static int compress_message(struct link *l, const unsigned char **data, size_t *len, int *op)
{
	int rc = pmd_compress(l->pmd, *data, *len, data, len);

	if (rc < 0) {
		/* the server's inflater can no longer follow ours: only a new link helps */
		set_end(l, LINK_FAIL_LOCAL, "out of memory compressing a %zu-byte message for %s",
			*len, l->url_text);
		return -1;
	}
	if (rc > 0)
		*op |= WSF_RSV1;
	return 0;
}

/*
 * Frame as many queued messages as fit one batch, then a ping whose pong
 * confirms them all (TCP keeps order), and hand lws the lot in one write.
 */
static int write_batch(struct link *l)
{
	size_t off = 0;
	struct qmsg *m;
	unsigned char *p;

	if (l->pong_due) {
		if (tx_reserve(l, WSFRAME_MAX_HEADER + l->pong_len) < 0)
			return -1;
		off = wsframe_encode(l->tx + LWS_PRE, WSF_PONG, l->pong, l->pong_len, next_mask(l));
		l->pong_due = false;
	}
	if (l->hello_due && write_hello(l, &off) < 0)
		return -1;
	while (l->carrier && (m = queue_peek_unsent(l->q))) {
		/* room for the message as compression could make it, at worst */
		size_t wire = l->pmd ? pmd_compress_bound(m->len) : m->len;
		size_t need = wsframe_header_len(wire) + wire, len = m->len;
		const unsigned char *data = qmsg_data(l->q, m);
		int op = m->binary ? WSF_BINARY : WSF_TEXT;

		if (off && off + need > TX_BATCH)
			break;
		if (tx_reserve(l, off + need + 2 * WSFRAME_MAX_HEADER + 8) < 0) {
			log_msg(LOG_ERR, "out of memory framing a %u-byte message", m->len);
			return -1;
		}
		if (l->pmd && compress_message(l, &data, &len, &op) < 0)
			return -1;
		p = l->tx + LWS_PRE;
		off += wsframe_encode(p + off, op, data, len, next_mask(l));
		queue_mark_sent(l->q);
		l->stats.sent++;
		l->stats.sent_bytes += m->len;
	}
	if (tx_reserve(l, off + WSFRAME_MAX_HEADER + 8) < 0)
		return -1;
	p = l->tx + LWS_PRE;
	if (l->ping_due || (l->carrier && queue_last_sent_seq(l->q) > l->fenced_seq &&
			    !l->fence_in_flight)) {
		l->ping_due = false;
		send_ping(l, p, &off);
	}
	if (!off)
		return 0;
	/* LWS_WRITE_HTTP on a ws connection sends bytes as they are: our own frames */
	if (lws_write(l->wsi, p, off, LWS_WRITE_HTTP) < 0) {
		set_end(l, LINK_FAIL_CLOSED, "write to %s:%u failed", l->url.host, l->url.port);
		return -1;
	}
	if (queue_peek_unsent(l->q))
		lws_callback_on_writable(l->wsi);
	return 0;
}

/*
 * RFC 7692 6.2: inflate a message that came with RSV1, at most
 * link.max_message_bytes of it. What fails fails the link as a violation.
 */
static int inflate_message(struct link *l, const unsigned char **data, size_t *len, bool binary)
{
	char what[96], esc[48];
	const char *zerr;

	switch (pmd_inflate(l->pmd, *data, *len, true)) {
	case PMD_OK:
		break;
	case PMD_TOO_BIG:
		wsrx_reject(&l->rx, WSRX_TOO_BIG, 1009, "a message that inflates too far");
		return -1;
	case PMD_CORRUPT:
		zerr = pmd_error(l->pmd);
		escape_text(esc, sizeof(esc), zerr, strlen(zerr));
		snprintf(what, sizeof(what), "a compressed message that does not inflate (%s)", esc);
		wsrx_reject(&l->rx, WSRX_VIOLATION, 1007, what);
		return -1;
	default:
		wsrx_reject(&l->rx, WSRX_NOMEM, 1009, "a message too big for the memory left");
		return -1;
	}
	*data = pmd_message(l->pmd, len);
	if (!binary && !utf8_valid(*data, *len)) {
		snprintf(what, sizeof(what),
			 "a compressed text message of %zu bytes, not UTF-8 inflated (RFC 6455 §8.1)",
			 *len);
		wsrx_reject(&l->rx, WSRX_VIOLATION, 1007, what);
		return -1;
	}
	return 0;
}

static void rx_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct link *l = ud;

	/* nothing reaches local programs once we fail the link or the server closed it */
	if (l->violated || l->peer_closed)
		return;
	/* RSV1 is allowed, and msg_compressed can be set, only once pmd exists */
	if (l->rx.msg_compressed && inflate_message(l, &data, &len, binary) < 0)
		return;
	l->stats.received++;
	l->stats.received_bytes += len;
	if (l->ev.message)
		l->ev.message(l->ev.ud, data, len, binary);
}

static void rx_ping(void *ud, const unsigned char *data, size_t len)
{
	struct link *l = ud;

	/* RFC 6455 5.5.3: answering the latest ping is enough */
	memcpy(l->pong, data, len);
	l->pong_len = len;
	l->pong_due = true;
	if (l->wsi)
		lws_callback_on_writable(l->wsi);
}

static void on_pong(struct link *l, const unsigned char *in, size_t len);

static void rx_pong(void *ud, const unsigned char *data, size_t len)
{
	on_pong(ud, data, len);
}

static void rx_close(void *ud, int code, const unsigned char *reason, size_t len)
{
	struct link *l = ud;

	l->end.close_code = code;
	escape_text(l->end.close_reason, sizeof(l->end.close_reason), reason, len);
	if (l->close_sent) {
		/* the answer to our close: the handshake is done */
		finish(l);
		return;
	}
	if (code)
		set_end(l, LINK_FAIL_CLOSED, "server %s:%u closed the link: %d%s%s", l->url.host,
			l->url.port, code, l->end.close_reason[0] ? " " : "", l->end.close_reason);
	else
		set_end(l, LINK_FAIL_CLOSED, "server %s:%u closed the link without a code",
			l->url.host, l->url.port);
	/* RFC 6455 5.5.1: echo the code, then let the server close the TCP */
	l->peer_closed = true;
	l->peer_code = code;
	if ((code == 1001 || code == 1012) && l->ev.restarting)
		l->ev.restarting(l->ev.ud);
	if (l->wsi)
		lws_callback_on_writable(l->wsi);
}

static const struct wsrx_ops rx_ops = {
    .message = rx_message, .ping = rx_ping, .pong = rx_pong, .close = rx_close};

/* The server broke RFC 6455: say what it did, close with the RFC's code, reconnect. */
static void rx_violation(struct link *l)
{
	const struct wsrx *rx = &l->rx;

	if (rx->status == WSRX_TOO_BIG)
		set_end(
		    l, LINK_FAIL_VIOLATION,
		    "message from %s:%u exceeds link.max_message_bytes (%zu): closing with 1009",
		    l->url.host, l->url.port, l->max_message);
	else if (rx->status == WSRX_NOMEM)
		set_end(l, LINK_FAIL_VIOLATION,
			"out of memory reassembling a message from %s:%u: closing with 1009",
			l->url.host, l->url.port);
	else
		set_end(l, LINK_FAIL_VIOLATION, "server %s:%u sent %s: closing with %d",
			l->url.host, l->url.port, rx->err_what, rx->err_code);
	l->end.close_code = rx->peer_code; /* as received, invalid or not */
	l->end.sent_code = rx->err_code;
	l->violated = true;
	l->close_req = true;
	l->close_code = rx->err_code;
	snprintf(l->close_reason, sizeof(l->close_reason), "%s",
		 rx->err_code == 1009	? "message too big"
		 : rx->err_code == 1007 ? "invalid payload data"
					: "protocol error");
	if (l->wsi)
		lws_callback_on_writable(l->wsi);
}

static void on_raw_rx(struct link *l, const unsigned char *in, size_t len)
{
	/* any frame proves the peer alive */
	ev_timer_stop(l->loop, &l->pong_timer);
	l->probing = false;
	/* after a violation frames cannot be found again; after a close none may come */
	if (l->rx.status != WSRX_OK)
		return;
	switch (wsrx_feed(&l->rx, in, len, &rx_ops, l)) {
	case WSRX_VIOLATION:
	case WSRX_TOO_BIG:
	case WSRX_NOMEM:
		if (!l->close_sent)
			rx_violation(l);
		else
			finish(l); /* no second close frame: drop the TCP */
		break;
	default:
		break;
	}
}

static void on_pong(struct link *l, const unsigned char *in, size_t len)
{
	uint64_t seq = 0;

	ev_timer_stop(l->loop, &l->pong_timer);
	l->probing = false;
	if (len != 8)
		return;
	for (size_t i = 0; i < 8; i++)
		seq = seq << 8 | in[i];
	if (seq > l->fenced_seq)
		return; /* not a pong to any ping of ours */
	time_pong(l, seq);
	l->fence_in_flight = false;
	if (queue_len(l->q) && seq) {
		size_t before = queue_len(l->q);

		queue_confirm(l->q, seq);
		if (queue_len(l->q) != before && l->ev.confirmed)
			l->ev.confirmed(l->ev.ud);
	}
	if (l->retiring && !l->fence_in_flight) {
		link_request_close(l, 1000, "rotated");
		return;
	}
	/* more went out since that ping: fence it */
	if (l->wsi && l->carrier && queue_last_sent_seq(l->q) > l->fenced_seq)
		lws_callback_on_writable(l->wsi);
}

/* The certificate verification result, as lws's mbedTLS glue numbers it. */
static void classify_x509(struct link *l, int code)
{
	int namelen = (int)strcspn(l->host_hdr, ":");
	bool ip = l->url.ipv6 || strspn(l->url.host, "0123456789.") == strlen(l->url.host);

	switch (code) {
	case X509_ERR_HOSTNAME_MISMATCH:
		if (ip && !*l->server_name)
			/* patch 0007: an IP literal matches iPAddress SANs only */
			set_end(l, LINK_FAIL_TLS,
				"TLS: server certificate of %s:%u does not match the address '%s': it "
				"has no iPAddress subjectAltName for it (or set tls.server_name)",
				l->url.host, l->url.port, l->url.host);
		else
			set_end(l, LINK_FAIL_TLS,
				"TLS: server certificate of %s:%u does not match the name '%.*s'",
				l->url.host, l->url.port, namelen, l->host_hdr);
		break;
	case X509_ERR_CERT_HAS_EXPIRED:
		set_end(l, LINK_FAIL_TLS, "TLS: server certificate of %s:%u has expired",
			l->url.host, l->url.port);
		break;
	case X509_ERR_CERT_NOT_YET_VALID:
		set_end(l, LINK_FAIL_TLS, "TLS: server certificate of %s:%u is not yet valid",
			l->url.host, l->url.port);
		break;
	case X509_ERR_INVALID_CA:
		set_end(l, LINK_FAIL_TLS,
			"TLS: server certificate of %s:%u is not trusted by tls.ca_file '%s' "
			"(unknown CA) [X509_V_ERR = %d]",
			l->url.host, l->url.port, l->ca_file, code);
		break;
	case X509_ERR_CA_KEY_TOO_SMALL:
	case X509_ERR_CA_MD_TOO_WEAK:
		set_end(
		    l, LINK_FAIL_TLS,
		    "TLS: server certificate of %s:%u is signed with a key or hash too weak for "
		    "mbedTLS (e.g. SHA-1) [X509_V_ERR = %d]",
		    l->url.host, l->url.port, code);
		break;
	default:
		set_end(l, LINK_FAIL_TLS,
			"TLS: server certificate of %s:%u was rejected: not valid for a TLS server "
			"(keyUsage/extendedKeyUsage must allow serverAuth) or otherwise invalid "
			"[X509_V_ERR = %d]",
			l->url.host, l->url.port, code);
		break;
	}
}

/* The upgrade was refused with an HTTP status: say which, and honour Retry-After. */
static void classify_http(struct link *l, struct lws *wsi, int status)
{
	char ra[32] = "";

	l->end.http_status = status;
	if ((status == 429 || status == 503) && wsi &&
	    lws_hdr_copy(wsi, ra, sizeof(ra), WSI_TOKEN_HTTP_RETRY_AFTER) > 0) {
		char *end;
		unsigned long v = strtoul(ra, &end, 10);

		/* only the delta-seconds form; an HTTP date falls back to backoff */
		if (end != ra && !*end)
			l->end.retry_after_s = v > 86400 ? 86400 : (unsigned)v;
	}
	if (status == 401 || status == 403)
		set_end(l, LINK_FAIL_HTTP,
			"%s: authentication rejected: HTTP %d on the WebSocket upgrade "
			"(check link.headers)",
			l->url_text, status);
	else if (l->end.retry_after_s)
		set_end(l, LINK_FAIL_HTTP,
			"%s refused the WebSocket upgrade: HTTP %d, Retry-After %u s", l->url_text,
			status, l->end.retry_after_s);
	else
		set_end(l, LINK_FAIL_HTTP, "%s refused the WebSocket upgrade: HTTP %d", l->url_text,
			status);
}

/* mbedTLS gives no reason; these are what it means in practice */
static void classify_tls_handshake(struct link *l, const char *why)
{
	if (l->cert.blob)
		set_end(l, LINK_FAIL_TLS,
			"TLS handshake with %s:%u failed: the server rejected our client "
			"certificate %s, or does not speak TLS on this port [%s]",
			l->url.host, l->url.port, l->cert_file, why);
	else
		set_end(l, LINK_FAIL_TLS,
			"TLS handshake with %s:%u failed: the server does not speak TLS on this "
			"port, or it requires a client certificate and none is configured "
			"(tls.cert_file, tls.key_file) [%s]",
			l->url.host, l->url.port, why);
}

/* Turn lws's connection error into one line an operator can act on. */
static void classify_error(struct link *l, struct lws *wsi, const char *in)
{
	struct linkerr e;
	char proto[64] = "", raw[64];

	linkerr_classify(in, wsi ? (int)lws_http_client_http_response(wsi) : 0, &e);
	switch (e.kind) {
	case LINKERR_HTTP:
		classify_http(l, wsi, e.http_status);
		break;
	case LINKERR_ACCEPT:
		set_end(l, LINK_FAIL_PROTOCOL,
			"%s: bad upgrade response: wrong or missing Sec-WebSocket-Accept "
			"(not a WebSocket server, or a proxy in the way)",
			l->url_text);
		break;
	case LINKERR_SUBPROTOCOL:
		if (wsi && lws_hdr_copy(wsi, raw, sizeof(raw), WSI_TOKEN_PROTOCOL) > 0)
			escape_text(proto, sizeof(proto), raw, strlen(raw));
		set_end(
		    l, LINK_FAIL_PROTOCOL,
		    "%s: server chose subprotocol '%s', which we did not request (link.subprotocol "
		    "is '%s')",
		    l->url_text, proto, l->subprotocol ? l->subprotocol : "");
		break;
	case LINKERR_X509:
		classify_x509(l, e.x509);
		break;
	case LINKERR_TLS_TIMEOUT:
		set_end(l, LINK_FAIL_TLS, "TLS: handshake with %s:%u timed out", l->url.host,
			l->url.port);
		break;
	case LINKERR_CONNECT:
		set_end(l, LINK_FAIL_CONNECT, "cannot connect to %s:%u (refused or unreachable)",
			l->url.host, l->url.port);
		break;
	case LINKERR_RESOLVE:
		set_end(l, LINK_FAIL_CONNECT, "cannot resolve host '%s'", l->url.host);
		break;
	case LINKERR_TLS_HANDSHAKE:
		classify_tls_handshake(l, e.why);
		break;
	case LINKERR_TLS:
		set_end(l, LINK_FAIL_TLS, "TLS handshake with %s:%u failed: %s", l->url.host,
			l->url.port, e.why);
		break;
	case LINKERR_HANDSHAKE:
		set_end(l, LINK_FAIL_PROTOCOL, "bad WebSocket upgrade response from %s:%u: %s",
			l->url.host, l->url.port, e.detail);
		break;
	case LINKERR_OTHER:
		set_end(l, LINK_FAIL_CONNECT, "connection to %s:%u failed: %s", l->url.host,
			l->url.port, e.why);
		break;
	}
}

/* Our close frame: the answer to the server's, or our own; then wait for the server. */
static int send_close(struct link *l)
{
	unsigned char *p, payload[2 + sizeof(l->close_reason)];
	size_t n = 0, off;
	int code = l->peer_closed ? l->peer_code : l->close_code;

	if (!l->peer_closed && !l->violated) {
		set_end(l, LINK_FAIL_CLOSED, "closed the link to %s with %d%s%s", l->url_text,
			l->close_code, *l->close_reason ? " " : "", l->close_reason);
		l->end.by_request = true;
		l->end.close_code = 0;
	}
	if (code) {
		payload[n++] = (unsigned char)(code >> 8);
		payload[n++] = (unsigned char)code;
		if (!l->peer_closed) {
			memcpy(payload + n, l->close_reason, strlen(l->close_reason));
			n += strlen(l->close_reason);
		}
	}
	l->close_sent = true;
	if (tx_reserve(l, WSFRAME_MAX_HEADER + n) < 0)
		return -1;
	p = l->tx + LWS_PRE;
	off = wsframe_encode(p, WSF_CLOSE, payload, n, next_mask(l));
	if (lws_write(l->wsi, p, off, LWS_WRITE_HTTP) < 0)
		return -1;
	ev_timer_set(&l->close_timer, CLOSE_WAIT_S, 0);
	ev_timer_start(l->loop, &l->close_timer);
	return 0;
}

/* The server's answer to our permessage-deflate offer: RFC 7692 7 or fail the handshake. */
static int negotiate_deflate(struct link *l, struct lws *wsi)
{
	char hdr[512] = "", why[160], esc[256];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS), rc;
	struct pmd_params p;

	if (n >= (int)sizeof(hdr)) {
		set_end(l, LINK_FAIL_PROTOCOL,
			"%s: server answered with a Sec-WebSocket-Extensions of %d bytes, more than "
			"any valid answer to our offer: failing the connection",
			l->url_text, n);
		return 1;
	}
	if (n > 0 && lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_EXTENSIONS) < 0)
		hdr[0] = '\0';
	rc = pmd_negotiate(&pmd_default_offer, hdr, &p, why, sizeof(why));
	if (rc < 0) {
		escape_text(esc, sizeof(esc), hdr, strlen(hdr));
		set_end(l, LINK_FAIL_PROTOCOL,
			"%s: server answered 'Sec-WebSocket-Extensions: %s': %s (RFC 7692 §7): "
			"failing the connection",
			l->url_text, esc, why);
		return 1;
	}
	if (rc == 0) {
		log_msg(LOG_INFO, "%s: the server declined permessage-deflate: messages go "
			"uncompressed", l->url_text);
		return 0;
	}
	l->pmd = pmd_create(&p, l->max_message);
	if (!l->pmd) {
		set_end(l, LINK_FAIL_LOCAL, "out of memory setting up permessage-deflate");
		return 1;
	}
	snprintf(l->deflate_params, sizeof(l->deflate_params),
		 "permessage-deflate; client_max_window_bits=%d; server_max_window_bits=%d%s%s",
		 p.client_max_window_bits, p.server_max_window_bits,
		 p.client_no_context_takeover ? "; client_no_context_takeover" : "",
		 p.server_no_context_takeover ? "; server_no_context_takeover" : "");
	l->rx.rsv_allowed = 0x40; /* RSV1: compressed (RFC 7692 6) */
	log_msg(LOG_INFO, "%s: negotiated %s", l->url_text, l->deflate_params);
	return 0;
}

/* Without link.compression nothing is offered: a 101 may accept no extension. */
static int check_extensions(struct link *l, struct lws *wsi)
{
	char hdr[256], name[64], esc[160];

	if (l->deflate)
		return negotiate_deflate(l, wsi);
	if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_EXTENSIONS) <= 0)
		return 0;
	if (!wsrx_unoffered_extension(hdr, l->offered_extensions, name, sizeof(name)))
		return 0;
	escape_text(esc, sizeof(esc), name, strlen(name));
	set_end(l, LINK_FAIL_PROTOCOL,
		"%s: server accepted the extension '%s', which we did not offer (RFC 6455 §9.1): "
		"failing the connection",
		l->url_text, esc);
	return 1;
}

static int writeable(struct link *l, struct lws *wsi)
{
	if (!l->up || wsi != l->wsi || l->ending || l->close_sent)
		return 0; /* lws sends WRITEABLE unasked too; after our close, nothing more */
	if (l->peer_closed || l->close_req)
		return send_close(l);
	if (l->rx_pause_want != l->rx_paused) {
		l->rx_paused = l->rx_pause_want;
		lws_rx_flow_control(wsi, l->rx_paused ? 0 : 1);
		/* a pong cannot arrive while we do not read: no verdict on the peer meanwhile */
		if (l->rx_paused)
			ev_timer_stop(l->loop, &l->pong_timer);
	}
	return write_batch(l);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct link *l = ctx ? lws_context_user(ctx) : NULL;

	if (!l)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (!l->destroying)
			classify_error(l, wsi, in);
		l->wsi = NULL;
		finish(l);
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (l->ending || l->destroying)
			return -1;
		l->wsi = wsi;
		l->up = true;
		l->end.was_up = true;
		ev_timer_stop(l->loop, &l->connect_timer);
		if (l->ping_interval_s) {
			ev_timer_set(&l->ping_timer, l->ping_interval_s, l->ping_interval_s);
			ev_timer_start(l->loop, &l->ping_timer);
		}
		if (l->ev.up)
			l->ev.up(l->ev.ud);
		l->hello_due = l->hello.n > 0;
		if (l->wsi && (queue_peek_unsent(l->q) || l->close_req || l->rx_pause_want ||
			       l->hello_due))
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_RAW_RX:
		/* our lws patch hands us the connection's bytes: wsrx parses the frames */
		if (wsi == l->wsi)
			on_raw_rx(l, in, len);
		break;
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		return check_extensions(l, wsi);
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = in, *end = *p + len;

		l->upgrade_sent = true;
		for (size_t i = 0; i < l->n_hdrs; i++)
			if (lws_add_http_header_by_name(wsi, (unsigned char *)l->hdr_names[i],
							(unsigned char *)l->hdr_values[i],
							(int)strlen(l->hdr_values[i]), p, end)) {
				set_end(
				    l, LINK_FAIL_LOCAL,
				    "link.headers: header '%.*s' does not fit the handshake buffer",
				    (int)strlen(l->hdr_names[i]) - 1, l->hdr_names[i]);
				return -1;
			}
		if (l->deflate && lws_add_http_header_by_name(
				      wsi, (unsigned char *)"Sec-WebSocket-Extensions:",
				      (unsigned char *)l->deflate_offer,
				      (int)strlen(l->deflate_offer), p, end)) {
			set_end(l, LINK_FAIL_LOCAL,
				"the permessage-deflate offer does not fit the handshake buffer");
			return -1;
		}
		break;
	}
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return writeable(l, wsi);
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi == l->wsi) {
			l->wsi = NULL;
			if (l->end.by_request)
				set_end(l, LINK_FAIL_CLOSED, "link to %s:%u closed", l->url.host,
					l->url.port);
			else
				set_end(
				    l, LINK_FAIL_CLOSED,
				    "link to %s:%u lost: connection closed without a close frame",
				    l->url.host, l->url.port);
			finish(l);
		}
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
    {"wstether", callback, 0, RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* A header value file, re-read at every attempt so tokens can rotate. */
static char *read_value_file(const char *file, const char *name, char *err, size_t errlen)
{
	char buf[8192];
	size_t n;
	FILE *f = fopen(file, "r");

	if (!f) {
		snprintf(err, errlen,
			 "link.headers: cannot read value_file '%s' of header '%s': %s", file, name,
			 strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f) || !feof(f)) {
		snprintf(err, errlen, "link.headers: value_file '%s' of header '%s': %s", file,
			 name, ferror(f) ? "read error" : "larger than 8 KiB");
		fclose(f);
		explicit_bzero(buf, sizeof(buf));
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (strpbrk(buf, "\r\n")) {
		snprintf(err, errlen,
			 "link.headers: value_file '%s' of header '%s' has more than one line",
			 file, name);
		explicit_bzero(buf, sizeof(buf));
		return NULL;
	}
	char *v = strdup(buf);

	explicit_bzero(buf, sizeof(buf));
	if (!v)
		snprintf(err, errlen, "out of memory");
	return v;
}

/* Everything this attempt needs that may change on disk between attempts. */
static int load_scratch(struct link *l, const struct wst_config *cfg, char *err, size_t errlen)
{
	l->insecure = cfg->insecure;
	snprintf(l->server_name, sizeof(l->server_name), "%s", cfg->server_name);
	snprintf(l->cert_file, sizeof(l->cert_file), "%s", cfg->cert_file);
	if (*cfg->subprotocol && !(l->subprotocol = strdup(cfg->subprotocol)))
		goto oom;
	if (*cfg->origin && !(l->origin = strdup(cfg->origin)))
		goto oom;
	l->hdr_names = calloc(cfg->n_headers + 1, sizeof(char *));
	l->hdr_values = calloc(cfg->n_headers + 1, sizeof(char *));
	if (!l->hdr_names || !l->hdr_values)
		goto oom;
	for (size_t i = 0; i < cfg->n_headers; i++) {
		const struct wst_header *h = &cfg->headers[i];
		size_t nl = strlen(h->name);

		l->hdr_names[i] = malloc(nl + 2);
		if (!l->hdr_names[i])
			goto oom;
		memcpy(l->hdr_names[i], h->name, nl);
		memcpy(l->hdr_names[i] + nl, ":", 2);
		l->n_hdrs = i + 1;
		l->hdr_values[i] = h->value ? strdup(h->value)
					    : read_value_file(h->value_file, h->name, err, errlen);
		if (!l->hdr_values[i])
			return h->value ? (snprintf(err, errlen, "out of memory"), -1) : -1;
	}
	if (l->url.tls && tls_load_client(cfg, &l->cert, err, errlen) < 0)
		return -1;
	snprintf(l->cert_not_after, sizeof(l->cert_not_after), "%s",
		 l->cert.blob ? l->cert.not_after : "");
	l->cert_not_after_t = l->cert.blob ? l->cert.not_after_t : 0;
	return hello_load(cfg, &l->hello, err, errlen);
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

struct link *link_create(struct ev_loop *loop, struct queue *q, const struct link_events *ev)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->loop = loop;
	l->q = q;
	l->ev = *ev;
	ev_timer_init(&l->connect_timer, connect_timeout_cb, 1, 0);
	ev_timer_init(&l->ping_timer, ping_cb, 1, 1);
	ev_timer_init(&l->pong_timer, pong_timeout_cb, 1, 0);
	ev_timer_init(&l->close_timer, close_wait_cb, CLOSE_WAIT_S, 0);
	ev_timer_init(&l->reap_timer, reap_cb, 0, 0);
	l->connect_timer.data = l->ping_timer.data = l->pong_timer.data = l;
	l->fd = -1;
	l->close_timer.data = l->reap_timer.data = l;
	l->stats.ping_rtt_us = -1;
	if (getrandom(&l->rng, sizeof(l->rng), 0) != sizeof(l->rng) || !l->rng)
		l->rng = (uint64_t)(uintptr_t)l ^ 0x9e3779b97f4a7c15ULL;
	return l;
}

void link_destroy(struct link *l)
{
	if (!l)
		return;
	stop_timers(l);
	ev_timer_stop(l->loop, &l->reap_timer);
	if (l->ctx) {
		l->destroying = true;
		lws_context_destroy(l->ctx);
		l->ctx = NULL;
	}
	release_dial(l);
	free_scratch(l);
	wsrx_finish(&l->rx);
	free(l->tx);
	free(l);
}

/* The dialled socket goes to lws, which does TLS and the WebSocket upgrade. */
static void start_lws(struct link *l)
{
	struct lws_context_creation_info info;
	struct lws_client_connect_info ci;
	void *foreign[1] = { l->loop };

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	/* UTF-8 of text from the server is checked in deliver(), faster than lws does */
	info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
		       /* link.origin is sent as written, not prefixed with http:// */
		       LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
	info.foreign_loops = foreign;
	info.user = l;
	/* below the ulimit, lws uses a small table instead of one slot per possible fd */
	info.fd_limit_per_thread = 16;
	info.pt_serv_buf_size = RX_CHUNK;
	info.timeout_secs = l->connect_timeout_s;
	info.connect_timeout_secs = l->connect_timeout_s;
	if (l->url.tls) {
		/* always a CA: without one lws loads no client certificate either */
		info.client_ssl_ca_mem = l->ca.pem;
		info.client_ssl_ca_mem_len = (unsigned int)l->ca.len;
		if (l->cert.blob) {
			info.client_ssl_cert_mem = l->cert.blob;
			info.client_ssl_cert_mem_len = (unsigned int)l->cert.len;
		}
	}

	l->ctx = lws_create_context(&info);
	if (!l->ctx) {
		set_end(l, LINK_FAIL_LOCAL,
			"cannot create the connection context%s%s (check tls.ca_file)",
			l->url.tls ? " with CA file " : "", l->url.tls ? l->ca_file : "");
		finish(l);
		return;
	}

	memset(&ci, 0, sizeof(ci));
	ci.context = l->ctx;
	ci.address = l->url.host;
	ci.adopt_fd = l->fd; /* patch 0006: no DNS, no proxy, no connect of its own */
	ci.port = l->url.port;
	ci.path = l->url.path;
	/* an IP literal here makes lws send no SNI and check the iPAddress SANs */
	ci.host = l->host_hdr;
	ci.origin = l->origin;
	ci.protocol = l->subprotocol;
	ci.local_protocol_name = protocols[0].name;
	/* LCCSCF_WST_RAW_WS_RX (our lws patch): we parse what the server sends, see wsrx.h */
	ci.ssl_connection = (l->url.tls ? LCCSCF_USE_SSL : 0) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT |
			    LCCSCF_WST_RAW_WS_RX;
	if (l->url.tls && l->insecure) {
		/* only here: mbedTLS 2.28.3 is unsafe without a hostname (CVE-2025-27809) */
		ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_ALLOW_EXPIRED |
				     LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_INSECURE;
		log_msg(LOG_WARNING,
			"tls.insecure is set: the server certificate of %s is NOT "
			"verified; anyone on the path can read and change this link",
			l->url_text);
	}
	if (l->cert.blob)
		log_msg(LOG_INFO, "client certificate %s, subject %s, valid until %s", l->cert_file,
			l->cert.subject, l->cert.not_after);

	if (!lws_client_connect_via_info(&ci)) {
		/* CONNECTION_ERROR may already have said why and scheduled the reap */
		set_end(l, LINK_FAIL_CONNECT, "cannot connect to %s:%u", l->url.host, l->url.port);
		finish(l);
	}
}

static void dialled(void *ud, int fd, const char *err)
{
	struct link *l = ud;
	socklen_t sl = sizeof(l->local);

	dial_free(l->dial);
	l->dial = NULL;
	explicit_bzero(l->proxy.user, sizeof(l->proxy.user));
	explicit_bzero(l->proxy.pass, sizeof(l->proxy.pass));
	if (fd < 0) {
		set_end(l, LINK_FAIL_CONNECT, "%s", err);
		finish(l);
		return;
	}
	l->fd = fd;
	if (getsockname(fd, (struct sockaddr *)&l->local, &sl) < 0)
		memset(&l->local, 0, sizeof(l->local));
	if (l->proxy.kind != PROXY_NONE) {
		snprintf(l->via, sizeof(l->via), "%s (from %s)", l->proxy.text, l->proxy.source);
		log_msg(LOG_INFO, "proxy %s connected us to %s:%u", l->via, l->url.host,
			l->url.port);
	}
	start_lws(l);
}

/* The proxy for this attempt: environment and auth file are read afresh. */
static int choose_proxy(struct link *l, const struct wst_config *cfg, char *err, size_t errlen)
{
	if (proxy_select(cfg->proxy, l->url.tls, l->url.host, (const char *(*)(const char *))getenv,
			 &l->proxy, err, errlen) < 0)
		return -1;
	if (l->proxy.kind != PROXY_NONE && *cfg->proxy_auth_file)
		return tunnel_read_auth_file(cfg->proxy_auth_file, &l->proxy, err, errlen);
	return 0;
}

int link_start(struct link *l, const struct wst_config *cfg, const char *url_text)
{
	struct dial_req req;
	char err[1024];

	memset(&l->end, 0, sizeof(l->end));
	if (l->ctx || l->dial || l->ending) {
		set_end(l, LINK_FAIL_LOCAL, "internal: attempt started while one is active");
		return -1;
	}
	/* lws writes into what it parses: give it a scratch copy, never the config */
	if (url_parse(url_text, &l->url, err, sizeof(err)) < 0) {
		set_end(l, LINK_FAIL_LOCAL, "invalid URL '%s': %s", url_text, err);
		return -1;
	}
	/* files on disk may have changed since the last attempt: read them again */
	if (l->url.tls && tls_load_ca(cfg, &l->ca, err, sizeof(err)) < 0) {
		set_end(l, LINK_FAIL_TLS, "%s", err);
		return -1;
	}
	snprintf(l->url_text, sizeof(l->url_text), "%s", url_text);
	url_host_header(&l->url, cfg->server_name, l->host_hdr, sizeof(l->host_hdr));
	if (load_scratch(l, cfg, err, sizeof(err)) < 0 ||
	    choose_proxy(l, cfg, err, sizeof(err)) < 0) {
		set_end(l, LINK_FAIL_LOCAL, "%s", err);
		free_scratch(l);
		release_dial(l);
		return -1;
	}
	snprintf(l->ca_file, sizeof(l->ca_file), "%s", cfg->ca_file);
	l->connect_timeout_s = cfg->connect_timeout_s;
	l->ping_interval_s = cfg->ping_interval_s;
	l->pong_timeout_s = cfg->pong_timeout_s;
	l->max_message = cfg->max_message_bytes;
	l->up = l->close_req = l->close_sent = l->ping_due = l->rx_paused = false;
	l->fenced_seq = 0;
	l->fence_in_flight = false;
	l->carrier = true;
	l->retiring = false;
	l->ping_timing = l->hello_due = false;
	l->upgrade_sent = false;
	wsrx_init(&l->rx, cfg->max_message_bytes, 0);
	l->deflate = cfg->compression == COMPRESSION_DEFLATE &&
		     pmd_offer_header(&pmd_default_offer, l->deflate_offer, sizeof(l->deflate_offer));
	l->violated = l->peer_closed = l->pong_due = false;
	l->via[0] = '\0';
	l->probing = false;
	memset(&l->local, 0, sizeof(l->local));

	memset(&req, 0, sizeof(req));
	req.host = l->url.host;
	req.port = l->url.port;
	req.proxy = &l->proxy;
	req.family = cfg->address_family;
	req.bind_address = cfg->bind_address;
	req.iface = cfg->interface;
	l->dial = dial_start(l->loop, &req, dialled, l, err, sizeof(err));
	if (!l->dial) {
		set_end(l, LINK_FAIL_CONNECT, "%s", err);
		free_scratch(l);
		release_dial(l);
		return -1;
	}
	/* connect_timeout_s covers it all: lookup, connect, proxy, TLS and the upgrade */
	ev_timer_set(&l->connect_timer, cfg->connect_timeout_s, 0);
	ev_timer_start(l->loop, &l->connect_timer);
	return 0;
}

void link_abort(struct link *l, const char *why)
{
	if (!l->ctx && !l->dial)
		return;
	set_end(l, LINK_FAIL_LOCAL, "%s", why);
	l->end.by_request = true;
	finish(l);
}

bool link_active(const struct link *l)
{
	return l->ctx || l->dial;
}

bool link_up(const struct link *l)
{
	return l->up && l->wsi && !l->ending;
}

const struct link_end *link_last_end(const struct link *l)
{
	return &l->end;
}

void link_kick(struct link *l)
{
	if (link_up(l) && l->carrier)
		lws_callback_on_writable(l->wsi);
}

void link_set_carrier(struct link *l, bool carrier)
{
	l->carrier = carrier;
	link_kick(l);
}

void link_retire(struct link *l)
{
	l->carrier = false;
	l->retiring = true;
	/* its last fence answered (or none out): nothing of its own is left to confirm */
	if (!l->fence_in_flight)
		link_request_close(l, 1000, "rotated");
}

void link_request_close(struct link *l, int code, const char *reason)
{
	if (link_up(l)) {
		l->close_req = true;
		l->close_code = code;
		snprintf(l->close_reason, sizeof(l->close_reason), "%s", reason ? reason : "");
		lws_callback_on_writable(l->wsi);
	} else if ((l->ctx || l->dial) && !l->ending) {
		/* not up yet: there is no close handshake to do, just give up the attempt */
		link_abort(l, "attempt abandoned on request");
	}
}

void link_pause_rx(struct link *l, bool pause)
{
	l->rx_pause_want = pause;
	if (link_up(l) && l->rx_pause_want != l->rx_paused)
		lws_callback_on_writable(l->wsi);
}

const char *link_compression(const struct link *l, struct pmd_report *r)
{
	if (!l->pmd) {
		memset(r, 0, sizeof(*r));
		return NULL;
	}
	pmd_report(l->pmd, r);
	return l->deflate_params;
}

const struct link_stats *link_stats(const struct link *l)
{
	return &l->stats;
}

const char *link_cert_not_after(const struct link *l)
{
	return l->cert_not_after;
}

time_t link_cert_expiry(const struct link *l)
{
	return l->cert_not_after_t;
}

const char *link_via(const struct link *l)
{
	return l->via;
}

bool link_probe(struct link *l, unsigned deadline_s)
{
	/* with reading paused, no pong could prove anything */
	if (!link_up(l) || l->probing || l->rx_paused || l->close_req)
		return false;
	l->probing = true;
	l->probe_s = deadline_s;
	l->ping_due = true;
	ev_timer_stop(l->loop, &l->pong_timer);
	ev_timer_set(&l->pong_timer, deadline_s, 0);
	ev_timer_start(l->loop, &l->pong_timer);
	lws_callback_on_writable(l->wsi);
	return true;
}

bool link_uses_address(const struct link *l, const struct sockaddr_storage *a)
{
	if (!link_active(l) || a->ss_family != l->local.ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			       &((const struct sockaddr_in *)&l->local)->sin_addr, 4);
	return a->ss_family == AF_INET6 &&
	       !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)&l->local)->sin6_addr, 16);
}

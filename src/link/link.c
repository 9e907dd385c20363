#include "link_int.h"
#include "link_classify.h"
#include "status.h"

/* " via proxy P (from SOURCE)" for a link a proxy carries: a drop may be the proxy's */
#define VIA(l) (*(l)->at.via ? " via proxy " : ""), (l)->at.via

/* How long we wait for the server to answer our close frame. */
#define CLOSE_WAIT_S 2.0

static void stop_timers(struct link *l)
{
	ev_timer_stop(l->loop, &l->connect_timer);
	ev_timer_stop(l->loop, &l->ping_timer);
	ev_timer_stop(l->loop, &l->pong_timer);
	ev_timer_stop(l->loop, &l->close_timer);
}

void link_free_scratch(struct link *l)
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

void link_release_dial(struct link *l)
{
	dial_free(l->dial);
	l->dial = NULL;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	explicit_bzero(&l->proxy, sizeof(l->proxy));
}

/* The link is over: destroy the context from the loop, never from inside lws. */
void link_finish(struct link *l)
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
	link_session_end(l); /* before its lws cache goes with the context */
	if (l->ctx)
		lws_context_destroy(l->ctx); /* runs CLOSED / CONNECTION_ERROR synchronously */
	l->ctx = NULL;
	l->wsi = NULL;
	link_release_dial(l);
	link_free_scratch(l);
	link_rx_finish(&l->at.rx);
	l->destroying = false;
	l->ending = false;
	l->at.up = false;
	if (l->end.fail == LINK_FAIL_NONE)
		link_end_set(&l->end, LINK_FAIL_CLOSED, "link closed");
	l->ev.down(l->ev.ud, &l->end);
}

static void connect_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;
	char wait[640];

	if (l->dial) {
		dial_describe_wait(l->dial, wait, sizeof(wait));
		link_end_set(&l->end, LINK_FAIL_TIMEOUT,
			     "connection to %s timed out after %u s: %s (link.connect_timeout_s)",
			     l->url_text, l->connect_timeout_s, wait);
	} else if (l->at.upgrade_sent)
		link_end_set(
		    &l->end, LINK_FAIL_TIMEOUT,
		    "connection to %s timed out after %u s: the server accepted it but did not "
		    "answer the WebSocket upgrade (link.connect_timeout_s)",
		    l->url_text, l->connect_timeout_s);
	else
		link_end_set(&l->end, LINK_FAIL_TIMEOUT,
			     "connection to %s:%u timed out after %u s: %s never completed "
			     "(link.connect_timeout_s)",
			     l->url.host, l->url.port, l->connect_timeout_s,
			     l->url.tls ? "the TCP connect or the TLS handshake"
					: "the TCP connect");
	link_finish(l);
}

static void close_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;

	link_end_set(&l->end, LINK_FAIL_CLOSED,
		     "server %s:%u did not answer our close within %.0f s", l->url.host,
		     l->url.port, CLOSE_WAIT_S);
	link_finish(l);
}

static void pong_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;

	if (l->at.probing)
		link_end_set(&l->end, LINK_FAIL_DEAD,
			     "link to %s:%u%s%s is dead: no answer within %u s to a ping after a "
			     "network change",
			     l->url.host, l->url.port, VIA(l), l->at.probe_s);
	else
		link_end_set(&l->end, LINK_FAIL_DEAD,
			     "link to %s:%u%s%s is dead: no pong or frame within %u s", l->url.host,
			     l->url.port, VIA(l), l->pong_timeout_s);
	link_finish(l);
}

static void ping_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct link *l = w->data;

	if (!l->wsi)
		return;
	l->at.ping_due = true;
	lws_callback_on_writable(l->wsi);
	/* a peer that vanished while we were sending blocks WRITEABLE, and so the ping */
	if (!ev_is_active(&l->pong_timer) && !l->at.rx_paused) {
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
	uint64_t seq = l->ev.carries(l->ev.ud) ? outbox_last_sent(l->out) : l->at.fenced_seq;
	unsigned char payload[8];

	if (seq < l->at.fenced_seq)
		seq = l->at.fenced_seq;
	for (int i = 0; i < 8; i++)
		payload[i] = (unsigned char)(seq >> (56 - 8 * i));
	*off += wsframe_encode(p + *off, WSF_PING, payload, sizeof(payload), next_mask(l));
	if (!l->at.ping_timing) {
		l->at.ping_timing = true;
		l->at.ping_at = ev_time();
		l->at.ping_seq = seq;
	}
	l->at.fenced_seq = seq;
	l->at.fence_in_flight = true;
	if (!ev_is_active(&l->pong_timer) && !l->at.rx_paused) {
		ev_timer_set(&l->pong_timer, l->pong_timeout_s, 0);
		ev_timer_start(l->loop, &l->pong_timer);
	}
}

/* The next hello messages fit one write: they go before any queued message. */
static int write_hello(struct link *l, size_t *off)
{
	const char *m = l->hello.data;

	l->at.hello_due = false;
	/* after the pongs already framed at *off */
	if (tx_reserve(l, *off + l->hello.total + l->hello.n * WSFRAME_MAX_HEADER) < 0) {
		link_end_set(&l->end, LINK_FAIL_LOCAL,
			     "out of memory framing the hello (link.hello)");
		return -1;
	}
	for (size_t i = 0; i < l->hello.n; m += l->hello.lens[i++])
		*off += wsframe_encode(l->tx + LWS_PRE + *off, WSF_TEXT, m, l->hello.lens[i],
				       next_mask(l));
	return 0;
}

/* RFC 7692 7.2.1: the queue and spool keep the message as it is; only the frame is compressed. */
static int compress_message(struct link *l, const unsigned char **data, size_t *len, int *op)
{
	int rc = pmd_compress(l->pmd, *data, *len, data, len);

	if (rc < 0) {
		/* the server's inflater can no longer follow ours: only a new link helps */
		link_end_set(&l->end, LINK_FAIL_LOCAL,
			     "out of memory compressing a %zu-byte message for %s", *len,
			     l->url_text);
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
	size_t off = 0, plen;
	struct qmsg *m;
	const unsigned char *data;
	unsigned char *p;

	if (tx_reserve(l, pongq_len(&l->at.rx.pongs) * (WSFRAME_MAX_HEADER + PONGQ_PAYLOAD)) < 0)
		return -1;
	/* RFC 6455 5.5.3: a pong for each ping, in their order, before anything else */
	for (const unsigned char *pong; (pong = pongq_peek(&l->at.rx.pongs, &plen));
	     pongq_pop(&l->at.rx.pongs))
		off += wsframe_encode(l->tx + LWS_PRE + off, WSF_PONG, pong, plen, next_mask(l));
	if (l->at.hello_due && write_hello(l, &off) < 0)
		return -1;
	while (l->ev.carries(l->ev.ud) && (m = outbox_unsent(l->out, &data))) {
		/* room for the message as compression could make it, at worst */
		size_t wire = l->pmd ? pmd_compress_bound(m->len) : m->len;
		size_t need = wsframe_header_len(wire) + wire, len = m->len;
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
		outbox_sent(l->out);
		l->sent++;
		l->sent_bytes += m->len;
	}
	if (tx_reserve(l, off + WSFRAME_MAX_HEADER + 8) < 0)
		return -1;
	p = l->tx + LWS_PRE;
	if (l->at.ping_due ||
	    (l->ev.carries(l->ev.ud) && outbox_last_sent(l->out) > l->at.fenced_seq &&
	     !l->at.fence_in_flight)) {
		l->at.ping_due = false;
		send_ping(l, p, &off);
	}
	if (!off)
		return 0;
	/* LWS_WRITE_HTTP on a ws connection sends bytes as they are: our own frames */
	if (lws_write(l->wsi, p, off, LWS_WRITE_HTTP) < 0) {
		link_end_set(&l->end, LINK_FAIL_CLOSED, "write to %s:%u failed", l->url.host,
			     l->url.port);
		return -1;
	}
	if (outbox_unsent(l->out, NULL))
		lws_callback_on_writable(l->wsi);
	return 0;
}

/* Our close frame: the one the server's frames call for, or our own; then wait for the server. */
static int send_close(struct link *l)
{
	unsigned char *p, payload[2 + sizeof(l->at.close_reason)];
	const char *reason = l->at.close_reason;
	int code = link_rx_answer(&l->at.rx, &reason);
	size_t n = 0, off;

	if (code < 0) {
		code = l->at.close_code;
		link_end_set(&l->end, LINK_FAIL_CLOSED, "closed the link to %s with %d%s%s",
			     l->url_text, code, *reason ? " " : "", reason);
		l->end.by_request = true;
		l->end.close_code = 0;
		l->end.sent_close_code = code;
	}
	if (code) {
		payload[n++] = (unsigned char)(code >> 8);
		payload[n++] = (unsigned char)code;
		memcpy(payload + n, reason, strlen(reason));
		n += strlen(reason);
	}
	l->at.close_sent = true;
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

static int writeable(struct link *l, struct lws *wsi)
{
	if (!l->at.up || wsi != l->wsi || l->ending || l->at.close_sent)
		return 0; /* lws sends WRITEABLE unasked too; after our close, nothing more */
	if (l->at.close_req)
		return send_close(l);
	if (l->rx_pause_want != l->at.rx_paused) {
		l->at.rx_paused = l->rx_pause_want;
		lws_rx_flow_control(wsi, l->at.rx_paused ? 0 : 1);
		/* a pong cannot arrive while we do not read: no verdict on the peer meanwhile */
		if (l->at.rx_paused)
			ev_timer_stop(l->loop, &l->pong_timer);
	}
	return write_batch(l);
}

static void deliver(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct link *l = ud;

	l->received++;
	l->received_bytes += len;
	l->ev.message(l->ev.ud, data, len, binary);
}

/*
 * Pongs to our pings confirm what their fences covered. The first ping in
 * flight is timed: pongs echo in order, so its pong is among these if its
 * seq is.
 */
static void pongs_came(struct link *l, uint64_t first, uint64_t last)
{
	if (l->at.ping_timing && first <= l->at.ping_seq && l->at.ping_seq <= last) {
		l->ping_rtt_us = (int64_t)((ev_time() - l->at.ping_at) * 1e6);
		l->at.ping_timing = false;
	}
	l->at.fence_in_flight = false;
	if (outbox_confirm(l->out, last))
		l->ev.confirmed(l->ev.ud);
	if (l->at.retiring)
		link_request_close(l, 1000, "rotated");
	/* more went out since that ping: fence it */
	else if (l->wsi && l->ev.carries(l->ev.ud) && outbox_last_sent(l->out) > l->at.fenced_seq)
		lws_callback_on_writable(l->wsi);
}

/* Bytes from the server (our lws patch hands them over raw): what the session says, done. */
static void on_raw_rx(struct link *l, const unsigned char *in, size_t len)
{
	struct link_rx *rx = &l->at.rx;
	unsigned todo;

	/* any frame proves the peer alive */
	ev_timer_stop(l->loop, &l->pong_timer);
	l->at.probing = false;
	todo = link_rx_feed(rx, in, len, l->at.fenced_seq, l->at.close_sent, &l->end);
	if (todo & LINK_RX_PONG)
		pongs_came(l, rx->pong_first, rx->pong_last);
	if (todo & LINK_RX_RESTARTING)
		l->ev.restarting(l->ev.ud);
	l->at.close_req |= (todo & LINK_RX_CLOSE) != 0;
	if (todo & LINK_RX_FINISH)
		link_finish(l);
	else if (l->wsi && (todo & (LINK_RX_WRITE | LINK_RX_CLOSE)))
		lws_callback_on_writable(l->wsi);
}

/* The upgrade succeeded: the link is up. */
static int established(struct link *l, struct lws *wsi)
{
	const char *v, *c;

	if (l->ending || l->destroying)
		return -1;
	if (l->url.tls && lws_wst_tls_negotiated(wsi, &v, &c) == 0) /* lws patch 0011 */
		link_tls_names(v, c, l->at.tls_version, sizeof(l->at.tls_version), l->at.tls_cipher,
			       sizeof(l->at.tls_cipher));
	l->wsi = wsi;
	l->at.up = true;
	link_rx_init(&l->at.rx, l->max_message, l->pmd, l->url.host, l->url.port, deliver, l);
	l->end.was_up = true;
	link_session_established(l, wsi);
	ev_timer_stop(l->loop, &l->connect_timer);
	if (l->ping_interval_s) {
		ev_timer_set(&l->ping_timer, l->ping_interval_s, l->ping_interval_s);
		ev_timer_start(l->loop, &l->ping_timer);
	}
	l->ev.up(l->ev.ud);
	l->at.hello_due = l->hello.n > 0;
	if (l->wsi &&
	    (outbox_unsent(l->out, NULL) || l->at.close_req || l->rx_pause_want || l->at.hello_due))
		lws_callback_on_writable(wsi);
	return 0;
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
			link_upgrade_failed(l, wsi, in);
		l->wsi = NULL;
		link_finish(l);
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		return established(l, wsi);
	case LWS_CALLBACK_RAW_RX:
		/* our lws patch hands us the connection's bytes: wsrx parses the frames */
		if (wsi == l->wsi)
			on_raw_rx(l, in, len);
		break;
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		return link_upgrade_extensions(l, wsi);
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		return link_upgrade_headers(l, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return writeable(l, wsi);
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi == l->wsi) {
			l->wsi = NULL;
			if (l->end.by_request)
				link_end_set(&l->end, LINK_FAIL_CLOSED, "link to %s:%u closed",
					     l->url.host, l->url.port);
			else
				link_end_set(&l->end, LINK_FAIL_CLOSED,
					     "link to %s:%u%s%s lost: connection closed without a "
					     "close frame",
					     l->url.host, l->url.port, VIA(l));
			link_finish(l);
		}
		break;
	default:
		break;
	}
	return 0;
}

const struct lws_protocols link_protocols[] = {
    {"wstether", callback, 0, RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

struct link *link_create(struct ev_loop *loop, struct outbox *out, const struct link_events *ev,
			 struct tls_sessions *sessions)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->loop = loop;
	l->out = out;
	l->ev = *ev;
	l->sessions = sessions;
	ev_timer_init(&l->connect_timer, connect_timeout_cb, 1, 0);
	ev_timer_init(&l->ping_timer, ping_cb, 1, 1);
	ev_timer_init(&l->pong_timer, pong_timeout_cb, 1, 0);
	ev_timer_init(&l->close_timer, close_wait_cb, CLOSE_WAIT_S, 0);
	ev_timer_init(&l->reap_timer, reap_cb, 0, 0);
	l->connect_timer.data = l->ping_timer.data = l->pong_timer.data = l;
	l->fd = -1;
	l->close_timer.data = l->reap_timer.data = l;
	l->ping_rtt_us = -1;
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
	link_release_dial(l);
	link_free_scratch(l);
	link_rx_finish(&l->at.rx);
	free(l->tx);
	free(l);
}

void link_abort(struct link *l, const char *why)
{
	if (!link_active(l))
		return;
	link_end_set(&l->end, LINK_FAIL_LOCAL, "%s", why);
	l->end.by_request = true;
	link_finish(l);
}

bool link_active(const struct link *l)
{
	return l->ctx || l->dial;
}

bool link_up(const struct link *l)
{
	return l->at.up && l->wsi && !l->ending;
}

void link_kick(struct link *l)
{
	if (link_up(l) && l->ev.carries(l->ev.ud))
		lws_callback_on_writable(l->wsi);
}

void link_retire(struct link *l)
{
	l->at.retiring = true;
	/* its last fence answered (or none out): nothing of its own is left to confirm */
	if (!l->at.fence_in_flight)
		link_request_close(l, 1000, "rotated");
}

void link_request_close(struct link *l, int code, const char *reason)
{
	if (link_up(l)) {
		l->at.close_req = true;
		l->at.close_code = code;
		snprintf(l->at.close_reason, sizeof(l->at.close_reason), "%s",
			 reason ? reason : "");
		lws_callback_on_writable(l->wsi);
	} else if (link_active(l) && !l->ending) {
		/* not up yet: there is no close handshake to do, just give up the attempt */
		link_abort(l, "attempt abandoned on request");
	}
}

void link_pause_rx(struct link *l, bool pause)
{
	l->rx_pause_want = pause;
	if (link_up(l) && l->rx_pause_want != l->at.rx_paused)
		lws_callback_on_writable(l->wsi);
}

/* Set at ESTABLISHED, the only place lws is asked; read by status and the up line. */
bool link_tls(const struct link *l, const char **version, const char **cipher)
{
	*version = l->at.tls_version;
	*cipher = l->at.tls_cipher;
	return *l->at.tls_version != '\0';
}

void link_status(const struct link *l, bool carrier, struct wst_status *st)
{
	st->sent += l->sent;
	st->sent_bytes += l->sent_bytes;
	st->received += l->received;
	st->received_bytes += l->received_bytes;
	if (!carrier)
		return;
	st->ping_rtt_us = l->ping_rtt_us;
	st->cert_expiry = l->cert_not_after_t;
	st->cert_not_after = l->cert_not_after;
	if (!link_tls(l, &st->tls_version, &st->tls_cipher))
		st->tls_version = st->tls_cipher = NULL;
	/* whether the link up now resumed a TLS session: -1 no TLS link up */
	st->tls_resumed = l->at.up && l->url.tls ? l->at.tls_resumed : -1;
	st->proxy = l->at.via;
	st->compression_params = l->pmd ? l->deflate_params : NULL;
	if (l->pmd)
		pmd_report(l->pmd, &st->deflate);
	else
		memset(&st->deflate, 0, sizeof(st->deflate));
}

const char *link_via(const struct link *l)
{
	return l->at.via;
}

bool link_probe(struct link *l, enum net_change what, const struct sockaddr_storage *addr,
		unsigned prefix, unsigned deadline_s)
{
	/* an address gone: a route to all its bits; a route gone: one that may carry the link */
	bool cut =
	    what == NET_ADDR_GONE
		? netwatch_route_covers(addr, addr->ss_family == AF_INET6 ? 128 : 32, &l->at.local)
		: netwatch_route_covers(addr, prefix, &l->at.peer);

	/* with reading paused, no pong could prove anything */
	if (!cut || !link_up(l) || l->at.probing || l->at.rx_paused || l->at.close_req)
		return false;
	l->at.probing = true;
	l->at.probe_s = deadline_s;
	l->at.ping_due = true;
	ev_timer_stop(l->loop, &l->pong_timer);
	ev_timer_set(&l->pong_timer, deadline_s, 0);
	ev_timer_start(l->loop, &l->pong_timer);
	lws_callback_on_writable(l->wsi);
	return true;
}

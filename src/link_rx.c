/* What the server sends: frames parsed by wsrx, answered as RFC 6455 says. */
#include "link_int.h"

static void on_pong(struct link *l, const unsigned char *in, size_t len);

/* What pmd_inflate said: anything but PMD_OK fails the link as a violation. */
static int inflate_status(struct link *l, enum pmd_status st)
{
	char what[96], esc[48];
	const char *zerr;

	switch (st) {
	case PMD_OK:
		return 0;
	case PMD_TOO_BIG:
		wsrx_reject(&l->at.rx, WSRX_TOO_BIG, 1009, "a message that inflates too far");
		return -1;
	case PMD_CORRUPT:
		zerr = pmd_error(l->pmd);
		escape_text(esc, sizeof(esc), zerr, strlen(zerr));
		snprintf(what, sizeof(what), "a compressed message that does not inflate (%s)", esc);
		wsrx_reject(&l->at.rx, WSRX_VIOLATION, 1007, what);
		return -1;
	default:
		wsrx_reject(&l->at.rx, WSRX_NOMEM, 1009, "a message too big for the memory left");
		return -1;
	}
}

/* RFC 6455 8.1 on what inflated so far: fail at the first byte that cannot be UTF-8. */
static int check_inflated_text(struct link *l, const unsigned char *msg, size_t len, bool fin)
{
	size_t n = len - l->at.inflated_checked, k;
	char what[96];

	k = utf8_stream_feed(&l->at.inflated_utf8, msg + l->at.inflated_checked, n);
	if (k == n && (!fin || utf8_stream_complete(&l->at.inflated_utf8))) {
		l->at.inflated_checked = len;
		return 0;
	}
	if (k == n)
		snprintf(what, sizeof(what),
			 "compressed text of %zu bytes that ends inside a UTF-8 sequence once "
			 "inflated (RFC 6455 §8.1)",
			 len);
	else
		snprintf(what, sizeof(what),
			 "a compressed text message, not UTF-8 inflated at byte %zu (RFC 6455 §8.1)",
			 l->at.inflated_checked + k);
	wsrx_reject(&l->at.rx, WSRX_VIOLATION, 1007, what);
	return -1;
}

static void deliver(struct link *l, const unsigned char *data, size_t len, bool binary)
{
	l->stats.received++;
	l->stats.received_bytes += len;
	if (l->ev.message)
		l->ev.message(l->ev.ud, data, len, binary);
}

static void rx_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct link *l = ud;

	/* nothing reaches local programs once we fail the link or the server closed it */
	if (l->at.violated || l->at.peer_closed)
		return;
	deliver(l, data, len, binary);
}

/*
 * RFC 7692 6.2: a message that came with RSV1 (allowed only once pmd exists)
 * is inflated as its frames arrive, at most link.max_message_bytes of it,
 * and text is checked as it inflates, so that a bad first fragment fails
 * the link without waiting for the rest.
 */
static void rx_compressed(void *ud, const unsigned char *data, size_t len, bool fin, bool binary)
{
	struct link *l = ud;
	const unsigned char *msg;
	size_t n;

	if (l->at.violated || l->at.peer_closed)
		return;
	if (!l->at.inflating) {
		l->at.inflating = true;
		l->at.inflated_checked = 0;
		utf8_stream_init(&l->at.inflated_utf8);
	}
	if (inflate_status(l, pmd_inflate(l->pmd, data, len, fin)) < 0)
		return;
	msg = pmd_message(l->pmd, &n);
	if (!binary && check_inflated_text(l, msg, n, fin) < 0)
		return;
	if (!fin)
		return;
	l->at.inflating = false;
	deliver(l, msg, n, binary);
}

static void rx_ping(void *ud, const unsigned char *data, size_t len)
{
	struct link *l = ud;

	/* nothing more may follow our close frame, pongs included */
	if (l->at.close_sent)
		return;
	if (pongq_push(&l->at.pongs, data, len) && !l->at.pong_flood_said) {
		l->at.pong_flood_said = true;
		log_msg(LOG_NOTICE,
			"server %s:%u pings faster than we can answer: answering the newest %d "
			"of each burst, as RFC 6455 §5.5.3 allows",
			l->url.host, l->url.port, PONGQ_MAX);
	}
	if (l->wsi)
		lws_callback_on_writable(l->wsi);
}

static void rx_pong(void *ud, const unsigned char *data, size_t len)
{
	on_pong(ud, data, len);
}

static void rx_close(void *ud, int code, const unsigned char *reason, size_t len)
{
	struct link *l = ud;

	l->end.close_code = code;
	escape_text(l->end.close_reason, sizeof(l->end.close_reason), reason, len);
	if (l->at.close_sent) {
		/* the answer to our close: the handshake is done */
		link_finish(l);
		return;
	}
	/* the first cause stands: a close after something else went wrong is no clean end */
	if (l->end.fail == LINK_FAIL_NONE)
		l->end.clean_close = code == 1000 || code == 0;
	if (code)
		link_set_end(l, LINK_FAIL_CLOSED, "server %s:%u closed the link: %d%s%s", l->url.host,
			l->url.port, code, l->end.close_reason[0] ? " " : "", l->end.close_reason);
	else
		link_set_end(l, LINK_FAIL_CLOSED, "server %s:%u closed the link without a code",
			l->url.host, l->url.port);
	/* RFC 6455 5.5.1: echo the code, then let the server close the TCP */
	l->at.peer_closed = true;
	l->at.peer_code = code;
	if ((code == 1001 || code == 1012) && l->ev.restarting)
		l->ev.restarting(l->ev.ud);
	if (l->wsi)
		lws_callback_on_writable(l->wsi);
}

static const struct wsrx_ops rx_ops = {.message = rx_message,
				       .compressed = rx_compressed,
				       .ping = rx_ping,
				       .pong = rx_pong,
				       .close = rx_close};

/* The server broke RFC 6455: say what it did, close with the RFC's code, reconnect. */
static void rx_violation(struct link *l)
{
	const struct wsrx *rx = &l->at.rx;

	if (rx->status == WSRX_TOO_BIG)
		link_set_end(
		    l, LINK_FAIL_VIOLATION,
		    "message from %s:%u exceeds link.max_message_bytes (%zu): closing with 1009",
		    l->url.host, l->url.port, l->max_message);
	else if (rx->status == WSRX_NOMEM)
		link_set_end(l, LINK_FAIL_VIOLATION,
			"out of memory reassembling a message from %s:%u: closing with 1009",
			l->url.host, l->url.port);
	else
		link_set_end(l, LINK_FAIL_VIOLATION, "server %s:%u sent %s: closing with %d",
			l->url.host, l->url.port, rx->err_what, rx->err_code);
	l->end.close_code = rx->peer_code; /* as received, invalid or not */
	l->at.violated = true;
	l->at.close_req = true;
	l->at.close_code = rx->err_code;
	snprintf(l->at.close_reason, sizeof(l->at.close_reason), "%s",
		 rx->err_code == 1009	? "message too big"
		 : rx->err_code == 1007 ? "invalid payload data"
					: "protocol error");
	if (l->wsi)
		lws_callback_on_writable(l->wsi);
}

void link_on_raw_rx(struct link *l, const unsigned char *in, size_t len)
{
	/* any frame proves the peer alive */
	ev_timer_stop(l->loop, &l->pong_timer);
	l->at.probing = false;
	/* after a violation frames cannot be found again; after a close none may come */
	if (l->at.rx.status != WSRX_OK)
		return;
	switch (wsrx_feed(&l->at.rx, in, len, &rx_ops, l)) {
	case WSRX_VIOLATION:
	case WSRX_TOO_BIG:
	case WSRX_NOMEM:
		if (!l->at.close_sent)
			rx_violation(l);
		else
			link_finish(l); /* no second close frame: drop the TCP */
		break;
	default:
		break;
	}
}

static void on_pong(struct link *l, const unsigned char *in, size_t len)
{
	uint64_t seq = 0;

	ev_timer_stop(l->loop, &l->pong_timer);
	l->at.probing = false;
	if (len != 8)
		return;
	for (size_t i = 0; i < 8; i++)
		seq = seq << 8 | in[i];
	if (seq > l->at.fenced_seq)
		return; /* not a pong to any ping of ours */
	link_time_pong(l, seq);
	l->at.fence_in_flight = false;
	if (outbox_confirm(l->out, seq) && l->ev.confirmed)
		l->ev.confirmed(l->ev.ud);
	if (l->at.retiring && !l->at.fence_in_flight) {
		link_request_close(l, 1000, "rotated");
		return;
	}
	/* more went out since that ping: fence it */
	if (l->wsi && link_carries(l) && outbox_last_sent(l->out) > l->at.fenced_seq)
		lws_callback_on_writable(l->wsi);
}

/* What the server sends: frames parsed by wsrx, answered as RFC 6455 says. */
#include "link_rx.h"

#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "log.h"
#include "pmdeflate.h"

/* What pmd_inflate said: anything but PMD_OK fails the link as a violation. */
static int inflate_status(struct link_rx *s, enum pmd_status st)
{
	char what[96], esc[48];
	const char *zerr;

	switch (st) {
	case PMD_OK:
		return 0;
	case PMD_TOO_BIG:
		wsrx_reject(&s->wire, WSRX_TOO_BIG, 1009, "a message that inflates too far");
		return -1;
	case PMD_CORRUPT:
		zerr = pmd_error(s->pmd);
		escape_text(esc, sizeof(esc), zerr, strlen(zerr));
		snprintf(what, sizeof(what), "a compressed message that does not inflate (%s)",
			 esc);
		wsrx_reject(&s->wire, WSRX_VIOLATION, 1007, what);
		return -1;
	default:
		wsrx_reject(&s->wire, WSRX_NOMEM, 1009, "a message too big for the memory left");
		return -1;
	}
}

/* RFC 6455 8.1 on what inflated so far: fail at the first byte that cannot be UTF-8. */
static int check_inflated_text(struct link_rx *s, const unsigned char *msg, size_t len, bool fin)
{
	size_t n = len - s->inflated_checked, k;
	char what[96];

	k = utf8_stream_feed(&s->inflated_utf8, msg + s->inflated_checked, n);
	if (k == n && (!fin || utf8_stream_complete(&s->inflated_utf8))) {
		s->inflated_checked = len;
		return 0;
	}
	if (k == n)
		snprintf(what, sizeof(what),
			 "compressed text of %zu bytes that ends inside a UTF-8 sequence once "
			 "inflated (RFC 6455 §8.1)",
			 len);
	else
		snprintf(
		    what, sizeof(what),
		    "a compressed text message, not UTF-8 inflated at byte %zu (RFC 6455 §8.1)",
		    s->inflated_checked + k);
	wsrx_reject(&s->wire, WSRX_VIOLATION, 1007, what);
	return -1;
}

/* wsrx stops at a close or a violation: nothing reaches local programs after either. */
static void rx_message(void *ud, const unsigned char *data, size_t len, bool binary)
{
	struct link_rx *s = ud;

	s->deliver(s->ud, data, len, binary);
}

/*
 * RFC 7692 6.2: a message that came with RSV1 (allowed only once pmd exists)
 * is inflated as its frames arrive, at most link.max_message_bytes of it,
 * and text is checked as it inflates, so that a bad first fragment fails
 * the link without waiting for the rest.
 */
static void rx_compressed(void *ud, const unsigned char *data, size_t len, bool fin, bool binary)
{
	struct link_rx *s = ud;
	const unsigned char *msg;
	size_t n;

	if (!s->inflating) {
		s->inflating = true;
		s->inflated_checked = 0;
		utf8_stream_init(&s->inflated_utf8);
	}
	if (inflate_status(s, pmd_inflate(s->pmd, data, len, fin)) < 0)
		return;
	msg = pmd_message(s->pmd, &n);
	if (!binary && check_inflated_text(s, msg, n, fin) < 0)
		return;
	if (!fin)
		return;
	s->inflating = false;
	s->deliver(s->ud, msg, n, binary);
}

static void rx_ping(void *ud, const unsigned char *data, size_t len)
{
	struct link_rx *s = ud;

	/* nothing more may follow our close frame, pongs included */
	if (s->close_sent)
		return;
	if (pongq_push(&s->pongs, data, len) && !s->pong_flood_said) {
		s->pong_flood_said = true;
		log_msg(LOG_NOTICE,
			"server %s:%u pings faster than we can answer: answering the newest %d "
			"of each burst, as RFC 6455 §5.5.3 allows",
			s->host, s->port, PONGQ_MAX);
	}
	s->todo |= LINK_RX_WRITE;
}

/* A pong carries the seq of the ping it answers; one above the fence is no answer of ours. */
static void rx_pong(void *ud, const unsigned char *in, size_t len)
{
	struct link_rx *s = ud;
	uint64_t seq = 0;

	if (len != 8)
		return;
	for (size_t i = 0; i < 8; i++)
		seq = seq << 8 | in[i];
	if (seq > s->fence)
		return;
	if (!(s->todo & LINK_RX_PONG))
		s->pong_first = seq;
	s->pong_last = seq;
	s->todo |= LINK_RX_PONG;
}

static void rx_close(void *ud, int code, const unsigned char *reason, size_t len)
{
	struct link_rx *s = ud;

	s->end->close_code = code;
	escape_text(s->end->close_reason, sizeof(s->end->close_reason), reason, len);
	if (s->close_sent) {
		/* the answer to our close: the handshake is done */
		s->todo |= LINK_RX_FINISH;
		return;
	}
	/* the first cause stands: a close after something else went wrong is no clean end */
	if (s->end->fail == LINK_FAIL_NONE)
		s->end->clean_close = code == 1000 || code == 0;
	if (code)
		link_end_set(s->end, LINK_FAIL_CLOSED, "server %s:%u closed the link: %d%s%s",
			     s->host, s->port, code, s->end->close_reason[0] ? " " : "",
			     s->end->close_reason);
	else
		link_end_set(s->end, LINK_FAIL_CLOSED,
			     "server %s:%u closed the link without a code", s->host, s->port);
	/* RFC 6455 5.5.1: echo the code, then let the server close the TCP */
	s->peer_closed = true;
	s->peer_code = code;
	s->todo |= LINK_RX_CLOSE;
	if (code == 1001 || code == 1012)
		s->todo |= LINK_RX_RESTARTING;
}

static const struct wsrx_ops rx_ops = {.message = rx_message,
				       .compressed = rx_compressed,
				       .ping = rx_ping,
				       .pong = rx_pong,
				       .close = rx_close};

/* The server broke RFC 6455: say what it did, close with the RFC's code, reconnect. */
static void violation(struct link_rx *s)
{
	const struct wsrx *rx = &s->wire;

	if (rx->status == WSRX_TOO_BIG)
		link_end_set(
		    s->end, LINK_FAIL_VIOLATION,
		    "message from %s:%u exceeds link.max_message_bytes (%zu): closing with 1009",
		    s->host, s->port, rx->max_message);
	else if (rx->status == WSRX_NOMEM)
		link_end_set(s->end, LINK_FAIL_VIOLATION,
			     "out of memory reassembling a message from %s:%u: closing with 1009",
			     s->host, s->port);
	else
		link_end_set(s->end, LINK_FAIL_VIOLATION, "server %s:%u sent %s: closing with %d",
			     s->host, s->port, rx->err_what, rx->err_code);
	s->todo |= LINK_RX_CLOSE;
	s->end->close_code = rx->peer_code; /* as received, invalid or not */
	s->violated = true;
}

void link_rx_init(struct link_rx *s, size_t max_message, struct pmd *pmd, const char *host,
		  unsigned port, link_rx_deliver *deliver, void *ud)
{
	struct wsrx wire = s->wire;

	memset(s, 0, sizeof(*s));
	s->wire = wire; /* wsrx_init keeps its buffer */
	/* RSV1: compressed (RFC 7692 6) */
	wsrx_init(&s->wire, max_message, pmd ? 0x40 : 0);
	s->pmd = pmd;
	s->host = host;
	s->port = port;
	s->deliver = deliver;
	s->ud = ud;
}

void link_rx_finish(struct link_rx *s)
{
	wsrx_finish(&s->wire);
}

unsigned link_rx_feed(struct link_rx *s, const unsigned char *in, size_t len, uint64_t fence,
		      bool close_sent, struct link_end *end)
{
	enum wsrx_status st;

	s->todo = 0;
	/* after a violation frames cannot be found again; after a close none may come */
	if (s->wire.status != WSRX_OK)
		return 0;
	s->end = end;
	s->fence = fence;
	s->close_sent = close_sent;
	st = wsrx_feed(&s->wire, in, len, &rx_ops, s);
	if (st == WSRX_VIOLATION || st == WSRX_TOO_BIG || st == WSRX_NOMEM) {
		if (!close_sent)
			violation(s);
		else
			s->todo |= LINK_RX_FINISH; /* no second close frame: drop the TCP */
	}
	s->end = NULL;
	return s->todo;
}

int link_rx_answer(const struct link_rx *s, const char **reason)
{
	const char *why = "";
	int code;

	if (s->peer_closed)
		code = s->peer_code;
	else if (s->violated)
		code = s->wire.err_code;
	else
		return -1;
	if (s->violated)
		why = code == 1009   ? "message too big"
		      : code == 1007 ? "invalid payload data"
				     : "protocol error";
	*reason = why;
	return code;
}

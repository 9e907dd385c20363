#include "wsrx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

enum {
	OP_CONT = 0x0,
	OP_TEXT = 0x1,
	OP_BINARY = 0x2,
	OP_CLOSE = 0x8,
	OP_PING = 0x9,
	OP_PONG = 0xa
};

/* a reassembly buffer this big is freed after its message, not kept for the link's life */
#define MSG_KEEP_MAX (1024 * 1024)

void wsrx_init(struct wsrx *rx, size_t max_message, unsigned rsv_allowed)
{
	unsigned char *msg = rx->msg;
	size_t cap = rx->msg_cap;

	memset(rx, 0, sizeof(*rx));
	rx->msg = msg;
	rx->msg_cap = cap;
	rx->max_message = max_message;
	rx->rsv_allowed = rsv_allowed;
}

void wsrx_finish(struct wsrx *rx)
{
	free(rx->msg);
	rx->msg = NULL;
	rx->msg_cap = rx->msg_len = 0;
}

static bool in_list(const char *list, const char *name, size_t len)
{
	while (list && *list) {
		size_t n;

		list += strspn(list, " \t,");
		n = strcspn(list, " \t,;");
		if (n && n == len && !strncasecmp(list, name, n))
			return true;
		list += strcspn(list, ",");
	}
	return false;
}

bool wsrx_unoffered_extension(const char *hdr, const char *offered, char *name, size_t namelen)
{
	while (hdr && *hdr) {
		size_t n;

		hdr += strspn(hdr, " \t,");
		n = strcspn(hdr, " \t,;");
		if (n && !in_list(offered, hdr, n)) {
			snprintf(name, namelen, "%.*s", (int)n, hdr);
			return true;
		}
		/* parameters (";...") belong to the extension just checked */
		hdr += strcspn(hdr, ",");
	}
	return false;
}

bool wsrx_close_code_valid(int code)
{
	/* 1004-1006 and 1015 are reserved for the endpoints themselves, never sent */
	if (code >= 1000 && code <= 1014)
		return code != 1004 && code != 1005 && code != 1006;
	return code >= 3000 && code <= 4999;
}

static __attribute__((format(printf, 4, 5))) enum wsrx_status
fail(struct wsrx *rx, enum wsrx_status st, int code, const char *fmt, ...)
{
	va_list ap;

	rx->status = st;
	rx->err_code = code;
	va_start(ap, fmt);
	vsnprintf(rx->err_what, sizeof(rx->err_what), fmt, ap);
	va_end(ap);
	return st;
}

void wsrx_reject(struct wsrx *rx, enum wsrx_status st, int code, const char *what)
{
	fail(rx, st, code, "%s", what);
}

static size_t header_need(const unsigned char *h, size_t have)
{
	size_t n = 2;

	if (have < 2)
		return 2;
	if ((h[1] & 0x7f) == 126)
		n += 2;
	else if ((h[1] & 0x7f) == 127)
		n += 8;
	if (h[1] & 0x80)
		n += 4;
	return n;
}

/* The header is complete: check what RFC 6455 5.2-5.5 forbid a server to send. */
static enum wsrx_status check_header(struct wsrx *rx)
{
	const unsigned char *h = rx->hdr;
	unsigned rsv = h[0] & 0x70 & ~rx->rsv_allowed;
	uint64_t len = h[1] & 0x7f;
	bool control;

	rx->fin = h[0] & 0x80;
	rx->opcode = h[0] & 0x0f;
	control = rx->opcode & 0x8;
	if (h[1] & 0x80)
		return fail(rx, WSRX_VIOLATION, 1002, "a masked frame (RFC 6455 §5.1)");
	/* RFC 7692 6.1: the compressed bit belongs to a message's first frame only */
	if ((h[0] & 0x40) && (rx->rsv_allowed & 0x40) && (control || rx->opcode == OP_CONT))
		return fail(rx, WSRX_VIOLATION, 1002, "RSV1 on a %s frame (RFC 7692 §6.1)",
			    control ? "control" : "continuation");
	if (rsv)
		return fail(rx, WSRX_VIOLATION, 1002,
			    "a frame with RSV%d set and no extension negotiated (RFC 6455 §5.2)",
			    rsv & 0x40	 ? 1
			    : rsv & 0x20 ? 2
					 : 3);
	if ((rx->opcode > OP_BINARY && rx->opcode < OP_CLOSE) || rx->opcode > OP_PONG)
		return fail(rx, WSRX_VIOLATION, 1002,
			    "a frame with the reserved opcode 0x%x (RFC 6455 §5.2)", rx->opcode);
	if (len == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
	} else if (len == 127) {
		if (h[2] & 0x80)
			return fail(rx, WSRX_VIOLATION, 1002,
				    "a 64-bit payload length with the top bit set (RFC 6455 §5.2)");
		len = 0;
		for (int i = 2; i < 10; i++)
			len = len << 8 | h[i];
	}
	if (control && !rx->fin)
		return fail(rx, WSRX_VIOLATION, 1002, "a fragmented control frame (RFC 6455 §5.5)");
	if (control && len > 125)
		return fail(rx, WSRX_VIOLATION, 1002,
			    "a control frame of %llu bytes, over 125 (RFC 6455 §5.5)",
			    (unsigned long long)len);
	if (rx->opcode == OP_CONT && !rx->in_message)
		return fail(rx, WSRX_VIOLATION, 1002,
			    "a continuation frame with no message to continue (RFC 6455 §5.4)");
	if ((rx->opcode == OP_TEXT || rx->opcode == OP_BINARY) && rx->in_message)
		return fail(rx, WSRX_VIOLATION, 1002,
			    "a new data frame inside a fragmented message (RFC 6455 §5.4)");
	if (!control && (len > rx->max_message ||
			 (rx->opcode == OP_CONT && len > rx->max_message - rx->msg_len)))
		return fail(rx, WSRX_TOO_BIG, 1009, "a message over link.max_message_bytes");
	if (rx->opcode == OP_TEXT || rx->opcode == OP_BINARY) {
		rx->msg_binary = rx->opcode == OP_BINARY;
		rx->msg_compressed = h[0] & 0x40;
		rx->msg_len = 0;
		rx->in_message = !rx->fin;
		utf8_stream_init(&rx->utf8);
	}
	rx->remaining = len;
	rx->ctl_len = 0;
	rx->in_payload = true;
	return WSRX_OK;
}

static enum wsrx_status on_close(struct wsrx *rx, const struct wsrx_ops *ops, void *ud)
{
	int code;

	if (rx->ctl_len == 1)
		return fail(rx, WSRX_VIOLATION, 1002,
			    "a close frame with a 1-byte payload (RFC 6455 §5.5.1)");
	code = rx->ctl_len ? rx->ctl[0] << 8 | rx->ctl[1] : 0;
	if (rx->ctl_len && !wsrx_close_code_valid(code)) {
		rx->peer_code = code;
		return fail(rx, WSRX_VIOLATION, 1002, "invalid close code %d (RFC 6455 §7.4)",
			    code);
	}
	if (rx->ctl_len > 2 && !utf8_valid(rx->ctl + 2, rx->ctl_len - 2)) {
		rx->peer_code = code;
		return fail(rx, WSRX_VIOLATION, 1007,
			    "a close reason that is not valid UTF-8 (RFC 6455 §5.5.1)");
	}
	rx->status = WSRX_CLOSED;
	if (ops->close)
		ops->close(ud, code, rx->ctl + (rx->ctl_len ? 2 : 0),
			   rx->ctl_len > 2 ? rx->ctl_len - 2 : 0);
	return WSRX_CLOSED;
}

static enum wsrx_status deliver(struct wsrx *rx, const unsigned char *data, size_t len,
				const struct wsrx_ops *ops, void *ud)
{
	/* its bytes were checked as they came (check_text); only the end is left */
	if (!rx->msg_binary && !utf8_stream_complete(&rx->utf8))
		return fail(rx, WSRX_VIOLATION, 1007,
			    "a text message of %zu bytes that ends inside a UTF-8 sequence "
			    "(RFC 6455 §8.1)",
			    len);
	if (ops->message)
		ops->message(ud, data, len, rx->msg_binary);
	return WSRX_OK;
}

/* The frame's payload is all in: act on it. */
static enum wsrx_status frame_done(struct wsrx *rx, const struct wsrx_ops *ops, void *ud)
{
	rx->in_payload = false;
	rx->hdr_len = 0;
	switch (rx->opcode) {
	case OP_CLOSE:
		return on_close(rx, ops, ud);
	case OP_PING:
		if (ops->ping)
			ops->ping(ud, rx->ctl, rx->ctl_len);
		return WSRX_OK;
	case OP_PONG:
		if (ops->pong)
			ops->pong(ud, rx->ctl, rx->ctl_len);
		return WSRX_OK;
	default:
		break;
	}
	if (!rx->fin)
		return WSRX_OK;
	rx->in_message = false;
	if (rx->msg_compressed) {
		rx->msg_len = 0;
		if (ops->compressed)
			ops->compressed(ud, (const unsigned char *)"", 0, true, rx->msg_binary);
		return rx->status;
	}
	if (deliver(rx, rx->msg ? rx->msg : (const unsigned char *)"", rx->msg_len, ops, ud) !=
	    WSRX_OK)
		return rx->status;
	rx->msg_len = 0;
	if (rx->msg_cap > MSG_KEEP_MAX)
		wsrx_finish(rx);
	return WSRX_OK;
}

static int msg_reserve(struct wsrx *rx, size_t need)
{
	size_t cap = rx->msg_cap ? rx->msg_cap : 64 * 1024;

	while (cap < need)
		cap *= 2;
	return mem_reserve(&rx->msg, &rx->msg_cap, cap);
}

/*
 * RFC 6455 8.1: fail a text message at its first byte that cannot be UTF-8,
 * whatever is still to come. A compressed one is checked as it inflates, by
 * the consumer. at is where p begins in the message.
 */
static enum wsrx_status check_text(struct wsrx *rx, const unsigned char *p, size_t n, size_t at)
{
	size_t k;

	if (rx->msg_binary)
		return WSRX_OK;
	k = utf8_stream_feed(&rx->utf8, p, n);
	if (k == n)
		return WSRX_OK;
	return fail(rx, WSRX_VIOLATION, 1007,
		    "a text message that is not valid UTF-8 at byte %zu (RFC 6455 §8.1)", at + k);
}

/* Take up to len payload bytes of the current frame; returns how many were taken. */
static size_t take_payload(struct wsrx *rx, const unsigned char *p, size_t len,
			   const struct wsrx_ops *ops, void *ud)
{
	size_t n = len < rx->remaining ? len : (size_t)rx->remaining;

	if (rx->opcode & 0x8) {
		memcpy(rx->ctl + rx->ctl_len, p, n);
		rx->ctl_len += n;
	} else if (rx->msg_compressed) {
		/* inflated as it comes by the consumer; only its length is kept here */
		rx->msg_len += n;
		if (ops->compressed)
			ops->compressed(ud, p, n, false, rx->msg_binary);
		if (rx->status != WSRX_OK)
			return n;
	} else if (check_text(rx, p, n, rx->msg_len) != WSRX_OK) {
		return n;
	} else if (rx->fin && rx->opcode != OP_CONT && !rx->msg_len && n == rx->remaining) {
		/* a whole unfragmented message in the buffer: hand it over without a copy */
		rx->remaining = 0;
		rx->in_payload = false;
		rx->hdr_len = 0;
		deliver(rx, p, n, ops, ud);
		return n;
	} else {
		if (msg_reserve(rx, rx->msg_len + n) < 0) {
			fail(rx, WSRX_NOMEM, 1009, "a message too big for the memory left");
			return n;
		}
		memcpy(rx->msg + rx->msg_len, p, n);
		rx->msg_len += n;
	}
	rx->remaining -= n;
	if (!rx->remaining)
		frame_done(rx, ops, ud);
	return n;
}

enum wsrx_status wsrx_feed(struct wsrx *rx, const unsigned char *buf, size_t len,
			   const struct wsrx_ops *ops, void *ud)
{
	while (len && rx->status == WSRX_OK) {
		size_t n;

		if (rx->in_payload) {
			n = take_payload(rx, buf, len, ops, ud);
		} else {
			size_t need = header_need(rx->hdr, rx->hdr_len);

			n = need - rx->hdr_len;
			if (n > len)
				n = len;
			memcpy(rx->hdr + rx->hdr_len, buf, n);
			rx->hdr_len += n;
			need = header_need(rx->hdr, rx->hdr_len);
			if (rx->hdr_len < need)
				goto next;
			/* the 2 bytes may have said the header is longer than we took */
			if (check_header(rx) == WSRX_OK && !rx->remaining)
				frame_done(rx, ops, ud);
		}
	next:
		buf += n;
		len -= n;
	}
	return rx->status;
}

#include "framing.h"

#include <stdint.h>
#include <string.h>

#define LP_HEADER 5

static int decode_line(const unsigned char *buf, size_t len, size_t max, struct frame *out,
		       size_t *used, const char **why)
{
	/* a valid line has at most max bytes before its '\n' */
	size_t scan = len;
	const unsigned char *nl;

	if (max < SIZE_MAX && scan > max + 1)
		scan = max + 1;
	nl = scan ? memchr(buf, '\n', scan) : NULL;
	if (nl) {
		out->data = buf;
		out->len = (size_t)(nl - buf);
		out->binary = false;
		*used = out->len + 1;
		return 1;
	}
	if (len > max) {
		*why = "oversized line";
		return -1;
	}
	return 0;
}

static int decode_prefixed(const unsigned char *buf, size_t len, size_t max, struct frame *out,
			   size_t *used, const char **why)
{
	uint32_t n;

	if (len == 0)
		return 0;
	/* reject a bad type as soon as its byte arrives */
	if (buf[0] != FRAMING_TYPE_TEXT && buf[0] != FRAMING_TYPE_BINARY) {
		*why = "unknown message type";
		return -1;
	}
	if (len < LP_HEADER)
		return 0;
	n = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
	if (n > max) {
		*why = "oversized message";
		return -1;
	}
	if (len - LP_HEADER < n)
		return 0;
	out->data = buf + LP_HEADER;
	out->len = n;
	out->binary = buf[0] == FRAMING_TYPE_BINARY;
	*used = LP_HEADER + (size_t)n;
	return 1;
}

int framing_decode(enum framing f, const unsigned char *buf, size_t len, size_t max,
		   struct frame *out, size_t *used, const char **why)
{
	const char *ignored;

	if (!why)
		why = &ignored;
	*used = 0;
	if (!buf && len) {
		*why = "no buffer";
		return -1;
	}
	switch (f) {
	case FRAMING_LINES:
		return decode_line(buf, len, max, out, used, why);
	case FRAMING_LENGTH_PREFIXED:
		return decode_prefixed(buf, len, max, out, used, why);
	}
	*why = "unknown framing";
	return -1;
}

int framing_encode(enum framing f, bool binary, const void *data, size_t len,
		   struct framing_wrap *w, const char **why)
{
	const char *ignored;

	if (!why)
		why = &ignored;
	*w = (struct framing_wrap){.tail = ""};
	if (!data && len) {
		*why = "no data";
		return -1;
	}
	switch (f) {
	case FRAMING_LINES:
		if (binary) {
			*why = "binary message cannot be framed as a line";
			return -1;
		}
		if (len && memchr(data, '\n', len)) {
			*why = "text containing a newline cannot be framed as a line";
			return -1;
		}
		w->tail = "\n";
		w->tail_len = 1;
		return 0;
	case FRAMING_LENGTH_PREFIXED:
		if ((uint64_t)len > UINT32_MAX) {
			*why = "message too long for a 32-bit length";
			return -1;
		}
		w->head[0] = binary ? FRAMING_TYPE_BINARY : FRAMING_TYPE_TEXT;
		w->head[1] = (unsigned char)(len >> 24);
		w->head[2] = (unsigned char)(len >> 16);
		w->head[3] = (unsigned char)(len >> 8);
		w->head[4] = (unsigned char)len;
		w->head_len = LP_HEADER;
		return 0;
	}
	*why = "unknown framing";
	return -1;
}

int framing_encode_event(enum framing f, const void *data, size_t len, struct framing_wrap *w,
			 const char **why)
{
	if (f != FRAMING_LENGTH_PREFIXED) {
		*w = (struct framing_wrap){.tail = ""};
		if (why)
			*why = "event frames need length-prefixed framing";
		return -1;
	}
	if (framing_encode(f, false, data, len, w, why) < 0)
		return -1;
	w->head[0] = FRAMING_TYPE_EVENT;
	return 0;
}

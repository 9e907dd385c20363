#ifndef WST_FRAMING_H
#define WST_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h" /* enum framing */
#include "utf8.h"

/*
 * Local framing for the bridge socket and the exec handler (see "Local
 * framing" in the interface contract):
 *
 * - FRAMING_LINES: one '\n'-terminated line is one text message, without
 *   its '\n'. Binary messages, and text containing '\n', cannot be framed.
 * - FRAMING_LENGTH_PREFIXED: 1 byte type (0x01 text, 0x02 binary), 4-byte
 *   big-endian payload length, payload.
 *
 * Pure functions over caller-owned buffers: no allocation, no state.
 */

#define FRAMING_HEADER_MAX 5

/* Event frames go only from the daemon to a program that asked for them (bridge.events). */
enum { FRAMING_TYPE_TEXT = 0x01, FRAMING_TYPE_BINARY = 0x02, FRAMING_TYPE_EVENT = 0x03 };

struct frame {
	const unsigned char *data;	/* points into the decoded buffer */
	size_t len;
	bool binary;
};

/*
 * Decode the first frame of buf[0..len). max is the largest payload
 * accepted (link.max_message_bytes).
 *
 * Returns 1: a frame is in *out and takes the first *used bytes of buf.
 *         0: incomplete, read more (*used = 0).
 *        -1: the input can never become valid (*why says why, a static
 *            string): a line longer than max before its '\n', an unknown
 *            type byte, or a length above max. The length is checked from
 *            the header alone, before the payload arrives. The peer's
 *            stream cannot be resynchronised: drop it.
 */
int framing_decode(enum framing f, const unsigned char *buf, size_t len, size_t max,
		   struct frame *out, size_t *used, const char **why);

/*
 * Frame one message for writing without copying it: write head[0..head_len),
 * then the data, then tail[0..tail_len) (e.g. with writev).
 */
struct framing_wrap {
	unsigned char head[FRAMING_HEADER_MAX];
	size_t head_len;
	const char *tail;	/* static */
	size_t tail_len;
};

/*
 * Returns 0, or -1 when the message cannot be framed (*why, static): with
 * lines, a binary message or text containing '\n'; with length-prefixed, a
 * payload above 4 GiB - 1. Such a message is never written partly.
 */
int framing_encode(enum framing f, bool binary, const void *data, size_t len,
		   struct framing_wrap *w, const char **why);

/* A link event (a JSON object) as an event frame: length-prefixed only, else -1. */
int framing_encode_event(enum framing f, const void *data, size_t len, struct framing_wrap *w,
			 const char **why);

#endif

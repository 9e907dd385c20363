#ifndef WST_WSRX_H
#define WST_WSRX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

/*
 * Server-to-client WebSocket frames (RFC 6455 5-8), parsed by us rather than
 * by lws. lws 4.1.6 delivers masked frames as data and drops the TCP without
 * a close frame on most other violations; patching its byte-at-a-time parser
 * in eight places would leave the checks spread over C we do not fuzz. One
 * small lws patch (0005) hands us the raw bytes instead, as we already frame
 * our own sends (wsframe.c). Measured with callgrind, 20,000 x 64 B and
 * 2,000 x 16 KiB echoed through --stdio: 12.5% fewer instructions in both
 * (41.1 M -> 36.0 M, 245.7 M -> 214.9 M), since whole frames are delivered
 * from lws's read buffer without the copy lws made.
 *
 * Feed it the bytes as they come; it calls back with whole messages and
 * control frames. On the first violation it stops, fills err_code/err_what
 * and ignores everything after.
 */

struct wsrx_ops {
	/* a whole message; data may point into the fed buffer */
	void (*message)(void *ud, const unsigned char *data, size_t len, bool binary);
	/*
	 * A compressed message (RSV1 on its first frame, RFC 7692 6) instead
	 * comes piece by piece as its payload arrives, then once with fin and
	 * no data: the consumer inflates it, and checks text, as it comes.
	 */
	void (*compressed)(void *ud, const unsigned char *data, size_t len, bool fin, bool binary);
	void (*ping)(void *ud, const unsigned char *data, size_t len);
	void (*pong)(void *ud, const unsigned char *data, size_t len);
	/* a valid close frame; code 0 if it had no payload (then reason is "") */
	void (*close)(void *ud, int code, const unsigned char *reason, size_t len);
};

enum wsrx_status { WSRX_OK, WSRX_CLOSED, WSRX_VIOLATION, WSRX_TOO_BIG, WSRX_NOMEM };

struct wsrx {
	size_t max_message;
	unsigned rsv_allowed; /* RSV bits (0x70) a negotiated extension may set */
	enum wsrx_status status;
	int err_code;	   /* the close code to answer with (1002, 1007, 1009) */
	int peer_code;	   /* an invalid close code, as received */
	char err_what[96]; /* what the server did, for "server sent %s" */

	/* frame being parsed */
	unsigned char hdr[14];
	size_t hdr_len;
	uint64_t remaining; /* payload bytes of this frame still to come */
	int opcode;
	bool fin, in_payload;

	/* a control frame's payload, which may arrive in pieces */
	unsigned char ctl[125];
	size_t ctl_len;

	/* a message split over frames or reads */
	bool in_message, msg_binary;
	bool msg_compressed; /* RSV1 on its first frame (RFC 7692 6): for ops->compressed */
	unsigned char *msg;
	size_t msg_len, msg_cap;
	/* an uncompressed text message is checked as its bytes arrive, not once whole */
	struct utf8_stream utf8;
};

void wsrx_init(struct wsrx *rx, size_t max_message, unsigned rsv_allowed);
void wsrx_finish(struct wsrx *rx);
/*
 * From inside ops->message or ops->compressed: the message is bad after all
 * (it did not inflate), so stop as for a violation, with this status, code
 * and text.
 */
void wsrx_reject(struct wsrx *rx, enum wsrx_status st, int code, const char *what);
/* Returns rx->status; anything but WSRX_OK means stop feeding. */
enum wsrx_status wsrx_feed(struct wsrx *rx, const unsigned char *buf, size_t len,
			   const struct wsrx_ops *ops, void *ud);
/*
 * RFC 6455 4.1/9.1: the first extension in a 101's Sec-WebSocket-Extensions
 * value (hdr) that is not in offered (a comma-separated list of names, or
 * NULL for none), copied into name; false if all were offered.
 */
bool wsrx_unoffered_extension(const char *hdr, const char *offered, char *name, size_t namelen);
/* RFC 6455 7.4: may a server send this close code? */
bool wsrx_close_code_valid(int code);

#endif

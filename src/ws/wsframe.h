#ifndef WST_WSFRAME_H
#define WST_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

/*
 * Client-to-server WebSocket frames (RFC 6455 5.2), built by us so that many
 * queued messages go out in one write instead of one lws_write (and one
 * /dev/urandom read for the mask) each.
 */
enum { WSF_TEXT = 0x1, WSF_BINARY = 0x2, WSF_CLOSE = 0x8, WSF_PING = 0x9, WSF_PONG = 0xa };
/* or'ed into a data opcode: the payload is compressed (RFC 7692 6) */
#define WSF_RSV1 0x40

#define WSFRAME_MAX_HEADER 14

size_t wsframe_header_len(size_t payload_len);
/* Writes FIN + opcode, length, mask and the masked payload; returns bytes written. */
size_t wsframe_encode(unsigned char *dst, int opcode, const void *payload, size_t len,
		      uint32_t mask);

#endif

#ifndef WST_PMDEFLATE_H
#define WST_PMDEFLATE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * permessage-deflate (RFC 7692) for one link: the offer we send, the check of
 * the server's answer, and the compressor and inflater the answer configures.
 * Pure: no sockets, no lws; link.c feeds it payloads.
 */

#define PMD_EXTENSION "permessage-deflate"

/*
 * Messages shorter than this go out uncompressed: a deflate block costs about
 * two bytes of its own, and below this size the saving rarely pays for the
 * deflate call. Node's ws uses 1024, which leaves small telemetry messages,
 * the case this feature is for, uncompressed.
 */
#define PMD_MIN_COMPRESS 32

/* What the client asks for (RFC 7692 7.1). */
struct pmd_offer {
	int server_max_window_bits;  /* 8..15, or 0 to leave the server's window to it */
	bool client_max_window_bits; /* let the server shrink our window */
	bool server_no_context_takeover;
	bool client_no_context_takeover;
};

/* What the server's answer settled. */
struct pmd_params {
	int client_max_window_bits; /* window our compressor may use, 8..15 */
	int server_max_window_bits; /* window the server compresses with, 8..15 */
	bool client_no_context_takeover;
	bool server_no_context_takeover;
};

/* The offer the daemon sends: all parameters left to the server. */
extern const struct pmd_offer pmd_default_offer;

/* Writes the Sec-WebSocket-Extensions value; returns its length, or 0 if cap is too small. */
size_t pmd_offer_header(const struct pmd_offer *o, char *buf, size_t cap);

/*
 * Checks the server's Sec-WebSocket-Extensions value (NULL or "" when it sent
 * none) against what we offered (NULL when we offered nothing). Returns 1 and
 * fills p when the server accepted, 0 when it declined, and -1 with a reason
 * in why when the answer breaks RFC 6455 9.1 or RFC 7692 7, which fails the
 * handshake. The reason quotes only tokens (RFC 7230 tchar, safe to log).
 */
int pmd_negotiate(const struct pmd_offer *o, const char *header, struct pmd_params *p, char *why,
		  size_t why_len);

struct pmd;

/*
 * State for one established link. max_message bounds an inflated message.
 * zlib allocates lazily: a link that never sends or receives a compressed
 * message costs no zlib memory.
 */
struct pmd *pmd_create(const struct pmd_params *p, size_t max_message);
void pmd_destroy(struct pmd *d);

/* Upper bound of pmd_compress's output for a message of len bytes. */
size_t pmd_compress_bound(size_t len);

/*
 * Compresses one outgoing message. Returns 1 with the payload to send with RSV1
 * in *out (valid until the next call), 0 when the message goes out as it is,
 * or -1 when zlib failed (out of memory): the link must close, since the
 * server's context can no longer follow ours.
 */
int pmd_compress(struct pmd *d, const void *in, size_t len, const unsigned char **out,
		 size_t *out_len);

enum pmd_status {
	PMD_OK = 0,
	PMD_TOO_BIG = -1, /* inflated past max_message: close with 1009 */
	PMD_CORRUPT = -2, /* not a valid deflate stream: close with 1007 */
	PMD_NOMEM = -3,	  /* close with 1011 */
};

/*
 * Inflates the payload of one compressed message piece by piece, as its
 * frames arrive; fin marks its end. pmd_message() holds what inflated so far
 * (so that text can be checked as it comes), the whole message once fin
 * returned PMD_OK. After an error the link must close: the stream is lost.
 */
enum pmd_status pmd_inflate(struct pmd *d, const void *in, size_t len, bool fin);
const unsigned char *pmd_message(const struct pmd *d, size_t *len);
/* zlib's text for the last PMD_CORRUPT (not escaped), or "". */
const char *pmd_error(const struct pmd *d);

struct pmd_report {
	size_t zlib_bytes;		      /* what zlib holds now, compressor and inflater */
	size_t buffer_bytes;		      /* our output buffers */
	unsigned long long tx_plain, tx_wire; /* compressed messages: before, after */
	unsigned long long rx_wire, rx_plain; /* inflated messages: before, after */
};
void pmd_report(const struct pmd *d, struct pmd_report *r);

#endif

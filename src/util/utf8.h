#ifndef WST_UTF8_H
#define WST_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The one UTF-8 check: no overlong forms, surrogates or code points beyond
 * U+10FFFF. A WebSocket peer fails the connection (1007) on a text message
 * that is not valid: check text from local clients before queueing it.
 */
bool utf8_valid(const void *s, size_t len);

/*
 * Length of the valid sequence at s[0..n) (1..4), or 0 with *bad set to the
 * length of its maximal invalid subpart (Unicode 15, 3.9 U+FFFD substitution).
 */
size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad);

/*
 * The same check for text that arrives in pieces (a WebSocket message over
 * frames and reads), split anywhere, even inside a code point. It stops at
 * the first byte that no continuation could make valid (RFC 6455 8.1 asks to
 * fail fast), so a server cannot make us wait for the rest of a doomed
 * message. A zeroed struct is a fresh stream.
 */
struct utf8_stream {
	unsigned char need;   /* continuation bytes the open sequence still lacks */
	unsigned char lo, hi; /* the range its next byte must fall in */
};

static inline void utf8_stream_init(struct utf8_stream *st)
{
	st->need = st->lo = st->hi = 0;
}
/*
 * Checks the next len bytes: returns len when each of them can still be part
 * of valid UTF-8, else the offset of the first that cannot (then the stream
 * is spent).
 */
size_t utf8_stream_feed(struct utf8_stream *st, const void *s, size_t len);
/* At the end of the text: no sequence is left open. */
static inline bool utf8_stream_complete(const struct utf8_stream *st)
{
	return st->need == 0;
}

#endif

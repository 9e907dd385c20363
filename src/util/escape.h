#ifndef WST_ESCAPE_H
#define WST_ESCAPE_H

#include <stddef.h>

/*
 * Text from outside (a server's close reason, HTTP headers, subprotocol
 * names; what local programs send) made safe for a log line, a journald
 * field or the status JSON: valid UTF-8 is kept, except control characters
 * (C0, DEL, C1) and '\', which become \xNN as every byte of invalid UTF-8
 * does. Never longer than dstlen - 1 bytes: a cut ends in "...", never inside
 * an escape or a character. Pure; dst is always NUL-terminated (dstlen >= 4).
 */
size_t escape_text(char *dst, size_t dstlen, const void *src, size_t len);

#endif

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

#endif

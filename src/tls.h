#ifndef WST_TLS_H
#define WST_TLS_H

#include <stddef.h>

struct wst_config;

/*
 * Checks of the TLS files with mbedTLS, before lws ever sees them, so that a
 * bad file gets one sentence naming it instead of an opaque handshake error.
 * Run at --check, at start, at reload and before every attempt.
 * Returns 0, or -1 with "FILE: reason (KEY in CONFIG)" in err.
 */
int tls_check(const struct wst_config *cfg, char *err, size_t errlen);

/* Whether any URL in the config needs TLS. */
int tls_needed(const struct wst_config *cfg);

#endif

#ifndef WST_TLS_SESSION_H
#define WST_TLS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The one thing that outlives an attempt: the TLS session of the last good
 * handshake with each server (host and port), so that the next attempt's
 * fresh lws context resumes it instead of a full handshake. In memory only,
 * never on disk; a session is a serialised mbedtls_ssl_session (a TLS 1.3
 * ticket, a TLS 1.2 ticket or session ID, with its master secret), wiped
 * when dropped. Pure bookkeeping: link_session.c hands sessions to lws.
 *
 * A session is used only with the TLS identity it was made with (a digest
 * of the CA, client certificate and key as read for the attempt, the name
 * checked and tls.insecure), so a rotated file is presented in full at the
 * next connect; and only within its lifetime.
 */
#define TLS_SESSION_SLOTS 4 /* link.url and three fallbacks; then the oldest goes */
#define TLS_SESSION_ID_LEN 32
/* RFC 8446 4.6.1: no ticket lives longer; RFC 5246 F.1.4 for session IDs */
#define TLS_SESSION_MAX_LIFETIME_S (7 * 24 * 3600)
#define TLS_SESSION_ID_LIFETIME_S (24 * 3600)

struct tls_session {
	char host[256];
	unsigned port;
	unsigned char id[TLS_SESSION_ID_LEN];
	unsigned char *blob; /* NULL: a free slot */
	size_t len;
	int64_t expires_s; /* on the caller's monotonic clock */
	uint64_t used;	   /* for choosing the slot to reuse */
};

struct tls_sessions {
	struct tls_session s[TLS_SESSION_SLOTS];
	uint64_t tick;
	uint64_t generation; /* tls_sessions_forget() counts: older attempts keep nothing */
	unsigned long long full, resumed; /* TLS handshakes of the links, by kind */
};

/* The identity digest of n parts (each length-prefixed, so parts cannot run together). */
void tls_session_identity(unsigned char id[TLS_SESSION_ID_LEN], const void *const parts[],
			  const size_t lens[], size_t n);

/*
 * The session to offer host:port under identity id at now_s, or NULL. One
 * made with another identity or past its lifetime is dropped on the way.
 */
const struct tls_session *tls_sessions_find(struct tls_sessions *c, const char *host, unsigned port,
					    const unsigned char *id, int64_t now_s);
/*
 * Keep a copy of blob as host:port's session, replacing the one before.
 * lifetime_s: the ticket's (0: none given), capped as above. generation:
 * c->generation when the attempt began; an attempt from before the last
 * tls_sessions_forget() keeps nothing (returns 0). -1: no memory (the old
 * one is dropped then too).
 */
int tls_sessions_put(struct tls_sessions *c, uint64_t generation, const char *host, unsigned port,
		     const unsigned char *id, const void *blob, size_t len, uint32_t lifetime_s,
		     bool ticket, int64_t now_s);
void tls_sessions_drop(struct tls_sessions *c, const char *host, unsigned port);
/* Every session: a reload touched tls.* or link.url, or resumption was turned off. */
void tls_sessions_forget(struct tls_sessions *c);
size_t tls_sessions_count(const struct tls_sessions *c);

#endif

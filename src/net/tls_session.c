#include "tls_session.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

void tls_session_identity(unsigned char id[TLS_SESSION_ID_LEN], const void *const parts[],
			  const size_t lens[], size_t n)
{
	mbedtls_sha256_context h;

	mbedtls_sha256_init(&h);
	mbedtls_sha256_starts(&h, 0);
	for (size_t i = 0; i < n; i++) {
		unsigned char len[8];
		uint64_t l = lens[i];

		for (int b = 0; b < 8; b++)
			len[b] = (unsigned char)(l >> (56 - 8 * b));
		mbedtls_sha256_update(&h, len, sizeof(len));
		if (l)
			mbedtls_sha256_update(&h, parts[i], lens[i]);
	}
	mbedtls_sha256_finish(&h, id);
	mbedtls_sha256_free(&h);
}

static void clear(struct tls_session *s)
{
	if (s->blob) {
		mbedtls_platform_zeroize(s->blob, s->len);
		free(s->blob);
	}
	memset(s, 0, sizeof(*s));
}

static struct tls_session *slot_of(struct tls_sessions *c, const char *host, unsigned port)
{
	for (size_t i = 0; i < TLS_SESSION_SLOTS; i++)
		if (c->s[i].blob && c->s[i].port == port && !strcmp(c->s[i].host, host))
			return &c->s[i];
	return NULL;
}

const struct tls_session *tls_sessions_find(struct tls_sessions *c, const char *host, unsigned port,
					    const unsigned char *id, int64_t now_s)
{
	struct tls_session *s = slot_of(c, host, port);

	if (!s)
		return NULL;
	if (memcmp(s->id, id, TLS_SESSION_ID_LEN) || now_s >= s->expires_s) {
		clear(s);
		return NULL;
	}
	s->used = ++c->tick;
	return s;
}

int tls_sessions_put(struct tls_sessions *c, uint64_t generation, const char *host, unsigned port,
		     const unsigned char *id, const void *blob, size_t len, uint32_t lifetime_s,
		     bool ticket, int64_t now_s)
{
	struct tls_session *s = slot_of(c, host, port);

	/* a link that began before a reload dropped everything must not bring its session back */
	if (generation != c->generation)
		return 0;
	if (strlen(host) >= sizeof(s->host) || !len)
		return -1;
	if (!s) {
		s = &c->s[0];
		for (size_t i = 1; i < TLS_SESSION_SLOTS && s->blob; i++)
			if (!c->s[i].blob || c->s[i].used < s->used)
				s = &c->s[i];
	}
	clear(s);
	if (!(s->blob = malloc(len)))
		return -1;
	memcpy(s->blob, blob, len);
	s->len = len;
	strcpy(s->host, host);
	s->port = port;
	memcpy(s->id, id, TLS_SESSION_ID_LEN);
	/* a session ID, or a ticket whose lifetime is not given: a day */
	if (!ticket || !lifetime_s)
		lifetime_s = TLS_SESSION_ID_LIFETIME_S;
	else if (lifetime_s > TLS_SESSION_MAX_LIFETIME_S)
		lifetime_s = TLS_SESSION_MAX_LIFETIME_S;
	s->expires_s = now_s + lifetime_s;
	s->used = ++c->tick;
	return 0;
}

void tls_sessions_drop(struct tls_sessions *c, const char *host, unsigned port)
{
	struct tls_session *s = slot_of(c, host, port);

	if (s)
		clear(s);
}

void tls_sessions_forget(struct tls_sessions *c)
{
	for (size_t i = 0; i < TLS_SESSION_SLOTS; i++)
		clear(&c->s[i]);
	c->generation++;
}

size_t tls_sessions_count(const struct tls_sessions *c)
{
	size_t n = 0;

	for (size_t i = 0; i < TLS_SESSION_SLOTS; i++)
		n += c->s[i].blob != NULL;
	return n;
}

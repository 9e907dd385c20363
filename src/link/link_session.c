/*
 * The TLS session carried from one attempt to the next (tls_session.h): the
 * new context's lws cache gets the kept session before the connect (lws
 * offers it in the ClientHello), and what the handshake (or a later TLS 1.3
 * ticket) left in that cache is kept before the context goes. lws patch 0012
 * serialises sessions and says whether the server resumed.
 */
#include "link_int.h"

#include <time.h>

#include <mbedtls/ssl.h>

#define VHOST "wstether" /* link_attempt.c names the context's one vhost so */

static int64_t now_s(void)
{
	struct timespec ts;

	/* ticket lifetimes run on while the machine sleeps */
	if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
		clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The attempt's TLS identity: what a resumed session would stand in for. */
static void identity(struct link *l)
{
	const char *none = "";
	char flags[2] = {l->insecure ? '1' : '0', '\0'};
	const void *parts[] = {l->ca.pem ? l->ca.pem : none,
			       l->cert.blob ? l->cert.blob : none,
			       l->cert.key ? (const void *)l->cert.key : none,
			       l->host_hdr,
			       l->url.host,
			       flags};
	const size_t lens[] = {l->ca.len,
			       l->cert.blob ? l->cert.len : 0,
			       l->cert.key ? l->cert.key_len : 0,
			       strlen(l->host_hdr),
			       strlen(l->url.host),
			       1};

	tls_session_identity(l->at.tls_id, parts, lens, sizeof(lens) / sizeof(lens[0]));
}

static int load_cb(struct lws_context *cx, struct lws_tls_session_dump *d)
{
	const struct tls_session *s = d->opaque;

	if (!(d->blob = malloc(s->len))) /* lws frees it (after wiping) */
		return 1;
	memcpy(d->blob, s->blob, s->len);
	d->blob_len = s->len;
	return 0;
}

void link_session_offer(struct link *l)
{
	const struct tls_session *s;
	struct lws_vhost *vh;

	if (!l->url.tls)
		return;
	identity(l);
	l->at.tls_generation = l->sessions->generation;
	if (!l->resume) {
		tls_sessions_drop(l->sessions, l->url.host, l->url.port);
		return;
	}
	s = tls_sessions_find(l->sessions, l->url.host, l->url.port, l->at.tls_id, now_s());
	vh = lws_get_vhost_by_name(l->ctx, VHOST);
	log_msg(LOG_DEBUG, "TLS: %s kept session for %s:%u", s ? "offering the" : "no", l->url.host,
		l->url.port);
	if (s && vh &&
	    lws_tls_session_dump_load(vh, l->host_hdr, (uint16_t)l->url.port, load_cb, (void *)s))
		log_msg(LOG_DEBUG, "TLS: the kept session for %s:%u could not be offered",
			l->url.host, l->url.port);
}

static int save_cb(struct lws_context *cx, struct lws_tls_session_dump *d)
{
	struct link *l = d->opaque;
	mbedtls_ssl_session s;
	uint32_t lifetime = 0;
	bool ticket = false;

	/* its lifetime is the ticket's: read back from the serialised form */
	mbedtls_ssl_session_init(&s);
	if (!mbedtls_ssl_session_load(&s, d->blob, d->blob_len)) {
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
		ticket = s.MBEDTLS_PRIVATE(ticket_len) > 0;
		lifetime = s.MBEDTLS_PRIVATE(ticket_lifetime);
#endif
	}
	mbedtls_ssl_session_free(&s);
	log_msg(LOG_DEBUG, "TLS: keeping the session of %s:%u (%zu bytes, %s, lifetime %u s)",
		l->url.host, l->url.port, d->blob_len, ticket ? "ticket" : "session ID", lifetime);
	return tls_sessions_put(l->sessions, l->at.tls_generation, l->url.host, l->url.port,
				l->at.tls_id, d->blob, d->blob_len, lifetime, ticket, now_s()) < 0;
}

static void keep(struct link *l)
{
	struct lws_vhost *vh = l->ctx ? lws_get_vhost_by_name(l->ctx, VHOST) : NULL;

	if (vh)
		lws_tls_session_dump_save(vh, l->host_hdr, (uint16_t)l->url.port, save_cb, l);
}

void link_session_established(struct link *l, struct lws *wsi)
{
	if (!l->url.tls)
		return;
	l->at.tls_resumed = lws_tls_session_is_reused(wsi);
	if (l->at.tls_resumed)
		l->sessions->resumed++;
	else
		l->sessions->full++;
	if (l->resume)
		keep(l);
}

void link_session_end(struct link *l)
{
	if (!l->url.tls || !l->ctx)
		return;
	if (l->end.fail == LINK_FAIL_TLS || !l->resume)
		/* a TLS failure is never retried with the session that went with it */
		tls_sessions_drop(l->sessions, l->url.host, l->url.port);
	else if (l->end.was_up)
		keep(l); /* a TLS 1.3 ticket may have come after the upgrade */
}

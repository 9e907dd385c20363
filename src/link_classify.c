/*
 * How an attempt's handshake came out: why it failed, as one line an
 * operator can act on, or what its TLS negotiated.
 */
#include "link_int.h"

#include <mbedtls/error.h>
#include <mbedtls/ssl.h>

/* The certificate verification result, as lws's mbedTLS glue numbers it. */
static void classify_x509(struct link *l, int code)
{
	int namelen = (int)strcspn(l->host_hdr, ":");
	bool ip = l->url.ipv6 || strspn(l->url.host, "0123456789.") == strlen(l->url.host);

	switch (code) {
	case X509_ERR_HOSTNAME_MISMATCH:
		if (ip && !*l->server_name)
			/* patch 0007: an IP literal matches iPAddress SANs only */
			link_set_end(l, LINK_FAIL_TLS,
				"TLS: server certificate of %s:%u does not match the address '%s': it "
				"has no iPAddress subjectAltName for it (or set tls.server_name)",
				l->url.host, l->url.port, l->url.host);
		else
			link_set_end(l, LINK_FAIL_TLS,
				"TLS: server certificate of %s:%u does not match the name '%.*s'",
				l->url.host, l->url.port, namelen, l->host_hdr);
		break;
	case X509_ERR_CERT_HAS_EXPIRED:
		link_set_end(l, LINK_FAIL_TLS, "TLS: server certificate of %s:%u has expired",
			l->url.host, l->url.port);
		break;
	case X509_ERR_CERT_NOT_YET_VALID:
		link_set_end(l, LINK_FAIL_TLS, "TLS: server certificate of %s:%u is not yet valid",
			l->url.host, l->url.port);
		break;
	case X509_ERR_INVALID_CA:
		link_set_end(l, LINK_FAIL_TLS,
			"TLS: server certificate of %s:%u is not trusted by tls.ca_file '%s' "
			"(unknown CA) [X509_V_ERR = %d]",
			l->url.host, l->url.port, l->ca_file, code);
		break;
	case X509_ERR_CA_KEY_TOO_SMALL:
	case X509_ERR_CA_MD_TOO_WEAK:
		link_set_end(
		    l, LINK_FAIL_TLS,
		    "TLS: server certificate of %s:%u is signed with a key or hash too weak for "
		    "mbedTLS (e.g. SHA-1) [X509_V_ERR = %d]",
		    l->url.host, l->url.port, code);
		break;
	default:
		link_set_end(l, LINK_FAIL_TLS,
			"TLS: server certificate of %s:%u was rejected: not valid for a TLS server "
			"(keyUsage/extendedKeyUsage must allow serverAuth) or otherwise invalid "
			"[X509_V_ERR = %d]",
			l->url.host, l->url.port, code);
		break;
	}
}

/* The upgrade was refused with an HTTP status: say which, and honour Retry-After. */
static void classify_http(struct link *l, struct lws *wsi, int status)
{
	char ra[32] = "";

	l->end.http_status = status;
	if ((status == 429 || status == 503) && wsi &&
	    lws_hdr_copy(wsi, ra, sizeof(ra), WSI_TOKEN_HTTP_RETRY_AFTER) > 0) {
		char *end;
		unsigned long v = strtoul(ra, &end, 10);

		/* only the delta-seconds form; an HTTP date falls back to backoff */
		if (end != ra && !*end)
			l->end.retry_after_s = v > 86400 ? 86400 : (unsigned)v;
	}
	if (status == 401 || status == 403)
		link_set_end(l, LINK_FAIL_HTTP,
			"%s: authentication rejected: HTTP %d on the WebSocket upgrade "
			"(check link.headers)",
			l->url_text, status);
	else if (l->end.retry_after_s)
		link_set_end(l, LINK_FAIL_HTTP,
			"%s refused the WebSocket upgrade: HTTP %d, Retry-After %u s", l->url_text,
			status, l->end.retry_after_s);
	else
		link_set_end(l, LINK_FAIL_HTTP, "%s refused the WebSocket upgrade: HTTP %d", l->url_text,
			status);
}

/* What the server said about our client certificate, in an operator's words. */
static const char *cert_alert_meaning(int alert)
{
	switch (alert) {
	case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
		return "it does not trust the CA that issued it";
	case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
		return "it considers it expired (check both clocks)";
	case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
		return "it says it is revoked";
	case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
		return "it is valid, but not allowed in";
	default:
		return "it refused it";
	}
}

static void tls_cert_line(struct link *l, const struct linkerr *e, enum linkerr_tls cause,
			  const char *alert)
{
	if (cause == LINKERR_TLS_CERT_REQUIRED)
		link_set_end(
		    l, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server requires a client certificate "
		    "and none is configured (set tls.cert_file and tls.key_file) [alert %s]",
		    l->url.host, l->url.port, alert);
	else
		link_set_end(
		    l, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server rejected our client certificate "
		    "%s: %s [alert %s]",
		    l->url.host, l->url.port, l->cert_file, cert_alert_meaning(e->tls_alert),
		    alert);
}

/* A failed handshake, classified from mbedTLS's error and the server's alert (lws patch 0011). */
static void classify_tls_handshake(struct link *l, const struct linkerr *e)
{
	enum linkerr_tls cause = linkerr_tls_cause(e, l->cert.blob != NULL);
	const char *alert = linkerr_alert_name(e->tls_alert);
	char err[160] = "";

	if (!alert)
		alert = e->tls_alert < 0 ? "none" : "unknown";
	switch (cause) {
	case LINKERR_TLS_VERSION:
		link_set_end(
		    l, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: no TLS version in common with the server: we "
		    "offered %s [alert %s]",
		    l->url.host, l->url.port,
		    l->tls13_only ? "TLS 1.3 only (tls.min_version = \"1.3\")" : "TLS 1.3 and 1.2",
		    alert);
		break;
	case LINKERR_TLS_CIPHER:
		link_set_end(
		    l, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: no cipher suite (or key exchange group) in "
		    "common with the server: it refused our ClientHello [alert %s]",
		    l->url.host, l->url.port, alert);
		break;
	case LINKERR_TLS_CERT_REQUIRED:
	case LINKERR_TLS_CERT_REJECTED:
		tls_cert_line(l, e, cause, alert);
		break;
	case LINKERR_TLS_NOT_TLS:
		link_set_end(
		    l, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server does not speak TLS on this port "
		    "(what it sent is not a TLS record)",
		    l->url.host, l->url.port);
		break;
	case LINKERR_TLS_CLOSED:
		if (e->tls_certreq && l->cert.blob)
			link_set_end(
			    l, LINK_FAIL_TLS,
			    "TLS handshake with %s:%u failed: the server asked for a client "
			    "certificate, then closed without a TLS alert: it most likely "
			    "rejected our client certificate %s [%s]",
			    l->url.host, l->url.port, l->cert_file, e->why);
		else if (e->tls_certreq)
			link_set_end(
			    l, LINK_FAIL_TLS,
			    "TLS handshake with %s:%u failed: the server asked for a client "
			    "certificate, then closed without a TLS alert: most likely it "
			    "requires one and none is configured (tls.cert_file, tls.key_file) "
			    "[%s]",
			    l->url.host, l->url.port, e->why);
		else
			link_set_end(
			    l, LINK_FAIL_TLS,
			    "TLS handshake with %s:%u failed: the server closed the connection "
			    "without a TLS answer: it does not speak TLS on this port, or it "
			    "dropped us [%s]",
			    l->url.host, l->url.port, e->why);
		break;
	case LINKERR_TLS_UNKNOWN:
		mbedtls_strerror(e->tls_err, err, sizeof(err));
		link_set_end(l, LINK_FAIL_TLS, "TLS handshake with %s:%u failed: %s [alert %s; %s]",
			     l->url.host, l->url.port, *err ? err : "no reason given", alert,
			     e->why);
		break;
	}
}

/* Turn lws's connection error into one line an operator can act on. */
void link_classify_error(struct link *l, struct lws *wsi, const char *in)
{
	struct linkerr e;
	char proto[64] = "", raw[64];

	linkerr_classify(in, wsi ? (int)lws_http_client_http_response(wsi) : 0, &e);
	switch (e.kind) {
	case LINKERR_HTTP:
		classify_http(l, wsi, e.http_status);
		break;
	case LINKERR_ACCEPT:
		link_set_end(l, LINK_FAIL_PROTOCOL,
			"%s: bad upgrade response: wrong or missing Sec-WebSocket-Accept "
			"(not a WebSocket server, or a proxy in the way)",
			l->url_text);
		break;
	case LINKERR_SUBPROTOCOL:
		if (wsi && lws_hdr_copy(wsi, raw, sizeof(raw), WSI_TOKEN_PROTOCOL) > 0)
			escape_text(proto, sizeof(proto), raw, strlen(raw));
		link_set_end(
		    l, LINK_FAIL_PROTOCOL,
		    "%s: server chose subprotocol '%s', which we did not request (link.subprotocol "
		    "is '%s')",
		    l->url_text, proto, l->subprotocol ? l->subprotocol : "");
		break;
	case LINKERR_X509:
		classify_x509(l, e.x509);
		break;
	case LINKERR_TLS_TIMEOUT:
		link_set_end(l, LINK_FAIL_TLS, "TLS: handshake with %s:%u timed out", l->url.host,
			l->url.port);
		break;
	case LINKERR_CONNECT:
		link_set_end(l, LINK_FAIL_CONNECT, "cannot connect to %s:%u (refused or unreachable)",
			l->url.host, l->url.port);
		break;
	case LINKERR_TLS_HANDSHAKE:
		classify_tls_handshake(l, &e);
		break;
	case LINKERR_TLS:
		link_set_end(l, LINK_FAIL_TLS, "TLS handshake with %s:%u failed: %s", l->url.host,
			l->url.port, e.why);
		break;
	case LINKERR_HANDSHAKE:
		link_set_end(l, LINK_FAIL_PROTOCOL, "bad WebSocket upgrade response from %s:%u: %s",
			l->url.host, l->url.port, e.detail);
		break;
	case LINKERR_OTHER:
		link_set_end(l, LINK_FAIL_CONNECT, "connection to %s:%u failed: %s", l->url.host,
			l->url.port, e.why);
		break;
	}
}

/* The negotiated version and suite; mbedTLS spells IANA's names with dashes. */
void link_note_tls(struct link *l, struct lws *wsi)
{
	const char *v, *c;
	size_t i;

	if (!l->url.tls || lws_wst_tls_negotiated(wsi, &v, &c) < 0)
		return;
	snprintf(l->tls_version, sizeof(l->tls_version), "%s", v);
	if (!strncmp(c, "TLS1-3-", 7))
		c += 7;
	else if (!strncmp(c, "TLS-", 4))
		c += 4;
	snprintf(l->tls_cipher, sizeof(l->tls_cipher), "TLS_%s", c);
	for (i = 0; l->tls_cipher[i]; i++)
		if (l->tls_cipher[i] == '-')
			l->tls_cipher[i] = '_';
}

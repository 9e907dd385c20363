/* Why an attempt failed, as one line an operator can act on. */
#include "link_int.h"

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

/* mbedTLS gives no reason; these are what it means in practice */
static void classify_tls_handshake(struct link *l, const char *why)
{
	if (l->cert.blob)
		link_set_end(l, LINK_FAIL_TLS,
			"TLS handshake with %s:%u failed: the server rejected our client "
			"certificate %s, or does not speak TLS on this port [%s]",
			l->url.host, l->url.port, l->cert_file, why);
	else
		link_set_end(l, LINK_FAIL_TLS,
			"TLS handshake with %s:%u failed: the server does not speak TLS on this "
			"port, or it requires a client certificate and none is configured "
			"(tls.cert_file, tls.key_file) [%s]",
			l->url.host, l->url.port, why);
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
		classify_tls_handshake(l, e.why);
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

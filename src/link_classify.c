/* Why an attempt failed, as one line an operator can act on. */
#include "link_classify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linkerr.h"

static __attribute__((format(printf, 3, 4))) void set_end(struct link_end *end,
							  enum link_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (end->fail != LINK_FAIL_NONE)
		return;
	end->fail = fail;
	va_start(ap, fmt);
	vsnprintf(end->msg, sizeof(end->msg), fmt, ap);
	va_end(ap);
}

/* The certificate verification result, as lws's mbedTLS glue numbers it. */
static void classify_x509(const struct attempt_desc *a, struct link_end *end, int code)
{
	int namelen = (int)strcspn(a->host_hdr, ":");

	switch (code) {
	case X509_ERR_HOSTNAME_MISMATCH:
		if (a->ip && !*a->server_name)
			/* patch 0007: an IP literal matches iPAddress SANs only */
			set_end(end, LINK_FAIL_TLS,
				"TLS: server certificate of %s:%u does not match the address '%s': it "
				"has no iPAddress subjectAltName for it (or set tls.server_name)",
				a->host, a->port, a->host);
		else
			set_end(end, LINK_FAIL_TLS,
				"TLS: server certificate of %s:%u does not match the name '%.*s'",
				a->host, a->port, namelen, a->host_hdr);
		break;
	case X509_ERR_CERT_HAS_EXPIRED:
		set_end(end, LINK_FAIL_TLS, "TLS: server certificate of %s:%u has expired",
			a->host, a->port);
		break;
	case X509_ERR_CERT_NOT_YET_VALID:
		set_end(end, LINK_FAIL_TLS, "TLS: server certificate of %s:%u is not yet valid",
			a->host, a->port);
		break;
	case X509_ERR_INVALID_CA:
		set_end(end, LINK_FAIL_TLS,
			"TLS: server certificate of %s:%u is not trusted by tls.ca_file '%s' "
			"(unknown CA) [X509_V_ERR = %d]",
			a->host, a->port, a->ca_file, code);
		break;
	case X509_ERR_CA_KEY_TOO_SMALL:
	case X509_ERR_CA_MD_TOO_WEAK:
		set_end(
		    end, LINK_FAIL_TLS,
		    "TLS: server certificate of %s:%u is signed with a key or hash too weak for "
		    "mbedTLS (e.g. SHA-1) [X509_V_ERR = %d]",
		    a->host, a->port, code);
		break;
	default:
		set_end(end, LINK_FAIL_TLS,
			"TLS: server certificate of %s:%u was rejected: not valid for a TLS server "
			"(keyUsage/extendedKeyUsage must allow serverAuth) or otherwise invalid "
			"[X509_V_ERR = %d]",
			a->host, a->port, code);
		break;
	}
}

/* The upgrade was refused with an HTTP status: say which, and honour Retry-After. */
static void classify_http(const struct attempt_desc *a, struct link_end *end, int status)
{
	end->http_status = status;
	if ((status == 429 || status == 503) && *a->retry_after) {
		char *rest;
		unsigned long v = strtoul(a->retry_after, &rest, 10);

		/* only the delta-seconds form; an HTTP date falls back to backoff */
		if (rest != a->retry_after && !*rest)
			end->retry_after_s = v > 86400 ? 86400 : (unsigned)v;
	}
	if (status == 401 || status == 403)
		set_end(end, LINK_FAIL_HTTP,
			"%s: authentication rejected: HTTP %d on the WebSocket upgrade "
			"(check link.headers)",
			a->url_text, status);
	else if (end->retry_after_s)
		set_end(end, LINK_FAIL_HTTP,
			"%s refused the WebSocket upgrade: HTTP %d, Retry-After %u s", a->url_text,
			status, end->retry_after_s);
	else
		set_end(end, LINK_FAIL_HTTP, "%s refused the WebSocket upgrade: HTTP %d", a->url_text,
			status);
}

/* mbedTLS gives no reason; these are what it means in practice */
static void classify_tls_handshake(const struct attempt_desc *a, struct link_end *end,
				   const char *why)
{
	if (a->cert_file)
		set_end(end, LINK_FAIL_TLS,
			"TLS handshake with %s:%u failed: the server rejected our client "
			"certificate %s, or does not speak TLS on this port [%s]",
			a->host, a->port, a->cert_file, why);
	else
		set_end(end, LINK_FAIL_TLS,
			"TLS handshake with %s:%u failed: the server does not speak TLS on this "
			"port, or it requires a client certificate and none is configured "
			"(tls.cert_file, tls.key_file) [%s]",
			a->host, a->port, why);
}

void link_classify(const struct attempt_desc *a, const char *in, int http_status,
		   struct link_end *end)
{
	struct linkerr e;

	linkerr_classify(in, http_status, &e);
	switch (e.kind) {
	case LINKERR_HTTP:
		classify_http(a, end, e.http_status);
		break;
	case LINKERR_ACCEPT:
		set_end(end, LINK_FAIL_PROTOCOL,
			"%s: bad upgrade response: wrong or missing Sec-WebSocket-Accept "
			"(not a WebSocket server, or a proxy in the way)",
			a->url_text);
		break;
	case LINKERR_SUBPROTOCOL:
		set_end(
		    end, LINK_FAIL_PROTOCOL,
		    "%s: server chose subprotocol '%s', which we did not request (link.subprotocol "
		    "is '%s')",
		    a->url_text, a->protocol, a->subprotocol);
		break;
	case LINKERR_X509:
		classify_x509(a, end, e.x509);
		break;
	case LINKERR_TLS_TIMEOUT:
		set_end(end, LINK_FAIL_TLS, "TLS: handshake with %s:%u timed out", a->host,
			a->port);
		break;
	case LINKERR_CONNECT:
		set_end(end, LINK_FAIL_CONNECT, "cannot connect to %s:%u (refused or unreachable)",
			a->host, a->port);
		break;
	case LINKERR_TLS_HANDSHAKE:
		classify_tls_handshake(a, end, e.why);
		break;
	case LINKERR_TLS:
		set_end(end, LINK_FAIL_TLS, "TLS handshake with %s:%u failed: %s", a->host,
			a->port, e.why);
		break;
	case LINKERR_HANDSHAKE:
		set_end(end, LINK_FAIL_PROTOCOL, "bad WebSocket upgrade response from %s:%u: %s",
			a->host, a->port, e.detail);
		break;
	case LINKERR_OTHER:
		set_end(end, LINK_FAIL_CONNECT, "connection to %s:%u failed: %s", a->host,
			a->port, e.why);
		break;
	}
}

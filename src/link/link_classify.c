/* Why an attempt ended, as one line an operator can act on; failure kinds' and TLS names. */
#include "link_classify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/ssl.h>

#include "linkerr.h"

const char *link_fail_name(int fail)
{
	static const char *const names[] = {
	    [LINK_FAIL_CONNECT] = "connect",
	    [LINK_FAIL_TIMEOUT] = "timeout",
	    [LINK_FAIL_TLS] = "tls",
	    [LINK_FAIL_HTTP] = "http",
	    [LINK_FAIL_PROTOCOL] = "protocol",
	    [LINK_FAIL_CLOSED] = "closed",
	    [LINK_FAIL_DEAD] = "dead",
	    [LINK_FAIL_LOCAL] = "local",
	    [LINK_FAIL_VIOLATION] = "violation",
	    [LINK_FAIL_PROXY] = "proxy",
	};

	return fail > 0 && (unsigned)fail < sizeof(names) / sizeof(names[0]) ? names[fail] : NULL;
}

void link_end_set(struct link_end *end, enum link_fail fail, const char *fmt, ...)
{
	va_list ap;

	if (end->fail != LINK_FAIL_NONE)
		return; /* the first cause explains it; later ones are consequences */
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
			link_end_set(
			    end, LINK_FAIL_TLS,
			    "TLS: server certificate of %s:%u does not match the address '%s': it "
			    "has no iPAddress subjectAltName for it (or set tls.server_name)",
			    a->host, a->port, a->host);
		else
			link_end_set(
			    end, LINK_FAIL_TLS,
			    "TLS: server certificate of %s:%u does not match the name '%.*s'",
			    a->host, a->port, namelen, a->host_hdr);
		break;
	case X509_ERR_CERT_HAS_EXPIRED:
		link_end_set(end, LINK_FAIL_TLS, "TLS: server certificate of %s:%u has expired",
			     a->host, a->port);
		break;
	case X509_ERR_CERT_NOT_YET_VALID:
		link_end_set(end, LINK_FAIL_TLS,
			     "TLS: server certificate of %s:%u is not yet valid", a->host, a->port);
		break;
	case X509_ERR_INVALID_CA:
		link_end_set(end, LINK_FAIL_TLS,
			     "TLS: server certificate of %s:%u is not trusted by tls.ca_file '%s' "
			     "(unknown CA) [X509_V_ERR = %d]",
			     a->host, a->port, a->ca_file, code);
		break;
	case X509_ERR_CA_KEY_TOO_SMALL:
	case X509_ERR_CA_MD_TOO_WEAK:
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS: server certificate of %s:%u is signed with a key or hash too weak for "
		    "mbedTLS (e.g. SHA-1) [X509_V_ERR = %d]",
		    a->host, a->port, code);
		break;
	default:
		link_end_set(
		    end, LINK_FAIL_TLS,
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
		link_end_set(end, LINK_FAIL_HTTP,
			     "%s: authentication rejected: HTTP %d on the WebSocket upgrade "
			     "(check link.headers)",
			     a->url_text, status);
	else if (end->retry_after_s)
		link_end_set(end, LINK_FAIL_HTTP,
			     "%s refused the WebSocket upgrade: HTTP %d, Retry-After %u s",
			     a->url_text, status, end->retry_after_s);
	else
		link_end_set(end, LINK_FAIL_HTTP, "%s refused the WebSocket upgrade: HTTP %d",
			     a->url_text, status);
}

/* What the server said about our client certificate, in an operator's words. */
static const char *cert_alert_meaning(int alert)
{
	static const char *const m[] = {
	    [MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA] = "it does not trust the CA that issued it",
	    [MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED] = "it considers it expired (check both clocks)",
	    [MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED] = "it says it is revoked",
	    [MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED] = "it is valid, but not allowed in",
	};

	return alert >= 0 && (size_t)alert < sizeof(m) / sizeof(m[0]) && m[alert] ? m[alert]
										  : "it refused it";
}

/* The server closed without an alert: after a CertificateRequest, that says something. */
static void tls_closed(const struct attempt_desc *a, struct link_end *end, const struct linkerr *e)
{
	if (e->tls_certreq && a->cert_file)
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server asked for a client "
		    "certificate, then closed without a TLS alert: it most likely rejected our "
		    "client certificate %s [%s]",
		    a->host, a->port, a->cert_file, e->why);
	else if (e->tls_certreq)
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server asked for a client "
		    "certificate, then closed without a TLS alert: most likely it requires one "
		    "and none is configured (tls.cert_file, tls.key_file) [%s]",
		    a->host, a->port, e->why);
	else
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server closed the connection without "
		    "a TLS answer: it does not speak TLS on this port, or it dropped us [%s]",
		    a->host, a->port, e->why);
}

/* A failed handshake, classified from mbedTLS's error and the server's alert (lws patch 0011). */
static void classify_tls_handshake(const struct attempt_desc *a, struct link_end *end,
				   const struct linkerr *e)
{
	const char *alert = linkerr_alert_name(e->tls_alert);
	char err[160] = "";

	if (!alert)
		alert = e->tls_alert < 0 ? "none" : "unknown";
	switch (linkerr_tls_cause(e, a->cert_file != NULL)) {
	case LINKERR_TLS_VERSION:
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: no TLS version in common with the server: "
		    "we offered %s [alert %s]",
		    a->host, a->port,
		    a->tls13_only ? "TLS 1.3 only (tls.min_version = \"1.3\")" : "TLS 1.3 and 1.2",
		    alert);
		break;
	case LINKERR_TLS_CIPHER:
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: no cipher suite (or key exchange group) in "
		    "common with the server: it refused our ClientHello [alert %s]",
		    a->host, a->port, alert);
		break;
	case LINKERR_TLS_CERT_REQUIRED:
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server requires a client certificate "
		    "and none is configured (set tls.cert_file and tls.key_file) [alert %s]",
		    a->host, a->port, alert);
		break;
	case LINKERR_TLS_CERT_REJECTED:
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server rejected our client certificate "
		    "%s: %s [alert %s]",
		    a->host, a->port, a->cert_file, cert_alert_meaning(e->tls_alert), alert);
		break;
	case LINKERR_TLS_NOT_TLS:
		link_end_set(
		    end, LINK_FAIL_TLS,
		    "TLS handshake with %s:%u failed: the server does not speak TLS on this port "
		    "(what it sent is not a TLS record)",
		    a->host, a->port);
		break;
	case LINKERR_TLS_CLOSED:
		tls_closed(a, end, e);
		break;
	case LINKERR_TLS_UNKNOWN:
		mbedtls_strerror(e->tls_err, err, sizeof(err));
		link_end_set(end, LINK_FAIL_TLS,
			     "TLS handshake with %s:%u failed: %s [alert %s; %s]", a->host, a->port,
			     *err ? err : "no reason given", alert, e->why);
		break;
	}
}

void link_tls_names(const char *version, const char *suite, char *v, size_t vlen, char *c,
		    size_t clen)
{
	snprintf(v, vlen, "%s", version);
	/* mbedTLS spells IANA's names with dashes, 1.3's with a "TLS1-3-" prefix */
	if (!strncmp(suite, "TLS1-3-", 7))
		suite += 7;
	else if (!strncmp(suite, "TLS-", 4))
		suite += 4;
	snprintf(c, clen, "TLS_%s", suite);
	for (; *c; c++)
		if (*c == '-')
			*c = '_';
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
		link_end_set(end, LINK_FAIL_PROTOCOL,
			     "%s: bad upgrade response: wrong or missing Sec-WebSocket-Accept "
			     "(not a WebSocket server, or a proxy in the way)",
			     a->url_text);
		break;
	case LINKERR_SUBPROTOCOL:
		link_end_set(
		    end, LINK_FAIL_PROTOCOL,
		    "%s: server chose subprotocol '%s', which we did not request (link.subprotocol "
		    "is '%s')",
		    a->url_text, a->protocol, a->subprotocol);
		break;
	case LINKERR_X509:
		classify_x509(a, end, e.x509);
		break;
	case LINKERR_TLS_TIMEOUT:
		link_end_set(end, LINK_FAIL_TLS, "TLS: handshake with %s:%u timed out", a->host,
			     a->port);
		break;
	case LINKERR_CONNECT:
		link_end_set(end, LINK_FAIL_CONNECT,
			     "cannot connect to %s:%u (refused or unreachable)", a->host, a->port);
		break;
	case LINKERR_TLS_HANDSHAKE:
		classify_tls_handshake(a, end, &e);
		break;
	case LINKERR_TLS:
		link_end_set(end, LINK_FAIL_TLS, "TLS handshake with %s:%u failed: %s", a->host,
			     a->port, e.why);
		break;
	case LINKERR_HANDSHAKE:
		link_end_set(end, LINK_FAIL_PROTOCOL,
			     "bad WebSocket upgrade response from %s:%u: %s", a->host, a->port,
			     e.detail);
		break;
	case LINKERR_OTHER:
		link_end_set(end, LINK_FAIL_CONNECT, "connection to %s:%u failed: %s", a->host,
			     a->port, e.why);
		break;
	}
}

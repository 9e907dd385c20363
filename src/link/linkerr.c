#include "linkerr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "escape.h"

static int starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static int x509_code(const char *why)
{
	const char *x = strstr(why, LWS_CCE_X509);

	return x ? atoi(x + strlen(LWS_CCE_X509)) : -1;
}

/* lws patch 0011's " -0x7780 alert 40 certreq 1" at the end of a TLS failure text */
static void tls_detail(const char *why, struct linkerr *e)
{
	const char *d = strstr(why, " -0x");
	unsigned err;
	int alert, certreq;

	e->tls_alert = -1;
	if (d && sscanf(d + 1, LWS_CCE_MBEDTLS_DETAIL, &err, &alert, &certreq) == 3) {
		e->tls_err = -(int)err;
		e->tls_alert = alert;
		e->tls_certreq = certreq != 0;
	}
}

const char *linkerr_alert_name(int alert)
{
	static const char *const names[] = {
	    [MBEDTLS_SSL_ALERT_MSG_CLOSE_NOTIFY] = "close_notify",
	    [MBEDTLS_SSL_ALERT_MSG_UNEXPECTED_MESSAGE] = "unexpected_message",
	    [MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC] = "bad_record_mac",
	    [MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE] = "handshake_failure",
	    [MBEDTLS_SSL_ALERT_MSG_BAD_CERT] = "bad_certificate",
	    [MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT] = "unsupported_certificate",
	    [MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED] = "certificate_revoked",
	    [MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED] = "certificate_expired",
	    [MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN] = "certificate_unknown",
	    [MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER] = "illegal_parameter",
	    [MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA] = "unknown_ca",
	    [MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED] = "access_denied",
	    [MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR] = "decode_error",
	    [MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR] = "decrypt_error",
	    [MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION] = "protocol_version",
	    [MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY] = "insufficient_security",
	    [MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR] = "internal_error",
	    [MBEDTLS_SSL_ALERT_MSG_MISSING_EXTENSION] = "missing_extension",
	    [MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_EXT] = "unsupported_extension",
	    [MBEDTLS_SSL_ALERT_MSG_UNRECOGNIZED_NAME] = "unrecognized_name",
	    [MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED] = "certificate_required",
	    [MBEDTLS_SSL_ALERT_MSG_NO_APPLICATION_PROTOCOL] = "no_application_protocol",
	};

	return alert >= 0 && (size_t)alert < sizeof(names) / sizeof(names[0]) ? names[alert] : NULL;
}

/* Alerts a server sends about the client certificate it was given. */
static bool about_our_cert(int alert)
{
	switch (alert) {
	case MBEDTLS_SSL_ALERT_MSG_BAD_CERT:
	case MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT:
	case MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED:
	case MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED:
	case MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN:
	case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA:
	case MBEDTLS_SSL_ALERT_MSG_ACCESS_DENIED:
	case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR:
		return true;
	default:
		return false;
	}
}

enum linkerr_tls linkerr_tls_cause(const struct linkerr *e, bool have_cert)
{
	int a = e->tls_alert;

	if (a == MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION ||
	    e->tls_err == MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION)
		return LINKERR_TLS_VERSION;
	if (a == MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED)
		return have_cert ? LINKERR_TLS_CERT_REJECTED : LINKERR_TLS_CERT_REQUIRED;
	/* after its CertificateRequest, a refusal is about what we sent for it */
	if (e->tls_certreq && (about_our_cert(a) || a == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE))
		return have_cert ? LINKERR_TLS_CERT_REJECTED : LINKERR_TLS_CERT_REQUIRED;
	/* refused at our ClientHello: nothing in it that the server takes */
	if (a == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE ||
	    a == MBEDTLS_SSL_ALERT_MSG_INSUFFICIENT_SECURITY)
		return LINKERR_TLS_CIPHER;
	if (e->tls_err == MBEDTLS_ERR_SSL_INVALID_RECORD ||
	    e->tls_err == MBEDTLS_ERR_SSL_UNEXPECTED_RECORD ||
	    e->tls_err == MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE)
		return a < 0 ? LINKERR_TLS_NOT_TLS : LINKERR_TLS_UNKNOWN;
	if (a < 0 && (e->tls_err == MBEDTLS_ERR_SSL_CONN_EOF ||
		      e->tls_err == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY ||
		      e->tls_err == MBEDTLS_ERR_NET_CONN_RESET ||
		      e->tls_err == MBEDTLS_ERR_NET_SEND_FAILED || e->tls_err == 0))
		return LINKERR_TLS_CLOSED;
	return LINKERR_TLS_UNKNOWN;
}

void linkerr_classify(const char *in, int http_status, struct linkerr *e)
{
	size_t n;
	const char *why;

	memset(e, 0, sizeof(*e));
	e->tls_alert = -1;
	if (!in)
		in = "unknown error";
	n = strlen(in);
	/* lws ends some of its texts with a newline */
	while (n && (in[n - 1] == '\n' || in[n - 1] == '\r' || in[n - 1] == ' '))
		n--;
	/* lws's own words, but they end up in a log line: no control bytes */
	escape_text(e->why, sizeof(e->why), in, n);
	why = e->why;
	e->detail = why;

	/* lws reports a 401 before it has recorded the status */
	if (!http_status && !strcmp(why, LWS_CCE_UNAUTHORIZED))
		http_status = 401;
	e->http_status = http_status;
	if (!strcmp(why, LWS_CCE_NOT_101) || (http_status && http_status != 101)) {
		e->kind = LINKERR_HTTP;
	} else if (!strcmp(why, LWS_CCE_ACCEPT_WRONG) || !strcmp(why, LWS_CCE_ACCEPT_MISSING)) {
		e->kind = LINKERR_ACCEPT;
	} else if (!strcmp(why, LWS_CCE_PROTOCOL_MALFORMED) ||
		   !strcmp(why, LWS_CCE_PROTOCOL_NO_MATCH)) {
		e->kind = LINKERR_SUBPROTOCOL;
	} else if ((e->x509 = x509_code(why)) >= 0) {
		e->kind = LINKERR_X509;
	} else if (!strcmp(why, LWS_CCE_TLS_TIMEOUT)) {
		e->kind = LINKERR_TLS_TIMEOUT;
	} else if (!strcmp(why, LWS_CCE_UNABLE_TO_CONNECT) ||
		   !strcmp(why, LWS_CCE_CLOSED_BEFORE_CONN)) {
		e->kind = LINKERR_CONNECT;
	} else if (starts(why, LWS_CCE_MBEDTLS_CONNECT) || starts(why, LWS_CCE_MBEDTLS_READ) ||
		   starts(why, LWS_CCE_MBEDTLS_WRITE)) {
		e->kind = LINKERR_TLS_HANDSHAKE;
		tls_detail(why, e);
	} else if (strstr(why, "mbedtls") || strstr(why, "SSL") || strstr(why, "tls")) {
		/* the rest of lws's TLS layer: its text is all there is to say */
		e->kind = LINKERR_TLS;
	} else if (starts(why, LWS_CCE_HS_PREFIX)) {
		e->kind = LINKERR_HANDSHAKE;
		e->detail = why + strlen(LWS_CCE_HS_PREFIX);
	} else {
		e->kind = LINKERR_OTHER;
	}
	if (e->kind != LINKERR_X509)
		e->x509 = 0;
}

#ifndef WST_LINKERR_H
#define WST_LINKERR_H

#include <stdbool.h>

/*
 * What went wrong with a connection attempt, from what lws 4.3.5 tells us:
 * the HTTP status of the upgrade response (a code) and, where lws gives
 * nothing else, the `in` text of LWS_CALLBACK_CLIENT_CONNECTION_ERROR.
 * test_linkerr checks each text below against the bundled lws source, so an
 * lws upgrade that rewords one breaks a test instead of the logs.
 */

/* lws's CLIENT_CONNECTION_ERROR texts (lib/roles/ws/client-ws.c and others) */
#define LWS_CCE_NOT_101 "HS: ws upgrade response not 101"
#define LWS_CCE_UNAUTHORIZED "HS: ws upgrade unauthorized"
#define LWS_CCE_ACCEPT_WRONG "HS: Accept hash wrong"
#define LWS_CCE_ACCEPT_MISSING "HS: ACCEPT missing"
#define LWS_CCE_PROTOCOL_MALFORMED "HS: PROTOCOL malformed"
#define LWS_CCE_PROTOCOL_NO_MATCH "ws protocol no match"
#define LWS_CCE_HS_PREFIX "HS: "
#define LWS_CCE_X509 "X509_V_ERR = " /* followed by the verify result, then ": " */
#define LWS_CCE_TLS_TIMEOUT "Timed out waiting SSL"
#define LWS_CCE_UNABLE_TO_CONNECT "Unable to connect"
#define LWS_CCE_CLOSED_BEFORE_CONN "Closed before conn"
#define LWS_CCE_MBEDTLS_CONNECT "mbedtls connect " /* then SSL_connect's result, errors */
/*
 * lws patch 0009: TLS failed at the first read or write after the handshake,
 * e.g. a TLS 1.3 server's alert about our certificate; then the mbedTLS
 * error in hex, " alert ", and the alert (-1: none)
 */
#define LWS_CCE_MBEDTLS_READ "mbedtls read -0x"
#define LWS_CCE_MBEDTLS_WRITE "mbedtls write -0x"
/* lws patch 0011: each of the three above ends with this detail */
#define LWS_CCE_MBEDTLS_DETAIL "-0x%x alert %d certreq %d"

/* Verify results of lws's OpenSSL-compatible mbedTLS wrapper (internal/x509_vfy.h) */
enum {
	X509_ERR_UNSPECIFIED = 1,
	X509_ERR_CERT_NOT_YET_VALID = 9,
	X509_ERR_CERT_HAS_EXPIRED = 10,
	X509_ERR_INVALID_CA = 24,
	X509_ERR_HOSTNAME_MISMATCH = 62,
	X509_ERR_CA_KEY_TOO_SMALL = 67,
	X509_ERR_CA_MD_TOO_WEAK = 68,
};

enum linkerr_kind {
	LINKERR_HTTP,	     /* the upgrade was answered with another status than 101 */
	LINKERR_ACCEPT,	     /* Sec-WebSocket-Accept wrong or missing */
	LINKERR_SUBPROTOCOL, /* the server chose a subprotocol we did not offer */
	LINKERR_X509,	     /* certificate rejected; .x509 says why */
	LINKERR_TLS_TIMEOUT,
	LINKERR_CONNECT,       /* refused or unreachable */
	LINKERR_TLS_HANDSHAKE, /* mbedTLS failed the handshake without a reason */
	LINKERR_TLS,	       /* another TLS error */
	LINKERR_HANDSHAKE,     /* another bad upgrade response; .detail is lws's text */
	LINKERR_OTHER,
};

/* Why a TLS handshake failed, from mbedTLS's error and the server's alert. */
enum linkerr_tls {
	LINKERR_TLS_UNKNOWN,	   /* neither says more: the line quotes them */
	LINKERR_TLS_VERSION,	   /* no protocol version in common */
	LINKERR_TLS_CIPHER,	   /* no cipher suite (or group) in common */
	LINKERR_TLS_CERT_REQUIRED, /* it asked for a client certificate; we have none */
	LINKERR_TLS_CERT_REJECTED, /* it refused the client certificate we sent */
	LINKERR_TLS_NOT_TLS,	   /* what came back was not a TLS record */
	LINKERR_TLS_CLOSED,	   /* it closed (or reset) without a word */
};

struct linkerr {
	enum linkerr_kind kind;
	int http_status;    /* of the upgrade response, 0 if none */
	int x509;	    /* X509_ERR_*, for LINKERR_X509 */
	char why[256];	    /* lws's text without trailing newline or spaces */
	const char *detail; /* into why: lws's text without the "HS: " prefix */
	/* LINKERR_TLS_HANDSHAKE, from lws patch 0011's detail (0, -1, false: none) */
	int tls_err;	  /* mbedTLS's error code, negative */
	int tls_alert;	  /* the fatal alert the server sent, -1: none */
	bool tls_certreq; /* the server sent a CertificateRequest */
};

/* in: lws's text (may be NULL); http_status: lws_http_client_http_response(), or 0. */
void linkerr_classify(const char *in, int http_status, struct linkerr *e);

/* A LINKERR_TLS_HANDSHAKE's cause; have_cert: we had a client certificate to send. */
enum linkerr_tls linkerr_tls_cause(const struct linkerr *e, bool have_cert);

/* The TLS alert's name as RFC 8446 spells it ("certificate_required"), or NULL. */
const char *linkerr_alert_name(int alert);

#endif

#include "linkerr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void linkerr_classify(const char *in, int http_status, struct linkerr *e)
{
	size_t n;
	const char *why;

	memset(e, 0, sizeof(*e));
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

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linkerr.h"

/* The bundled lws source tree (LWS_SRC, set by meson): the texts must be in it verbatim. */
static char *read_lws(const char *rel)
{
	const char *root = getenv("LWS_SRC");
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot read %s: the lws source is needed to pin its texts", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void in_lws(const char *rel, const char *needle)
{
	char *src = read_lws(rel);

	if (!strstr(src, needle))
		fail_msg("%s no longer contains %s: update linkerr.h and its log lines", rel,
			 needle);
	free(src);
}

static void texts_are_lws_4_3_5s(void **state)
{
	const char *ws = "lib/roles/ws/client-ws.c";

	in_lws(ws, "\"" LWS_CCE_NOT_101 "\"");
	in_lws(ws, "\"" LWS_CCE_UNAUTHORIZED "\"");
	in_lws(ws, "\"" LWS_CCE_ACCEPT_WRONG "\"");
	in_lws(ws, "\"" LWS_CCE_ACCEPT_MISSING "\"");
	in_lws(ws, "\"" LWS_CCE_PROTOCOL_MALFORMED "\"");
	in_lws(ws, "\"" LWS_CCE_PROTOCOL_NO_MATCH "\"");
	in_lws("lib/core-net/wsi-timeout.c", "\"" LWS_CCE_TLS_TIMEOUT "\"");
	in_lws("lib/core-net/client/connect3.c", "\"" LWS_CCE_UNABLE_TO_CONNECT "\"");
	in_lws("lib/core-net/close.c", "\"" LWS_CCE_CLOSED_BEFORE_CONN "\"");
	in_lws("lib/tls/mbedtls/mbedtls-client.c",
	       "\"" LWS_CCE_MBEDTLS_CONNECT "%d %d %d " LWS_CCE_MBEDTLS_DETAIL "\"");
	in_lws("lib/tls/mbedtls/mbedtls-client.c", LWS_CCE_X509 "%d: %s\\n\"");
	in_lws("lib/roles/http/client/client-http.c",
	       "\"" LWS_CCE_MBEDTLS_READ "%x alert %d certreq %d\"");
	in_lws("lib/roles/http/client/client-http.c",
	       "\"" LWS_CCE_MBEDTLS_WRITE "%x alert %d certreq %d\"");
}

static void x509_numbers_are_the_wrappers(void **state)
{
	static const struct {
		const char *name;
		int value;
	} codes[] = {
	    {"X509_V_ERR_UNSPECIFIED", X509_ERR_UNSPECIFIED},
	    {"X509_V_ERR_CERT_NOT_YET_VALID", X509_ERR_CERT_NOT_YET_VALID},
	    {"X509_V_ERR_CERT_HAS_EXPIRED", X509_ERR_CERT_HAS_EXPIRED},
	    {"X509_V_ERR_INVALID_CA", X509_ERR_INVALID_CA},
	    {"X509_V_ERR_HOSTNAME_MISMATCH", X509_ERR_HOSTNAME_MISMATCH},
	    {"X509_V_ERR_CA_KEY_TOO_SMALL", X509_ERR_CA_KEY_TOO_SMALL},
	    {"X509_V_ERR_CA_MD_TOO_WEAK", X509_ERR_CA_MD_TOO_WEAK},
	};
	char *src = read_lws("lib/tls/mbedtls/wrapper/include/internal/x509_vfy.h");

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char *p = strstr(src, codes[i].name);
		size_t n = strlen(codes[i].name);

		/* the name as a whole word, followed by its value */
		while (p && (p[n] != ' ' && p[n] != '\t'))
			p = strstr(p + 1, codes[i].name);
		if (!p)
			fail_msg("%s is not defined in lws's x509_vfy.h", codes[i].name);
		assert_int_equal(atoi(p + n + strspn(p + n, " \t")), codes[i].value);
	}
	free(src);
}

static void classifies_each_text(void **state)
{
	struct linkerr e;

	linkerr_classify(LWS_CCE_UNAUTHORIZED, 0, &e);
	assert_int_equal(e.kind, LINKERR_HTTP);
	assert_int_equal(e.http_status, 401);
	linkerr_classify(LWS_CCE_NOT_101, 503, &e);
	assert_int_equal(e.kind, LINKERR_HTTP);
	assert_int_equal(e.http_status, 503);
	/* the status is the code that counts, whatever the text */
	linkerr_classify("read failed", 302, &e);
	assert_int_equal(e.kind, LINKERR_HTTP);
	linkerr_classify(LWS_CCE_ACCEPT_WRONG, 101, &e);
	assert_int_equal(e.kind, LINKERR_ACCEPT);
	linkerr_classify(LWS_CCE_ACCEPT_MISSING, 0, &e);
	assert_int_equal(e.kind, LINKERR_ACCEPT);
	linkerr_classify(LWS_CCE_PROTOCOL_MALFORMED, 101, &e);
	assert_int_equal(e.kind, LINKERR_SUBPROTOCOL);
	linkerr_classify(LWS_CCE_PROTOCOL_NO_MATCH, 101, &e);
	assert_int_equal(e.kind, LINKERR_SUBPROTOCOL);
	linkerr_classify("server's cert didn't look good, (use_ssl 0x1) X509_V_ERR = 62: "
			 "Hostname mismatch\n",
			 0, &e);
	assert_int_equal(e.kind, LINKERR_X509);
	assert_int_equal(e.x509, X509_ERR_HOSTNAME_MISMATCH);
	assert_string_equal(e.why, "server's cert didn't look good, (use_ssl 0x1) X509_V_ERR = "
				   "62: Hostname mismatch");
	linkerr_classify(LWS_CCE_TLS_TIMEOUT, 0, &e);
	assert_int_equal(e.kind, LINKERR_TLS_TIMEOUT);
	linkerr_classify(LWS_CCE_UNABLE_TO_CONNECT, 0, &e);
	assert_int_equal(e.kind, LINKERR_CONNECT);
	linkerr_classify(LWS_CCE_CLOSED_BEFORE_CONN, 0, &e);
	assert_int_equal(e.kind, LINKERR_CONNECT);
	linkerr_classify("mbedtls connect -1 5 32", 0, &e);
	assert_int_equal(e.kind, LINKERR_TLS_HANDSHAKE);
	linkerr_classify("mbedtls read -0x7780 alert 116", 0, &e);
	assert_int_equal(e.kind, LINKERR_TLS_HANDSHAKE);
	linkerr_classify("mbedtls write -0x4e80 alert -1", 0, &e);
	assert_int_equal(e.kind, LINKERR_TLS_HANDSHAKE);
	linkerr_classify("tls restriction limit", 0, &e);
	assert_int_equal(e.kind, LINKERR_TLS);
	linkerr_classify("HS: UPGRADE missing", 101, &e);
	assert_int_equal(e.kind, LINKERR_HANDSHAKE);
	assert_string_equal(e.detail, "UPGRADE missing");
	linkerr_classify("HS: odd\x1b[2J\n", 101, &e);
	assert_string_equal(e.detail, "odd\\x1b[2J");
	linkerr_classify(NULL, 0, &e);
	assert_int_equal(e.kind, LINKERR_OTHER);
	assert_string_equal(e.why, "unknown error");
}

static enum linkerr_tls cause(const char *in, bool have_cert)
{
	struct linkerr e;

	linkerr_classify(in, 0, &e);
	assert_int_equal(e.kind, LINKERR_TLS_HANDSHAKE);
	return linkerr_tls_cause(&e, have_cert);
}

/* Each handshake failure from mbedTLS's error and the server's alert (lws patch 0011). */
static void tls_failures_by_alert_and_error(void **state)
{
	struct linkerr e;

	linkerr_classify("mbedtls connect -1 5 0 -0x7780 alert 40 certreq 1", 0, &e);
	assert_int_equal(e.tls_err, -0x7780);
	assert_int_equal(e.tls_alert, 40);
	assert_true(e.tls_certreq);
	assert_string_equal(linkerr_alert_name(116), "certificate_required");
	assert_null(linkerr_alert_name(255));
	/* no version in common: its alert, or mbedTLS's own verdict on the ServerHello */
	assert_int_equal(cause("mbedtls connect -1 5 0 -0x7780 alert 70 certreq 0", false),
			 LINKERR_TLS_VERSION);
	assert_int_equal(cause("mbedtls connect -1 5 0 -0x6e80 alert -1 certreq 0", false),
			 LINKERR_TLS_VERSION);
	/* handshake_failure at our ClientHello: no suite; after a CertificateRequest: the cert */
	assert_int_equal(cause("mbedtls connect -1 5 0 -0x7780 alert 40 certreq 0", true),
			 LINKERR_TLS_CIPHER);
	assert_int_equal(cause("mbedtls connect -1 5 0 -0x7780 alert 40 certreq 1", false),
			 LINKERR_TLS_CERT_REQUIRED);
	assert_int_equal(cause("mbedtls connect -1 5 0 -0x7780 alert 40 certreq 1", true),
			 LINKERR_TLS_CERT_REJECTED);
	/* TLS 1.3: the verdict comes at the first read after the handshake */
	assert_int_equal(cause("mbedtls read -0x7780 alert 116 certreq 1", false),
			 LINKERR_TLS_CERT_REQUIRED);
	assert_int_equal(cause("mbedtls read -0x7780 alert 48 certreq 1", true),
			 LINKERR_TLS_CERT_REJECTED);
	assert_int_equal(cause("mbedtls write -0x7780 alert 45 certreq 1", true),
			 LINKERR_TLS_CERT_REJECTED);
	/* an alert about certificates without a CertificateRequest is not about ours */
	assert_int_equal(cause("mbedtls connect -1 5 0 -0x7780 alert 48 certreq 0", true),
			 LINKERR_TLS_UNKNOWN);
	assert_int_equal(cause("mbedtls connect -1 5 0 -0x7200 alert -1 certreq 0", false),
			 LINKERR_TLS_NOT_TLS);
	assert_int_equal(cause("mbedtls connect -1 5 0 -0x7280 alert -1 certreq 0", false),
			 LINKERR_TLS_CLOSED);
	assert_int_equal(cause("mbedtls read -0x7880 alert -1 certreq 1", true),
			 LINKERR_TLS_CLOSED);
	/* an lws without patch 0011: nothing to go on */
	assert_int_equal(cause("mbedtls connect -1 5 32", true), LINKERR_TLS_CLOSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(texts_are_lws_4_3_5s),
	    cmocka_unit_test(x509_numbers_are_the_wrappers),
	    cmocka_unit_test(classifies_each_text),
	    cmocka_unit_test(tls_failures_by_alert_and_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

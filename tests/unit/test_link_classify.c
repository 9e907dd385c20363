#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "link_classify.h"
#include "linkerr.h"

static struct attempt_desc desc(void)
{
	return (struct attempt_desc){.url_text = "wss://example.org/feed",
				     .host = "example.org",
				     .port = 443,
				     .host_hdr = "example.org:443",
				     .server_name = "",
				     .ca_file = "/etc/ca.pem",
				     .subprotocol = "v2",
				     .retry_after = "",
				     .protocol = ""};
}

static struct link_end classify(const struct attempt_desc *a, const char *in, int status)
{
	struct link_end end;

	memset(&end, 0, sizeof(end));
	link_classify(a, in, status, &end);
	return end;
}

/* A certificate that does not match names what it had to match: an address needs an iPAddress SAN.
 */
static void hostname_mismatch_names_the_name_or_the_address(void **state)
{
	const char *in = "server's cert didn't look good, X509_V_ERR = 62: Hostname mismatch";
	struct attempt_desc a = desc();
	struct link_end e = classify(&a, in, 0);

	assert_int_equal(e.fail, LINK_FAIL_TLS);
	assert_string_equal(e.msg, "TLS: server certificate of example.org:443 does not match the "
				   "name 'example.org'");
	a.host = "192.0.2.1";
	a.host_hdr = "192.0.2.1:443";
	a.ip = true;
	e = classify(&a, in, 0);
	assert_non_null(strstr(e.msg, "no iPAddress subjectAltName for it"));
	/* with tls.server_name the name is what counts */
	a.server_name = "example.org";
	e = classify(&a, in, 0);
	assert_non_null(strstr(e.msg, "does not match the name '192.0.2.1'"));
	e = classify(&a, "X509_V_ERR = 24: unknown CA", 0);
	assert_non_null(strstr(e.msg, "not trusted by tls.ca_file '/etc/ca.pem'"));
}

/* A refused upgrade: the status, Retry-After in seconds (capped, dates ignored), auth named. */
static void refused_upgrades_carry_status_and_retry_after(void **state)
{
	struct attempt_desc a = desc();
	struct link_end e;

	a.retry_after = "120";
	e = classify(&a, LWS_CCE_NOT_101, 503);
	assert_int_equal(e.fail, LINK_FAIL_HTTP);
	assert_int_equal(e.http_status, 503);
	assert_int_equal(e.retry_after_s, 120);
	assert_string_equal(e.msg,
			    "wss://example.org/feed refused the WebSocket upgrade: HTTP 503, "
			    "Retry-After 120 s");
	a.retry_after = "9999999";
	assert_int_equal(classify(&a, LWS_CCE_NOT_101, 429).retry_after_s, 86400);
	a.retry_after = "Wed, 21 Oct 2015 07:28:00 GMT";
	e = classify(&a, LWS_CCE_NOT_101, 503);
	assert_int_equal(e.retry_after_s, 0);
	assert_string_equal(e.msg,
			    "wss://example.org/feed refused the WebSocket upgrade: HTTP 503");
	/* only 429 and 503 ask us to wait */
	a.retry_after = "5";
	assert_int_equal(classify(&a, LWS_CCE_NOT_101, 500).retry_after_s, 0);
	e = classify(&a, LWS_CCE_UNAUTHORIZED, 0);
	assert_int_equal(e.http_status, 401);
	assert_non_null(strstr(e.msg, "authentication rejected: HTTP 401"));
}

/* The subprotocol the server chose, and whether a client certificate was offered, are named. */
static void subprotocol_and_handshake_lines_name_the_setting(void **state)
{
	struct attempt_desc a = desc();
	struct link_end e;

	a.protocol = "chat";
	e = classify(&a, LWS_CCE_PROTOCOL_NO_MATCH, 101);
	assert_int_equal(e.fail, LINK_FAIL_PROTOCOL);
	assert_string_equal(e.msg, "wss://example.org/feed: server chose subprotocol 'chat', which "
				   "we did not request (link.subprotocol is 'v2')");
	e = classify(&a, "mbedtls connect -1 5 32 -0x50 alert -1 certreq 1", 0);
	assert_int_equal(e.fail, LINK_FAIL_TLS);
	assert_non_null(strstr(e.msg, "none is configured (tls.cert_file, tls.key_file)"));
	a.cert_file = "/etc/client.pem";
	e = classify(&a, "mbedtls connect -1 5 32 -0x50 alert -1 certreq 1", 0);
	assert_non_null(strstr(e.msg, "rejected our client certificate /etc/client.pem"));
	e = classify(&a, LWS_CCE_UNABLE_TO_CONNECT, 0);
	assert_int_equal(e.fail, LINK_FAIL_CONNECT);
	assert_string_equal(e.msg, "cannot connect to example.org:443 (refused or unreachable)");
}

/* A failed handshake's line, from the server's alert (lws patch 0011): one per cause. */
static void tls_handshake_lines_from_the_alert(void **state)
{
	struct attempt_desc a = desc();
	char v[16], c[64];

	assert_string_equal(classify(&a, "mbedtls connect -1 5 0 -0x7780 alert 70 certreq 0", 0).msg,
			    "TLS handshake with example.org:443 failed: no TLS version in common "
			    "with the server: we offered TLS 1.3 and 1.2 [alert protocol_version]");
	a.tls13_only = true;
	assert_non_null(strstr(classify(&a, "mbedtls connect -1 5 0 -0x6e80 alert -1 certreq 0", 0).msg,
			       "we offered TLS 1.3 only (tls.min_version = \"1.3\") [alert none]"));
	assert_non_null(strstr(classify(&a, "mbedtls connect -1 5 0 -0x7780 alert 40 certreq 0", 0).msg,
			       "no cipher suite (or key exchange group) in common"));
	assert_non_null(strstr(classify(&a, "mbedtls read -0x7780 alert 116 certreq 1", 0).msg,
			       "requires a client certificate and none is configured (set "
			       "tls.cert_file and tls.key_file) [alert certificate_required]"));
	assert_non_null(strstr(classify(&a, "mbedtls connect -1 5 0 -0x7200 alert -1 certreq 0", 0).msg,
			       "does not speak TLS on this port (what it sent is not a TLS record)"));
	a.cert_file = "/etc/client.pem";
	assert_non_null(strstr(classify(&a, "mbedtls read -0x7780 alert 45 certreq 1", 0).msg,
			       "rejected our client certificate /etc/client.pem: it considers it "
			       "expired (check both clocks) [alert certificate_expired]"));
	assert_non_null(strstr(classify(&a, "mbedtls connect -1 5 0 -0x7780 alert 48 certreq 1", 0).msg,
			       ": it does not trust the CA that issued it [alert unknown_ca]"));
	link_tls_names("TLSv1.3", "TLS1-3-AES-256-GCM-SHA384", v, sizeof(v), c, sizeof(c));
	assert_string_equal(v, "TLSv1.3");
	assert_string_equal(c, "TLS_AES_256_GCM_SHA384");
	link_tls_names("TLSv1.2", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384", v, sizeof(v), c,
		       sizeof(c));
	assert_string_equal(c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
}

/* The first cause explains the end: a later error keeps its line, but its status is recorded. */
static void first_cause_wins(void **state)
{
	struct attempt_desc a = desc();
	struct link_end e;

	memset(&e, 0, sizeof(e));
	e.fail = LINK_FAIL_TIMEOUT;
	snprintf(e.msg, sizeof(e.msg), "timed out");
	link_classify(&a, LWS_CCE_NOT_101, 502, &e);
	assert_int_equal(e.fail, LINK_FAIL_TIMEOUT);
	assert_string_equal(e.msg, "timed out");
	assert_int_equal(e.http_status, 502);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(hostname_mismatch_names_the_name_or_the_address),
	    cmocka_unit_test(refused_upgrades_carry_status_and_retry_after),
	    cmocka_unit_test(subprotocol_and_handshake_lines_name_the_setting),
	    cmocka_unit_test(tls_handshake_lines_from_the_alert),
	    cmocka_unit_test(first_cause_wins),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

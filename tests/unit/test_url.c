#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "url.h"

static void parses_ws_and_wss_with_default_ports(void **state)
{
	struct wst_url u;
	char err[256];

	assert_int_equal(url_parse("ws://example.com/agent", &u, err, sizeof(err)), 0);
	assert_false(u.tls);
	assert_int_equal(u.port, 80);
	assert_string_equal(u.host, "example.com");
	assert_string_equal(u.path, "/agent");

	assert_int_equal(url_parse("WSS://Example.com", &u, err, sizeof(err)), 0);
	assert_true(u.tls);
	assert_int_equal(u.port, 443);
	assert_string_equal(u.path, "/");
}

static void keeps_port_query_and_ipv6(void **state)
{
	struct wst_url u;
	char err[256], host[300];

	assert_int_equal(url_parse("wss://localhost:8443/a/b?x=1&y=2", &u, err, sizeof(err)), 0);
	assert_int_equal(u.port, 8443);
	assert_string_equal(u.path, "/a/b?x=1&y=2");
	url_host_header(&u, NULL, host, sizeof(host));
	assert_string_equal(host, "localhost:8443");
	url_host_header(&u, "backend.example", host, sizeof(host));
	assert_string_equal(host, "backend.example:8443");

	assert_int_equal(url_parse("ws://[::1]:9000/x", &u, err, sizeof(err)), 0);
	assert_true(u.ipv6);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 9000);
	url_host_header(&u, NULL, host, sizeof(host));
	assert_string_equal(host, "[::1]:9000");

	assert_int_equal(url_parse("ws://h?q", &u, err, sizeof(err)), 0);
	assert_string_equal(u.path, "/?q");
}

static void rejects(const char *url, const char *why)
{
	struct wst_url u;
	char err[256] = "";

	assert_int_equal(url_parse(url, &u, err, sizeof(err)), -1);
	if (!strstr(err, why))
		fail_msg("'%s': error '%s' does not mention '%s'", url, err, why);
}

static void rejects_bad_urls_with_a_reason(void **state)
{
	rejects("", "empty");
	rejects("example.com/x", "missing scheme");
	rejects("http://example.com/", "unsupported scheme 'http'");
	rejects("ws://", "missing host");
	rejects("ws:///path", "missing host");
	rejects("ws://host:99999/", "out of range");
	rejects("ws://host:0/", "out of range");
	rejects("ws://host:/", "empty port");
	rejects("ws://host:8x/", "not a number");
	rejects("ws://user:pw@host/", "user info");
	rejects("ws://host/a#frag", "fragment");
	rejects("ws://ho st/", "invalid character");
	rejects("ws://host/a b", "space");
	rejects("ws://[::1/", "unterminated");
	rejects("ws://[::1]x/", "unexpected");
}

static void rejects_overlong_parts(void **state)
{
	char big[URL_MAX_PATH + 64];

	memset(big, 'a', sizeof(big));
	memcpy(big, "ws://", 5);
	big[sizeof(big) - 1] = '\0';
	rejects(big, "too long");
	big[5 + URL_MAX_HOST + 1] = '/';
	rejects(big, "host name too long");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_ws_and_wss_with_default_ports),
		cmocka_unit_test(keeps_port_query_and_ipv6),
		cmocka_unit_test(rejects_bad_urls_with_a_reason),
		cmocka_unit_test(rejects_overlong_parts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

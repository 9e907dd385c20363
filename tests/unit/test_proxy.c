#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy.h"

/* A fake environment: pairs of name, value. */
static const char *const *fake_env;

static const char *env(const char *name)
{
	for (const char *const *e = fake_env; e && *e; e += 2)
		if (!strcmp(e[0], name))
			return e[1];
	return NULL;
}

static void parses_http_and_socks5h_urls(void **state)
{
	struct proxy p;
	char err[256];

	assert_int_equal(proxy_parse("http://proxy.corp:3128", false, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kind, PROXY_HTTP);
	assert_string_equal(p.host, "proxy.corp");
	assert_int_equal(p.port, 3128);
	assert_string_equal(p.user, "");
	assert_string_equal(p.text, "http://proxy.corp:3128");

	assert_int_equal(
	    proxy_parse("socks5h://us%40r:p%3Ass@[2001:db8::1]:1080/", false, &p, err, sizeof(err)),
	    0);
	assert_int_equal(p.kind, PROXY_SOCKS5H);
	assert_string_equal(p.host, "2001:db8::1");
	assert_string_equal(p.user, "us@r");
	assert_string_equal(p.pass, "p:ss");
	/* the credentials never reach the text that is logged */
	assert_string_equal(p.text, "socks5h://[2001:db8::1]:1080");

	/* environments often leave out the scheme; curl's default port */
	assert_int_equal(proxy_parse("10.0.0.1", true, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kind, PROXY_HTTP);
	assert_int_equal(p.port, 1080);
}

static void rejects_bad_proxy_urls(void **state)
{
	struct proxy p;
	char err[256];

	assert_int_equal(proxy_parse("10.0.0.1:3128", false, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "scheme"));
	assert_int_equal(proxy_parse("https://p:443", false, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "socks5h://"));
	assert_int_equal(proxy_parse("socks5://p:1080", false, &p, err, sizeof(err)), -1);
	assert_int_equal(proxy_parse("http://p:99999", false, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "port"));
	assert_int_equal(proxy_parse("http://p:3128/path", false, &p, err, sizeof(err)), -1);
	assert_int_equal(proxy_parse("http://:3128", false, &p, err, sizeof(err)), -1);
	assert_int_equal(proxy_parse("http://u:p%zz@p:1", false, &p, err, sizeof(err)), -1);
	assert_null(strstr(err, "p%zz"));
	assert_int_equal(proxy_check_setting("", err, sizeof(err)), 0);
	assert_int_equal(proxy_check_setting("direct", err, sizeof(err)), 0);
	assert_int_equal(proxy_check_setting("Direct", err, sizeof(err)), -1);
}

static void selects_from_the_environment_like_curl(void **state)
{
	static const char *const e1[] = {"http_proxy", "http://h:1",	"HTTPS_PROXY", "http://s:2",
					 "ALL_PROXY",  "socks5h://a:3", NULL};
	static const char *const e2[] = {"HTTP_PROXY", "http://upper:1", NULL};
	static const char *const e3[] = {"all_proxy", "socks5h://a:3", "no_proxy",
					 ".internal, 10.0.0.0/8,::1", NULL};
	struct proxy p;
	char err[256];

	fake_env = e1;
	assert_int_equal(proxy_select("", false, "b.example", env, &p, err, sizeof(err)), 0);
	assert_string_equal(p.text, "http://h:1");
	assert_string_equal(p.source, "http_proxy");
	assert_int_equal(proxy_select("", true, "b.example", env, &p, err, sizeof(err)), 0);
	assert_string_equal(p.text, "http://s:2");
	assert_string_equal(p.source, "HTTPS_PROXY");
	/* link.proxy wins over the environment; "direct" ignores it */
	assert_int_equal(proxy_select("socks5h://x:9", true, "b", env, &p, err, sizeof(err)), 0);
	assert_string_equal(p.source, "link.proxy");
	assert_int_equal(proxy_select("direct", true, "b", env, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kind, PROXY_NONE);

	/* HTTP_PROXY in upper case is not read (httpoxy) */
	fake_env = e2;
	assert_int_equal(proxy_select("", false, "b", env, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kind, PROXY_NONE);

	fake_env = e3;
	assert_int_equal(proxy_select("", true, "b.example", env, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kind, PROXY_SOCKS5H);
	assert_string_equal(p.source, "all_proxy");
	assert_int_equal(proxy_select("", true, "api.internal", env, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kind, PROXY_NONE);
	assert_int_equal(proxy_select("", true, "10.2.3.4", env, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kind, PROXY_NONE);
	assert_int_equal(proxy_select("", true, "::1", env, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kind, PROXY_NONE);
	fake_env = NULL;
}

/* Each case as curl 7.88.1 decided it in a namespace (tests/integration/test_real_proxies.py) */
static void matches_no_proxy_entries_as_curl_7_88(void **state)
{
	assert_true(proxy_bypass("*", "anything"));
	assert_true(proxy_bypass("example.com", "example.com"));
	assert_true(proxy_bypass("example.com", "api.EXAMPLE.com"));
	assert_true(proxy_bypass(".example.com", "example.com"));
	assert_true(proxy_bypass("example.com.", "api.example.com"));
	assert_true(proxy_bypass("example.com", "api.example.com."));
	assert_true(proxy_bypass(".test", "x.test"));
	assert_true(proxy_bypass("test", "x.test"));
	assert_false(proxy_bypass("example.com", "badexample.com"));
	assert_false(proxy_bypass("example.com", "example.com.evil"));
	/* "*." is no wildcard, and "*" only alone */
	assert_false(proxy_bypass("*.test", "x.test"));
	assert_false(proxy_bypass("*.test", "a.b.test"));
	assert_false(proxy_bypass("*.x.test", "x.test"));
	assert_false(proxy_bypass("x.test,*", "a.b.test"));
	assert_false(proxy_bypass(" *", "a.b.test"));
	/* IPv4: addresses and CIDR ranges; /0 or no bits is the address itself */
	assert_true(proxy_bypass("a, b ,192.0.2.10", "192.0.2.10"));
	assert_true(proxy_bypass("a\t192.0.2.10", "192.0.2.10"));
	assert_false(proxy_bypass("192.0.2.10", "192.0.2.11"));
	assert_true(proxy_bypass("192.0.2.0/24", "192.0.2.200"));
	assert_true(proxy_bypass("127.0.0.0/8", "127.0.0.1"));
	assert_true(proxy_bypass("127.0.0.1/0", "127.0.0.1"));
	assert_false(proxy_bypass("127.0.0.0/0", "127.0.0.1"));
	assert_false(proxy_bypass("192.0.2.0/25", "192.0.2.200"));
	assert_false(proxy_bypass("10.0.0.0/33", "10.0.0.1"));
	assert_false(proxy_bypass("localhost", "127.0.0.1"));
	assert_false(proxy_bypass("192.0.2.0/24", "host.example"));
	/* IPv6 hosts are compared as names: only the same text matches */
	assert_true(proxy_bypass("::1", "::1"));
	assert_false(proxy_bypass("::1/128", "::1"));
	assert_false(proxy_bypass("[::1]", "::1"));
	assert_false(proxy_bypass("0:0::1", "::1"));
	assert_false(proxy_bypass("::/0", "::1"));
	assert_false(proxy_bypass("2001:db8::/32", "2001:db8:1::5"));
	assert_false(proxy_bypass("2001:db8::/32", "192.0.2.1"));
	assert_false(proxy_bypass("", "x"));
	assert_false(proxy_bypass(NULL, "x"));
}

static void builds_connect_requests(void **state)
{
	char buf[1024];
	size_t n;

	n = proxy_http_request(buf, sizeof(buf), "b.example", 443, "", "");
	assert_int_equal(n, strlen(buf));
	assert_string_equal(buf, "CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n");
	n = proxy_http_request(buf, sizeof(buf), "2001:db8::1", 8443, "Aladdin", "open sesame");
	assert_string_equal(buf, "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n"
				 "Host: [2001:db8::1]:8443\r\n"
				 "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
	assert_int_equal(n, strlen(buf));
	assert_int_equal(proxy_http_request(buf, 20, "b.example", 443, "", ""), 0);
}

static void parses_connect_responses(void **state)
{
	int status = 0;
	const char *ok = "HTTP/1.1 200 Connection established\r\n\r\n";
	const char *deny = "HTTP/1.0 403 Forbidden\r\nX: y\r\n\r\n";

	assert_int_equal(proxy_http_response(ok, strlen(ok), &status), (long)strlen(ok));
	assert_int_equal(status, 200);
	assert_int_equal(proxy_http_response(deny, strlen(deny), &status), (long)strlen(deny));
	assert_int_equal(status, 403);
	assert_int_equal(proxy_http_response(ok, 20, &status), 0);
	assert_int_equal(proxy_http_response("HTTP/1.1 200\n\n", 14, &status), 14);
	assert_int_equal(proxy_http_response("SSH-2.0-OpenSSH\r\n\r\n", 19, &status), -1);
	assert_int_equal(proxy_http_response("HTTP/1.1 2x0 ok\r\n\r\n", 19, &status), -1);
	assert_int_equal(proxy_http_response("HTT", 3, &status), 0);
}

/* squid and tinyproxy send their error page in the same write as the status line */
static void judges_a_refusal_by_its_status_whatever_follows(void **state)
{
	const char *page =
	    "HTTP/1.1 403 Forbidden\r\nServer: squid/5.7\r\nContent-Length: 20\r\n\r\n"
	    "<html>denied</html>\n";
	const char *ok_extra = "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01";
	const char *ok = "HTTP/1.0 200 Connection established\r\n\r\n";
	const char *tiny = "HTTP/1.0 500 Unable to connect\r\n\r\n<html>";
	int status = 0;

	assert_int_equal(proxy_http_verdict(page, strlen(page), 4096, &status),
			 PROXY_REPLY_REFUSED);
	assert_int_equal(status, 403);
	assert_int_equal(proxy_http_verdict(tiny, strlen(tiny), 4096, &status),
			 PROXY_REPLY_REFUSED);
	assert_int_equal(status, 500);
	assert_int_equal(proxy_http_verdict(ok, strlen(ok), 4096, &status), PROXY_REPLY_OPEN);
	assert_int_equal(status, 200);
	assert_int_equal(proxy_http_verdict(ok_extra, strlen(ok_extra), 4096, &status),
			 PROXY_REPLY_EXTRA);
	/* the head is still coming: wait, unless the buffer is full */
	assert_int_equal(proxy_http_verdict(page, 30, 4096, &status), PROXY_REPLY_MORE);
	assert_int_equal(proxy_http_verdict(page, 30, 30, &status), PROXY_REPLY_TOO_BIG);
	assert_int_equal(proxy_http_verdict("SSH-2.0-x\r\n\r\n", 13, 4096, &status),
			 PROXY_REPLY_NOT_HTTP);
}

static void builds_and_parses_socks5_messages(void **state)
{
	unsigned char b[600];
	int rep = -1;
	size_t n;

	assert_int_equal(socks5_greeting(b, false), 3);
	assert_memory_equal(b, "\x05\x01\x00", 3);
	assert_int_equal(socks5_greeting(b, true), 4);
	assert_memory_equal(b, "\x05\x02\x00\x02", 4);
	assert_int_equal(socks5_method((const unsigned char *)"\x05\x02"), 2);
	assert_int_equal(socks5_method((const unsigned char *)"\x05\xff"), 0xff);
	assert_int_equal(socks5_method((const unsigned char *)"\x04\x00"), -1);

	n = socks5_auth_request(b, "u", "pw");
	assert_int_equal(n, 6);
	assert_memory_equal(b, "\x01\x01u\x02pw", 6);

	n = socks5_connect_request(b, sizeof(b), "b.example", 443);
	assert_int_equal(n, 4 + 1 + 9 + 2);
	assert_memory_equal(b,
			    "\x05\x01\x00\x03\x09"
			    "b.example\x01\xbb",
			    n);
	n = socks5_connect_request(b, sizeof(b), "192.0.2.10", 80);
	assert_int_equal(n, 10);
	assert_memory_equal(b, "\x05\x01\x00\x01\xc0\x00\x02\x0a\x00\x50", n);
	n = socks5_connect_request(b, sizeof(b), "2001:db8::1", 80);
	assert_int_equal(n, 22);
	assert_int_equal(b[3], 4);

	assert_int_equal(
	    socks5_connect_reply((const unsigned char *)"\x05\x00\x00\x01\0\0\0\0\0", 9, &rep), 0);
	assert_int_equal(
	    socks5_connect_reply((const unsigned char *)"\x05\x00\x00\x01\0\0\0\0\0\0", 10, &rep),
	    10);
	assert_int_equal(rep, 0);
	assert_int_equal(
	    socks5_connect_reply((const unsigned char *)"\x05\x05\x00\x01\0\0\0\0\0\0", 10, &rep),
	    10);
	assert_int_equal(rep, 5);
	assert_string_equal(socks5_reply_text(rep), "connection refused");
	assert_int_equal(
	    socks5_connect_reply((const unsigned char *)"\x05\x03\x00\x00\x00", 5, &rep), 2);
	assert_int_equal(rep, 3);
	assert_int_equal(socks5_connect_reply((const unsigned char *)"\x04\x5a", 2, &rep), -1);
	assert_string_equal(socks5_reply_text(42), "unassigned reply code");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parses_http_and_socks5h_urls),
	    cmocka_unit_test(rejects_bad_proxy_urls),
	    cmocka_unit_test(selects_from_the_environment_like_curl),
	    cmocka_unit_test(matches_no_proxy_entries_as_curl_7_88),
	    cmocka_unit_test(builds_connect_requests),
	    cmocka_unit_test(parses_connect_responses),
	    cmocka_unit_test(judges_a_refusal_by_its_status_whatever_follows),
	    cmocka_unit_test(builds_and_parses_socks5_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

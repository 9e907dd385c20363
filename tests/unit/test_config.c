#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

static char path[64];

static void write_conf(const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "test_config_%d.conf", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int teardown(void **state)
{
	unlink(path);
	return 0;
}

static char last_err[1024];

/* Loading must fail with this status and a message containing want (after "PATH"). */
static void expect_error(const char *text, int status, const char *want)
{
	struct config_error err;
	char full[512];

	write_conf(text);
	assert_null(config_load(path, NULL, &err));
	snprintf(last_err, sizeof(last_err), "%s", err.msg);
	assert_int_equal(err.status, status);
	snprintf(full, sizeof(full), "%s%s", path, want);
	if (!strstr(err.msg, full))
		fail_msg("error '%s' does not contain '%s'", err.msg, full);
}

static void loads_defaults_with_url_alone(void **state)
{
	struct config_error err;
	const struct wst_config *c = config_load(NULL, "ws://localhost:1/x", &err);

	assert_non_null(c);
	assert_string_equal(c->url, "ws://localhost:1/x");
	assert_string_equal(c->ca_file, "/etc/ssl/certs/ca-certificates.crt");
	assert_string_equal(c->server_name, "");
	assert_int_equal(c->connect_timeout_s, 15);
	assert_int_equal(c->max_message_bytes, 1048576);
	assert_int_equal(c->compression, COMPRESSION_OFF);
	assert_int_equal(c->tls_min_version, TLS_MIN_1_2);
	assert_int_equal(c->ping_interval_s, 20);
	assert_int_equal(c->pong_timeout_s, 10);
	assert_int_equal(c->backoff_initial_ms, 500);
	assert_int_equal(c->backoff_max_ms, 60000);
	assert_true(c->backoff_multiplier == 2.0);
	assert_true(c->backoff_jitter == 0.5);
	assert_int_equal(c->queue_max_messages, 10000);
	assert_int_equal(c->log_level, LOG_INFO);
	config_free(c);
}

static void loads_a_full_file(void **state)
{
	struct config_error err;
	const struct wst_config *c;

	write_conf("# comment\n"
		   "link = { url = \"wss://backend.example:8443/agent\"; connect_timeout_s = 7; };\n"
		   "tls = { ca_file = \"/tmp/ca.pem\"; server_name = \"backend.example\"; };\n"
		   "keepalive = { ping_interval_s = 5; pong_timeout_s = 3; };\n"
		   "backoff = { initial_ms = 100; max_ms = 2000; multiplier = 1.5; jitter = 0; };\n"
		   "log = { level = \"debug\"; };\n");
	c = config_load(path, NULL, &err);
	if (!c)
		fail_msg("%s", err.msg);
	assert_string_equal(c->url, "wss://backend.example:8443/agent");
	assert_string_equal(c->path, path);
	assert_int_equal(c->connect_timeout_s, 7);
	assert_string_equal(c->ca_file, "/tmp/ca.pem");
	assert_string_equal(c->server_name, "backend.example");
	assert_int_equal(c->ping_interval_s, 5);
	assert_int_equal(c->pong_timeout_s, 3);
	assert_true(c->backoff_multiplier == 1.5);
	assert_true(c->backoff_jitter == 0.0);
	assert_int_equal(c->log_level, LOG_DEBUG);
	config_free(c);
}

static void url_override_wins_over_the_file(void **state)
{
	struct config_error err;
	const struct wst_config *c;

	write_conf("link = { url = \"ws://a/\"; };\n");
	c = config_load(path, "ws://b/", &err);
	assert_non_null(c);
	assert_string_equal(c->url, "ws://b/");
	config_free(c);
}

static void reports_syntax_errors_with_line(void **state)
{
	expect_error("link = {\n  url = \"ws://x/\";\n  oops oops\n};\n", 78, ":3: ");
}

static void reports_unknown_keys_and_groups_with_line(void **state)
{
	expect_error("link = {\n  url = \"ws://x/\";\n  colour = \"red\";\n};\n", 78,
		     ":3: unknown key 'link.colour'");
	expect_error("link = { url = \"ws://x/\"; };\n\nfrobs = { a = 1; };\n", 78,
		     ":3: unknown group 'frobs'");
	expect_error("link = \"ws://x/\";\n", 78, ":1: 'link' must be a group");
}

static void reports_bad_types_and_ranges_with_line(void **state)
{
	expect_error("link = { url = 5; };\n", 78, ":1: link.url: expected a string, got an integer");
	expect_error("link = { url = \"ws://x/\";\n connect_timeout_s = \"ten\"; };\n", 78,
		     ":2: link.connect_timeout_s: expected an integer, got a string");
	expect_error("link = { url = \"ws://x/\"; };\nbackoff = { jitter = 1.5; };\n", 78,
		     ":2: backoff.jitter: 1.5 is out of range (0 to 1)");
	expect_error("link = { url = \"ws://x/\"; };\nlog = { level = \"loud\"; };\n", 78,
		     ":2: log.level: unknown value 'loud' (use error, warning, notice, info or debug)");
	expect_error("link = { url = \"ws://x/\"; };\nbackoff = { initial_ms = 5000; max_ms = 100; };\n",
		     78, ": backoff.max_ms (100) is below backoff.initial_ms (5000)");
}

static void reports_bad_urls_in_file_and_on_command_line(void **state)
{
	struct config_error err;

	expect_error("\nlink = { url = \"http://x/\"; };\n", 78,
		     ":2: link.url: invalid URL 'http://x/': unsupported scheme 'http'");
	expect_error("log = { level = \"info\"; };\n", 78, ": link.url is not set");

	assert_null(config_load(NULL, "ws://", &err));
	assert_int_equal(err.status, 64);
	assert_non_null(strstr(err.msg, "--url 'ws://': missing host"));
}

static void loads_lists_headers_and_enums(void **state)
{
	struct config_error err;
	const struct wst_config *c;

	setenv("CREDENTIALS_DIRECTORY", "/run/credentials/wstether@x.service", 1);
	write_conf("link = {\n"
		   "  url = \"wss://a.example/\";\n"
		   "  fallback_urls = [ \"wss://b.example/\", \"ws://c.example:81/\" ];\n"
		   "  subprotocol = \"agent.v1\";\n"
		   "  compression = \"deflate\";\n"
		   "  headers = ( { name = \"Authorization\"; value_file = \"${CREDENTIALS_DIRECTORY}/token\"; },\n"
		   "              { name = \"X-Site\"; value = \"north\"; } );\n"
		   "};\n"
		   "tls = { cert_file = \"${CREDENTIALS_DIRECTORY}/client.crt\"; key_file = \"/k\"; insecure = true; };\n"
		   "queue = { overflow = \"reject\"; };\n"
		   "bridge = { socket = \"/run/w.sock\"; mode = \"0600\"; framing = \"length-prefixed\"; };\n"
		   "exec = { command = [ \"/bin/cat\", \"-u\" ]; };\n");
	c = config_load(path, NULL, &err);
	if (!c)
		fail_msg("%s", err.msg);
	assert_int_equal(config_url_count(c), 3);
	assert_string_equal(config_url(c, 0), "wss://a.example/");
	assert_string_equal(config_url(c, 2), "ws://c.example:81/");
	assert_string_equal(c->subprotocol, "agent.v1");
	assert_int_equal(c->compression, COMPRESSION_DEFLATE);
	assert_int_equal(c->n_headers, 2);
	assert_string_equal(c->headers[0].name, "Authorization");
	assert_null(c->headers[0].value);
	assert_string_equal(c->headers[0].value_file, "/run/credentials/wstether@x.service/token");
	assert_string_equal(c->headers[1].value, "north");
	assert_string_equal(c->cert_file, "/run/credentials/wstether@x.service/client.crt");
	assert_true(c->insecure);
	assert_int_equal(c->queue_overflow, OVERFLOW_REJECT);
	assert_int_equal(c->bridge_mode, 0600);
	assert_int_equal(c->bridge_framing, FRAMING_LENGTH_PREFIXED);
	assert_string_equal(c->exec_command[0], "/bin/cat");
	assert_string_equal(c->exec_command[1], "-u");
	assert_null(c->exec_command[2]);
	config_free(c);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void reports_bad_lists_headers_and_pairs(void **state)
{
	unsetenv("CREDENTIALS_DIRECTORY");
	expect_error("link = { url = \"ws://x/\";\n compression = \"gzip\"; };\n", 78,
		     ":2: link.compression: unknown value 'gzip' (use \"off\" or \"deflate\")");
	expect_error("link = { url = \"wss://x/\"; };\ntls = { min_version = \"1.1\"; };\n", 78,
		     ":2: tls.min_version: unknown value '1.1' (use \"1.2\" or \"1.3\")");
	expect_error("link = { url = \"ws://x/\";\n fallback_urls = [ \"ftp://y/\" ]; };\n", 78,
		     ":2: link.fallback_urls: invalid URL 'ftp://y/'");
	expect_error("link = { url = \"ws://x/\";\n headers = ( { name = \"A\"; } ); };\n", 78,
		     ":2: link.headers: header 'A' needs exactly one of value or value_file");
	expect_error("link = { url = \"ws://x/\";\n headers = ( { name = \"A B\"; value = \"v\"; } ); };\n",
		     78, ":2: link.headers: each header needs a valid name");
	expect_error("link = { url = \"ws://x/\";\n headers = ( { name = \"A\"; valu = \"v\"; } ); };\n",
		     78, ":2: unknown key 'link.headers.valu'");
	expect_error("link = { url = \"ws://x/\"; };\ntls = { cert_file = \"/c\"; };\n", 78,
		     ": tls.cert_file and tls.key_file go together");
	expect_error("link = { url = \"ws://x/\"; };\ntls = { insecure = 1; };\n", 78,
		     ":2: tls.insecure: expected true or false, got an integer");
	expect_error("link = { url = \"ws://x/\"; };\nbridge = { mode = \"rw\"; };\n", 78,
		     ":2: bridge.mode: 'rw' is not an octal mode");
	expect_error("link = { url = \"ws://x/\"; };\nexec = { framing = \"json\"; };\n", 78,
		     ":2: exec.framing: unknown value 'json'");
	expect_error("link = { url = \"ws://x/\"; };\ntls = { key_file = \"${CREDENTIALS_DIRECTORY}/k\"; cert_file = \"/c\"; };\n",
		     78, ":2: tls.key_file: '${CREDENTIALS_DIRECTORY}/k' uses ${CREDENTIALS_DIRECTORY}, which is not set");
	expect_error("link = { url = \"ws://x/\"; max_message_bytes = 2000; };\nqueue = { max_bytes = 1000; };\n",
		     78, ": queue.max_bytes (1000) is below link.max_message_bytes (2000)");
}

static void checks_the_network_keys(void **state)
{
	const struct wst_config *c;
	struct config_error err;

	write_conf("link = { url = \"ws://x/\"; proxy = \"http://u:p@proxy:3128\";\n"
		   " address_family = \"ipv6\"; bind_address = \"2001:db8::1\";\n"
		   " interface = \"wwan0\"; proxy_auth_file = \"/x/p\"; };\n");
	c = config_load(path, NULL, &err);
	assert_non_null(c);
	assert_string_equal(c->proxy, "http://u:p@proxy:3128");
	assert_int_equal(c->address_family, AF_INET6);
	assert_string_equal(c->bind_address, "2001:db8::1");
	assert_string_equal(c->interface, "wwan0");
	config_free(c);
	expect_error("link = { url = \"ws://x/\"; proxy = \"ftp://u:hunter2@p:1\"; };\n", 78,
		     ":1: link.proxy: unsupported proxy scheme");
	assert_null(strstr(last_err, "hunter2"));
	expect_error("link = { url = \"ws://x/\"; address_family = \"ip4\"; };\n", 78,
		     ":1: link.address_family: unknown value 'ip4' (use \"any\", \"ipv4\" or \"ipv6\")");
	expect_error("link = { url = \"ws://x/\"; bind_address = \"eth0\"; };\n", 78,
		     ":1: link.bind_address: 'eth0': not an IPv4 or IPv6 address");
	expect_error("link = { url = \"ws://x/\"; interface = \"a-very-long-name0\"; };\n", 78,
		     ":1: link.interface: 'a-very-long-name0': not an interface name");
	expect_error("link = { url = \"ws://x/\"; address_family = \"ipv4\";\n"
		     " bind_address = \"::1\"; };\n",
		     78, ": link.bind_address '::1' is not of link.address_family");
}

/* Only the file keys name a path to check: a value that happens to name a directory is fine. */
static void checks_paths_of_file_keys_only(void **state)
{
	const struct wst_config *c;
	struct config_error err;

	write_conf("link = { url = \"ws://x/\"; subprotocol = \"/\"; origin = \".\"; };\n"
		   "queue = { spool_dir = \"/tmp\"; };\n");
	c = config_load(path, NULL, &err);
	if (!c)
		fail_msg("%s", err.msg);
	assert_string_equal(c->spool_dir, "/tmp");
	assert_string_equal(c->subprotocol, "/");
	config_free(c);
	expect_error("link = { url = \"ws://x/\"; };\ntls = { ca_file = \"/tmp\"; };\n", 78,
		     ":2: tls.ca_file '/tmp': ");
}

static void reports_a_missing_file(void **state)
{
	struct config_error err;

	assert_null(config_load("/nonexistent/wstether.conf", NULL, &err));
	assert_int_equal(err.status, 78);
	assert_string_equal(err.msg,
			    "/nonexistent/wstether.conf: cannot open config file: No such file or directory");
}

static void every_key_has_a_reload_class(void **state)
{
	char name[64];
	enum config_apply apply;

	for (size_t i = 0; i < config_key_count(); i++)
		if (config_key_info(i, name, sizeof(name), &apply) == RELOAD_UNSET)
			fail_msg("config key %s has no reload class: say whether a change to it "
				 "is live, needs a reconnect or a restart",
				 name);
}

/* A live key says who applies it (config.h's enum config_apply); no other key does. */
static void every_live_key_names_its_applier(void **state)
{
	char name[64];
	enum config_apply apply;

	for (size_t i = 0; i < config_key_count(); i++) {
		bool live = config_key_info(i, name, sizeof(name), &apply) == RELOAD_LIVE;

		if (live && apply == APPLY_NONE)
			fail_msg("live config key %s names no applier: say who applies a change "
				 "to it at reload (enum config_apply)",
				 name);
		if (!live && apply != APPLY_NONE)
			fail_msg("config key %s is not live but names an applier", name);
	}
}

/* A value other than the default for each key, so a change to it can be seen. */
static const struct {
	const char *key, *value;
} changed[] = {
    {"link.url", "\"ws://other:2/\""},
    {"link.fallback_urls", "[ \"ws://b:1/\" ]"},
    {"link.subprotocol", "\"v2\""},
    {"link.origin", "\"https://o\""},
    {"link.user_agent", "\"probe/1\""},
    {"link.headers", "( { name = \"X-A\"; value = \"1\"; } )"},
    {"link.connect_timeout_s", "7"},
    {"link.max_message_bytes", "4096"},
    {"link.drain_timeout_s", "9"},
    {"link.max_age_s", "3600"},
    {"link.hello", "\"subscribe\""},
    {"link.hello_file", "\"/etc/passwd\""},
    {"link.proxy", "\"socks5h://p:1080\""},
    {"link.proxy_auth_file", "\"/x/proxy.auth\""},
    {"link.address_family", "\"ipv6\""},
    {"link.bind_address", "\"192.0.2.1\""},
    {"link.interface", "\"wwan0\""},
    {"link.compression", "\"deflate\""},
    {"tls.ca_file", "\"/x/ca.crt\""},
    {"tls.cert_file", "\"/x/c.crt\"; key_file = \"/x/c.key\""},
    {"tls.key_file", "\"/x/c.key\"; cert_file = \"/x/c.crt\""},
    {"tls.server_name", "\"name\""},
    {"tls.insecure", "true"},
    {"tls.min_version", "\"1.3\""},
    {"tls.session_resumption", "false"},
    {"keepalive.ping_interval_s", "3"},
    {"keepalive.pong_timeout_s", "3"},
    {"backoff.initial_ms", "7"},
    {"backoff.max_ms", "70000"},
    {"backoff.multiplier", "3.0"},
    {"backoff.jitter", "0.1"},
    {"backoff.reset_after_s", "5"},
    {"queue.max_messages", "5"},
    {"queue.max_bytes", "99999999"},
    {"queue.overflow", "\"reject\""},
    {"queue.spool_dir", "\"/x/spool\""},
    {"bridge.socket", "\"/tmp/b.sock\""},
    {"bridge.mode", "\"0600\""},
    {"bridge.framing", "\"length-prefixed\""},
    {"bridge.events", "true; framing = \"length-prefixed\""},
    {"exec.command", "[ \"/bin/cat\" ]"},
    {"exec.framing", "\"length-prefixed\""},
    {"exec.events", "true; framing = \"length-prefixed\""},
    {"control.socket", "\"/tmp/c.ctl\""},
    {"log.level", "\"debug\""},
};

static const struct wst_config *load_with(const char *key, const char *value)
{
	char text[512], group[32];
	const char *dot = strchr(key, '.');
	struct config_error err;
	const struct wst_config *c;

	snprintf(group, sizeof(group), "%.*s", (int)(dot - key), key);
	if (!strcmp(key, "link.url"))
		snprintf(text, sizeof(text), "link = { url = %s; };\n", value);
	else if (!strcmp(group, "link"))
		snprintf(text, sizeof(text), "link = { url = \"ws://a:1/\"; %s = %s; };\n", dot + 1,
			 value);
	else
		snprintf(text, sizeof(text),
			 "link = { url = \"ws://a:1/\"; };\n%s = { %s = %s; };\n", group, dot + 1,
			 value);
	write_conf(text);
	c = config_load(path, NULL, &err);
	if (!c)
		fail_msg("%s = %s: %s", key, value, err.msg);
	return c;
}

static void reload_classes_follow_the_key_table(void **state)
{
	const struct wst_config *base;
	char name[64];

	write_conf("link = { url = \"ws://a:1/\"; };\n");
	base = config_load(path, NULL, &(struct config_error){0});
	assert_non_null(base);
	for (size_t i = 0; i < config_key_count(); i++) {
		enum config_apply apply;
		enum config_reload r = config_key_info(i, name, sizeof(name), &apply);
		const struct wst_config *c = NULL;
		struct config_change ch;

		for (size_t j = 0; j < sizeof(changed) / sizeof(changed[0]); j++)
			if (!strcmp(changed[j].key, name))
				c = load_with(name, changed[j].value);
		if (!c)
			fail_msg("no changed value for config key %s in this test", name);
		config_diff(base, c, &ch);
		assert_int_equal(ch.reconnect, r == RELOAD_RECONNECT);
		assert_int_equal(ch.apply, r == RELOAD_LIVE ? apply : APPLY_NONE);
		if ((r == RELOAD_RESTART) != (strstr(ch.restart_keys, name) != NULL))
			fail_msg("%s: restart keys '%s'", name, ch.restart_keys);
		config_diff(c, c, &ch);
		assert_false(ch.reconnect);
		assert_int_equal(ch.apply, APPLY_NONE);
		assert_string_equal(ch.restart_keys, "");
		config_free(c);
	}
	config_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(loads_defaults_with_url_alone),
		cmocka_unit_test_teardown(loads_a_full_file, teardown),
		cmocka_unit_test_teardown(url_override_wins_over_the_file, teardown),
		cmocka_unit_test_teardown(reports_syntax_errors_with_line, teardown),
		cmocka_unit_test_teardown(reports_unknown_keys_and_groups_with_line, teardown),
		cmocka_unit_test_teardown(reports_bad_types_and_ranges_with_line, teardown),
		cmocka_unit_test_teardown(reports_bad_urls_in_file_and_on_command_line, teardown),
		cmocka_unit_test_teardown(loads_lists_headers_and_enums, teardown),
		cmocka_unit_test_teardown(reports_bad_lists_headers_and_pairs, teardown),
		cmocka_unit_test(checks_the_network_keys),
		cmocka_unit_test_teardown(checks_paths_of_file_keys_only, teardown),
		cmocka_unit_test(reports_a_missing_file),
		cmocka_unit_test(every_key_has_a_reload_class),
		cmocka_unit_test(every_live_key_names_its_applier),
		cmocka_unit_test_teardown(reload_classes_follow_the_key_table, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

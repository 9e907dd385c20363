#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "resolve.h"

static struct sockaddr_storage addr(const char *text, unsigned scope)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_scope_id = scope;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

/* The host: eth0 (index 2) on 192.0.2.0/24 and 2001:db8::/64, wwan0 (index 3) on 10.64.0.7/30 */
static bool unbound(const char *server, unsigned scope, unsigned iface)
{
	struct sockaddr_storage s = addr(server, scope);
	struct resolve_local own[] = {
	    {addr("127.0.0.1", 0), 8, 1},    {addr("192.0.2.1", 0), 24, 2},
	    {addr("2001:db8::1", 0), 64, 2}, {addr("10.64.0.7", 0), 30, 3},
	    {addr("fe80::1", 0), 64, 2},
	};

	return resolve_server_unbound((struct sockaddr *)&s, iface, own,
				      sizeof(own) / sizeof(own[0]));
}

/* The systemd-resolved stub, a local dnsmasq: only lo reaches them, so no device binding */
static void resolvers_on_this_host_are_asked_unbound(void **state)
{
	assert_true(unbound("127.0.0.53", 0, 3));
	assert_true(unbound("127.0.0.1", 0, 3));
	assert_true(unbound("::1", 0, 3));
	assert_true(unbound("::ffff:127.0.0.53", 0, 3));
	assert_true(unbound("192.0.2.1", 0, 3));
	assert_true(unbound("2001:db8::1", 0, 3));
	assert_true(unbound("10.64.0.7", 0, 3));
}

/* The LAN's resolver while the link is bound to wwan0: only eth0 reaches it */
static void resolvers_on_another_interfaces_network_are_asked_unbound(void **state)
{
	assert_true(unbound("192.0.2.53", 0, 3));
	assert_true(unbound("2001:db8::53", 0, 3));
	/* bound to eth0 itself, or not to an interface at all: as the link is */
	assert_false(unbound("192.0.2.53", 0, 2));
	assert_false(unbound("192.0.2.53", 0, 0));
}

static void resolvers_elsewhere_are_asked_through_the_interface(void **state)
{
	assert_false(unbound("10.64.0.5", 0, 3)); /* the cellular network's own */
	assert_false(unbound("9.9.9.9", 0, 3));	  /* beyond every attached network */
	assert_false(unbound("2001:db8:1::53", 0, 3));
	assert_false(unbound("::ffff:192.0.2.53", 0, 3));
	assert_false(unbound("128.0.0.53", 0, 3));
	/* a link-local resolver: only its own interface reaches it */
	assert_false(unbound("fe80::53", 3, 3));
	assert_true(unbound("fe80::53", 2, 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(resolvers_on_this_host_are_asked_unbound),
	    cmocka_unit_test(resolvers_on_another_interfaces_network_are_asked_unbound),
	    cmocka_unit_test(resolvers_elsewhere_are_asked_through_the_interface),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

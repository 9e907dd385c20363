/* When a kept TLS session may be offered again (src/net/tls_session.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tls_session.h"

static const unsigned char blob[] = "serialised session";

static void id_of(const char *ca, const char *cert, unsigned char id[TLS_SESSION_ID_LEN])
{
	const void *parts[] = {ca, cert};
	const size_t lens[] = {strlen(ca), strlen(cert)};

	tls_session_identity(id, parts, lens, 2);
}

static void put(struct tls_sessions *c, const char *host, unsigned port, const unsigned char *id,
		uint32_t lifetime, bool ticket, int64_t now)
{
	assert_int_equal(tls_sessions_put(c, c->generation, host, port, id, blob, sizeof(blob),
					  lifetime, ticket, now),
			 0);
}

static void found_for_the_same_server_and_identity_only(void **state)
{
	struct tls_sessions c = {0};
	unsigned char id[TLS_SESSION_ID_LEN];
	const struct tls_session *s;

	id_of("ca", "cert A", id);
	assert_null(tls_sessions_find(&c, "example.net", 443, id, 100));
	put(&c, "example.net", 443, id, 3600, true, 100);
	s = tls_sessions_find(&c, "example.net", 443, id, 200);
	assert_non_null(s);
	assert_memory_equal(s->blob, blob, sizeof(blob));
	assert_null(tls_sessions_find(&c, "example.net", 8443, id, 200));
	assert_null(tls_sessions_find(&c, "example.org", 443, id, 200));
	assert_int_equal(tls_sessions_count(&c), 1);
	tls_sessions_forget(&c);
}

static void another_identity_drops_it(void **state)
{
	struct tls_sessions c = {0};
	unsigned char a[TLS_SESSION_ID_LEN], b[TLS_SESSION_ID_LEN];

	id_of("ca", "cert A", a);
	id_of("ca", "cert B", b); /* the client certificate was replaced on disk */
	assert_memory_not_equal(a, b, sizeof(a));
	put(&c, "h", 1, a, 3600, true, 0);
	assert_null(tls_sessions_find(&c, "h", 1, b, 1));
	/* and it stays dropped: going back to A does not bring it back */
	assert_null(tls_sessions_find(&c, "h", 1, a, 1));
	assert_int_equal(tls_sessions_count(&c), 0);
}

static void parts_cannot_run_together(void **state)
{
	unsigned char a[TLS_SESSION_ID_LEN], b[TLS_SESSION_ID_LEN];

	id_of("ab", "c", a);
	id_of("a", "bc", b);
	assert_memory_not_equal(a, b, sizeof(a));
}

static void bounded_by_the_ticket_lifetime(void **state)
{
	struct tls_sessions c = {0};
	unsigned char id[TLS_SESSION_ID_LEN];

	id_of("ca", "", id);
	put(&c, "h", 1, id, 300, true, 1000);
	assert_non_null(tls_sessions_find(&c, "h", 1, id, 1299));
	assert_null(tls_sessions_find(&c, "h", 1, id, 1300));
	/* a ticket claiming more than TLS 1.3 allows gets seven days */
	put(&c, "h", 1, id, 30 * 86400, true, 0);
	assert_non_null(tls_sessions_find(&c, "h", 1, id, TLS_SESSION_MAX_LIFETIME_S - 1));
	assert_null(tls_sessions_find(&c, "h", 1, id, TLS_SESSION_MAX_LIFETIME_S));
	/* a session ID (no ticket) and a ticket without a lifetime: a day */
	put(&c, "h", 1, id, 0, false, 0);
	assert_null(tls_sessions_find(&c, "h", 1, id, TLS_SESSION_ID_LIFETIME_S));
	put(&c, "h", 1, id, 0, true, 0);
	assert_non_null(tls_sessions_find(&c, "h", 1, id, TLS_SESSION_ID_LIFETIME_S - 1));
	tls_sessions_forget(&c);
}

static void forget_drops_all_and_stale_attempts_keep_nothing(void **state)
{
	struct tls_sessions c = {0};
	unsigned char id[TLS_SESSION_ID_LEN];
	uint64_t before;

	id_of("ca", "", id);
	put(&c, "a", 1, id, 60, true, 0);
	put(&c, "b", 1, id, 60, true, 0);
	before = c.generation;
	tls_sessions_forget(&c); /* a reload touched tls.* */
	assert_int_equal(tls_sessions_count(&c), 0);
	/* the link that was up during the reload ends now: its session stays out */
	assert_int_equal(tls_sessions_put(&c, before, "a", 1, id, blob, sizeof(blob), 60, true, 0),
			 0);
	assert_int_equal(tls_sessions_count(&c), 0);
	put(&c, "a", 1, id, 60, true, 0);
	assert_int_equal(tls_sessions_count(&c), 1);
	tls_sessions_forget(&c);
}

static void the_least_recently_used_server_makes_room(void **state)
{
	struct tls_sessions c = {0};
	unsigned char id[TLS_SESSION_ID_LEN];
	char host[8];

	id_of("ca", "", id);
	for (unsigned i = 0; i < TLS_SESSION_SLOTS; i++) {
		snprintf(host, sizeof(host), "h%u", i);
		put(&c, host, 1, id, 60, true, 0);
	}
	assert_non_null(tls_sessions_find(&c, "h0", 1, id, 1)); /* h1 is now the oldest */
	put(&c, "new", 1, id, 60, true, 0);
	assert_int_equal(tls_sessions_count(&c), TLS_SESSION_SLOTS);
	assert_null(tls_sessions_find(&c, "h1", 1, id, 1));
	assert_non_null(tls_sessions_find(&c, "h0", 1, id, 1));
	assert_non_null(tls_sessions_find(&c, "new", 1, id, 1));
	/* the same server again replaces its own session, not another's */
	put(&c, "new", 1, id, 60, true, 0);
	assert_int_equal(tls_sessions_count(&c), TLS_SESSION_SLOTS);
	tls_sessions_drop(&c, "new", 1);
	assert_int_equal(tls_sessions_count(&c), TLS_SESSION_SLOTS - 1);
	tls_sessions_forget(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(found_for_the_same_server_and_identity_only),
	    cmocka_unit_test(another_identity_drops_it),
	    cmocka_unit_test(parts_cannot_run_together),
	    cmocka_unit_test(bounded_by_the_ticket_lifetime),
	    cmocka_unit_test(forget_drops_all_and_stale_attempts_keep_nothing),
	    cmocka_unit_test(the_least_recently_used_server_makes_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

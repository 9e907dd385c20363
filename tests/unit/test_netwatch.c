#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "netwatch.h"

struct seen {
	int n;
	enum net_change what[8];
	char addr[8][64];
	unsigned prefix[8];
};

static void note(void *ud, enum net_change what, const struct sockaddr_storage *a, unsigned prefix)
{
	struct seen *s = ud;

	s->what[s->n] = what;
	s->prefix[s->n] = prefix;
	s->addr[s->n][0] = '\0';
	if (a && a->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, s->addr[s->n], 64);
	else if (a && a->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, s->addr[s->n],
			  64);
	s->n++;
}

/* Append one message to buf at *off: header, body, then one attribute (or none). */
static void put(unsigned char *buf, size_t *off, int type, const void *body, size_t blen, int atype,
		const void *adata, size_t alen)
{
	struct nlmsghdr *h = (struct nlmsghdr *)(buf + *off);
	size_t len = NLMSG_LENGTH(blen);

	memset(h, 0, NLMSG_SPACE(blen) + RTA_SPACE(alen));
	memcpy(NLMSG_DATA(h), body, blen);
	if (adata) {
		struct rtattr *rta = (struct rtattr *)((unsigned char *)h + NLMSG_ALIGN(len));

		rta->rta_type = (unsigned short)atype;
		rta->rta_len = (unsigned short)RTA_LENGTH(alen);
		memcpy(RTA_DATA(rta), adata, alen);
		len = NLMSG_ALIGN(len) + RTA_SPACE(alen);
	}
	h->nlmsg_type = (unsigned short)type;
	h->nlmsg_len = (unsigned)len;
	*off += NLMSG_ALIGN(len);
}

static void reports_removed_addresses_and_default_routes(void **state)
{
	unsigned char buf[1024] __attribute__((aligned(4)));
	struct ifaddrmsg v4 = {.ifa_family = AF_INET}, v6 = {.ifa_family = AF_INET6};
	struct rtmsg dflt = {
	    .rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_type = RTN_UNICAST};
	struct rtmsg net = dflt, local = dflt;
	unsigned char a4[4], a6[16];
	struct seen s = {0};
	size_t off = 0;

	net.rtm_dst_len = 24;
	local.rtm_table = RT_TABLE_LOCAL;
	local.rtm_type = RTN_LOCAL;
	inet_pton(AF_INET, "192.0.2.1", a4);
	inet_pton(AF_INET6, "2001:db8::1", a6);
	put(buf, &off, RTM_DELADDR, &v4, sizeof(v4), IFA_LOCAL, a4, 4);
	put(buf, &off, RTM_DELADDR, &v6, sizeof(v6), IFA_ADDRESS, a6, 16);
	put(buf, &off, RTM_NEWROUTE, &dflt, sizeof(dflt), 0, NULL, 0);
	put(buf, &off, RTM_NEWROUTE, &net, sizeof(net), 0, NULL, 0);	 /* not a default route */
	put(buf, &off, RTM_DELROUTE, &local, sizeof(local), 0, NULL, 0); /* local table */
	put(buf, &off, RTM_DELROUTE, &net, sizeof(net), RTA_DST, a4, 4);
	put(buf, &off, RTM_NEWADDR, &v4, sizeof(v4), IFA_LOCAL, a4, 4); /* not a loss */
	netwatch_parse(buf, off, note, &s);

	assert_int_equal(s.n, 4);
	assert_int_equal(s.what[0], NET_ADDR_GONE);
	assert_string_equal(s.addr[0], "192.0.2.1");
	assert_int_equal(s.what[1], NET_ADDR_GONE);
	assert_string_equal(s.addr[1], "2001:db8::1");
	assert_int_equal(s.what[2], NET_DEFAULT_ROUTE);
	assert_int_equal(s.what[3], NET_ROUTE_GONE);
	assert_string_equal(s.addr[3], "192.0.2.1");
	assert_int_equal(s.prefix[3], 24);
}

static struct sockaddr_storage sa(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		ss.ss_family = AF_INET6;
		assert_int_equal(
		    inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	} else {
		ss.ss_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr),
				 1);
	}
	return ss;
}

static bool covers(const char *dst, unsigned prefix, const char *peer)
{
	struct sockaddr_storage d = sa(dst), p = sa(peer);

	return netwatch_route_covers(&d, prefix, &p);
}

/* A route that went away matters to the link only if it covers the link's peer. */
static void a_route_matters_only_when_it_covers_the_peer(void **state)
{
	assert_true(covers("0.0.0.0", 0, "198.51.100.10"));	  /* the default route */
	assert_true(covers("198.51.100.0", 24, "198.51.100.10")); /* its network */
	assert_true(covers("198.51.100.10", 32, "198.51.100.10"));
	assert_true(covers("::", 0, "2001:db8::10"));
	assert_true(covers("2001:db8::", 64, "2001:db8::10"));
	/* an unrelated veth's network, or its IPv6 link-local route */
	assert_false(covers("203.0.113.0", 24, "198.51.100.10"));
	assert_false(covers("198.51.100.11", 32, "198.51.100.10"));
	assert_false(covers("fe80::", 64, "2001:db8::10"));
	assert_false(covers("fe80::", 64, "198.51.100.10"));
	assert_false(covers("0.0.0.0", 0, "2001:db8::10"));
	assert_false(covers("198.51.100.0", 33, "198.51.100.10"));
	/* messages were lost: anything may be gone */
	assert_true(netwatch_route_covers(NULL, 0, NULL));
}

/* From a real netlink message: the route's destination comes through parse to the decision. */
static void parsed_route_of_another_network_does_not_cover_the_peer(void **state)
{
	unsigned char buf[256] __attribute__((aligned(4)));
	struct rtmsg rt = {.rtm_family = AF_INET,
			   .rtm_table = RT_TABLE_MAIN,
			   .rtm_type = RTN_UNICAST,
			   .rtm_dst_len = 24};
	unsigned char other[4] = {203, 0, 113, 0}, mine[4] = {198, 51, 100, 0};
	struct sockaddr_storage peer = sa("198.51.100.10"), d;
	struct seen s = {0};
	size_t off = 0;

	put(buf, &off, RTM_DELROUTE, &rt, sizeof(rt), RTA_DST, other, 4);
	put(buf, &off, RTM_DELROUTE, &rt, sizeof(rt), RTA_DST, mine, 4);
	netwatch_parse(buf, off, note, &s);
	assert_int_equal(s.n, 2);
	d = sa(s.addr[0]);
	assert_false(netwatch_route_covers(&d, s.prefix[0], &peer));
	d = sa(s.addr[1]);
	assert_true(netwatch_route_covers(&d, s.prefix[1], &peer));
}

static void ignores_truncated_messages(void **state)
{
	unsigned char buf[256] __attribute__((aligned(4)));
	struct ifaddrmsg v4 = {.ifa_family = AF_INET};
	unsigned char a4[4] = {192, 0, 2, 1};
	struct seen s = {0};
	size_t off = 0;

	put(buf, &off, RTM_DELADDR, &v4, sizeof(v4), IFA_LOCAL, a4, 4);
	netwatch_parse(buf, off - 8, note, &s); /* the datagram ends inside the message */
	netwatch_parse(buf, 3, note, &s);
	assert_int_equal(s.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(reports_removed_addresses_and_default_routes),
	    cmocka_unit_test(ignores_truncated_messages),
	    cmocka_unit_test(a_route_matters_only_when_it_covers_the_peer),
	    cmocka_unit_test(parsed_route_of_another_network_does_not_cover_the_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

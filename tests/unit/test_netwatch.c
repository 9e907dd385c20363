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
};

static void note(void *ud, enum net_change what, const struct sockaddr_storage *a)
{
	struct seen *s = ud;

	s->what[s->n] = what;
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
	put(buf, &off, RTM_DELROUTE, &net, sizeof(net), 0, NULL, 0);
	put(buf, &off, RTM_NEWADDR, &v4, sizeof(v4), IFA_LOCAL, a4, 4); /* not a loss */
	netwatch_parse(buf, off, note, &s);

	assert_int_equal(s.n, 4);
	assert_int_equal(s.what[0], NET_ADDR_GONE);
	assert_string_equal(s.addr[0], "192.0.2.1");
	assert_int_equal(s.what[1], NET_ADDR_GONE);
	assert_string_equal(s.addr[1], "2001:db8::1");
	assert_int_equal(s.what[2], NET_DEFAULT_ROUTE);
	assert_int_equal(s.what[3], NET_ROUTE_GONE);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

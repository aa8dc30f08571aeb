/*
 * test_netguard.c — the SSRF classifier, table-driven: every refused range
 * with the addresses just inside and just outside each edge, the IPv6 forms
 * that carry an IPv4 address (private and public inside), and plain public
 * addresses that must pass.
 */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "netguard.h"

struct row {
	const char *addr;
	const char *why;	/* NULL: public */
};

static const struct row rows[] = {
	/* unspecified 0/8 */
	{ "0.0.0.0", "unspecified" }, { "0.255.255.255", "unspecified" },
	{ "1.0.0.0", NULL },
	/* private 10/8 */
	{ "9.255.255.255", NULL }, { "10.0.0.0", "private" },
	{ "10.255.255.255", "private" }, { "11.0.0.0", NULL },
	/* CGNAT 100.64/10 */
	{ "100.63.255.255", NULL }, { "100.64.0.0", "CGNAT" },
	{ "100.127.255.255", "CGNAT" }, { "100.128.0.0", NULL },
	/* loopback 127/8 */
	{ "126.255.255.255", NULL }, { "127.0.0.0", "loopback" },
	{ "127.0.0.1", "loopback" }, { "127.255.255.255", "loopback" },
	{ "128.0.0.0", NULL },
	/* link-local 169.254/16 */
	{ "169.253.255.255", NULL }, { "169.254.0.0", "link-local" },
	{ "169.254.169.254", "link-local" }, { "169.254.255.255", "link-local" },
	{ "169.255.0.0", NULL },
	/* private 172.16/12 */
	{ "172.15.255.255", NULL }, { "172.16.0.0", "private" },
	{ "172.31.255.255", "private" }, { "172.32.0.0", NULL },
	/* reserved 192.0.0/24 */
	{ "191.255.255.255", NULL }, { "192.0.0.0", "reserved" },
	{ "192.0.0.255", "reserved" }, { "192.0.1.0", NULL },
	/* private 192.168/16 */
	{ "192.167.255.255", NULL }, { "192.168.0.0", "private" },
	{ "192.168.255.255", "private" }, { "192.169.0.0", NULL },
	/* benchmark 198.18/15 */
	{ "198.17.255.255", NULL }, { "198.18.0.0", "benchmark" },
	{ "198.19.255.255", "benchmark" }, { "198.20.0.0", NULL },
	/* multicast 224/4, reserved 240/4, broadcast */
	{ "223.255.255.255", NULL }, { "224.0.0.0", "multicast" },
	{ "239.255.255.255", "multicast" }, { "240.0.0.0", "reserved" },
	{ "255.255.255.254", "reserved" }, { "255.255.255.255", "broadcast" },
	/* public v4, documentation ranges included on purpose */
	{ "8.8.8.8", NULL }, { "1.1.1.1", NULL }, { "198.51.100.7", NULL },
	{ "203.0.113.1", NULL },

	/* IPv6 specials */
	{ "::", "unspecified" }, { "::1", "loopback" },
	{ "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL },
	{ "fc00::", "private" }, { "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private" },
	{ "fe00::", NULL }, { "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL },
	{ "fe80::", "link-local" }, { "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local" },
	{ "fec0::1", "private" },
	{ "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private" },
	{ "ff00::", "multicast" }, { "ff02::1", "multicast" },
	/* public v6 */
	{ "2606:4700:4700::1111", NULL }, { "2001:4860:4860::8888", NULL },
	{ "2a00:1450:4001::1", NULL },

	/* IPv4-mapped ::ffff:0:0/96 */
	{ "::ffff:127.0.0.1", "loopback" }, { "::ffff:10.1.2.3", "private" },
	{ "::ffff:169.254.169.254", "link-local" }, { "::ffff:0.0.0.0", "unspecified" },
	{ "::ffff:8.8.8.8", NULL },
	/* IPv4-compatible ::/96 */
	{ "::127.0.0.1", "loopback" }, { "::192.168.1.1", "private" },
	{ "::0.0.0.2", "unspecified" }, { "::8.8.8.8", NULL },
	/* NAT64 64:ff9b::/96 */
	{ "64:ff9b::127.0.0.1", "loopback" }, { "64:ff9b::100.64.0.1", "CGNAT" },
	{ "64:ff9b::8.8.8.8", NULL },
	{ "64:ff9a::127.0.0.1", NULL },	/* one bit outside the prefix */
	/* 6to4 2002::/16: the IPv4 is in bits 16..47 */
	{ "2002:7f00:1::", "loopback" }, { "2002:c0a8:101::1", "private" },
	{ "2002:a9fe:a9fe::", "link-local" }, { "2002:0808:0808::1", NULL },
	{ "2003:7f00:1::", NULL },
	/* Teredo 2001::/32: client IPv4 = last 32 bits XOR ffffffff */
	{ "2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback" },	/* 127.0.0.1 */
	{ "2001:0:4136:e378:8000:63bf:f5ff:fefe", "private" },	/* 10.0.1.1 */
	{ "2001:0:4136:e378:8000:63bf:f7f7:f7f7", NULL },	/* 8.8.8.8 */
	{ "2001:1::7f00:1", NULL },	/* 2001:1::/32 is not Teredo */
};

static const char *classify_text(const char *text)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

	if (inet_pton(AF_INET, text, &in.sin_addr) == 1)
		return pl_netguard_classify((struct sockaddr *)&in, sizeof in);
	ck_assert_msg(inet_pton(AF_INET6, text, &in6.sin6_addr) == 1, "bad test address %s", text);
	return pl_netguard_classify((struct sockaddr *)&in6, sizeof in6);
}

START_TEST(test_table)
{
	const struct row *r = &rows[_i];
	const char *why = classify_text(r->addr);

	if (!r->why)
		ck_assert_msg(why == NULL, "%s: want public, got %s", r->addr, why);
	else
		ck_assert_msg(why && strcmp(why, r->why) == 0, "%s: want %s, got %s",
			      r->addr, r->why, why ? why : "public");
}
END_TEST

START_TEST(test_bad_input)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_un_like { sa_family_t f; char path[20]; } un = { AF_UNIX, "x" };

	ck_assert_ptr_nonnull(pl_netguard_classify(NULL, 0));
	/* a truncated sockaddr_in must not be read past its length */
	ck_assert_ptr_nonnull(pl_netguard_classify((struct sockaddr *)&in, 4));
	ck_assert_str_eq(pl_netguard_classify((struct sockaddr *)&un, sizeof un),
			 "not an IP address");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("netguard");
	TCase *tc = tcase_create("classify");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_table, 0, (int)(sizeof rows / sizeof *rows));
	tcase_add_test(tc, test_bad_input);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/*
 * netguard.c — see netguard.h.  Decides whether an address a download is
 * about to connect to may be reached from a daemon that fetches URLs other
 * people wrote.  The answer is a static reason so that the caller can put it
 * straight into an item's error ("refused to connect to ::1 (loopback)").
 *
 * Pure table lookups on the numeric address: no resolver, no syscalls, so it
 * is safe to call from libcurl's open-socket callback on any thread.  IPv6
 * forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo)
 * are unwrapped and judged by that address, because a host or gateway may
 * deliver them to it: ::ffff:127.0.0.1 reaches loopback as surely as
 * 127.0.0.1 does.  Documentation ranges (192.0.2/24, 198.51.100/24,
 * 203.0.113/24, 2001:db8::/32) are left public: nothing routes them, and
 * tests use them to stand for "a public host".
 */
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "netguard.h"

struct v4_range {
	uint32_t net;
	unsigned bits;
	const char *why;
};

/* Most specific first: 255.255.255.255 lies inside 240/4. */
static const struct v4_range v4_ranges[] = {
	{ 0xffffffffu, 32, "broadcast" },
	{ 0x00000000u, 8, "unspecified" },	/* 0.0.0.0/8: "this network" */
	{ 0x0a000000u, 8, "private" },		/* 10/8 */
	{ 0x64400000u, 10, "CGNAT" },		/* 100.64/10 */
	{ 0x7f000000u, 8, "loopback" },		/* 127/8 */
	{ 0xa9fe0000u, 16, "link-local" },	/* 169.254/16: cloud metadata lives here */
	{ 0xac100000u, 12, "private" },		/* 172.16/12 */
	{ 0xc0000000u, 24, "reserved" },	/* 192.0.0/24: IETF protocol assignments */
	{ 0xc0a80000u, 16, "private" },		/* 192.168/16 */
	{ 0xc6120000u, 15, "benchmark" },	/* 198.18/15: lab networks */
	{ 0xe0000000u, 4, "multicast" },	/* 224/4 */
	{ 0xf0000000u, 4, "reserved" },		/* 240/4 */
};

static const char *classify_v4(uint32_t a)
{
	for (size_t i = 0; i < sizeof v4_ranges / sizeof *v4_ranges; i++) {
		const struct v4_range *r = &v4_ranges[i];
		uint32_t mask = r->bits ? ~0u << (32 - r->bits) : 0;

		if ((a & mask) == r->net)
			return r->why;
	}
	return NULL;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* The IPv4 address an IPv6 address stands for, if it is one of the forms
 * that embed one.  1 and *v4 set, else 0. */
static int embedded_v4(const uint8_t *a, uint32_t *v4)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };

	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 || all_zero(a, 12)) {
		*v4 = get32(a + 12);	/* ::ffff:0:0/96, 64:ff9b::/96, ::/96 */
		return 1;
	}
	if (a[0] == 0x20 && a[1] == 0x02) {	/* 6to4 2002:AABB:CCDD::/48 */
		*v4 = get32(a + 2);
		return 1;
	}
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
		*v4 = get32(a + 12) ^ 0xffffffffu;	/* Teredo client, obfuscated */
		return 1;
	}
	return 0;
}

static const char *classify_v6(const uint8_t *a)
{
	uint32_t v4;

	/* :: and ::1 would otherwise be read as IPv4-compatible 0.0.0.0 and
	 * 0.0.0.1; name them for what they are. */
	if (all_zero(a, 15) && a[15] <= 1)
		return a[15] ? "loopback" : "unspecified";
	if (embedded_v4(a, &v4))
		return classify_v4(v4);
	if ((a[0] & 0xfe) == 0xfc)
		return "private";		/* fc00::/7 unique local */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return "link-local";		/* fe80::/10 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return "private";		/* fec0::/10 site-local, deprecated */
	if (a[0] == 0xff)
		return "multicast";		/* ff00::/8 */
	return NULL;
}

const char *pl_netguard_classify(const struct sockaddr *sa, socklen_t len)
{
	if (!sa || len < (socklen_t)sizeof sa->sa_family)
		return "no address";
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return classify_v4(ntohl(in->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		return classify_v6(in6->sin6_addr.s6_addr);
	}
	return "not an IP address";
}

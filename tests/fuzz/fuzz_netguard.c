/*
 * fuzz_netguard.c — libFuzzer target for the SSRF address classifier
 * (src/netguard.c, pl_netguard_classify).
 *
 * The input is raw address bytes.  Besides "never crash, never read past
 * len", the target checks the promise netguard.h makes: an IPv4 address and
 * every IPv6 form that carries it (mapped ::ffff:a.b.c.d, compatible
 * ::a.b.c.d, NAT64 64:ff9b::a.b.c.d, 6to4 2002:AABB:CCDD::, Teredo with the
 * client address inverted) get the same verdict, public or refused.  A
 * disagreement is exactly the hole an SSRF would use.
 *
 * Layout: byte 0 picks sa_family and a socklen for the raw call; bytes 1..4
 * are the IPv4 address; bytes 1..16 the raw IPv6 address.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "netguard.h"

static const char *v4_verdict(const uint8_t a[4])
{
	struct sockaddr_in in = { .sin_family = AF_INET };

	memcpy(&in.sin_addr, a, 4);
	return pl_netguard_classify((const struct sockaddr *)&in, sizeof in);
}

static const char *v6_verdict(const uint8_t a[16])
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

	memcpy(in6.sin6_addr.s6_addr, a, 16);
	return pl_netguard_classify((const struct sockaddr *)&in6, sizeof in6);
}

static void fmt6(const uint8_t a[16], char *buf)
{
	if (!inet_ntop(AF_INET6, a, buf, INET6_ADDRSTRLEN))
		strcpy(buf, "?");
}

/* The IPv6 form built by prefix + v4 at off (inverted when invert) must
 * agree with the bare IPv4 verdict. */
static void same_verdict(const uint8_t v4[4], const char *want, const uint8_t *prefix,
			 size_t plen, size_t off, bool invert)
{
	uint8_t a[16] = { 0 };
	char text[INET6_ADDRSTRLEN];
	const char *got;

	memcpy(a, prefix, plen);
	for (int i = 0; i < 4; i++)
		a[off + (size_t)i] = invert ? (uint8_t)~v4[i] : v4[i];
	got = v6_verdict(a);
	fmt6(a, text);
	FUZZ_CHECK((got == NULL) == (want == NULL),
		   "%u.%u.%u.%u is %s but %s is %s", v4[0], v4[1], v4[2], v4[3],
		   want ? want : "public", text, got ? got : "public");
}

/* An odd sockaddr: any family, any length up to the buffer, never a crash,
 * always a non-empty reason unless it is a complete inet/inet6 address. */
static void raw_call(const uint8_t *data, size_t size)
{
	union {
		struct sockaddr sa;
		struct sockaddr_storage ss;
	} u;
	static const sa_family_t fams[] = { AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC };
	sa_family_t fam = fams[data[0] & 3];
	socklen_t len = (socklen_t)((data[0] >> 2) & 63) ;
	const char *why;

	memset(&u, 0, sizeof u);
	memcpy((char *)&u + sizeof(sa_family_t), data + 1,
	       size - 1 < sizeof u - sizeof(sa_family_t) ? size - 1 : sizeof u - sizeof(sa_family_t));
	u.sa.sa_family = fam;
	why = pl_netguard_classify(&u.sa, len);
	if ((fam == AF_INET && len >= sizeof(struct sockaddr_in)) ||
	    (fam == AF_INET6 && len >= sizeof(struct sockaddr_in6)))
		return;
	FUZZ_CHECK(why && *why, "incomplete address (family %u, len %u) judged public",
		   (unsigned)fam, (unsigned)len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	static const uint8_t nat64[4] = { 0x00, 0x64, 0xff, 0x9b };
	static const uint8_t sixto4[2] = { 0x20, 0x02 };
	static const uint8_t teredo[4] = { 0x20, 0x01, 0x00, 0x00 };
	static const uint8_t none[1] = { 0 };
	uint8_t v4[4] = { 0 }, v6[16] = { 0 };
	const char *want, *why;

	if (size == 0)
		return 0;
	raw_call(data, size);
	memcpy(v4, data + 1, size - 1 < 4 ? size - 1 : 4);
	memcpy(v6, data + 1, size - 1 < 16 ? size - 1 : 16);

	want = v4_verdict(v4);
	FUZZ_CHECK(!want || *want, "empty reason");
	same_verdict(v4, want, mapped, sizeof mapped, 12, false);
	same_verdict(v4, want, nat64, sizeof nat64, 12, false);
	same_verdict(v4, want, sixto4, sizeof sixto4, 2, false);
	same_verdict(v4, want, teredo, sizeof teredo, 12, true);
	/* ::a.b.c.d, except :: and ::1, which are named for themselves and
	 * are refused either way */
	same_verdict(v4, want, none, sizeof none, 12, false);

	why = v6_verdict(v6);
	FUZZ_CHECK(!why || *why, "empty reason");
	return 0;
}

/*
 * fuzz_imgguard.c — libFuzzer target for the resize stage's pre-check
 * (src/imgguard.c), which walks downloaded bytes before libvips does.
 *
 * The input is the file; its signature picks the walker as resize.c does
 * (anything else goes to the PNG walker, which must refuse it).  Besides
 * ASan's bounds (the input is copied to a buffer of exactly its size), the
 * invariants are:
 *   - the result is 0, -EINVAL, -EFBIG or -ENOMEM;
 *   - refused: a one-line reason, and the buffer and length untouched;
 *   - passed: no reason, the length never grows, and a second pass passes
 *     and changes nothing (stripping is complete in one go);
 *   - a passed PNG starts with its signature and IHDR, ends with IEND (whose
 *     length libpng does not care about), holds
 *     no text chunk, and its chunks are input chunks, whole and in order;
 *   - a passed WebP's RIFF size is its length.
 * A WebP also goes, from a fresh copy, through pl_imgguard_webp_strip (what
 * resize.c runs on libvips' webpsave output), whose invariants are:
 *   - the result is 0 or -EINVAL, and -EINVAL only where the input walker
 *     also refused the file (the two share their structural checks);
 *     refused: the buffer and length untouched;
 *   - stripped: the RIFF size is the length, no EXIF, XMP or ICCP chunk is
 *     left, every chunk is an input chunk, whole and in order (a VP8X's
 *     metadata flags aside), the VP8X the walker edits (the last) claims
 *     none of them, and both a second strip and the input walker pass it
 *     unchanged.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "imgguard.h"

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int guard(char kind, uint8_t *b, size_t *len, char *why, size_t whylen)
{
	switch (kind) {
	case 'j':
		return pl_imgguard_jpeg(b, *len, why, whylen);
	case 'w':
		return pl_imgguard_webp(b, len, why, whylen);
	case 't':
		return pl_imgguard_tiff(b, *len, why, whylen);
	default:
		return pl_imgguard_png(b, len, why, whylen);
	}
}

static char kind_of(const uint8_t *b, size_t n)
{
	if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return 'j';
	if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4))
		return 'w';
	if (n >= 4 && (!memcmp(b, "II", 2) || !memcmp(b, "MM", 2)))
		return 't';
	return 'p';
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The bytes of the WebP chunk at pos in a RIFF ending at riff: header, data
 * and pad byte, which may be missing at the very end (as the walker takes
 * it); 0 if the chunk does not fit. */
static size_t webp_whole(const uint8_t *b, size_t riff, size_t pos)
{
	size_t sz, whole;

	if (riff - pos < 8)
		return 0;
	sz = le32(b + pos + 4);
	if (sz > riff - pos - 8)
		return 0;
	whole = 8 + sz + (sz & 1);
	return whole > riff - pos ? riff - pos : whole;
}

/* The n-byte chunks a (input) and b (stripped) are the same chunk: equal
 * bytes, but for the VP8X flags of the metadata a strip may clear. */
static bool same_webp_chunk(const uint8_t *a, const uint8_t *b, size_t n)
{
	if (memcmp(a, "VP8X", 4) || n < 9)
		return !memcmp(a, b, n);
	return !memcmp(a, b, 8) && (a[8] & ~0x2c) == (b[8] & ~0x2c) && !memcmp(a + 9, b + 9, n - 9);
}

/* What pl_imgguard_webp_strip promises for the WebP in (inlen bytes), whose
 * input walk returned rin. */
static void check_webp_strip(const uint8_t *in, size_t inlen, int rin)
{
	uint8_t *b = malloc(inlen ? inlen : 1), *copy;
	size_t len = inlen, riff, inriff, o = 12, i = 12, vp8x = 0, len2;
	char why[512];
	int r;

	if (!b)
		abort();
	memcpy(b, in, inlen);
	r = pl_imgguard_webp_strip(b, &len);
	FUZZ_CHECK(r == 0 || r == -EINVAL, "strip returned %d", r);
	if (r < 0) {
		FUZZ_CHECK(rin == -EINVAL || rin == -EFBIG,
			   "strip refused what the input walker passed");
		FUZZ_CHECK(len == inlen && !memcmp(b, in, inlen), "a refused strip changed it");
		free(b);
		return;
	}
	FUZZ_CHECK(rin != -EINVAL, "strip passed what the input walker refused");
	FUZZ_CHECK(len >= 12 && len <= inlen && !memcmp(b, in, 4) && !memcmp(b + 8, in + 8, 4),
		   "stripped to %zu bytes from %zu, or lost its RIFF/WEBP header", len, inlen);
	inriff = (size_t)le32(in + 4) + 8;	/* within inlen: the strip passed */
	riff = (size_t)le32(b + 4) + 8;
	FUZZ_CHECK(riff == len, "stripped RIFF size %zu, length %zu", riff, len);
	while (o < len) {
		size_t n = webp_whole(b, len, o);

		FUZZ_CHECK(n, "stripped chunk at %zu runs past the end", o);
		FUZZ_CHECK(memcmp(b + o, "EXIF", 4) && memcmp(b + o, "XMP ", 4) &&
			   memcmp(b + o, "ICCP", 4), "a metadata chunk is left at %zu", o);
		if (!memcmp(b + o, "VP8X", 4) && le32(b + o + 4) >= 1)
			vp8x = o;
		for (;;) {
			size_t m;

			FUZZ_CHECK(i < inriff && (m = webp_whole(in, inriff, i)),
				   "stripped chunk at %zu is not from the input", o);
			i += m;
			if (m == n && same_webp_chunk(in + i - m, b + o, n))
				break;
		}
		o += n;
	}
	FUZZ_CHECK(!vp8x || !(b[vp8x + 8] & (0x20 | 0x08 | 0x04)),
		   "VP8X flags 0x%02x still claim metadata", b[vp8x + 8]);

	copy = malloc(len);
	if (!copy)
		abort();
	memcpy(copy, b, len);
	len2 = len;
	r = pl_imgguard_webp_strip(b, &len2);
	FUZZ_CHECK(r == 0 && len2 == len && !memcmp(copy, b, len), "a second strip changed it");
	r = pl_imgguard_webp(b, &len2, why, sizeof why);
	FUZZ_CHECK(r == 0 && len2 == len && !memcmp(copy, b, len),
		   "the input walker changed or refused a stripped WebP: %s", why);
	free(copy);
	free(b);
}

/* Every chunk of out is a whole chunk of in, in the same order. */
static void check_png(const uint8_t *in, size_t inlen, const uint8_t *out, size_t outlen)
{
	size_t o = 8, i = 8, last = 0;

	FUZZ_CHECK(outlen >= 8 + 25 + 12 && !memcmp(out, in, 8), "no signature");
	FUZZ_CHECK(!memcmp(out + 12, "IHDR", 4), "IHDR is not first");
	while (o < outlen) {
		size_t n;

		FUZZ_CHECK(outlen - o >= 12, "a cut chunk at %zu", o);
		n = be32(out + o);
		FUZZ_CHECK(n <= outlen - o - 12, "chunk at %zu runs past the end", o);
		FUZZ_CHECK(memcmp(out + o + 4, "tEXt", 4) && memcmp(out + o + 4, "zTXt", 4) &&
			   memcmp(out + o + 4, "iTXt", 4), "a text chunk is left");
		for (;;) {
			size_t m;

			FUZZ_CHECK(i + 12 <= inlen, "chunk at %zu is not from the input", o);
			m = be32(in + i);
			if (m == n && n + 12 <= inlen - i && !memcmp(in + i, out + o, n + 12)) {
				i += m + 12;
				break;
			}
			i += m + 12;
		}
		last = o;
		o += n + 12;
	}
	FUZZ_CHECK(!memcmp(out + last + 4, "IEND", 4), "IEND is not last");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b = malloc(size ? size : 1);
	char why[512], again[512];
	size_t len = size, len2;
	char kind = kind_of(data, size);
	int r;

	if (!b)
		abort();
	memcpy(b, data, size);
	why[0] = 'x', why[1] = '\0';
	r = guard(kind, b, &len, why, sizeof why);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -EFBIG || r == -ENOMEM, "returned %d", r);
	if (kind == 'w')
		check_webp_strip(data, size, r);
	if (r < 0) {
		FUZZ_CHECK(why[0] && !strchr(why, '\n'), "reason \"%s\"", why);
		FUZZ_CHECK(len == size && !memcmp(b, data, size), "a refused buffer changed");
		free(b);
		return 0;
	}
	FUZZ_CHECK(!why[0], "a reason on success: %s", why);
	FUZZ_CHECK(len <= size, "%zu bytes from %zu", len, size);
	if (kind == 'p')
		check_png(data, size, b, len);
	if (kind == 'w')
		FUZZ_CHECK(len >= 12 && (size_t)(b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24)
			   + 8 == len, "RIFF size does not match %zu", len);
	{
		uint8_t *copy = malloc(len ? len : 1);

		if (!copy)
			abort();
		memcpy(copy, b, len);
		len2 = len;
		r = guard(kind, b, &len2, again, sizeof again);
		FUZZ_CHECK(r == 0, "the second pass refused: %s", again);
		FUZZ_CHECK(len2 == len && !memcmp(copy, b, len), "the second pass changed it");
		free(copy);
	}
	free(b);
	return 0;
}

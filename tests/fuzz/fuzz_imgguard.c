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

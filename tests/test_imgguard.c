/*
 * test_imgguard.c — the resize stage's pre-check (src/imgguard.c) on files
 * crafted byte by byte here (tests/testutil.c): what is refused and why, in
 * words; what is stripped and what is kept; that a refused buffer is left
 * untouched; that the stripped files still load in libvips (the same
 * loaders the daemon runs) with their pages; and that a second pass changes
 * nothing.  The bombs themselves going through the stage are in
 * test_resize.c.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "imgguard.h"
#include "pool.h"
#include "resize.h"
#include "testutil.h"

static void setup(void)
{
	ck_assert_int_eq(pl_resize_global_init("test_imgguard"), 0);
}

/* The chunk types of a PNG, space-separated. */
static void png_types(const unsigned char *b, size_t len, char *out, size_t outlen)
{
	size_t pos = 8, k = 0;

	out[0] = '\0';
	while (pos + 12 <= len && k + 6 < outlen) {
		uint32_t n = (uint32_t)b[pos] << 24 | (uint32_t)b[pos + 1] << 16 |
			     (uint32_t)b[pos + 2] << 8 | b[pos + 3];

		k += (size_t)snprintf(out + k, outlen - k, "%s%.4s", k ? " " : "", b + pos + 4);
		pos += 12 + (size_t)n;
	}
}

static void riff_types(const unsigned char *b, size_t len, char *out, size_t outlen)
{
	size_t pos = 12, k = 0;

	out[0] = '\0';
	while (pos + 8 <= len && k + 6 < outlen) {
		uint32_t n = (uint32_t)b[pos + 4] | (uint32_t)b[pos + 5] << 8 |
			     (uint32_t)b[pos + 6] << 16 | (uint32_t)b[pos + 7] << 24;

		k += (size_t)snprintf(out + k, outlen - k, "%s%.4s", k ? " " : "", b + pos);
		pos += 8 + (size_t)n + (n & 1);
	}
}

/* Refused: the reason contains needle, is one line, and the bytes are as
 * they were. */
static void expect_refused(int (*guard)(unsigned char *, size_t *, char *, size_t),
			   const struct pl_test_buf *t, int err, const char *needle)
{
	unsigned char *copy = malloc(t->len);
	size_t len = t->len;
	char why[PL_REASON_MAX] = "";

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, t->b, t->len);
	ck_assert_int_eq(guard(copy, &len, why, sizeof why), err);
	ck_assert_msg(strstr(why, needle), "expected \"%s\" in: %s", needle, why);
	ck_assert_ptr_null(strchr(why, '\n'));
	ck_assert_uint_eq(len, t->len);
	ck_assert_msg(!memcmp(copy, t->b, t->len), "a refused buffer was changed");
	free(copy);
}

/* Passed: a second pass finds nothing more to do. */
static void expect_passed(int (*guard)(unsigned char *, size_t *, char *, size_t),
			  struct pl_test_buf *t)
{
	char why[PL_REASON_MAX] = "x";
	size_t again;

	ck_assert_msg(guard(t->b, &t->len, why, sizeof why) == 0, "refused: %s", why);
	ck_assert_str_eq(why, "");
	again = t->len;
	ck_assert_int_eq(guard(t->b, &again, why, sizeof why), 0);
	ck_assert_uint_eq(again, t->len);
}

static int tiff_guard(unsigned char *b, size_t *len, char *why, size_t whylen)
{
	return pl_imgguard_tiff(b, *len, why, whylen);
}

static int jpeg_guard(unsigned char *b, size_t *len, char *why, size_t whylen)
{
	return pl_imgguard_jpeg(b, *len, why, whylen);
}

static void expect_loads(const struct pl_test_buf *t, int w, int h, int pages)
{
	VipsImage *img = vips_image_new_from_buffer(t->b, t->len, "", NULL);

	ck_assert_msg(img, "does not load: %s", vips_error_buffer());
	ck_assert_int_eq(img->Xsize, w);
	ck_assert_int_eq(vips_image_get_page_height(img), h);
	ck_assert_int_eq(vips_image_get_n_pages(img), pages);
	g_object_unref(img);
}

/* ------------------------------------------------------------------- PNG */

/* The file: 144 bytes, a zTXt that claims 2 GB.  libpng allocated
 * (and zeroed) the 2 GB before finding the file short. */
START_TEST(png_chunk_claiming_more_than_the_file)
{
	struct pl_test_buf t = { 0 };

	pl_test_png_ztxt_bomb(&t);
	ck_assert_uint_eq(t.len, 144);
	expect_refused(pl_imgguard_png, &t, -EINVAL,
		       "PNG chunk zTXt at byte 33 claims 2147483632 bytes, file has 144");
	pl_test_buf_free(&t);
}
END_TEST

START_TEST(png_metadata_stripped_pixels_kept)
{
	struct pl_test_buf t = { 0 }, text = { 0 }, icc = { 0 };
	static const unsigned char gama[4] = { 0, 0, 0xb1, 0x8f }, phys[9] = { 0, 0, 0x0b, 0x13,
									      0, 0, 0x0b, 0x13, 1 };
	static const unsigned char exif[] = "MM\0*\0\0\0\x08\0\0\0\0\0\0";
	unsigned char big[4096];
	char types[256];

	memset(big, 'x', sizeof big);
	pl_test_png_start(&t, 16, 16);
	pl_test_png_chunk(&t, "tEXt", "Comment\0hello", 13);
	pl_test_png_chunk(&t, "gAMA", gama, sizeof gama);
	pl_test_png_deflated(&text, "Raw profile type exif", 'a', 1000000);
	pl_test_png_chunk(&t, "zTXt", text.b, text.len);
	pl_test_png_chunk(&t, "iTXt", "XML:com.adobe.xmp\0\0\0\0\0<x/>", 27);
	/* an ICC profile of 1 MB (not a real one: libvips ignores what lcms
	 * cannot parse) */
	pl_test_png_deflated(&icc, "icc", 0, 1000000);
	pl_test_png_chunk(&t, "iCCP", icc.b, icc.len);
	pl_test_png_chunk(&t, "sPLT", big, sizeof big);
	pl_test_png_chunk(&t, "tIME", "\x07\xe8\x01\x01\0\0\0", 7);
	pl_test_png_chunk(&t, "pHYs", phys, sizeof phys);
	pl_test_png_chunk(&t, "prVt", big, sizeof big);
	pl_test_png_chunk(&t, "eXIf", exif, sizeof exif - 1);
	pl_test_png_end(&t, 16, 16);
	pl_test_buf_add(&t, "trailing junk", 13);

	expect_passed(pl_imgguard_png, &t);
	png_types(t.b, t.len, types, sizeof types);
	ck_assert_str_eq(types, "IHDR gAMA iCCP pHYs eXIf IDAT IEND");
	ck_assert_int_eq(memcmp(t.b + t.len - 8, "IEND", 4), 0);
	expect_loads(&t, 16, 16, 1);
	pl_test_buf_free(&t);
	pl_test_buf_free(&text);
	pl_test_buf_free(&icc);
}
END_TEST

/* Found by fuzz_imgguard: an IEND with data (libpng does not mind), moved
 * down over its own type by the stripping, was no longer seen as IEND and
 * the walk ran on into the bytes after it. */
START_TEST(png_iend_with_data_moved)
{
	struct pl_test_buf t = { 0 };
	unsigned char idat_iend[64];
	char types[128];

	pl_test_png_start(&t, 4, 4);
	pl_test_png_chunk(&t, "tEXt", "Comment\0hi", 10);
	pl_test_png_end(&t, 4, 4);
	t.len -= 12;	/* IEND again, with 26 bytes of data */
	memset(idat_iend, 'i', sizeof idat_iend);
	pl_test_png_chunk(&t, "IEND", idat_iend, 26);
	pl_test_buf_add(&t, "\0\0\0\x07prVt", 8);	/* a chunk cut short */
	expect_passed(pl_imgguard_png, &t);
	png_types(t.b, t.len, types, sizeof types);
	ck_assert_str_eq(types, "IHDR IDAT IEND");
	pl_test_buf_free(&t);
}
END_TEST

/* The profile is needed for colour, so one over budget is refused; it is
 * measured by inflating through a small buffer. */
START_TEST(png_icc_profile_budget)
{
	struct pl_test_buf t = { 0 }, icc = { 0 }, fits = { 0 };
	char types[128];

	pl_test_png_deflated(&icc, "bomb", 0, PL_IMGGUARD_ICC_MAX + 1);
	pl_test_png_start(&t, 16, 16);
	pl_test_png_chunk(&t, "iCCP", icc.b, icc.len);
	pl_test_png_end(&t, 16, 16);
	expect_refused(pl_imgguard_png, &t, -EFBIG,
		       "PNG iCCP profile inflates to more than 4194304 bytes");

	/* exactly the budget passes; a second profile (libpng ignores it) goes,
	 * however large */
	pl_test_buf_free(&t);
	pl_test_png_deflated(&fits, "icc", 0, PL_IMGGUARD_ICC_MAX);
	pl_test_png_start(&t, 16, 16);
	pl_test_png_chunk(&t, "iCCP", fits.b, fits.len);
	pl_test_png_chunk(&t, "iCCP", icc.b, icc.len);
	pl_test_png_end(&t, 16, 16);
	expect_passed(pl_imgguard_png, &t);
	png_types(t.b, t.len, types, sizeof types);
	ck_assert_str_eq(types, "IHDR iCCP IDAT IEND");
	pl_test_buf_free(&t);
	pl_test_buf_free(&icc);
	pl_test_buf_free(&fits);
}
END_TEST

START_TEST(png_exif_budget)
{
	struct pl_test_buf t = { 0 };
	unsigned char *exif = calloc(1, PL_IMGGUARD_EXIF_MAX + 1);
	char types[128];

	ck_assert_ptr_nonnull(exif);
	pl_test_png_start(&t, 16, 16);
	pl_test_png_chunk(&t, "eXIf", exif, PL_IMGGUARD_EXIF_MAX);
	pl_test_png_end(&t, 16, 16);
	expect_passed(pl_imgguard_png, &t);
	png_types(t.b, t.len, types, sizeof types);
	ck_assert_str_eq(types, "IHDR eXIf IDAT IEND");
	pl_test_buf_free(&t);

	pl_test_png_start(&t, 16, 16);
	pl_test_png_chunk(&t, "eXIf", exif, PL_IMGGUARD_EXIF_MAX + 1);
	pl_test_png_end(&t, 16, 16);
	expect_passed(pl_imgguard_png, &t);
	png_types(t.b, t.len, types, sizeof types);
	ck_assert_str_eq(types, "IHDR IDAT IEND");
	pl_test_buf_free(&t);
	free(exif);
}
END_TEST

/* Every cut of a PNG is named as truncation, wherever it falls. */
START_TEST(png_every_truncation_named)
{
	struct pl_test_buf t = { 0 };

	pl_test_png_start(&t, 16, 16);
	pl_test_png_chunk(&t, "gAMA", "\0\0\xb1\x8f", 4);
	pl_test_png_end(&t, 16, 16);
	for (size_t n = 8; n < t.len; n++) {
		unsigned char *cut = malloc(n);
		size_t len = n;
		char why[PL_REASON_MAX] = "";

		ck_assert_ptr_nonnull(cut);
		memcpy(cut, t.b, n);
		ck_assert_int_eq(pl_imgguard_png(cut, &len, why, sizeof why), -EINVAL);
		ck_assert_msg(strstr(why, "PNG truncated") || strstr(why, "claims"),
			      "cut at %zu: %s", n, why);
		ck_assert_uint_eq(len, n);
		free(cut);
	}
	pl_test_buf_free(&t);
}
END_TEST

START_TEST(png_layout_errors_named)
{
	struct pl_test_buf t = { 0 };
	unsigned char huge[12] = { 0x80, 0, 0, 0, 't', 'E', 'X', 't' };

	pl_test_png_start(&t, 16, 16);
	memcpy(t.b + 12, "IHDX", 4);
	expect_refused(pl_imgguard_png, &t, -EINVAL, "does not start with a 13-byte IHDR");
	memcpy(t.b + 12, "IH\x01R", 4);
	expect_refused(pl_imgguard_png, &t, -EINVAL, "has an invalid type \"IH?R\"");
	pl_test_buf_free(&t);

	pl_test_png_start(&t, 16, 16);
	pl_test_buf_add(&t, huge, sizeof huge);
	expect_refused(pl_imgguard_png, &t, -EINVAL,
		       "PNG chunk tEXt claims 2147483648 bytes, more than PNG allows");
	pl_test_buf_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ JPEG */

static void *real_jpeg(size_t *len)
{
	VipsImage *img;
	void *buf = NULL;

	ck_assert_int_eq(vips_gaussnoise(&img, 64, 48, "mean", 128.0, NULL), 0);
	ck_assert_int_eq(vips_jpegsave_buffer(img, &buf, len, "Q", 90, NULL), 0);
	g_object_unref(img);
	return buf;
}

START_TEST(jpeg_every_truncation_named)
{
	size_t len;
	unsigned char *jpeg = real_jpeg(&len);
	struct pl_test_buf t = { 0 };

	ck_assert_int_eq(jpeg[len - 2], 0xff);
	ck_assert_int_eq(jpeg[len - 1], 0xd9);
	pl_test_buf_add(&t, jpeg, len);
	ck_assert_int_eq(jpeg_guard(t.b, &t.len, (char[8]){ 0 }, 8), 0);
	for (size_t n = 3; n < len; n++) {
		char why[PL_REASON_MAX] = "";

		ck_assert_int_eq(pl_imgguard_jpeg(jpeg, n, why, sizeof why), -EINVAL);
		ck_assert_msg(strstr(why, "JPEG truncated: "), "cut at %zu: %s", n, why);
	}
	/* bytes after EOI are common and harmless */
	pl_test_buf_add(&t, "\0\0\0\0 trailer", 12);
	expect_passed(jpeg_guard, &t);
	pl_test_buf_free(&t);
	g_free(jpeg);
}
END_TEST

START_TEST(jpeg_segment_claims_named)
{
	/* SOI, then an APP1 that claims 0x1000 bytes of a 24-byte file */
	static const unsigned char b[24] = { 0xff, 0xd8, 0xff, 0xe1, 0x10, 0x00, 'E', 'x', 'i', 'f' };
	/* garbage where a marker should be: libjpeg's to judge */
	static const unsigned char g[8] = { 0xff, 0xd8, 'g', 'a', 'r', 'b', 'a', 'g' };
	char why[PL_REASON_MAX] = "";

	ck_assert_int_eq(pl_imgguard_jpeg(b, sizeof b, why, sizeof why), -EINVAL);
	ck_assert_str_eq(why, "JPEG truncated: the APP1 segment at byte 2 claims 4096 bytes, "
			      "file has 24");
	ck_assert_int_eq(pl_imgguard_jpeg(g, sizeof g, why, sizeof why), 0);
}
END_TEST

/* ------------------------------------------------------------------ WebP */

/* A real VP8 bitstream from libvips, put in a VP8X container with the
 * given chunks around it.  flags: the VP8X flags to set. */
static void webp_with(struct pl_test_buf *t, unsigned flags,
		      void (*extra)(struct pl_test_buf *body, void *ud), void *ud)
{
	VipsImage *img;
	unsigned char *w = NULL, vp8x[10] = { 0 };
	size_t wlen, pos = 12;
	struct pl_test_buf body = { 0 };
	unsigned char riff[12] = { 'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P' };

	ck_assert_int_eq(vips_black(&img, 32, 24, "bands", 3, NULL), 0);
	ck_assert_int_eq(vips_webpsave_buffer(img, (void **)&w, &wlen, "strip", TRUE, NULL), 0);
	g_object_unref(img);
	vp8x[0] = (unsigned char)flags;
	vp8x[4] = 31, vp8x[7] = 23;	/* width - 1, height - 1 */
	pl_test_riff_chunk(&body, "VP8X", vp8x, sizeof vp8x);
	if (extra)
		extra(&body, ud);
	while (pos + 8 <= wlen) {	/* the image chunk(s) of libvips' file */
		size_t n = (size_t)w[pos + 4] | (size_t)w[pos + 5] << 8 |
			   (size_t)w[pos + 6] << 16 | (size_t)w[pos + 7] << 24;

		if (!memcmp(w + pos, "VP8 ", 4) || !memcmp(w + pos, "VP8L", 4))
			pl_test_buf_add(&body, w + pos, 8 + n + (n & 1));
		pos += 8 + n + (n & 1);
	}
	g_free(w);
	riff[4] = (unsigned char)(body.len + 4), riff[5] = (unsigned char)((body.len + 4) >> 8);
	riff[6] = (unsigned char)((body.len + 4) >> 16), riff[7] = (unsigned char)((body.len + 4) >> 24);
	pl_test_buf_add(t, riff, sizeof riff);
	pl_test_buf_add(t, body.b, body.len);
	pl_test_buf_free(&body);
}

struct meta { size_t icc, exif, xmp; };

static void add_meta(struct pl_test_buf *body, void *ud)
{
	const struct meta *m = ud;
	unsigned char *z = calloc(1, m->icc + m->exif + m->xmp + 1);

	ck_assert_ptr_nonnull(z);
	if (m->icc)
		pl_test_riff_chunk(body, "ICCP", z, m->icc);
	if (m->exif)
		pl_test_riff_chunk(body, "EXIF", z, m->exif);
	if (m->xmp)
		pl_test_riff_chunk(body, "XMP ", z, m->xmp);
	free(z);
}

START_TEST(webp_claims_and_truncation_named)
{
	struct pl_test_buf t = { 0 };
	struct meta m = { .icc = 64 };
	size_t at;

	webp_with(&t, 0x20, add_meta, &m);
	at = 12 + 18;	/* the ICCP chunk follows the VP8X */
	ck_assert_int_eq(memcmp(t.b + at, "ICCP", 4), 0);
	t.b[at + 4] = 0xf0, t.b[at + 5] = 0xff, t.b[at + 6] = 0xff, t.b[at + 7] = 0x7f;
	expect_refused(pl_imgguard_webp, &t, -EINVAL, "WebP chunk ICCP at byte 30 claims "
		       "2147483632 bytes, file has");
	pl_test_buf_free(&t);

	webp_with(&t, 0, NULL, NULL);
	t.len -= 10;
	expect_refused(pl_imgguard_webp, &t, -EINVAL, "WebP truncated: its RIFF header says");
	pl_test_buf_free(&t);
}
END_TEST

START_TEST(webp_metadata_stripped)
{
	struct pl_test_buf t = { 0 };
	struct meta m = { .icc = 0, .exif = 1000, .xmp = 3000000 };
	char types[128];

	webp_with(&t, 0x08 | 0x04, add_meta, &m);
	expect_passed(pl_imgguard_webp, &t);
	riff_types(t.b, t.len, types, sizeof types);
	ck_assert_msg(!strncmp(types, "VP8X EXIF VP8", 13), "chunks: %s", types);
	ck_assert_int_eq(t.b[12 + 8], 0x08);	/* EXIF flag kept, XMP flag cleared */
	expect_loads(&t, 32, 24, 1);
	pl_test_buf_free(&t);

	m.exif = PL_IMGGUARD_EXIF_MAX + 1;
	m.xmp = 0;
	webp_with(&t, 0x08, add_meta, &m);
	expect_passed(pl_imgguard_webp, &t);
	riff_types(t.b, t.len, types, sizeof types);
	ck_assert_msg(!strncmp(types, "VP8X VP8", 8), "chunks: %s", types);
	ck_assert_int_eq(t.b[12 + 8], 0);
	expect_loads(&t, 32, 24, 1);
	pl_test_buf_free(&t);

	/* what libvips writes loses every metadata chunk and flag */
	m.icc = 500, m.exif = 100, m.xmp = 100;
	webp_with(&t, 0x20 | 0x08 | 0x04, add_meta, &m);
	ck_assert_int_eq(pl_imgguard_webp_strip(t.b, &t.len), 0);
	riff_types(t.b, t.len, types, sizeof types);
	ck_assert_msg(!strncmp(types, "VP8X VP8", 8), "chunks: %s", types);
	ck_assert_int_eq(t.b[12 + 8], 0);
	pl_test_buf_free(&t);
}
END_TEST

START_TEST(webp_icc_budget)
{
	struct pl_test_buf t = { 0 };
	struct meta m = { .icc = PL_IMGGUARD_ICC_MAX + 1 };

	webp_with(&t, 0x20, add_meta, &m);
	expect_refused(pl_imgguard_webp, &t, -EFBIG,
		       "WebP ICC profile holds 4194305 bytes, more than 4194304");
	pl_test_buf_free(&t);
}
END_TEST

/* ------------------------------------------------------------------ TIFF */

static uint64_t rd(const struct pl_test_buf *t, bool be, uint64_t at, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)t->b[at + i] << 8 * (be ? n - 1 - i : i);
	return v;
}

/* The tag numbers of each directory: "256 257 …|256 …". */
static void tiff_tags(const struct pl_test_buf *t, int flags, char *out, size_t outlen)
{
	bool be = flags & PL_TEST_TIFF_BE, big = flags & PL_TEST_TIFF_BIG;
	unsigned cs = big ? 8 : 2, es = big ? 20 : 12, os = big ? 8 : 4;
	uint64_t off = rd(t, be, big ? 8 : 4, os);
	size_t k = 0;

	out[0] = '\0';
	while (off && k + 8 < outlen) {
		uint64_t n = rd(t, be, off, cs);

		for (uint64_t i = 0; i < n && k + 8 < outlen; i++)
			k += (size_t)snprintf(out + k, outlen - k, "%s%u", i ? " " : (k ? "|" : ""),
					      (unsigned)rd(t, be, off + cs + i * es, 2));
		off = rd(t, be, off + cs + n * es, os);
	}
}

START_TEST(tiff_descriptive_tags_stripped)
{
	static char desc[100000];
	static const unsigned char icc[8] = { 0 };
	const struct pl_test_tiff_tag tags[] = {
		{ 270, 2, sizeof desc, desc },		/* ImageDescription */
		{ 305, 2, 6, "vips\0\0" },		/* Software */
		{ 700, 1, 5000, NULL },			/* XMP, on the shared blob */
		{ 33432, 2, 2, "c" },			/* Copyright */
		{ 34377, 1, 5000, NULL },		/* Photoshop */
		{ 34675, 7, sizeof icc, icc },		/* ICC: kept */
		{ 37724, 7, 5000, NULL },		/* ImageSourceData */
	};
	const char *kept = "256 257 258 259 262 273 277 278 279 284 34675";
	char want[256], got[256];

	memset(desc, 'd', sizeof desc - 1);
	snprintf(want, sizeof want, "%s|%s", kept, kept);
	for (int flags = 0; flags < 4; flags++) {
		struct pl_test_buf t = { 0 };

		pl_test_tiff(&t, flags, 16, 8, 2, tags, sizeof tags / sizeof *tags, 5000);
		expect_passed(tiff_guard, &t);
		tiff_tags(&t, flags, got, sizeof got);
		ck_assert_msg(!strcmp(got, want), "flags %d: %s", flags, got);
		expect_loads(&t, 16, 8, 2);
		pl_test_buf_free(&t);
	}
}
END_TEST

/* Nine private tags on one 2 MiB block: libtiff would read 18 MiB from a
 * 2 MiB file, at every directory it reads. */
START_TEST(tiff_shared_bytes_budget)
{
	struct pl_test_tiff_tag tags[9];
	struct pl_test_buf t = { 0 };

	for (unsigned i = 0; i < 9; i++)
		tags[i] = (struct pl_test_tiff_tag){ 65000 + i, 7, 0, NULL };
	pl_test_tiff(&t, 0, 16, 8, 1, tags, 9, 2 * 1024 * 1024);
	expect_refused(tiff_guard, &t, -EFBIG, "TIFF tag data adds up to more than");
	expect_refused(tiff_guard, &t, -EFBIG, "the same bytes would be read again and again");
	pl_test_buf_free(&t);

	/* the same bytes once are fine */
	pl_test_tiff(&t, 0, 16, 8, 1, tags, 1, 2 * 1024 * 1024);
	expect_passed(tiff_guard, &t);
	pl_test_buf_free(&t);
}
END_TEST

START_TEST(tiff_icc_budget)
{
	const struct pl_test_tiff_tag tags[] = { { 34675, 7, 0, NULL } };
	struct pl_test_buf t = { 0 };

	pl_test_tiff(&t, PL_TEST_TIFF_BE, 16, 8, 1, tags, 1, PL_IMGGUARD_ICC_MAX + 1);
	expect_refused(tiff_guard, &t, -EFBIG, "TIFF ICC profile (directory 1) holds 4194305 "
		       "bytes, more than 4194304");
	pl_test_buf_free(&t);
}
END_TEST

START_TEST(tiff_truncation_and_loops_named)
{
	struct pl_test_buf t = { 0 };
	size_t full;

	pl_test_tiff(&t, 0, 16, 8, 1, NULL, 0, 0);
	full = t.len;
	t.len = full - 30;	/* inside the directory */
	expect_refused(tiff_guard, &t, -EINVAL, "TIFF truncated: directory 1 at byte");
	t.len = full;
	/* the directory's next pointer at its own start: a loop */
	memcpy(t.b + full - 4, t.b + 4, 4);
	expect_refused(tiff_guard, &t, -EINVAL, "TIFF has more than 65536 directories");
	pl_test_buf_free(&t);

	/* found by fuzz_imgguard (UBSan): no directory at all is libtiff's to
	 * refuse, and must not reach qsort with nothing to sort */
	pl_test_buf_add(&t, "II*\0\0\0\0\0", 8);
	expect_passed(tiff_guard, &t);
	pl_test_buf_free(&t);

	/* found by fuzz_imgguard: a directory over the header, which stripping
	 * its entries would have rewritten ("not a TIFF" on a second pass) */
	pl_test_tiff(&t, 0, 4, 4, 1, (struct pl_test_tiff_tag[]){ { 700, 1, 0, NULL } }, 1, 1000);
	/* at byte 2: 42 ("*") entries of pixels and zeros, then a zero next
	 * pointer inside the zeroed blob */
	t.b[4] = 2, t.b[5] = t.b[6] = t.b[7] = 0;
	expect_refused(tiff_guard, &t, -EINVAL, "TIFF directories overlap each other or the "
		       "header (at byte 2)");
	pl_test_buf_free(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("imgguard");
	TCase *tc = tcase_create("imgguard");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, png_chunk_claiming_more_than_the_file);
	tcase_add_test(tc, png_metadata_stripped_pixels_kept);
	tcase_add_test(tc, png_iend_with_data_moved);
	tcase_add_test(tc, png_icc_profile_budget);
	tcase_add_test(tc, png_exif_budget);
	tcase_add_test(tc, png_every_truncation_named);
	tcase_add_test(tc, png_layout_errors_named);
	tcase_add_test(tc, jpeg_every_truncation_named);
	tcase_add_test(tc, jpeg_segment_claims_named);
	tcase_add_test(tc, webp_claims_and_truncation_named);
	tcase_add_test(tc, webp_metadata_stripped);
	tcase_add_test(tc, webp_icc_budget);
	tcase_add_test(tc, tiff_descriptive_tags_stripped);
	tcase_add_test(tc, tiff_shared_bytes_budget);
	tcase_add_test(tc, tiff_icc_budget);
	tcase_add_test(tc, tiff_truncation_and_loops_named);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

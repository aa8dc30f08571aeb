/*
 * test_jpegprune.c — the progressive-JPEG pruning that resize uses at DCT
 * shrink 8 (src/jpegprune.c): the pruned stream decodes at 1/8 to exactly
 * the original's pixels, through libjpeg and through libvips, for every
 * chroma subsampling, with and without restart markers, at sizes that are
 * not multiples of the MCU and large enough for several EOB runs; it cuts
 * most of the bytes; anything else is left alone; no prefix or corruption
 * of a stream makes it read out of bounds (ASan build).
 *
 * The test JPEGs are written here with libjpeg itself (libjpeg-dev comes
 * with libvips-dev), which is the only way to choose the sampling factors
 * and scan script.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <vips/vips.h>

#include "jpegprune.h"

struct sampling {
	const char *name;
	int ncomps;
	int h[3], v[3];
};

static const struct sampling samplings[] = {
	{ "4:4:4", 3, { 1, 1, 1 }, { 1, 1, 1 } },
	{ "4:2:2", 3, { 2, 1, 1 }, { 1, 1, 1 } },
	{ "4:2:0", 3, { 2, 1, 1 }, { 2, 1, 1 } },
	{ "4:4:0", 3, { 1, 1, 1 }, { 2, 1, 1 } },
	{ "4:1:1", 3, { 4, 1, 1 }, { 1, 1, 1 } },
	{ "grey", 1, { 1 }, { 1 } },
};
#define NSAMPLINGS (sizeof samplings / sizeof samplings[0])

/* A picture with detail at every scale, so that AC scans carry most bytes. */
static unsigned char *picture(int w, int h, int ncomps)
{
	unsigned char *px = malloc((size_t)w * h * ncomps);
	uint32_t rng = 12345;

	ck_assert_ptr_nonnull(px);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			for (int c = 0; c < ncomps; c++) {
				rng = rng * 1103515245 + 12345;
				px[((size_t)y * w + x) * ncomps + c] =
					(unsigned char)((x * (c + 1) + y * 3) / 4 + (x ^ y) % 32 +
							(rng >> 27));
			}
	return px;
}

static void *encode(int w, int h, const struct sampling *s, int restart_rows,
		    bool progressive, size_t *len)
{
	struct jpeg_compress_struct ci;
	struct jpeg_error_mgr err;
	unsigned char *px = picture(w, h, s->ncomps), *out = NULL;
	unsigned long outlen = 0;

	ci.err = jpeg_std_error(&err);
	jpeg_create_compress(&ci);
	jpeg_mem_dest(&ci, &out, &outlen);
	ci.image_width = (JDIMENSION)w;
	ci.image_height = (JDIMENSION)h;
	ci.input_components = s->ncomps;
	ci.in_color_space = s->ncomps == 1 ? JCS_GRAYSCALE : JCS_RGB;
	jpeg_set_defaults(&ci);
	jpeg_set_quality(&ci, 85, TRUE);
	for (int c = 0; c < s->ncomps; c++) {
		ci.comp_info[c].h_samp_factor = s->h[c];
		ci.comp_info[c].v_samp_factor = s->v[c];
	}
	ci.restart_in_rows = restart_rows;
	if (progressive)
		jpeg_simple_progression(&ci);
	jpeg_start_compress(&ci, TRUE);
	while (ci.next_scanline < ci.image_height) {
		JSAMPROW row = px + (size_t)ci.next_scanline * w * s->ncomps;

		jpeg_write_scanlines(&ci, &row, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	free(px);
	*len = outlen;
	return out;
}

/* Decode at 1/8 with libjpeg's defaults (block smoothing on, as libvips). */
static unsigned char *decode8(const void *buf, size_t len, size_t *n, int *warnings)
{
	struct jpeg_decompress_struct ci;
	struct jpeg_error_mgr err;
	unsigned char *px;
	size_t stride;

	ci.err = jpeg_std_error(&err);
	jpeg_create_decompress(&ci);
	jpeg_mem_src(&ci, buf, (unsigned long)len);
	jpeg_read_header(&ci, TRUE);
	ci.scale_num = 1;
	ci.scale_denom = 8;
	jpeg_start_decompress(&ci);
	stride = (size_t)ci.output_width * ci.output_components;
	*n = stride * ci.output_height;
	px = malloc(*n);
	ck_assert_ptr_nonnull(px);
	while (ci.output_scanline < ci.output_height) {
		JSAMPROW row = px + stride * ci.output_scanline;

		jpeg_read_scanlines(&ci, &row, 1);
	}
	jpeg_finish_decompress(&ci);
	*warnings = (int)err.num_warnings;
	jpeg_destroy_decompress(&ci);
	return px;
}

static void *vips_pixels(const void *buf, size_t len, size_t *n)
{
	VipsImage *img;
	void *px;

	ck_assert_int_eq(vips_jpegload_buffer((void *)buf, len, &img, "shrink", 8,
					      "fail_on", VIPS_FAIL_ON_WARNING, NULL), 0);
	px = vips_image_write_to_memory(img, n);
	ck_assert_ptr_nonnull(px);
	g_object_unref(img);
	return px;
}

/* Prune, then compare the 1/8 decodes of both streams. */
static void check_exact(int w, int h, const struct sampling *s, int restart_rows,
			size_t *orig_len, size_t *pruned_len)
{
	size_t len, plen, na, nb;
	void *src = encode(w, h, s, restart_rows, true, &len), *pruned = NULL;
	unsigned char *a, *b;
	int wa, wb;

	ck_assert_msg(pl_jpegprune_dc(src, len, &pruned, &plen) == 1,
		      "%s %dx%d restart %d: not pruned", s->name, w, h, restart_rows);
	ck_assert_uint_lt(plen, len);
	a = decode8(src, len, &na, &wa);
	b = decode8(pruned, plen, &nb, &wb);
	ck_assert_int_eq(wa, 0);
	ck_assert_msg(wb == 0, "%s %dx%d: %d libjpeg warnings on the pruned stream",
		      s->name, w, h, wb);
	ck_assert_uint_eq(na, nb);
	ck_assert_msg(memcmp(a, b, na) == 0, "%s %dx%d restart %d: pixels differ",
		      s->name, w, h, restart_rows);
	free(a);
	free(b);
	/* libvips 8.14 rounds the 1/8 size down: under 8 pixels it is 0 */
	if (w >= 64 && h >= 64) {
		a = vips_pixels(src, len, &na);
		b = vips_pixels(pruned, plen, &nb);
		ck_assert_uint_eq(na, nb);
		ck_assert_msg(memcmp(a, b, na) == 0, "%s %dx%d: libvips pixels differ",
			      s->name, w, h);
		g_free(a);
		g_free(b);
	}
	if (orig_len)
		*orig_len = len;
	if (pruned_len)
		*pruned_len = plen;
	free(src);
	free(pruned);
}

START_TEST(same_pixels_every_sampling)
{
	for (size_t i = 0; i < NSAMPLINGS; i++) {
		check_exact(1001, 677, &samplings[i], 0, NULL, NULL);
		check_exact(333, 250, &samplings[i], 1, NULL, NULL);	/* restart markers */
		check_exact(9, 7, &samplings[i], 0, NULL, NULL);	/* smaller than an MCU */
	}
}
END_TEST

/* 2600×1700 luma is 69,063 blocks: three EOB runs, one of them 0xFF-stuffed. */
START_TEST(large_image_many_eob_runs)
{
	size_t len, plen;

	check_exact(2600, 1700, &samplings[1], 0, &len, &plen);
	ck_assert_msg(plen * 4 < len, "pruned %zu of %zu bytes only", len - plen, len);
}
END_TEST

/* 4:2:0 chroma is decoded with a 2×2 IDCT at 1/8: its AC scans stay. */
START_TEST(chroma_kept_where_needed)
{
	size_t l444, p444, l420, p420;

	check_exact(800, 600, &samplings[0], 0, &l444, &p444);
	check_exact(800, 600, &samplings[2], 0, &l420, &p420);
	ck_assert_uint_gt(p420 * 100 / l420, p444 * 100 / l444);
}
END_TEST

START_TEST(baseline_and_non_jpeg_left_alone)
{
	size_t len;
	void *src = encode(640, 480, &samplings[2], 0, false, &len), *out = (void *)0x1;
	size_t outlen = 7;
	static const unsigned char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

	ck_assert_int_eq(pl_jpegprune_dc(src, len, &out, &outlen), 0);
	ck_assert_ptr_eq(out, (void *)0x1);
	ck_assert_uint_eq(outlen, 7);
	ck_assert_int_eq(pl_jpegprune_dc(png, sizeof png, &out, &outlen), 0);
	ck_assert_int_eq(pl_jpegprune_dc("", 0, &out, &outlen), 0);
	free(src);
}
END_TEST

/* A real progressive stream with its SOF2 patched: what the parser does
 * not fully understand is left alone (fuzz_jpegprune found the first). */
START_TEST(odd_frames_left_alone)
{
	size_t len, outlen;
	void *out;
	unsigned char *src = encode(64, 48, &samplings[0], 0, true, &len), *bad = malloc(len + 3);
	unsigned char *sof = NULL;

	ck_assert_ptr_nonnull(bad);
	for (size_t i = 2; i + 1 < len; i++)
		if (src[i] == 0xFF && src[i + 1] == 0xC2) {
			sof = src + i;
			break;
		}
	ck_assert_ptr_nonnull(sof);
	ck_assert_int_eq(pl_jpegprune_dc(src, len, &out, &outlen), 1);
	free(out);
#define PATCHED(off, val)                                                            \
	do {                                                                         \
		memcpy(bad, src, len);                                               \
		bad[(sof - src) + (off)] = (val);                                    \
		ck_assert_msg(pl_jpegprune_dc(bad, len, &out, &outlen) == 0,         \
			      "SOF2 byte %d = %d pruned", (off), (val));             \
	} while (0)
	PATCHED(9, 5);		/* 5 components in a 3-component segment */
	PATCHED(9, 0);		/* no component */
	PATCHED(4, 12);		/* 12-bit samples */
	PATCHED(6, 0);		/* height 0 (given by DNL later): 48 = 0x0030 */
	PATCHED(8, 0);		/* width 0: 64 = 0x0040 */
	PATCHED(1, 0xCA);	/* arithmetic coding */
	PATCHED(1, 0xC0);	/* baseline */
	PATCHED(11, 0x50);	/* sampling factor 5 */
	PATCHED(11, 0x01);	/* sampling factor 0 */
#undef PATCHED
	free(bad);
	free(src);
}
END_TEST

/* Every prefix (no EOI) is left alone; flipped bytes never crash, and
 * whatever comes out is a whole JPEG (SOI … EOI). */
START_TEST(truncated_and_corrupt)
{
	size_t len, outlen;
	void *out;
	unsigned char *src = encode(200, 150, &samplings[1], 2, true, &len);
	unsigned char *bad = malloc(len);
	uint32_t rng = 7;

	ck_assert_ptr_nonnull(bad);
	for (size_t n = 0; n < len; n += n < 700 ? 1 : 37)
		ck_assert_msg(pl_jpegprune_dc(src, n, &out, &outlen) == 0, "prefix %zu pruned", n);
	for (int i = 0; i < 3000; i++) {
		memcpy(bad, src, len);
		for (int k = 0; k < 1 + i % 4; k++) {
			rng = rng * 1103515245 + 12345;
			bad[(rng >> 8) % len] = (unsigned char)(rng >> 24);
		}
		if (pl_jpegprune_dc(bad, len, &out, &outlen) == 1) {
			const unsigned char *o = out;

			ck_assert(outlen >= 4 && o[0] == 0xFF && o[1] == 0xD8 &&
				  o[outlen - 2] == 0xFF && o[outlen - 1] == 0xD9);
			free(out);
		}
	}
	free(bad);
	free(src);
}
END_TEST

/* In the forked test process: libvips' threads do not survive a fork. */
static void setup(void)
{
	ck_assert_int_eq(VIPS_INIT("test_jpegprune"), 0);
	vips_cache_set_max(0);
}

int main(void)
{
	Suite *s = suite_create("jpegprune");
	TCase *tc = tcase_create("jpegprune");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, same_pixels_every_sampling);
	tcase_add_test(tc, large_image_many_eob_runs);
	tcase_add_test(tc, chroma_kept_where_needed);
	tcase_add_test(tc, baseline_and_non_jpeg_left_alone);
	tcase_add_test(tc, odd_frames_left_alone);
	tcase_add_test(tc, truncated_and_corrupt);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

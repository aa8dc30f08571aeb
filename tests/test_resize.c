/*
 * test_resize.c — the resize stage against real libvips: every image is
 * made here with the vips API (or crafted byte by byte), encoded, fed through
 * pl_resize_ops.process() like the pool would, and the outputs are decoded
 * back and measured.  No binary fixture is committed.  Real photos are used
 * for a timing note when some are installed (/usr/share/backgrounds, or
 * PL_TEST_PHOTOS=DIR); synthetic ones otherwise.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vips/vips.h>
#include <zlib.h>

#include "config.h"
#include "item.h"
#include "resize.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

static void setup(void)
{
	ck_assert_int_eq(pl_resize_global_init("test_resize"), 0);
}

static struct pl_variant variant(const char *name, int w, int h, enum pl_fit fit,
				 enum pl_crop crop, enum pl_format fmt)
{
	struct pl_variant v = { .width = w, .height = h, .fit = fit, .crop = crop,
				.format = fmt, .quality = 80 };

	snprintf(v.name, sizeof v.name, "%s", name);
	return v;
}

static void *new_ctx(struct pl_variant *vs, size_t n, long max_pixels)
{
	struct pl_config cfg = { 0 };
	void *ctx = NULL;

	cfg.resize.variants = vs;
	cfg.resize.nvariants = n;
	cfg.resize.max_pixels = max_pixels;
	ck_assert_int_eq(pl_resize_new(&cfg, &ctx), 0);
	return ctx;
}

static struct pl_item *item_of(const void *data, size_t len)
{
	struct pl_item *it = pl_item_new();

	ck_assert_ptr_nonnull(it);
	it->line = 1;
	if (len) {
		it->data = malloc(len);
		ck_assert_ptr_nonnull(it->data);
		memcpy(it->data, data, len);
	}
	it->len = len;
	return it;
}

/* Run one item through the stage; returns process()'s result. */
static int run(void *ctx, const void *data, size_t len, struct pl_item **out, char *why)
{
	struct pl_item *it = item_of(data, len);
	int rc;

	why[0] = '\0';
	rc = pl_resize_ops.process(ctx, NULL, it, why, PL_REASON_MAX);
	*out = it;
	return rc;
}

static VipsImage *decode(const struct pl_output *o)
{
	VipsImage *img = vips_image_new_from_buffer(o->buf, o->len, "", NULL);

	ck_assert_msg(img, "output %s does not decode: %s", o->variant, vips_error_buffer());
	return img;
}

static void check_output(const struct pl_output *o, int w, int h, const char *loader)
{
	VipsImage *img = decode(o);
	const char *got = NULL;

	ck_assert_int_eq(img->Xsize, w);
	ck_assert_int_eq(img->Ysize, h);
	ck_assert_int_eq(vips_image_get_string(img, "vips-loader", &got), 0);
	ck_assert_str_eq(got, loader);
	ck_assert_int_eq(img->BandFmt, VIPS_FORMAT_UCHAR);
	g_object_unref(img);
}

/* A photo-like sRGB image: gradients plus noise, so encoders work for real. */
static VipsImage *make_photo(int w, int h)
{
	VipsImage *xyz, *x, *y, *noise, *r, *g, *b, *rgb, *u, *out;
	VipsImage *parts[3];

	ck_assert_int_eq(vips_xyz(&xyz, w, h, NULL), 0);
	ck_assert_int_eq(vips_extract_band(xyz, &x, 0, NULL), 0);
	ck_assert_int_eq(vips_extract_band(xyz, &y, 1, NULL), 0);
	ck_assert_int_eq(vips_gaussnoise(&noise, w, h, "mean", 0.0, "sigma", 20.0, NULL), 0);
	ck_assert_int_eq(vips_linear1(x, &r, 255.0 / w, 0, NULL), 0);
	ck_assert_int_eq(vips_linear1(y, &g, 255.0 / h, 0, NULL), 0);
	ck_assert_int_eq(vips_add(r, noise, &b, NULL), 0);
	parts[0] = r, parts[1] = g, parts[2] = b;
	ck_assert_int_eq(vips_bandjoin(parts, &rgb, 3, NULL), 0);
	ck_assert_int_eq(vips_cast_uchar(rgb, &u, NULL), 0);
	ck_assert_int_eq(vips_copy(u, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
	g_object_unref(xyz), g_object_unref(x), g_object_unref(y);
	g_object_unref(noise), g_object_unref(r), g_object_unref(g);
	g_object_unref(b), g_object_unref(rgb), g_object_unref(u);
	return out;
}

static void *jpeg_of(VipsImage *img, size_t *len)
{
	void *buf = NULL;

	ck_assert_int_eq(vips_jpegsave_buffer(img, &buf, len, "Q", 90, NULL), 0);
	return buf;
}

static void *photo_jpeg(int w, int h, size_t *len)
{
	VipsImage *img = make_photo(w, h);
	void *buf = jpeg_of(img, len);

	g_object_unref(img);
	return buf;
}

static void *vips_obj_count(VipsObject *o, void *a, void *b)
{
	(void)o, (void)b;
	(*(int *)a)++;
	return NULL;
}

static int live_vips_objects(void)
{
	int n = 0;

	vips_object_map((VipsSListMap2Fn)vips_obj_count, &n, NULL);
	return n;
}

/* ------------------------------------------------------------------ tests */

START_TEST(inside_keeps_aspect_and_bounds)
{
	struct pl_variant v = variant("thumb", 256, 256, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	static const int sizes[][4] = {	/* source w, h → expected w, h */
		{ 800, 600, 256, 192 }, { 300, 900, 85, 256 }, { 1000, 100, 256, 26 },
		{ 100, 50, 100, 50 },	/* small: never upscaled */
	};

	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		size_t len;
		void *src = photo_jpeg(sizes[i][0], sizes[i][1], &len);
		char why[PL_REASON_MAX];
		struct pl_item *it;

		ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%dx%d: %s",
			      sizes[i][0], sizes[i][1], why);
		ck_assert_uint_eq(it->noutputs, 1);
		ck_assert_int_le(sizes[i][2], 256);
		check_output(&it->outputs[0], sizes[i][2], sizes[i][3], "jpegload_buffer");
		g_free(src);
		pl_item_free(it);
	}
	pl_resize_free(ctx);
}
END_TEST

START_TEST(cover_exact_size)
{
	struct pl_variant vs[] = {
		variant("centre", 200, 120, PL_FIT_COVER, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("attention", 150, 150, PL_FIT_COVER, PL_CROP_ATTENTION, PL_FORMAT_PNG),
	};
	static const int src_sizes[][2] = { { 800, 600 }, { 300, 900 }, { 100, 50 } };

	for (size_t i = 0; i < 2; i++) {
		void *ctx = new_ctx(&vs[i], 1, 50000000);

		for (size_t k = 0; k < 3; k++) {
			size_t len;
			void *src = photo_jpeg(src_sizes[k][0], src_sizes[k][1], &len);
			char why[PL_REASON_MAX];
			struct pl_item *it;

			ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
			check_output(&it->outputs[0], vs[i].width, vs[i].height,
				     i == 0 ? "jpegload_buffer" : "pngload_buffer");
			g_free(src);
			pl_item_free(it);
		}
		pl_resize_free(ctx);
	}
}
END_TEST

START_TEST(every_format_decodes_back)
{
	static const struct { enum pl_format f; const char *loader, *ext, *mime; } fmts[] = {
		{ PL_FORMAT_JPEG, "jpegload_buffer", "jpg", "image/jpeg" },
		{ PL_FORMAT_WEBP, "webpload_buffer", "webp", "image/webp" },
		{ PL_FORMAT_PNG, "pngload_buffer", "png", "image/png" },
		{ PL_FORMAT_AVIF, "heifload_buffer", "avif", "image/avif" },
	};
	size_t len;
	void *src = photo_jpeg(640, 480, &len);

	for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
		struct pl_variant v = variant("v", 160, 160, PL_FIT_INSIDE, PL_CROP_CENTRE, fmts[i].f);
		struct pl_config cfg = { 0 };
		void *ctx = NULL;
		char why[PL_REASON_MAX];
		struct pl_item *it;

		cfg.resize.variants = &v;
		cfg.resize.nvariants = 1;
		cfg.resize.max_pixels = 50000000;
		if (!pl_resize_format_supported(fmts[i].f)) {
			ck_assert_int_eq(pl_resize_new(&cfg, &ctx), -ENOTSUP);
			printf("test_resize: %s output unsupported by this libvips; checked "
			       "that pl_resize_new refuses it\n", fmts[i].ext);
			continue;
		}
		ck_assert_int_eq(pl_resize_new(&cfg, &ctx), 0);
		ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s: %s", fmts[i].ext, why);
		ck_assert_str_eq(it->outputs[0].ext, fmts[i].ext);
		ck_assert_str_eq(it->outputs[0].mime, fmts[i].mime);
		ck_assert_str_eq(it->outputs[0].variant, "v");
		check_output(&it->outputs[0], 160, 120, fmts[i].loader);
		VipsImage *img = decode(&it->outputs[0]);
		ck_assert_int_eq(img->Bands, 3);
		g_object_unref(img);
		pl_item_free(it);
		pl_resize_free(ctx);
	}
	g_free(src);
}
END_TEST

START_TEST(unknown_format_refused)
{
	struct pl_variant v = variant("odd", 10, 10, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	struct pl_config cfg = { 0 };
	void *ctx = NULL;

	v.format = (enum pl_format)42;
	cfg.resize.variants = &v;
	cfg.resize.nvariants = 1;
	cfg.resize.max_pixels = 1000;
	/* confvariant.c's rule (pl_config_variant_check): no such format */
	ck_assert_int_eq(pl_resize_new(&cfg, &ctx), -EINVAL);
	ck_assert_ptr_null(ctx);
}
END_TEST

/* 400×200 stored landscape, EXIF says "rotate 90° clockwise": portrait. */
START_TEST(exif_orientation_applied)
{
	struct pl_variant vs[] = {
		variant("a", 256, 256, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("b", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_PNG),
	};
	VipsImage *img = make_photo(400, 200), *tagged;
	size_t len;
	void *src;

	ck_assert_int_eq(vips_copy(img, &tagged, NULL), 0);
	vips_image_set_int(tagged, VIPS_META_ORIENTATION, 6);
	src = jpeg_of(tagged, &len);
	g_object_unref(tagged);
	g_object_unref(img);

	/* One variant (thumbnail_buffer) and two (shared decode) paths. */
	for (size_t n = 1; n <= 2; n++) {
		void *ctx = new_ctx(vs, n, 50000000);
		char why[PL_REASON_MAX];
		struct pl_item *it;

		ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
		check_output(&it->outputs[0], 128, 256, "jpegload_buffer");
		if (n == 2)
			check_output(&it->outputs[1], 32, 64, "pngload_buffer");
		pl_item_free(it);
		pl_resize_free(ctx);
	}
	g_free(src);
}
END_TEST

START_TEST(cmyk_becomes_srgb)
{
	struct pl_variant v = variant("c", 100, 100, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	VipsImage *black, *paper, *cmyk, *back, *out;
	size_t len;
	void *src;
	char why[PL_REASON_MAX];
	struct pl_item *it;
	double avg;

	/* C=M=Y=K=0: white paper. */
	ck_assert_int_eq(vips_black(&black, 200, 100, "bands", 4, NULL), 0);
	ck_assert_int_eq(vips_cast_uchar(black, &paper, NULL), 0);
	ck_assert_int_eq(vips_copy(paper, &cmyk, "interpretation", VIPS_INTERPRETATION_CMYK, NULL), 0);
	src = jpeg_of(cmyk, &len);
	back = vips_image_new_from_buffer(src, len, "", NULL);
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(back->Bands, 4);
	ck_assert_int_eq(back->Type, VIPS_INTERPRETATION_CMYK);

	ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
	out = decode(&it->outputs[0]);
	ck_assert_int_eq(out->Bands, 3);
	ck_assert_int_eq(out->Type, VIPS_INTERPRETATION_sRGB);
	ck_assert_int_eq(vips_avg(out, &avg, NULL), 0);
	ck_assert_msg(avg > 230, "white paper came out with mean %g", avg);

	g_object_unref(out), g_object_unref(back), g_object_unref(cmyk);
	g_object_unref(paper), g_object_unref(black);
	g_free(src);
	pl_item_free(it);
	pl_resize_free(ctx);
}
END_TEST

START_TEST(png16_becomes_8bit)
{
	struct pl_variant vs[] = {
		variant("p", 100, 100, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_PNG),
		variant("w", 50, 50, PL_FIT_COVER, PL_CROP_CENTRE, PL_FORMAT_WEBP),
	};
	VipsImage *photo = make_photo(300, 200), *wide, *rgb16, *back;
	void *src = NULL;
	size_t len;

	ck_assert_int_eq(vips_linear1(photo, &wide, 257.0, 0, "uchar", FALSE, NULL), 0);
	ck_assert_int_eq(vips_cast(wide, &rgb16, VIPS_FORMAT_USHORT, NULL), 0);
	g_object_unref(wide);
	wide = rgb16;
	ck_assert_int_eq(vips_copy(wide, &rgb16, "interpretation", VIPS_INTERPRETATION_RGB16, NULL), 0);
	ck_assert_int_eq(vips_pngsave_buffer(rgb16, &src, &len, NULL), 0);
	back = vips_image_new_from_buffer(src, len, "", NULL);
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(back->BandFmt, VIPS_FORMAT_USHORT);

	for (size_t n = 1; n <= 2; n++) {
		void *ctx = new_ctx(vs, n, 50000000);
		char why[PL_REASON_MAX];
		struct pl_item *it;

		ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
		check_output(&it->outputs[0], 100, 67, "pngload_buffer");
		VipsImage *out = decode(&it->outputs[0]);
		ck_assert_int_eq(out->Bands, 3);
		ck_assert_int_eq(out->Type, VIPS_INTERPRETATION_sRGB);
		g_object_unref(out);
		if (n == 2)
			check_output(&it->outputs[1], 50, 50, "webpload_buffer");
		pl_item_free(it);
		pl_resize_free(ctx);
	}
	g_object_unref(back), g_object_unref(rgb16), g_object_unref(wide);
	g_object_unref(photo);
	g_free(src);
}
END_TEST

/* Three 64×64 frames, red, green, blue: the output is the red one. */
static void *make_gif(size_t *len)
{
	VipsImage *frames[3], *strip, *paged;
	void *buf = NULL;
	static const double colours[3][3] = { { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 } };

	for (int i = 0; i < 3; i++) {
		VipsImage *b, *c;

		ck_assert_int_eq(vips_black(&b, 64, 64, "bands", 3, NULL), 0);
		ck_assert_int_eq(vips_linear(b, &c, (double[]){ 1, 1, 1 },
					     (double *)colours[i], 3, "uchar", TRUE, NULL), 0);
		ck_assert_int_eq(vips_copy(c, &frames[i], "interpretation",
					   VIPS_INTERPRETATION_sRGB, NULL), 0);
		g_object_unref(b), g_object_unref(c);
	}
	ck_assert_int_eq(vips_arrayjoin(frames, &strip, 3, "across", 1, NULL), 0);
	ck_assert_int_eq(vips_copy(strip, &paged, NULL), 0);
	vips_image_set_int(paged, "page-height", 64);
	if (vips_gifsave_buffer(paged, &buf, len, NULL)) {
		vips_error_clear();
		buf = NULL;
	}
	for (int i = 0; i < 3; i++)
		g_object_unref(frames[i]);
	g_object_unref(strip), g_object_unref(paged);
	return buf;
}

START_TEST(animated_gif_first_frame)
{
	struct pl_variant v = variant("g", 256, 256, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_PNG);
	void *ctx = new_ctx(&v, 1, 50000000), *small;
	size_t len;
	void *src = make_gif(&len);
	char why[PL_REASON_MAX];
	struct pl_item *it;
	VipsImage *back, *out, *band;
	double red, blue;

	if (!src) {
		printf("test_resize: this libvips cannot write GIF (no cgif): animated GIF test skipped\n");
		pl_resize_free(ctx);
		return;
	}
	back = vips_image_new_from_buffer(src, len, "", NULL);
	ck_assert_ptr_nonnull(back);
	ck_assert_int_eq(vips_image_get_n_pages(back), 3);
	g_object_unref(back);

	ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
	check_output(&it->outputs[0], 64, 64, "pngload_buffer");
	out = decode(&it->outputs[0]);
	ck_assert_int_eq(vips_extract_band(out, &band, 0, NULL), 0);
	ck_assert_int_eq(vips_avg(band, &red, NULL), 0);
	g_object_unref(band);
	ck_assert_int_eq(vips_extract_band(out, &band, 2, NULL), 0);
	ck_assert_int_eq(vips_avg(band, &blue, NULL), 0);
	g_object_unref(band);
	ck_assert_msg(red > 200 && blue < 50, "not the first frame: red %g blue %g", red, blue);
	g_object_unref(out);
	pl_item_free(it);
	pl_resize_free(ctx);

	/* Pages count towards max_pixels and are named in the reason. */
	small = new_ctx(&v, 1, 64 * 64 * 2);
	ck_assert_int_eq(run(small, src, len, &it, why), -EFBIG);
	ck_assert_msg(strstr(why, "image too large: 64×64×3 pages"), "why: %s", why);
	pl_item_free(it);
	pl_resize_free(small);
	g_free(src);
}
END_TEST

/* A 30000×30000 RGB PNG header with an empty zlib stream for pixels: it
 * could only "decode" by allocating 2.7 GB first. */
static void craft_huge_png(struct pl_test_buf *t)
{
	static const unsigned char idat[] = { 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01 };

	pl_test_png_start(t, 30000, 30000);
	pl_test_png_chunk(t, "IDAT", idat, sizeof idat);
	pl_test_png_chunk(t, "IEND", NULL, 0);
}

START_TEST(max_pixels_from_header)
{
	struct pl_variant v = variant("t", 256, 256, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	struct pl_test_buf png = { 0 };
	char why[PL_REASON_MAX];
	struct pl_item *it;
	uint64_t t0, dt;
	int rc;

	craft_huge_png(&png);
	t0 = pl_now_us();
	rc = run(ctx, png.b, png.len, &it, why);
	dt = pl_now_us() - t0;
	pl_test_buf_free(&png);
	ck_assert_int_eq(rc, -EFBIG);
	ck_assert_msg(strstr(why, "image too large: 30000×30000"), "why: %s", why);
	ck_assert_msg(dt < 500000, "rejection took %llu µs: pixels were decoded?",
		      (unsigned long long)dt);
	ck_assert_ptr_null(it->outputs);
	pl_item_free(it);
	pl_resize_free(ctx);
}
END_TEST

START_TEST(truncated_jpeg_fails)
{
	struct pl_variant vs[] = {
		variant("a", 100, 100, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("b", 50, 50, PL_FIT_COVER, PL_CROP_CENTRE, PL_FORMAT_WEBP),
	};
	size_t len;
	void *src = photo_jpeg(800, 600, &len);

	for (size_t n = 1; n <= 2; n++) {
		void *ctx = new_ctx(vs, n, 50000000);
		char why[PL_REASON_MAX];
		struct pl_item *it;
		int before = live_vips_objects();

		ck_assert_int_eq(run(ctx, src, len * 6 / 10, &it, why), -EINVAL);
		ck_assert_msg(strstr(why, "JPEG truncated: no EOI marker"), "why: %s", why);
		ck_assert_ptr_null(strchr(why, '\n'));
		ck_assert_ptr_null(it->outputs);
		ck_assert_uint_eq(it->noutputs, 0);
		ck_assert_int_eq(live_vips_objects(), before);
		pl_item_free(it);
		pl_resize_free(ctx);
	}
	g_free(src);
}
END_TEST

static void expect_failure(const void *data, size_t len, int err, const char *needle)
{
	struct pl_variant v = variant("t", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	char why[PL_REASON_MAX];
	struct pl_item *it;
	int before = live_vips_objects();

	ck_assert_int_eq(run(ctx, data, len, &it, why), err);
	ck_assert_msg(strstr(why, needle), "expected \"%s\" in: %s", needle, why);
	ck_assert_ptr_null(strchr(why, '\n'));
	ck_assert_ptr_null(it->outputs);
	ck_assert_int_eq(live_vips_objects(), before);
	pl_item_free(it);
	pl_resize_free(ctx);
}

START_TEST(zero_bytes)
{
	expect_failure("", 0, -EINVAL, "empty body");
}
END_TEST

START_TEST(html_is_not_an_image)
{
	static const char html[] = "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>"
				   "<body>nope</body></html>\n";

	expect_failure(html, sizeof html - 1, -EINVAL, "not an image (");
	expect_failure(html, sizeof html - 1, -EINVAL, "<!DOCTYPE html>");
}
END_TEST

START_TEST(svg_is_blocked)
{
	static const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100\" "
				  "height=\"100\"><rect width=\"100\" height=\"100\" fill=\"red\"/></svg>";

	expect_failure(svg, sizeof svg - 1, -ENOTSUP, "blocked");
	expect_failure(svg, sizeof svg - 1, -ENOTSUP, "svg is not on the allow-list");
}
END_TEST

/* Count mapped ImageMagick coder modules: ImageMagick loads one when its
 * format sniffer runs over a buffer. */
static int magick_coders_mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f))
		n += strstr(line, "ImageMagick") && strstr(line, "/coders/");
	fclose(f);
	return n;
}

/* Bytes that are no allowed image never reach a blocked loader's sniffer
 * either: ImageMagick (blocked, never fuzzed) must not look at them. */
START_TEST(non_images_never_reach_imagemagick)
{
#define JUNK(lit) { lit, sizeof lit - 1 }
	static const struct { const char *data; size_t len; } junk[] = {
		JUNK("<!DOCTYPE html><html><body>x</body></html>"),
		JUNK("%PDF-1.4\n1 0 obj << >> endobj\n"),
		JUNK("P6\n2 2\n255\n\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"),
		JUNK("BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0"),
		JUNK("\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00"),
		JUNK("8BPS\0\1\0\0\0\0\0\0\0\3"),
	};
#undef JUNK
	int before = magick_coders_mapped();

	for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
		struct pl_variant v = variant("t", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE,
					      PL_FORMAT_JPEG);
		void *ctx = new_ctx(&v, 1, 50000000);
		char why[PL_REASON_MAX];
		struct pl_item *it;

		ck_assert_int_lt(run(ctx, junk[i].data, junk[i].len, &it, why), 0);
		pl_item_free(it);
		pl_resize_free(ctx);
	}
	ck_assert_int_eq(magick_coders_mapped(), before);
}
END_TEST

START_TEST(pdf_is_blocked)
{
	static const char pdf[] = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";

	expect_failure(pdf, sizeof pdf - 1, -ENOTSUP, "blocked");
}
END_TEST

START_TEST(garbage_after_magic_fails)
{
	/* A PNG signature and then noise: the format is allowed, the chunks are not. */
	unsigned char bad[64] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

	for (size_t i = 8; i < sizeof bad; i++)
		bad[i] = (unsigned char)(i * 37);
	expect_failure(bad, sizeof bad, -EINVAL, "PNG chunk at byte 8 has an invalid type");
}
END_TEST

/* ------------------------------------------- metadata bombs and reasons */

/* Peak RSS of one call: the high-water mark is reset through
 * /proc/self/clear_refs ("5", Linux 4.0+).  rss_reset() returns the RSS in
 * KiB, or -1 (with a note) where the kernel does not allow it. */
static long status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(field);

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static long rss_reset(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");

	if (!f || fputs("5", f) < 0 || fclose(f)) {
		printf("test_resize: cannot reset the peak RSS here: memory not asserted\n");
		return -1;
	}
	return status_kib("VmRSS");
}

/* A 64 MiB margin: the bombs below cost hundreds of MiB to GiB when their
 * metadata reaches the decoders. */
#define BOMB_KIB (64 * 1024)

static void expect_peak_below(long base, long kib, const char *what)
{
	long peak = status_kib("VmHWM");

	if (base < 0)
		return;
	ck_assert_msg(peak - base < kib, "%s: peak RSS grew by %ld KiB (limit %ld)", what,
		      peak - base, kib);
}

/* The 144-byte PNG: refused by its own numbers before libpng
 * allocates (and zeroes) 2 GB for it; the reason says so. */
START_TEST(bomb_png_chunk_claim)
{
	struct pl_variant v = variant("t", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	struct pl_test_buf png = { 0 };
	char why[PL_REASON_MAX];
	struct pl_item *it;
	long base;

	pl_test_png_ztxt_bomb(&png);
	base = rss_reset();
	ck_assert_int_eq(run(ctx, png.b, png.len, &it, why), -EINVAL);
	expect_peak_below(base, BOMB_KIB, "144-byte zTXt PNG");
	ck_assert_str_eq(why, "PNG chunk zTXt at byte 33 claims 2147483632 bytes, file has 144");
	pl_item_free(it);
	pl_test_buf_free(&png);
	pl_resize_free(ctx);
}
END_TEST

/* 3 MB of text chunks that inflate to 320 MB (libpng keeps zTXt up to
 * 50 MB each, and libvips copies every one into a metadata string): the
 * text is stripped, the image converts, and memory stays flat. */
START_TEST(bomb_png_text_chunks_stripped)
{
	struct pl_variant v = variant("t", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_PNG);
	void *ctx = new_ctx(&v, 1, 50000000);
	struct pl_test_buf png = { 0 }, z = { 0 };
	char *text = malloc(1000000 + 8);
	char why[PL_REASON_MAX];
	struct pl_item *it;
	long base;

	ck_assert_ptr_nonnull(text);
	memcpy(text, "Comment", 8);
	memset(text + 8, 't', 1000000);
	pl_test_png_deflated(&z, "Comment", 'z', 40 * 1000 * 1000);
	pl_test_png_start(&png, 16, 16);
	for (int i = 0; i < 8; i++)
		pl_test_png_chunk(&png, "zTXt", z.b, z.len);
	for (int i = 0; i < 3; i++)
		pl_test_png_chunk(&png, "tEXt", text, 1000000 + 8);
	pl_test_png_end(&png, 16, 16);
	ck_assert_uint_gt(png.len, 3000000);

	base = rss_reset();
	ck_assert_msg(run(ctx, png.b, png.len, &it, why) == 0, "%s", why);
	expect_peak_below(base, BOMB_KIB, "PNG with 3 MB of text chunks");
	check_output(&it->outputs[0], 16, 16, "pngload_buffer");
	pl_item_free(it);
	pl_test_buf_free(&png);
	pl_test_buf_free(&z);
	free(text);
	pl_resize_free(ctx);
}
END_TEST

/* A WebP whose ICC chunk claims 2 GB: libwebp refused it, but as "unable to
 * parse image". */
START_TEST(bomb_webp_chunk_claim_named)
{
	struct pl_test_buf w = { 0 }, body = { 0 };
	unsigned char vp8x[10] = { 0x20, 0, 0, 0, 63, 0, 0, 63, 0, 0 };
	unsigned char riff[12] = "RIFF\0\0\0\0WEBP", icc[64] = { 0 };
	const unsigned char claim[4] = { 0xf0, 0xff, 0xff, 0x7f };

	pl_test_riff_chunk(&body, "VP8X", vp8x, sizeof vp8x);
	pl_test_riff_chunk(&body, "ICCP", icc, sizeof icc);
	memcpy(body.b + 18 + 4, claim, 4);
	riff[4] = (unsigned char)(body.len + 4);
	pl_test_buf_add(&w, riff, sizeof riff);
	pl_test_buf_add(&w, body.b, body.len);
	expect_failure(w.b, w.len, -EINVAL, "WebP chunk ICCP at byte 30 claims 2147483632 bytes, "
		       "file has 102");
	pl_test_buf_free(&w);
	pl_test_buf_free(&body);
}
END_TEST

/* Nine tags on one 8 MiB block: libtiff read them all at every directory it
 * read and libvips copied them on (a 42 MB one took 1.4 GB and 60 s). */
START_TEST(bomb_tiff_shared_tag_bytes)
{
	struct pl_variant v = variant("t", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	const struct pl_test_tiff_tag tags[] = {
		{ 270, 2, 0, NULL }, { 305, 2, 0, NULL }, { 700, 1, 0, NULL },
		{ 33723, 7, 0, NULL }, { 34377, 1, 0, NULL }, { 65000, 7, 0, NULL },
		{ 65001, 7, 0, NULL }, { 65002, 7, 0, NULL }, { 65003, 7, 0, NULL },
		{ 65004, 7, 0, NULL }, { 65005, 7, 0, NULL },
	};
	struct pl_test_buf tif = { 0 };
	char why[PL_REASON_MAX];
	struct pl_item *it;
	long base;

	pl_test_tiff(&tif, 0, 16, 8, 1, tags, sizeof tags / sizeof *tags, 8 * 1024 * 1024);
	base = rss_reset();
	ck_assert_int_eq(run(ctx, tif.b, tif.len, &it, why), -EFBIG);
	expect_peak_below(base, BOMB_KIB, "TIFF with shared tag bytes");
	ck_assert_msg(strstr(why, "TIFF tag data adds up to more than"), "why: %s", why);
	pl_item_free(it);
	pl_test_buf_free(&tif);

	/* descriptive tags alone are stripped, and the image converts */
	pl_test_tiff(&tif, 0, 16, 8, 2, tags, 5, 8 * 1024 * 1024);
	base = rss_reset();
	ck_assert_msg(run(ctx, tif.b, tif.len, &it, why) == 0, "%s", why);
	expect_peak_below(base, BOMB_KIB, "TIFF with 8 MiB of descriptive tags");
	check_output(&it->outputs[0], 16, 8, "jpegload_buffer");
	pl_item_free(it);
	pl_test_buf_free(&tif);
	pl_resize_free(ctx);
}
END_TEST

/* A cut PNG was "libpng read error", or converted when only IEND was lost. */
START_TEST(truncated_png_named)
{
	VipsImage *photo = make_photo(300, 200);
	void *src = NULL;
	size_t len;

	ck_assert_int_eq(vips_pngsave_buffer(photo, &src, &len, NULL), 0);
	expect_failure(src, len * 6 / 10, -EINVAL, "claims");
	expect_failure(src, len * 6 / 10, -EINVAL, ", file has ");
	expect_failure(src, len - 12, -EINVAL, "PNG truncated: no IEND chunk");
	g_object_unref(photo);
	g_free(src);
}
END_TEST

/* libpng reports a bad IHDR only as a GLib warning; libvips' error buffer
 * stayed empty ("libvips gave no reason"). */
START_TEST(png_header_error_named)
{
	struct pl_test_buf png = { 0 };

	pl_test_png_start(&png, 16, 16);
	png.b[29] ^= 0xff;	/* the IHDR CRC */
	pl_test_png_end(&png, 16, 16);
	expect_failure(png.b, png.len, -EINVAL, "cannot read image header: IHDR: CRC error");
	pl_test_buf_free(&png);
}
END_TEST

/* Files that pass the pre-check and fail inside libvips, two kinds at once
 * on four threads: each reason is its own (libvips' error buffer is one
 * global; it used to lose and mix them). */
struct reason_arg {
	void *ctx;
	const void *data;
	size_t len;
	const char *want, *never;
	int wrong;
	char bad_why[PL_REASON_MAX + 16];	/* "rc N: " and a reason */
};

static void *reason_worker(void *p)
{
	struct reason_arg *a = p;

	for (int i = 0; i < 20; i++) {
		struct pl_item *it = item_of(a->data, a->len);
		char why[PL_REASON_MAX] = "";
		int rc = pl_resize_ops.process(a->ctx, NULL, it, why, sizeof why);

		if (rc != -EINVAL || !strstr(why, a->want) || strstr(why, a->never)) {
			a->wrong++;
			snprintf(a->bad_why, sizeof a->bad_why, "rc %d: %s", rc, why);
		}
		pl_item_free(it);
	}
	pl_resize_ops.worker_stop(a->ctx, NULL);
	return NULL;
}

START_TEST(reasons_stay_with_their_items)
{
	struct pl_variant v = variant("t", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	VipsImage *photo = make_photo(300, 200);
	unsigned char *png = NULL, *jpeg;
	size_t plen, jlen, pos = 8;
	struct reason_arg args[4];
	pthread_t th[4];

	/* PNG: a deflate block of the reserved type 3 right after the zlib
	 * header of IDAT, CRC kept right: an error whatever the (random)
	 * pixels, where flipped bytes could still inflate */
	ck_assert_int_eq(vips_pngsave_buffer(photo, (void **)&png, &plen, NULL), 0);
	while (memcmp(png + pos + 4, "IDAT", 4)) {
		uint32_t n = (uint32_t)png[pos] << 24 | (uint32_t)png[pos + 1] << 16 |
			     (uint32_t)png[pos + 2] << 8 | png[pos + 3];

		pos += 12 + n;
	}
	{
		uint32_t n = (uint32_t)png[pos] << 24 | (uint32_t)png[pos + 1] << 16 |
			     (uint32_t)png[pos + 2] << 8 | png[pos + 3];
		uLong crc;

		png[pos + 8 + 2] = 0x07;	/* BFINAL 1, BTYPE 11 */
		crc = crc32(0, png + pos + 4, n + 4);
		png[pos + 8 + n] = (unsigned char)(crc >> 24);
		png[pos + 9 + n] = (unsigned char)(crc >> 16);
		png[pos + 10 + n] = (unsigned char)(crc >> 8);
		png[pos + 11 + n] = (unsigned char)crc;
	}
	/* JPEG: a quantisation table numbered 7 */
	jpeg = jpeg_of(photo, &jlen);
	for (pos = 2; jpeg[pos + 1] != 0xdb; pos += 2 + ((size_t)jpeg[pos + 2] << 8 | jpeg[pos + 3]))
		;
	jpeg[pos + 4] = 0x07;

	for (int i = 0; i < 4; i++) {
		bool p = i % 2 == 0;

		args[i] = (struct reason_arg){ ctx, p ? (void *)png : (void *)jpeg, p ? plen : jlen,
					       /* "; …": libpng's own words follow */
					       p ? "vipspng: libpng read error; " :
						   "VipsJpeg: Bogus DQT index 7",
					       p ? "Jpeg" : "png", 0, "" };
		ck_assert_int_eq(pthread_create(&th[i], NULL, reason_worker, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		if (args[i].wrong)
			printf("test_resize: thread %d (%s): %d of 20 reasons wrong, e.g. %s\n", i,
			       i % 2 ? "JPEG" : "PNG", args[i].wrong, args[i].bad_why);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(args[i].wrong == 0, "thread %d: %d of 20 reasons wrong, e.g. %s", i,
			      args[i].wrong, args[i].bad_why);
	g_object_unref(photo);
	g_free(png);
	g_free(jpeg);
	pl_resize_free(ctx);
}
END_TEST

START_TEST(metadata_stripped)
{
	VipsImage *photo = make_photo(300, 200), *icc, *tagged, *back;
	void *src;
	size_t len;
	static const enum pl_format fmts[] = { PL_FORMAT_JPEG, PL_FORMAT_WEBP, PL_FORMAT_PNG,
					       PL_FORMAT_AVIF };

	ck_assert_int_eq(vips_icc_transform(photo, &icc, "srgb", "input_profile", "srgb", NULL), 0);
	ck_assert_int_eq(vips_copy(icc, &tagged, NULL), 0);
	vips_image_set_string(tagged, "exif-ifd0-ImageDescription", "secret location");
	vips_image_set_int(tagged, VIPS_META_ORIENTATION, 1);
	src = jpeg_of(tagged, &len);
	back = vips_image_new_from_buffer(src, len, "", NULL);
	ck_assert_ptr_nonnull(back);
	ck_assert_int_ne(vips_image_get_typeof(back, VIPS_META_EXIF_NAME), 0);
	ck_assert_int_ne(vips_image_get_typeof(back, VIPS_META_ICC_NAME), 0);
	g_object_unref(back);

	for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
		struct pl_variant v = variant("m", 100, 100, PL_FIT_INSIDE, PL_CROP_CENTRE, fmts[i]);
		void *ctx;
		char why[PL_REASON_MAX];
		struct pl_item *it;
		VipsImage *out;

		if (!pl_resize_format_supported(fmts[i]))
			continue;
		ctx = new_ctx(&v, 1, 50000000);
		ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
		out = decode(&it->outputs[0]);
		ck_assert_msg(!vips_image_get_typeof(out, VIPS_META_EXIF_NAME),
			      "format %d kept EXIF", (int)fmts[i]);
		ck_assert_msg(!vips_image_get_typeof(out, VIPS_META_ICC_NAME),
			      "format %d kept an ICC profile", (int)fmts[i]);
		g_object_unref(out);
		pl_item_free(it);
		pl_resize_free(ctx);
	}
	g_object_unref(tagged), g_object_unref(icc), g_object_unref(photo);
	g_free(src);
}
END_TEST

START_TEST(alpha_flattened_for_jpeg_kept_for_png)
{
	struct pl_variant vs[] = {
		variant("j", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("p", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_PNG),
	};
	void *ctx = new_ctx(vs, 2, 50000000);
	VipsImage *black, *rgba, *tagged, *out;
	void *src;
	size_t len;
	char why[PL_REASON_MAX];
	struct pl_item *it;
	double avg;

	/* Fully transparent black: flattened onto white it is white. */
	ck_assert_int_eq(vips_black(&black, 64, 64, "bands", 4, NULL), 0);
	ck_assert_int_eq(vips_cast_uchar(black, &rgba, NULL), 0);
	ck_assert_int_eq(vips_copy(rgba, &tagged, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
	ck_assert_int_eq(vips_pngsave_buffer(tagged, &src, &len, NULL), 0);

	ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
	out = decode(&it->outputs[0]);
	ck_assert_int_eq(out->Bands, 3);
	ck_assert_int_eq(vips_avg(out, &avg, NULL), 0);
	ck_assert_msg(avg > 250, "transparent pixels became %g, not white", avg);
	g_object_unref(out);
	out = decode(&it->outputs[1]);
	ck_assert_int_eq(out->Bands, 4);
	g_object_unref(out);

	g_object_unref(tagged), g_object_unref(rgba), g_object_unref(black);
	g_free(src);
	pl_item_free(it);
	pl_resize_free(ctx);
}
END_TEST

START_TEST(several_variants_one_source)
{
	struct pl_variant vs[] = {
		variant("large", 1024, 1024, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("square", 300, 300, PL_FIT_COVER, PL_CROP_ATTENTION, PL_FORMAT_WEBP),
		variant("thumb", 128, 128, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_PNG),
		variant("banner", 600, 100, PL_FIT_COVER, PL_CROP_CENTRE, PL_FORMAT_JPEG),
	};
	void *ctx = new_ctx(vs, 4, 50000000);
	size_t len;
	void *src = photo_jpeg(1600, 1200, &len);
	char why[PL_REASON_MAX];
	struct pl_item *it;

	ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
	ck_assert_ptr_null(it->data);
	ck_assert_uint_eq(it->len, 0);
	ck_assert_uint_eq(it->noutputs, 4);
	ck_assert_str_eq(it->outputs[0].variant, "large");
	ck_assert_str_eq(it->outputs[1].variant, "square");
	ck_assert_str_eq(it->outputs[2].variant, "thumb");
	ck_assert_str_eq(it->outputs[3].variant, "banner");
	check_output(&it->outputs[0], 1024, 768, "jpegload_buffer");
	check_output(&it->outputs[1], 300, 300, "webpload_buffer");
	check_output(&it->outputs[2], 128, 96, "pngload_buffer");
	check_output(&it->outputs[3], 600, 100, "jpegload_buffer");
	pl_item_free(it);
	pl_resize_free(ctx);
	g_free(src);
}
END_TEST

START_TEST(source_freed_after_success)
{
	struct pl_variant v = variant("t", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	size_t len;
	void *src = photo_jpeg(200, 100, &len);
	char why[PL_REASON_MAX];
	struct pl_item *it;
	int before = live_vips_objects();

	ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
	ck_assert_ptr_null(it->data);
	ck_assert_uint_eq(it->len, 0);
	ck_assert_ptr_nonnull(it->outputs[0].buf);
	ck_assert_uint_gt(it->outputs[0].len, 0);
	ck_assert_ptr_null(it->outputs[0].location);
	ck_assert_int_eq(live_vips_objects(), before);
	pl_item_free(it);
	pl_resize_free(ctx);
	g_free(src);
}
END_TEST

/* Two workers at once, as the pool runs them: one only fails (truncated
 * JPEGs), one only succeeds; the global error buffer must not turn the
 * other worker's successes into failures, and each worker ends with
 * worker_stop (vips_thread_shutdown). */
struct worker_arg {
	void *ctx;
	const void *data;
	size_t len;
	int want;
	int mismatches;
	char last_why[PL_REASON_MAX];
};

static void *worker(void *p)
{
	struct worker_arg *a = p;

	for (int i = 0; i < 6; i++) {
		struct pl_item *it = item_of(a->data, a->len);
		int rc = pl_resize_ops.process(a->ctx, NULL, it, a->last_why, PL_REASON_MAX);

		if (rc != a->want || (rc == 0) != (it->noutputs == 1))
			a->mismatches++;
		pl_item_free(it);
	}
	pl_resize_ops.worker_stop(a->ctx, NULL);
	return NULL;
}

START_TEST(two_workers_concurrently)
{
	struct pl_variant v = variant("t", 128, 128, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	size_t len;
	void *src = photo_jpeg(800, 600, &len);
	struct worker_arg good = { ctx, src, len, 0, 0, "" };
	struct worker_arg bad = { ctx, src, len / 2, -EINVAL, 0, "" };
	pthread_t t1, t2;

	ck_assert_int_eq(pthread_create(&t1, NULL, worker, &good), 0);
	ck_assert_int_eq(pthread_create(&t2, NULL, worker, &bad), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	ck_assert_msg(good.mismatches == 0, "good worker: %d unexpected results (%s)",
		      good.mismatches, good.last_why);
	ck_assert_msg(bad.mismatches == 0, "bad worker: %d unexpected results", bad.mismatches);
	ck_assert_msg(bad.last_why[0], "a failure without a reason");
	pl_resize_free(ctx);
	g_free(src);
}
END_TEST

/* ------------------------------------------- the direct path (one variant) */

/* A smooth picture (no noise): resamplers differ little on it, so the
 * direct path and vips_thumbnail_buffer must agree closely. */
static VipsImage *make_smooth(int w, int h)
{
	VipsImage *xyz, *x, *y, *s, *r, *g, *b, *rgb, *u, *out, *parts[3];

	ck_assert_int_eq(vips_xyz(&xyz, w, h, NULL), 0);
	ck_assert_int_eq(vips_extract_band(xyz, &x, 0, NULL), 0);
	ck_assert_int_eq(vips_extract_band(xyz, &y, 1, NULL), 0);
	ck_assert_int_eq(vips_sines(&s, w, h, "hfreq", 3.0, "vfreq", 2.0, NULL), 0);
	ck_assert_int_eq(vips_linear1(x, &r, 255.0 / w, 0, NULL), 0);
	ck_assert_int_eq(vips_linear1(y, &g, 255.0 / h, 0, NULL), 0);
	ck_assert_int_eq(vips_linear1(s, &b, 100.0, 128.0, NULL), 0);
	parts[0] = r, parts[1] = g, parts[2] = b;
	ck_assert_int_eq(vips_bandjoin(parts, &rgb, 3, NULL), 0);
	ck_assert_int_eq(vips_cast_uchar(rgb, &u, NULL), 0);
	ck_assert_int_eq(vips_copy(u, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
	g_object_unref(xyz), g_object_unref(x), g_object_unref(y), g_object_unref(s);
	g_object_unref(r), g_object_unref(g), g_object_unref(b), g_object_unref(rgb);
	g_object_unref(u);
	return out;
}

/* Mean absolute difference of two decoded outputs of the same size. */
static double mean_abs_diff(VipsImage *a, VipsImage *b)
{
	VipsImage *d, *ad;
	double m;

	ck_assert_int_eq(vips_subtract(a, b, &d, NULL), 0);
	ck_assert_int_eq(vips_abs(d, &ad, NULL), 0);
	ck_assert_int_eq(vips_avg(ad, &m, NULL), 0);
	g_object_unref(ad), g_object_unref(d);
	return m;
}

/* The oracle: what libvips' own thumbnail makes of the same bytes. */
static VipsImage *reference_thumb(const void *src, size_t len, const struct pl_variant *v)
{
	VipsImage *t;

	ck_assert_int_eq(vips_thumbnail_buffer((void *)src, len, &t, v->width,
					       "height", v->height,
					       "size", v->fit == PL_FIT_COVER ? VIPS_SIZE_BOTH
									: VIPS_SIZE_DOWN,
					       "crop", v->fit == PL_FIT_COVER ? VIPS_INTERESTING_CENTRE
									: VIPS_INTERESTING_NONE,
					       NULL), 0);
	return t;
}

/* What a JPEG variant of the reference must look like: alpha onto white,
 * 3 bands.  Takes over the reference to img. */
static VipsImage *flat_white(VipsImage *img)
{
	VipsImage *t = img, *u;

	if (vips_image_hasalpha(t)) {
		VipsArrayDouble *white = vips_array_double_newv(1, 255.0);

		ck_assert_int_eq(vips_flatten(t, &u, "background", white, NULL), 0);
		vips_area_unref(VIPS_AREA(white));
		g_object_unref(t);
		t = u;
	}
	if (t->Bands == 1) {
		ck_assert_int_eq(vips_colourspace(t, &u, VIPS_INTERPRETATION_sRGB, NULL), 0);
		g_object_unref(t);
		t = u;
	}
	return t;
}

/* One JPEG variant of src through the stage must have thumbnail's geometry
 * exactly and nearly its pixels (alpha onto white).  Measured 1.2–1.5 at
 * 256 px (both sides went through JPEG Q80), 2.3–3.7 at 64 px, where a
 * sine pattern is fine detail; a wrong colour, shift or turn gives tens. */
static void expect_like_thumbnail(void *ctx, const void *src, size_t len,
				  const struct pl_variant *v, const char *fmt, const int size[2])
{
	char why[PL_REASON_MAX];
	struct pl_item *it;
	VipsImage *ref, *got;
	double diff;

	ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
	ref = flat_white(reference_thumb(src, len, v));
	got = decode(&it->outputs[0]);
	ck_assert_msg(got->Xsize == ref->Xsize && got->Ysize == ref->Ysize,
		      "%s from %s %dx%d: %dx%d, thumbnail gives %dx%d", v->name, fmt,
		      size[0], size[1], got->Xsize, got->Ysize, ref->Xsize, ref->Ysize);
	ck_assert_int_eq(got->Bands, 3);
	diff = mean_abs_diff(got, ref);
	ck_assert_msg(diff < 5.0, "%s from %s %dx%d differs from thumbnail by %g",
		      v->name, fmt, size[0], size[1], diff);
	g_object_unref(got), g_object_unref(ref);
	pl_item_free(it);
}

/* Sizes where the DCT shrink (8, 4, 2, 1) rounds up and the final
 * resample has to land on thumbnail's exact geometry, both fits; the
 * pixels must match thumbnail's closely (Lanczos3 after a DCT shrink is
 * the quality floor, like Pillow's draft + thumbnail), progressive JPEGs
 * decoded from their DC scans included. */
START_TEST(direct_path_matches_thumbnail)
{
	static const int sizes[][2] = {
		{ 2049, 1000 }, { 1000, 2049 }, { 513, 300 }, { 4000, 3000 }, { 2560, 1600 },
		{ 1920, 1200 }, { 257, 1025 }, { 300, 200 }, { 2047, 2047 },
	};
	struct pl_variant vs[] = {
		variant("in", 256, 256, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("cov", 200, 120, PL_FIT_COVER, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("tall", 64, 300, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
	};

	for (size_t k = 0; k < sizeof vs / sizeof *vs; k++) {
		void *ctx = new_ctx(&vs[k], 1, 50000000);

		for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
			VipsImage *img = make_smooth(sizes[i][0], sizes[i][1]);
			size_t len;
			void *src = NULL;

			/* every other one progressive: at DCT shrink 8 its AC
			 * scans are cut (jpegprune.c) */
			ck_assert_int_eq(vips_jpegsave_buffer(img, &src, &len, "Q", 90,
							      "interlace", i % 2 == 1, NULL), 0);
			expect_like_thumbnail(ctx, src, len, &vs[k], "JPEG", sizes[i]);
			g_object_unref(img);
			g_free(src);
		}
		pl_resize_free(ctx);
	}
}
END_TEST

/* mode 0: RGB as it is; 1: RGBA with alpha varying across the picture;
 * 2: grey + alpha.  Takes over the reference to img. */
static VipsImage *with_bands(VipsImage *img, int mode)
{
	VipsImage *a, *x, *grey, *out, *t;

	if (mode == 0)
		return img;
	ck_assert_int_eq(vips_xyz(&x, img->Xsize, img->Ysize, NULL), 0);
	ck_assert_int_eq(vips_extract_band(x, &t, 0, NULL), 0);
	ck_assert_int_eq(vips_linear1(t, &a, 255.0 / img->Xsize, 0, "uchar", TRUE, NULL), 0);
	g_object_unref(t), g_object_unref(x);
	if (mode == 2) {
		ck_assert_int_eq(vips_extract_band(img, &grey, 1, NULL), 0);
		ck_assert_int_eq(vips_bandjoin2(grey, a, &t, NULL), 0);
		ck_assert_int_eq(vips_copy(t, &out, "interpretation", VIPS_INTERPRETATION_B_W, NULL), 0);
		g_object_unref(grey), g_object_unref(t);
	} else {
		ck_assert_int_eq(vips_bandjoin2(img, a, &out, NULL), 0);
	}
	g_object_unref(a), g_object_unref(img);
	return out;
}

/* A PNG cannot shrink on load: from 4× the box on, the direct path box-
 * shrinks both ways, flattening alpha in the same pass, before its Lanczos
 * passes (box_then_lanczos()); the geometry must still be thumbnail's
 * exactly and the pixels as close as the JPEG cases above, for RGB, RGBA
 * and grey + alpha. */
START_TEST(direct_path_png_box_then_lanczos)
{
	static const int sizes[][2] = {
		{ 1920, 1200 }, { 2141, 1203 }, { 1001, 3001 }, { 4097, 2049 }, { 1025, 1025 },
	};
	struct pl_variant vs[] = {
		variant("in", 256, 256, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("cov", 200, 120, PL_FIT_COVER, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("tall", 64, 300, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
	};

	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		VipsImage *img = with_bands(make_smooth(sizes[i][0], sizes[i][1]), i % 3);
		void *src = NULL;
		size_t len;

		ck_assert_int_eq(vips_pngsave_buffer(img, &src, &len, "compression", 1, NULL), 0);
		for (size_t k = 0; k < sizeof vs / sizeof *vs; k++) {
			void *ctx = new_ctx(&vs[k], 1, 50000000);

			expect_like_thumbnail(ctx, src, len, &vs[k], "PNG", sizes[i]);
			pl_resize_free(ctx);
		}
		g_object_unref(img);
		g_free(src);
	}
}
END_TEST

/* One JPEG variant of an RGBA PNG (the direct path flattens before it
 * resamples): transparent is white, opaque red stays red, and the edge
 * between them has no dark fringe (the premultiplication thumbnail did). */
START_TEST(direct_path_alpha_png)
{
	struct pl_variant v = variant("j", 100, 100, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	VipsImage *black, *rgba, *img, *out, *left, *right;
	void *src;
	size_t len;
	char why[PL_REASON_MAX];
	struct pl_item *it;
	double l, r, mn;

	/* 800×400: left half transparent black, right half opaque red. */
	ck_assert_int_eq(vips_black(&black, 800, 400, "bands", 4, NULL), 0);
	ck_assert_int_eq(vips_cast_uchar(black, &rgba, NULL), 0);
	ck_assert_int_eq(vips_draw_rect(rgba, (double[]){ 255, 0, 0, 255 }, 4, 400, 0, 400, 400,
					"fill", TRUE, NULL), 0);
	ck_assert_int_eq(vips_copy(rgba, &img, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
	ck_assert_int_eq(vips_pngsave_buffer(img, &src, &len, NULL), 0);

	ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
	out = decode(&it->outputs[0]);
	ck_assert_int_eq(out->Xsize, 100);
	ck_assert_int_eq(out->Ysize, 50);
	ck_assert_int_eq(out->Bands, 3);
	ck_assert_int_eq(vips_crop(out, &left, 0, 0, 45, 50, NULL), 0);
	ck_assert_int_eq(vips_crop(out, &right, 55, 0, 45, 50, NULL), 0);
	ck_assert_int_eq(vips_avg(left, &l, NULL), 0);
	ck_assert_int_eq(vips_avg(right, &r, NULL), 0);
	ck_assert_msg(l > 250, "transparent half came out %g, not white", l);
	ck_assert_msg(fabs(r - 85) < 5, "red half averages %g over 3 bands, not 85", r);
	{
		VipsImage *rb;

		/* The R band is 255 on white and on red alike: anywhere darker,
		 * at the edge above all, is transparent black bleeding in. */
		ck_assert_int_eq(vips_extract_band(out, &rb, 0, NULL), 0);
		ck_assert_int_eq(vips_min(rb, &mn, NULL), 0);
		ck_assert_msg(mn > 200, "R band dips to %g at the edge: a dark fringe", mn);
		g_object_unref(rb);
	}
	g_object_unref(left), g_object_unref(right), g_object_unref(out);
	g_object_unref(img), g_object_unref(rgba), g_object_unref(black);
	g_free(src);
	pl_item_free(it);
	pl_resize_free(ctx);
}
END_TEST

/* An embedded profile is honoured on the direct path: a red stored in
 * Display P3 (with its profile) comes out as sRGB red, not as the P3
 * numbers read as sRGB; and the grey (one band) path gives sRGB output. */
START_TEST(direct_path_profile_and_grey)
{
	struct pl_variant v = variant("c", 64, 64, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG);
	void *ctx = new_ctx(&v, 1, 50000000);
	VipsImage *black, *u, *red, *p3, *out, *grey;
	double px[3] = { 0 }, *pix;
	int n;
	void *src;
	size_t len;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	ck_assert_int_eq(vips_black(&black, 400, 300, "bands", 3, NULL), 0);
	ck_assert_int_eq(vips_linear(black, &u, (double[]){ 1, 1, 1 }, (double[]){ 220, 30, 30 }, 3,
				     "uchar", TRUE, NULL), 0);
	ck_assert_int_eq(vips_copy(u, &red, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
	if (vips_icc_transform(red, &p3, "p3", "input_profile", "srgb", NULL)) {
		vips_error_clear();
		printf("test_resize: no built-in p3 profile in this libvips; profile check skipped\n");
		p3 = NULL;
	}
	if (p3) {
		ck_assert_int_eq(vips_getpoint(p3, &pix, &n, 10, 10, NULL), 0);
		ck_assert_msg(pix[0] < 215, "P3 red %g is not distinct from sRGB's 220", pix[0]);
		g_free(pix);
		/* JPEG: DCT shrink, then vips_resize; PNG: box_flatten() at 6×,
		 * which must carry the profile over to the small image */
		for (int png = 0; png <= 1; png++) {
			if (png)
				ck_assert_int_eq(vips_pngsave_buffer(p3, &src, &len, NULL), 0);
			else
				src = jpeg_of(p3, &len);
			ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
			out = decode(&it->outputs[0]);
			ck_assert_int_eq(vips_getpoint(out, &pix, &n, 30, 20, NULL), 0);
			memcpy(px, pix, 3 * sizeof *px);
			g_free(pix);
			ck_assert_msg(fabs(px[0] - 220) < 6 && fabs(px[1] - 30) < 8,
				      "P3 %s came out (%g, %g, %g), not sRGB (220, 30, 30)",
				      png ? "PNG" : "JPEG", px[0], px[1], px[2]);
			ck_assert_msg(!vips_image_get_typeof(out, VIPS_META_ICC_NAME),
				      "profile kept");
			g_object_unref(out);
			g_free(src);
			pl_item_free(it);
		}
		g_object_unref(p3);
	}

	ck_assert_int_eq(vips_extract_band(red, &grey, 1, NULL), 0);
	{
		VipsImage *bw;

		ck_assert_int_eq(vips_copy(grey, &bw, "interpretation", VIPS_INTERPRETATION_B_W, NULL), 0);
		src = jpeg_of(bw, &len);
		g_object_unref(bw);
	}
	ck_assert_msg(run(ctx, src, len, &it, why) == 0, "%s", why);
	out = decode(&it->outputs[0]);
	ck_assert_int_eq(out->Xsize, 64);
	ck_assert_int_eq(out->Ysize, 48);
	ck_assert_int_eq(out->Type, VIPS_INTERPRETATION_sRGB);
	g_object_unref(out), g_object_unref(grey);
	g_free(src);
	pl_item_free(it);

	g_object_unref(red), g_object_unref(u), g_object_unref(black);
	pl_resize_free(ctx);
}
END_TEST

/* ------------------------------------------------------- timing, printed */

static size_t load_photos(void **bufs, size_t *lens, size_t max)
{
	const char *dir = getenv("PL_TEST_PHOTOS");
	const char *dirs[] = { dir, "/usr/share/backgrounds", "/usr/share/backgrounds/mate/nature" };
	size_t n = 0;

	for (size_t d = 0; d < 3 && n < max; d++) {
		DIR *dh = dirs[d] ? opendir(dirs[d]) : NULL;
		struct dirent *e;

		while (dh && n < max && (e = readdir(dh))) {
			size_t l = strlen(e->d_name);
			char path[4096];
			gchar *data;
			gsize len;

			if (l < 5 || strcasecmp(e->d_name + l - 4, ".jpg"))
				continue;
			snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
			if (!g_file_get_contents(path, &data, &len, NULL))
				continue;
			bufs[n] = data, lens[n++] = len;
		}
		if (dh)
			closedir(dh);
	}
	return n;
}

START_TEST(timing_note)
{
	struct pl_variant vs[] = {
		variant("t", 256, 256, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("s", 512, 512, PL_FIT_COVER, PL_CROP_CENTRE, PL_FORMAT_JPEG),
		variant("l", 1024, 1024, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG),
	};
	void *bufs[4];
	size_t lens[4], n = load_photos(bufs, lens, 4);
	const char *kind = "real photos";

	if (n == 0) {
		bufs[0] = photo_jpeg(2560, 1600, &lens[0]);
		n = 1, kind = "a synthetic 2560×1600 JPEG";
	}
	for (size_t nv = 1; nv <= 3; nv += 2) {
		void *ctx = new_ctx(vs, nv, 50000000);
		uint64_t t0 = pl_now_us();

		for (size_t i = 0; i < n; i++) {
			char why[PL_REASON_MAX];
			struct pl_item *it;

			ck_assert_msg(run(ctx, bufs[i], lens[i], &it, why) == 0, "%s", why);
			ck_assert_uint_eq(it->noutputs, nv);
			pl_item_free(it);
		}
		printf("test_resize: timing (not asserted): %zu variant(s), %.1f ms/image over %zu %s\n",
		       nv, (pl_now_us() - t0) / 1000.0 / n, n, kind);
		pl_resize_free(ctx);
	}
	/* The strategy not taken for several variants: a thumbnail_buffer per
	 * variant, i.e. three one-variant stages over the same bytes. */
	void *single[3];
	uint64_t t0;

	for (size_t k = 0; k < 3; k++)
		single[k] = new_ctx(&vs[k], 1, 50000000);
	t0 = pl_now_us();
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < 3; k++) {
			char why[PL_REASON_MAX];
			struct pl_item *it;

			ck_assert_msg(run(single[k], bufs[i], lens[i], &it, why) == 0, "%s", why);
			pl_item_free(it);
		}
	printf("test_resize: timing (not asserted): 3 variants, one thumbnail_buffer per "
	       "variant instead: %.1f ms/image\n", (pl_now_us() - t0) / 1000.0 / n);
	for (size_t k = 0; k < 3; k++)
		pl_resize_free(single[k]);
	for (size_t i = 0; i < n; i++)
		g_free(bufs[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("resize");
	TCase *tc = tcase_create("resize");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, inside_keeps_aspect_and_bounds);
	tcase_add_test(tc, cover_exact_size);
	tcase_add_test(tc, every_format_decodes_back);
	tcase_add_test(tc, unknown_format_refused);
	tcase_add_test(tc, exif_orientation_applied);
	tcase_add_test(tc, cmyk_becomes_srgb);
	tcase_add_test(tc, png16_becomes_8bit);
	tcase_add_test(tc, animated_gif_first_frame);
	tcase_add_test(tc, max_pixels_from_header);
	tcase_add_test(tc, truncated_jpeg_fails);
	tcase_add_test(tc, zero_bytes);
	tcase_add_test(tc, html_is_not_an_image);
	tcase_add_test(tc, svg_is_blocked);
	tcase_add_test(tc, non_images_never_reach_imagemagick);
	tcase_add_test(tc, pdf_is_blocked);
	tcase_add_test(tc, garbage_after_magic_fails);
	tcase_add_test(tc, bomb_png_chunk_claim);
	tcase_add_test(tc, bomb_png_text_chunks_stripped);
	tcase_add_test(tc, bomb_webp_chunk_claim_named);
	tcase_add_test(tc, bomb_tiff_shared_tag_bytes);
	tcase_add_test(tc, truncated_png_named);
	tcase_add_test(tc, png_header_error_named);
	tcase_add_test(tc, reasons_stay_with_their_items);
	tcase_add_test(tc, metadata_stripped);
	tcase_add_test(tc, alpha_flattened_for_jpeg_kept_for_png);
	tcase_add_test(tc, several_variants_one_source);
	tcase_add_test(tc, source_freed_after_success);
	tcase_add_test(tc, two_workers_concurrently);
	tcase_add_test(tc, direct_path_matches_thumbnail);
	tcase_add_test(tc, direct_path_png_box_then_lanczos);
	tcase_add_test(tc, direct_path_alpha_png);
	tcase_add_test(tc, direct_path_profile_and_grey);
	tcase_add_test(tc, timing_note);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

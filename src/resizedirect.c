/*
 * resizedirect.c — the resize stage's direct path: one variant from a JPEG
 * or an 8-bit, one-page RGB/grey PNG without vips_thumbnail_buffer().
 * resize.c takes it when a source has one variant to make and it fits
 * (pl_resizedirect_fits()); everything else (CMYK, 16-bit, several pages,
 * WebP, GIF, TIFF, HEIF, alpha kept for PNG/WebP/AVIF output, several
 * variants) still goes through thumbnail.
 *
 * Why.  Profiled on the benchmark photos (bench/E2E.md has the figures),
 * thumbnail spent its time in places this path avoids:
 *  - JPEG shrink-on-load left "at least a factor of two" for the final
 *    resample, so a 1920×1200 photo for a 256 box was decoded at 960×600;
 *    here the DCT shrink is the largest of 8, 4, 2, 1 whose result still
 *    covers the box (what Pillow's draft() does) and Lanczos3 does the
 *    rest, so IDCT and colour conversion touch a quarter of the pixels;
 *    at DCT shrink 8 a progressive JPEG loses its AC scans first
 *    (jpegprune.c), which leaves only the DC decode;
 *  - an alpha source was premultiplied and unpremultiplied in float at
 *    full size; for a JPEG output, which has no alpha, the image is
 *    flattened onto white first instead: resampling is linear with
 *    weights that sum to one, so flatten-then-resize is the same picture
 *    as resize-premultiplied-then-flatten, in uchar, once;
 *  - a PNG, which cannot shrink on load, was resampled at full size by
 *    vips_resize's shrinkv/reducev/shrinkh/reduceh; here both box passes
 *    come first, in one integer pass (box_then_lanczos());
 *  - with export_profile and no embedded profile, every image went to XYZ
 *    and back through lcms; here only an embedded profile is applied.
 * The header was also parsed three times (check_source, thumbnail's
 * get_info, the shrunk open); now twice.
 *
 * How it stays thumbnail's picture.  The geometry is computed as
 * vips_thumbnail does (fit_shrink()), on what was loaded, so that the
 * result has thumbnail's size whatever the DCT shrink rounded; rotation and
 * the cover crop run on the small image in memory.  test_resize compares
 * every direct-path output with vips_thumbnail_buffer's on the same bytes.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "config.h"
#include "jpegprune.h"
#include "resizedirect.h"

void pl_resizedirect_probe(VipsImage *img, const char *loader,
			   struct pl_resizedirect_source *si)
{
	int h = vips_image_get_page_height(img);
	bool png = !strcmp(loader, "VipsForeignLoadPngBuffer") ||
		   !strcmp(loader, "VipsForeignLoadSpngBuffer");

	si->jpeg = !strcmp(loader, "VipsForeignLoadJpegBuffer");
	si->ok = (si->jpeg || png) && vips_image_get_n_pages(img) == 1 && img->Ysize == h &&
		 img->BandFmt == VIPS_FORMAT_UCHAR && img->Coding == VIPS_CODING_NONE &&
		 (img->Type == VIPS_INTERPRETATION_sRGB || img->Type == VIPS_INTERPRETATION_B_W) &&
		 img->Bands >= 1 && img->Bands <= 4;
	si->has_alpha = vips_image_hasalpha(img);
	si->raw_width = img->Xsize;
	si->raw_height = h;
	si->swap = vips_image_get_orientation_swap(img);
}

/* The box in the source's stored orientation (the resize happens before
 * the rotation). */
static void stored_box(const struct pl_variant *v, const struct pl_resizedirect_source *si,
		       int *bw, int *bh)
{
	*bw = si->swap ? v->height : v->width;
	*bh = si->swap ? v->width : v->height;
}

/* How much the whole image must shrink (> 1) or grow (< 1) for v, as
 * vips_thumbnail computes it: inside fits the box and never upscales,
 * cover fills it. */
static double fit_shrink(const struct pl_variant *v, int w, int h, int bw, int bh)
{
	double hs = (double)w / bw, vs = (double)h / bh;

	if (v->fit == PL_FIT_COVER)
		return fmin(hs, vs);
	return fmax(1.0, fmax(hs, vs));
}

/* The largest JPEG DCT shrink (8, 4, 2, 1) whose decode still covers the
 * size the variant needs: Lanczos after it, never an upscale from it.
 * libvips 8.14's jpegload rounds the shrunk size down (2047 / 8 → 255). */
static int dct_shrink(const struct pl_variant *v, const struct pl_resizedirect_source *si)
{
	int bw, bh, w = si->raw_width, h = si->raw_height;
	double f;
	int tw, th;

	stored_box(v, si, &bw, &bh);
	f = fit_shrink(v, w, h, bw, bh);
	tw = (int)fmax(1, ceil(w / f - 1e-9));
	th = (int)fmax(1, ceil(h / f - 1e-9));
	for (int s = 8; s > 1; s /= 2)
		if (w / s >= tw && h / s >= th)
			return s;
	return 1;
}

/* Replace *img by out (which holds its own reference to *img). */
static void swap_in(VipsImage **img, VipsImage *out)
{
	g_object_unref(*img);
	*img = out;
}

/* At DCT shrink 8 a progressive JPEG is decoded from its DC scans alone
 * (jpegprune.c: the same pixels, a tenth of the CPU on big photos).  The
 * pruned copy lives as long as the loaded image, which every later step
 * references: the loader reads it lazily. */
static int direct_load(const struct pl_variant *v, const struct pl_resizedirect_source *si,
		       const void *data, size_t len, VipsImage **out)
{
	int shrink;
	void *pruned = NULL;
	size_t plen;

	if (!si->jpeg)
		return vips_pngload_buffer((void *)data, len, out,
					   "access", VIPS_ACCESS_SEQUENTIAL,
					   "fail_on", VIPS_FAIL_ON_ERROR, NULL);
	shrink = dct_shrink(v, si);
	if (shrink == 8 && pl_jpegprune_dc(data, len, &pruned, &plen) == 1) {
		data = pruned;
		len = plen;
	}
	if (vips_jpegload_buffer((void *)data, len, out, "shrink", shrink,
				 "access", VIPS_ACCESS_SEQUENTIAL,
				 "fail_on", VIPS_FAIL_ON_ERROR, NULL)) {
		free(pruned);
		return -1;
	}
	if (pruned)
		g_object_set_data_full(G_OBJECT(*out), "pl-pruned", pruned, free);
	return 0;
}

/* An embedded profile is honoured; a broken one is ignored (the pixels
 * are then taken as sRGB, as a browser would), not a failure. */
static int direct_colour(VipsImage **img)
{
	VipsImage *t;

	if (!vips_image_get_typeof(*img, VIPS_META_ICC_NAME) || (*img)->Bands < 3)
		return 0;
	if (vips_icc_transform(*img, &t, "srgb", "embedded", TRUE,
			       "intent", VIPS_INTENT_RELATIVE, "depth", 8, NULL)) {
		vips_error_clear();
		return 0;
	}
	swap_in(img, t);
	return 0;
}

/* Flatten onto white (JPEG has no alpha); exact before resampling, which
 * is linear with weights that sum to one. */
int pl_resizedirect_flatten_white(VipsImage **img)
{
	VipsArrayDouble *white;
	VipsImage *t;
	int rc;

	if (!vips_image_hasalpha(*img))
		return 0;
	white = vips_array_double_newv(1, 255.0);
	rc = vips_flatten(*img, &t, "background", white, NULL);
	vips_area_unref(VIPS_AREA(white));
	if (rc)
		return -1;
	swap_in(img, t);
	return 0;
}

/* The metadata the later steps read: the embedded profile (direct_colour)
 * and the orientation (direct_orient_crop). */
static void copy_meta(VipsImage *from, VipsImage *to)
{
	const void *icc;
	size_t len;
	int o;

	if (vips_image_get_typeof(from, VIPS_META_ICC_NAME) &&
	    !vips_image_get_blob(from, VIPS_META_ICC_NAME, &icc, &len))
		vips_image_set_blob_copy(to, VIPS_META_ICC_NAME, icc, len);
	if (vips_image_get_typeof(from, VIPS_META_ORIENTATION) &&
	    !vips_image_get_int(from, VIPS_META_ORIENTATION, &o))
		vips_image_set_int(to, VIPS_META_ORIENTATION, o);
}

/* Average k×k boxes (the last row and column of boxes hold what is left)
 * of an 8-bit image, flattening alpha onto white on the way, in one integer
 * pass over strips of k rows pulled from the loader in this thread.  Per
 * output sample: Σ(c·a + 255·(255 − a)) / (255·n), rounded, so the
 * flatten is not rounded before the average.  This replaces vips_flatten,
 * vips_shrinkv and vips_shrinkh, three passes of which flatten works in
 * double at full size (bench/E2E.md has the figures). */
static int box_flatten(VipsImage **img, int k)
{
	VipsImage *in = *img, *out;
	int w = in->Xsize, h = in->Ysize, nb = in->Bands;
	bool alpha = vips_image_hasalpha(in);
	int ob = alpha ? nb - 1 : nb, ow = (w + k - 1) / k, oh = (h + k - 1) / k;
	uint64_t *acc = calloc((size_t)ow * ob, sizeof *acc);
	unsigned char *dst = malloc((size_t)ow * oh * ob);
	VipsRegion *reg = vips_region_new(in);
	int rc = -1;

	if (!acc || !dst || !reg) {
		vips_error("resize", "out of memory");
		goto out;
	}
	for (int oy = 0; oy < oh; oy++) {
		VipsRect r = { 0, oy * k, w, VIPS_MIN(k, h - oy * k) };
		unsigned char *d = dst + (size_t)oy * ow * ob;

		if (vips_region_prepare(reg, &r))
			goto out;
		memset(acc, 0, (size_t)ow * ob * sizeof *acc);
		for (int y = r.top; y < r.top + r.height; y++) {
			const unsigned char *p = VIPS_REGION_ADDR(reg, 0, y);
			uint64_t *a = acc;

			for (int x0 = 0; x0 < w; x0 += k, a += ob) {
				int x1 = VIPS_MIN(w, x0 + k);

				for (int x = x0; x < x1; x++, p += nb) {
					if (alpha) {
						unsigned al = p[nb - 1], bg = 255 * (255 - al);

						for (int c = 0; c < ob; c++)
							a[c] += p[c] * al + bg;
					} else {
						for (int c = 0; c < ob; c++)
							a[c] += p[c];
					}
				}
			}
		}
		for (int ox = 0; ox < ow; ox++) {
			uint64_t n = (uint64_t)r.height * (VIPS_MIN(w, ox * k + k) - ox * k);
			uint64_t div = alpha ? 255 * n : n;

			for (int c = 0; c < ob; c++)
				d[ox * ob + c] = (unsigned char)((acc[ox * ob + c] + div / 2) / div);
		}
	}
	out = vips_image_new_from_memory_copy(dst, (size_t)ow * oh * ob, ow, oh, ob,
					      VIPS_FORMAT_UCHAR);
	if (!out)
		goto out;
	out->Type = ob >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W;
	copy_meta(in, out);
	swap_in(img, out);
	rc = 0;
out:
	if (reg)
		g_object_unref(reg);
	free(acc);
	free(dst);
	return rc;
}

/* Shrink by f ≥ 4 as vips_resize does — a box filter by the integer
 * k = ⌊f / 2⌋, then Lanczos3 for the rest (at least ×2 is left to it, as
 * Pillow's reducing_gap = 2 leaves) — to vips_resize's size, but with both
 * box passes first (box_flatten()): 8.14's vips_resize runs shrinkv,
 * reducev, shrinkh, reduceh, so its 17-tap vertical Lanczos ran over k
 * times as many columns.  A PNG, which cannot shrink on load, is
 * resampled at full size, where that matters most (bench/E2E.md).  The
 * passes are linear and separable, so the picture is the same but for
 * rounding and a sub-pixel shift where the size is not a multiple of k: against a Lanczos3 resample of the whole image in float,
 * both orders differ by 0.03–0.41 levels on average on the benchmark
 * photos, this one within 5 % of vips_resize. */
static int box_then_lanczos(VipsImage **img, double f)
{
	int w = (*img)->Xsize, h = (*img)->Ysize, k = (int)floor(f / 2.0);
	int tw = VIPS_MAX(1, VIPS_ROUND_UINT(w / f)), th = VIPS_MAX(1, VIPS_ROUND_UINT(h / f));
	VipsImage *t;

	if (box_flatten(img, k))
		return -1;
	if ((*img)->Ysize > th) {
		if (vips_reducev(*img, &t, (double)(*img)->Ysize / th,
				 "kernel", VIPS_KERNEL_LANCZOS3, "gap", 0.0, NULL))
			return -1;
		swap_in(img, t);
	}
	if ((*img)->Xsize > tw) {
		if (vips_reduceh(*img, &t, (double)(*img)->Xsize / tw,
				 "kernel", VIPS_KERNEL_LANCZOS3, "gap", 0.0, NULL))
			return -1;
		swap_in(img, t);
	}
	return 0;
}

/* Resample the loaded image to the variant's size in the stored
 * orientation, alpha flattened onto white.  Whether to resample at all is
 * decided on the source (inside never upscales a small source); how much,
 * on what was loaded, so that the result has thumbnail's geometry whatever
 * the DCT shrink rounded. */
static int direct_resize(const struct pl_variant *v, const struct pl_resizedirect_source *si,
			 VipsImage **img)
{
	int bw, bh, w = (*img)->Xsize, h = (*img)->Ysize;
	double f;
	VipsImage *t;

	stored_box(v, si, &bw, &bh);
	if (fit_shrink(v, si->raw_width, si->raw_height, bw, bh) == 1.0 &&
	    w == si->raw_width && h == si->raw_height)
		return pl_resizedirect_flatten_white(img);
	f = v->fit == PL_FIT_COVER ? fmin((double)w / bw, (double)h / bh)
				   : fmax((double)w / bw, (double)h / bh);
	if (f >= 4.0)
		return box_then_lanczos(img, f);
	if (pl_resizedirect_flatten_white(img) ||
	    vips_resize(*img, &t, 1.0 / f, "kernel", VIPS_KERNEL_LANCZOS3, NULL))
		return -1;
	swap_in(img, t);
	return 0;
}

/* Rotate upright and crop a cover variant, on the small image in memory
 * (both need random access; the loader is sequential). */
static int direct_orient_crop(const struct pl_variant *v, VipsInteresting crop,
			      const struct pl_resizedirect_source *si, VipsImage **img)
{
	VipsImage *t;

	if (!si->swap && vips_image_get_orientation(*img) <= 1 && v->fit != PL_FIT_COVER)
		return 0;
	if (!(t = vips_image_copy_memory(*img)))
		return -1;
	swap_in(img, t);
	if (vips_image_get_orientation(*img) > 1) {
		if (vips_autorot(*img, &t, NULL))
			return -1;
		swap_in(img, t);
	}
	if (v->fit == PL_FIT_COVER) {
		if (vips_smartcrop(*img, &t, VIPS_MIN(v->width, (*img)->Xsize),
				   VIPS_MIN(v->height, (*img)->Ysize),
				   "interesting", crop, NULL))
			return -1;
		swap_in(img, t);
	}
	return 0;
}

int pl_resizedirect_variant(const struct pl_variant *v, VipsInteresting crop,
			    const struct pl_resizedirect_source *si,
			    const void *data, size_t len, VipsImage **out)
{
	VipsImage *img;

	if (direct_load(v, si, data, len, &img))
		return -1;
	if (direct_resize(v, si, &img) || direct_colour(&img) ||
	    direct_orient_crop(v, crop, si, &img))
		goto fail;
	*out = img;
	return 0;
fail:
	g_object_unref(img);
	return -1;
}

bool pl_resizedirect_fits(const struct pl_variant *v, const struct pl_resizedirect_source *si)
{
	return si->ok && (v->format == PL_FORMAT_JPEG || !si->has_alpha);
}

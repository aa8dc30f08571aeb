/*
 * resize.c — stage 2: turn the downloaded bytes of an item into every
 * configured variant with libvips 8.14.
 *
 * The bytes come from the network, so they are treated as hostile:
 *
 *  - Only an allow-list of loaders can run.  pl_resize_global_init() blocks
 *    libvips' untrusted (never fuzzed) loaders, then every VipsForeignLoad,
 *    then unblocks exactly these buffer loaders, when this build has them:
 *        VipsForeignLoadJpegBuffer   JPEG (libjpeg-turbo)
 *        VipsForeignLoadPngBuffer    PNG  (libspng in 8.14; same class name)
 *        VipsForeignLoadWebpBuffer   WebP
 *        VipsForeignLoadNsgifBuffer  GIF  (libnsgif)
 *        VipsForeignLoadTiffBuffer   TIFF
 *        VipsForeignLoadHeifBuffer   HEIF/HEIC/AVIF (the vips-heif module)
 *    Everything else (SVG, PDF, ImageMagick, JPEG 2000, JPEG XL, FITS, …)
 *    is refused before any loader runs: vips_foreign_find_load_buffer()
 *    still names a blocked loader, so we can tell "blocked format" from
 *    "not an image at all" and say which in the reason.
 *  - Then the container is walked (imgguard.c): chunk and segment lengths
 *    against the bytes present, so a truncated file is named as such, and
 *    the metadata a thumbnail does not use (PNG text, TIFF descriptions,
 *    WebP XMP, …) is cut out of the buffer in place; ICC and EXIF are
 *    bounded.  libpng allocated a zTXt's claimed 2 GB, inflated text chunks
 *    by the GB and libvips copied them on: metadata is now bounded by the
 *    file, and memory by the pixels.
 *  - The header is read lazily first and width × height × pages is checked
 *    against resize.max_pixels before a single pixel is decoded: a small
 *    PNG that declares 30000×30000 costs nothing.
 *  - Loaders run with fail_on = error, so a truncated or corrupt file fails
 *    with libvips' reason instead of becoming a grey picture.  (Through the
 *    loader option string: 8.14's thumbnail_buffer ignores its own fail_on.)
 *    libvips' error buffer is global, so a failure is repeated alone to
 *    read its own reason (step(), vips_lock).
 *
 * Decoding is the expensive part, so a source is decoded once (the
 * measurements behind each choice are in bench/E2E.md):
 *  - one variant from a JPEG or 8-bit PNG: the direct path
 *    (resizedirect.c: the largest DCT shrink that covers the box, then
 *    Lanczos3; flatten rather than premultiply; ICC only when embedded),
 *    which costs about what libjpeg's decode at that scale costs;
 *  - one variant otherwise: vips_thumbnail_buffer(), whose shrink-on-load
 *    (JPEG DCT scaling, WebP scale, …) decodes only what the box needs;
 *    thumbnail_image on the lazily opened source cannot shrink on load;
 *  - several variants: one vips_thumbnail_buffer() to the largest scale any
 *    variant needs, kept in memory, then vips_thumbnail_image() from it per
 *    variant, rather than a thumbnail_buffer per variant (each decodes
 *    again) or one full decode (it cannot shrink on load).
 *    The costs: a second, small resample for the largest variant, and the
 *    shared decode held in memory (3 bytes a pixel at the largest variant's
 *    scale; the whole image if a variant is as large as the source).  The
 *    source bytes are freed as soon as that one decode is done.
 *
 * Geometry: "inside" fits the result within width × height keeping the
 * aspect ratio and never upscales (a small source stays its size: upscaling
 * adds bytes, not detail).  "cover" always gives exactly width × height,
 * cropping the centre or the most interesting part (attention), and so
 * does upscale a source smaller than the box: pipeline.conf(5) promises
 * the size.  EXIF orientation is applied by thumbnail; only the first page or
 * frame of a multi-page image is used.
 *
 * Output is 8-bit sRGB (embedded profiles, CMYK and 16-bit are converted),
 * with all metadata stripped (8.14 savers take strip; keep came in 8.15;
 * webpsave writes an EXIF chunk regardless, which we cut out of the RIFF).
 * JPEG has no alpha: it is flattened onto white; PNG, WebP and AVIF keep it.
 * Encoded buffers are g_malloc'd by libvips and handed to upload as they are.
 *
 * libvips' own threads are off (concurrency 1): the stage width is the
 * parallelism, and its operation cache is off: a daemon never sees the same
 * image twice and the cache would only hold memory.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>
#include <vips/vector.h>

#include "config.h"
#include "imgguard.h"
#include "item.h"
#include "log.h"
#include "resize.h"
#include "resizedirect.h"

/* Candidates for the allow-list; those missing from this build are skipped
 * (HEIF is a loadable module and may be absent). */
static const char *const allowed_candidates[] = {
	"VipsForeignLoadJpegBuffer", "VipsForeignLoadPngBuffer",
	"VipsForeignLoadSpngBuffer", "VipsForeignLoadWebpBuffer",
	"VipsForeignLoadNsgifBuffer", "VipsForeignLoadGifBuffer",
	"VipsForeignLoadTiffBuffer", "VipsForeignLoadHeifBuffer",
};
#define NCANDIDATES (sizeof allowed_candidates / sizeof *allowed_candidates)

static GType allowed[NCANDIDATES];
static size_t nallowed;
static bool initialised;
static bool avif_ok;

/*
 * libvips 8.14 keeps one error buffer for all threads: with four workers, a
 * failing item's text was taken by another worker's failure, or cleared by
 * another worker starting an item, so that 39 of 100 failures in a run read
 * "libvips gave no reason" and others carried two images' reasons.  There
 * is no per-thread buffer and no hook, so a failure is run again alone:
 * every worker holds vips_lock for reading while it works; a step that
 * failed in libvips takes it for writing (writers first, so it is not
 * starved), clears the buffer, repeats, and reads its own text.  Failures
 * are the rare case and stop the other workers only for one repeat each.
 */
static pthread_rwlock_t vips_lock;
/* A step's return when libvips failed (never leaves this file): its why
 * holds the prefix of the reason, step() adds libvips' text. */
enum { VIPS_FAILED = 1 };

/* Some failures are told only as a GLib warning: libpng's own messages
 * reach libvips' handler as g_warning (the buffer gets "libpng read error",
 * or nothing at all when the header fails).  While step() repeats a failure
 * alone, the first warning is kept here.  Not thread-local: libvips decodes
 * in its own threadpool's threads even at concurrency 1. */
static pthread_mutex_t warning_lock = PTHREAD_MUTEX_INITIALIZER;
static bool warning_wanted;
static char vips_warning[200];

/* vips_thumbnail_buffer() accepts fail_on but does not pass it to the
 * loader in 8.14 (libvips issue #5195): a truncated JPEG came out as a
 * half-grey thumbnail.  The loader option string does reach it. */
#define LOADER_OPTIONS "fail_on=error"

struct pl_resize {
	long max_pixels;
	size_t nvariants;
	struct pl_variant variants[];
};

/* libvips warns through GLib (e.g. "read gave 68 warnings" for a damaged
 * file whose error we already report): keep that out of the operator's
 * log unless they ask for debug. */
static void vips_log_handler(const gchar *domain, GLogLevelFlags level,
			     const gchar *msg, gpointer ud)
{
	(void)domain;
	(void)ud;
	if (msg && (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL))) {
		pthread_mutex_lock(&warning_lock);
		if (warning_wanted && !vips_warning[0]) {
			snprintf(vips_warning, sizeof vips_warning, "%s", msg);
			for (char *c = vips_warning; *c; c++)
				if (*c == '\n' || *c == '\r')
					*c = ' ';
			g_strstrip(vips_warning);
		}
		pthread_mutex_unlock(&warning_lock);
	}
	pl_log(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL) ? LOG_ERR : LOG_DEBUG,
	       "libvips: %s", msg);
}

/* The only sure test for AV1 is to encode: libheif may be built without
 * an AV1 encoder even when heifsave exists. */
static bool probe_avif(void)
{
	VipsImage *img = NULL;
	void *buf = NULL;
	size_t len = 0;
	bool ok;

	if (!g_type_from_name("VipsForeignSaveHeifBuffer"))
		return false;
	if (vips_black(&img, 16, 16, "bands", 3, NULL)) {
		vips_error_clear();
		return false;
	}
	ok = vips_heifsave_buffer(img, &buf, &len,
				  "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
				  NULL) == 0 && len > 0;
	g_free(buf);
	g_object_unref(img);
	vips_error_clear();
	return ok;
}

int pl_resize_global_init(const char *argv0)
{
	pthread_rwlockattr_t attr;
	int rc;

	if (initialised)
		return 0;
	if ((rc = pthread_rwlockattr_init(&attr)))
		return -rc;
	rc = pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	if (!rc)
		rc = pthread_rwlock_init(&vips_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc) {
		pl_log(LOG_ERR, "resize: cannot make the libvips lock: %s", strerror(rc));
		return -rc;
	}
	if (VIPS_INIT(argv0 ? argv0 : "pipelined")) {
		char *e = vips_error_buffer_copy();

		pl_log(LOG_ERR, "libvips failed to start: %s", e);
		g_free(e);
		pthread_rwlock_destroy(&vips_lock);
		return -ENOTSUP;
	}
	g_log_set_handler("VIPS", G_LOG_LEVEL_MASK, vips_log_handler, NULL);
	vips_concurrency_set(1);
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
	/*
	 * No run-time compiled (orc) vector code.  libvips compiles an orc
	 * program for every reduce it builds, and Debian 12's liborc 0.4.33
	 * races in orc_code_allocate_codemem() when resize workers do that at
	 * the same time: the daemon died with SIGSEGV there under it_crash's
	 * load (core dump: vips_thumbnail_image → vips_reducev →
	 * vips_vector_compile → orc_program_compile_full).  The C paths
	 * measured no slower on the mate-backgrounds photos, need no
	 * writable+executable memory (the unit forbids it), and valgrind can
	 * follow them.
	 */
	vips_vector_set_enabled(FALSE);

	vips_block_untrusted_set(TRUE);
	vips_operation_block_set("VipsForeignLoad", TRUE);
	nallowed = 0;
	for (size_t i = 0; i < NCANDIDATES; i++) {
		GType t = g_type_from_name(allowed_candidates[i]);

		if (!t)
			continue;
		vips_operation_block_set(allowed_candidates[i], FALSE);
		allowed[nallowed++] = t;
	}
	avif_ok = probe_avif();
	pl_debug("libvips %s: %zu loaders allowed, avif output %s",
		 vips_version_string(), nallowed, avif_ok ? "available" : "unavailable");
	initialised = true;
	return 0;
}

void pl_resize_global_cleanup(void)
{
	if (!initialised)
		return;
	vips_shutdown();
	pthread_rwlock_destroy(&vips_lock);
	initialised = false;
}

int pl_resize_format_supported(int format)
{
	switch (format) {
	case PL_FORMAT_JPEG:
	case PL_FORMAT_WEBP:
	case PL_FORMAT_PNG:
		return 1;
	case PL_FORMAT_AVIF:
		return avif_ok;
	default:
		return 0;
	}
}

int pl_resize_new(const struct pl_config *cfg, void **ctx)
{
	struct pl_resize *r;
	size_t n = cfg->resize.nvariants;

	if (!initialised) {
		pl_log(LOG_ERR, "resize: pl_resize_global_init() was not called");
		return -EINVAL;
	}
	if (n == 0 || cfg->resize.max_pixels <= 0) {
		pl_log(LOG_ERR, "resize: no variants or max_pixels <= 0");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct pl_variant *v = &cfg->resize.variants[i];
		char why[PL_REASON_MAX];
		int rc = pl_config_variant_check(v, why, sizeof why);

		if (rc < 0) {
			pl_log(LOG_ERR, "resize: %s", why);
			return rc;
		}
		/* the one rule that is this build's, not the file's */
		if (!pl_resize_format_supported(v->format)) {
			pl_log(LOG_ERR, "resize: variant \"%s\" asks for %s output, which this "
			       "libvips build cannot write (no heifsave with an AV1 encoder)",
			       v->name, pl_config_format_ext(v->format));
			return -ENOTSUP;
		}
	}
	r = calloc(1, sizeof *r + n * sizeof r->variants[0]);
	if (!r)
		return -ENOMEM;
	/* A copy: a reload may free cfg while this stage still runs. */
	memcpy(r->variants, cfg->resize.variants, n * sizeof r->variants[0]);
	r->nvariants = n;
	r->max_pixels = cfg->resize.max_pixels;
	*ctx = r;
	return 0;
}

void pl_resize_free(void *ctx)
{
	free(ctx);
}

static void resize_worker_stop(void *ctx, void *wstate)
{
	(void)ctx;
	(void)wstate;
	vips_thread_shutdown();
}

/* Take libvips' (global) error buffer and make it one line after prefix:
 * its lines (one per layer that failed) joined with "; ", then the first
 * warning when the buffer does not already say it.  Called only by step(),
 * alone under vips_lock, so the text is this item's. */
static void why_vips(char *why, size_t whylen, const char *prefix)
{
	char *e = vips_error_buffer_copy();
	char **lines = g_strsplit(g_strstrip(e), "\n", -1);
	size_t n;
	bool said = false;

	pthread_mutex_lock(&warning_lock);
	warning_wanted = false;
	pthread_mutex_unlock(&warning_lock);

	n = (size_t)snprintf(why, whylen, "%s:", prefix);
	for (char **l = lines; *l && n < whylen; l++) {
		g_strstrip(*l);
		if (**l) {
			n += (size_t)snprintf(why + n, whylen - n, "%s%s", said ? "; " : " ", *l);
			said = true;
		}
	}
	if (vips_warning[0] && !strstr(e, vips_warning) && n < whylen) {
		n += (size_t)snprintf(why + n, whylen - n, "%s%s", said ? "; " : " ", vips_warning);
		said = true;
	}
	if (!said && n < whylen)
		snprintf(why + n, whylen - n, " libvips failed without a message or warning");
	g_strfreev(lines);
	g_free(e);
}

/* A short, printable look at what came instead of an image. */
static void sniff(const void *data, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = data;
	size_t k = 0;

	for (size_t i = 0; i < len && i < 24 && k + 1 < outlen; i++)
		out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '.';
	out[k] = '\0';
}

static bool loader_allowed(const char *name)
{
	GType t = g_type_from_name(name);

	for (size_t i = 0; i < nallowed; i++)
		if (t == allowed[i])
			return true;
	return false;
}

struct source_info {
	int width, height;	/* after EXIF orientation, first page */
	const char *export_profile;	/* "srgb" for a source with an ICC profile */
	struct pl_resizedirect_source direct;	/* what the direct path needs */
};

/*
 * The allow-list, by signature, before libvips sees a byte: libvips'
 * vips_foreign_find_load_buffer() asks every loader's sniffer in turn,
 * blocked ones included, and ImageMagick's sniffer (never fuzzed) loads
 * coder modules and parses what it is given.  An allowed format's own
 * loader outranks ImageMagick, so once the signature is one of these the
 * search stops before it.  Returns the format's name, or NULL.
 */
static const char *allowed_signature(const unsigned char *b, size_t len)
{
	static const char *const heif_brands[] = {
		"heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", "avif", "avis"
	};

	if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return "jpeg";
	if (len >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8))
		return "png";
	if (len >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6)))
		return "gif";
	if (len >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4))
		return "webp";
	if (len >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4) ||
			 !memcmp(b, "II+\0", 4) || !memcmp(b, "MM\0+", 4)))
		return "tiff";
	if (len >= 12 && !memcmp(b + 4, "ftyp", 4))
		for (size_t i = 0; i < sizeof heif_brands / sizeof *heif_brands; i++)
			if (!memcmp(b + 8, heif_brands[i], 4))
				return "heif";
	return NULL;
}

/* What a refused source looks like, for the reason: a known format that is
 * not allowed is "blocked", anything else is "not an image". */
static const char *refused_format(const unsigned char *b, size_t len)
{
	size_t n = len < 1024 ? len : 1024;

	if (len >= 5 && !memcmp(b, "%PDF-", 5))
		return "pdf";
	if (memmem(b, n, "<svg", 4))
		return "svg";
	return NULL;
}

/* Identify the format by its signature and run its pre-check (imgguard.c),
 * which may strip metadata from the bytes in place (*len shrinks).  No
 * libvips here. */
static int screen_source(unsigned char *data, size_t *len, char *why, size_t whylen)
{
	const char *fmt;

	if (!data || *len == 0)
		return snprintf(why, whylen, "empty body"), -EINVAL;
	fmt = allowed_signature(data, *len);
	if (!fmt) {
		const char *blocked = refused_format(data, *len);
		char peek[32];

		if (blocked) {
			snprintf(why, whylen, "image format blocked: %s is not on the allow-list "
				 "(jpeg, png, webp, gif, tiff, heif)", blocked);
			return -ENOTSUP;
		}
		sniff(data, *len, peek, sizeof peek);
		snprintf(why, whylen, "not an image (%zu bytes starting \"%s\")", *len, peek);
		return -EINVAL;
	}
	if (!strcmp(fmt, "png"))
		return pl_imgguard_png(data, len, why, whylen);
	if (!strcmp(fmt, "jpeg"))
		return pl_imgguard_jpeg(data, *len, why, whylen);
	if (!strcmp(fmt, "webp"))
		return pl_imgguard_webp(data, len, why, whylen);
	if (!strcmp(fmt, "tiff"))
		return pl_imgguard_tiff(data, *len, why, whylen);
	return 0;	/* GIF and HEIF: their libraries held (imgguard.c says how) */
}

/* Read the header only, from bytes screen_source() passed; refuse what we
 * must not decode.  No pixel is decoded here. */
static int check_source(const struct pl_resize *r, const void *data, size_t len,
			struct source_info *si, char *why, size_t whylen)
{
	const char *loader;
	VipsImage *img;
	int64_t w, h, pages;

	loader = vips_foreign_find_load_buffer(data, len);
	if (!loader) {
		char peek[32];

		sniff(data, len, peek, sizeof peek);
		snprintf(why, whylen, "not an image (%zu bytes starting \"%s\")", len, peek);
		return -EINVAL;
	}
	if (!loader_allowed(loader)) {
		const char *nick = vips_nickname_find(g_type_from_name(loader));

		snprintf(why, whylen, "image format blocked: %s is not on the allow-list "
			 "(jpeg, png, webp, gif, tiff, heif)", nick ? nick : loader);
		return -ENOTSUP;
	}

	img = vips_image_new_from_buffer(data, len, "",
					 "access", VIPS_ACCESS_SEQUENTIAL,
					 "fail_on", VIPS_FAIL_ON_ERROR, NULL);
	if (!img)
		return snprintf(why, whylen, "cannot read image header"), VIPS_FAILED;

	w = img->Xsize;
	h = vips_image_get_page_height(img);
	pages = vips_image_get_n_pages(img);
	pl_resizedirect_probe(img, loader, &si->direct);
	if (si->direct.swap) {
		si->width = (int)h;
		si->height = (int)w;
	} else {
		si->width = (int)w;
		si->height = (int)h;
	}
	/* Only a tagged source goes through an ICC transform: for an untagged
	 * one 8.14's thumbnail would take sRGB → XYZ → ICC export, which moves
	 * saturated colours (pure blue came out 84,15,253) and darkens 16-bit
	 * sources; its plain colourspace path (and finish()) is exact. */
	si->export_profile = vips_image_get_typeof(img, VIPS_META_ICC_NAME) ? "srgb" : NULL;
	g_object_unref(img);

	if (w * h * pages > r->max_pixels) {
		if (pages > 1)
			snprintf(why, whylen, "image too large: %lld×%lld×%lld pages > max_pixels %ld",
				 (long long)w, (long long)h, (long long)pages, r->max_pixels);
		else
			snprintf(why, whylen, "image too large: %lld×%lld > max_pixels %ld",
				 (long long)w, (long long)h, r->max_pixels);
		return -EFBIG;
	}
	return 0;
}

static VipsInteresting crop_of(const struct pl_variant *v)
{
	if (v->fit != PL_FIT_COVER)
		return VIPS_INTERESTING_NONE;
	return v->crop == PL_CROP_ATTENTION ? VIPS_INTERESTING_ATTENTION : VIPS_INTERESTING_CENTRE;
}

/* inside never upscales; cover always fills the box exactly. */
static VipsSize size_of(const struct pl_variant *v)
{
	return v->fit == PL_FIT_COVER ? VIPS_SIZE_BOTH : VIPS_SIZE_DOWN;
}

/* The scale (≤ 1) of the source that the most demanding variant needs. */
static double needed_scale(const struct pl_resize *r, const struct source_info *si)
{
	double s = 0;

	for (size_t i = 0; i < r->nvariants; i++) {
		const struct pl_variant *v = &r->variants[i];
		double a = (double)v->width / si->width, b = (double)v->height / si->height;
		double f = v->fit == PL_FIT_COVER ? fmax(a, b) : fmin(a, b);

		s = fmax(s, f);
	}
	return fmin(s, 1.0);
}

/* Decode once, to the largest size any variant needs, into memory.  Two
 * pixels of margin keep rounding from making the largest variant a pixel
 * short (inside never upscales). */
static int decode_shared(const struct pl_resize *r, const void *data, size_t len,
			 const struct source_info *si, VipsImage **out,
			 char *why, size_t whylen)
{
	double s = needed_scale(r, si);
	int w = (int)fmin(si->width, ceil(si->width * s) + 2);
	int h = (int)fmin(si->height, ceil(si->height * s) + 2);
	VipsImage *t, *m;

	if (vips_thumbnail_buffer((void *)data, len, &t, w, "height", h,
				  "size", VIPS_SIZE_DOWN, "export_profile", si->export_profile,
				  "option_string", LOADER_OPTIONS,
				  "fail_on", VIPS_FAIL_ON_ERROR, NULL))
		return snprintf(why, whylen, "cannot decode image"), VIPS_FAILED;
	m = vips_image_copy_memory(t);
	g_object_unref(t);
	if (!m)
		return snprintf(why, whylen, "cannot decode image"), VIPS_FAILED;
	*out = m;
	return 0;
}


/* 8-bit sRGB; JPEG loses alpha, so flatten it onto white first. */
static int finish(VipsImage *in, enum pl_format fmt, VipsImage **out)
{
	VipsImage *cur = in, *t;

	g_object_ref(cur);
	if (cur->Type != VIPS_INTERPRETATION_sRGB || cur->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_colourspace(cur, &t, VIPS_INTERPRETATION_sRGB, NULL))
			goto fail;
		g_object_unref(cur);
		cur = t;
	}
	if (cur->BandFmt != VIPS_FORMAT_UCHAR) {
		if (vips_cast_uchar(cur, &t, NULL))
			goto fail;
		g_object_unref(cur);
		cur = t;
	}
	if (fmt == PL_FORMAT_JPEG && pl_resizedirect_flatten_white(&cur))
		goto fail;
	*out = cur;
	return 0;
fail:
	g_object_unref(cur);
	return -1;
}

static int save(VipsImage *img, const struct pl_variant *v, void **buf, size_t *len)
{
	switch (v->format) {
	case PL_FORMAT_JPEG:
		return vips_jpegsave_buffer(img, buf, len, "Q", v->quality,
					    "optimize_coding", TRUE, "strip", TRUE, NULL);
	case PL_FORMAT_WEBP:
		/* 8.14.1's webpsave always writes an EXIF chunk (rebuilt from
		 * resolution and orientation), strip or not: cut it out. */
		if (vips_webpsave_buffer(img, buf, len, "Q", v->quality, "strip", TRUE, NULL))
			return -1;
		if (pl_imgguard_webp_strip(*buf, len)) {
			g_free(*buf);
			*buf = NULL;
			vips_error("resize", "webpsave wrote an unexpected RIFF layout");
			return -1;
		}
		return 0;
	case PL_FORMAT_PNG:
		return vips_pngsave_buffer(img, buf, len, "compression", 6,
					   "strip", TRUE, NULL);
	case PL_FORMAT_AVIF:
		return vips_heifsave_buffer(img, buf, len, "Q", v->quality,
					    "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
					    "bitdepth", 8, "strip", TRUE, NULL);
	}
	vips_error("resize", "unknown output format %d", (int)v->format);
	return -1;
}

/* One variant, from the shared decode (shared != NULL) or from the bytes
 * (the direct path when it can, else thumbnail). */
static int make_variant(const struct pl_variant *v, const struct source_info *si,
			VipsImage *shared, const void *data, size_t len,
			struct pl_output *o, char *why, size_t whylen)
{
	VipsImage *t = NULL, *f = NULL;
	int rc;

	snprintf(why, whylen, "variant \"%s\"", v->name);
	if (shared)
		rc = vips_thumbnail_image(shared, &t, v->width, "height", v->height,
					  "size", size_of(v), "crop", crop_of(v), NULL);
	else if (pl_resizedirect_fits(v, &si->direct))
		rc = pl_resizedirect_variant(v, crop_of(v), &si->direct, data, len, &t);
	else
		rc = vips_thumbnail_buffer((void *)data, len, &t, v->width,
					   "height", v->height, "size", size_of(v),
					   "crop", crop_of(v), "export_profile", si->export_profile,
					   "option_string", LOADER_OPTIONS,
					   "fail_on", VIPS_FAIL_ON_ERROR, NULL);
	if (rc)
		return VIPS_FAILED;
	rc = finish(t, v->format, &f);
	g_object_unref(t);
	if (rc)
		return VIPS_FAILED;
	rc = save(f, v, &o->buf, &o->len);
	g_object_unref(f);
	if (rc)
		return VIPS_FAILED;

	why[0] = '\0';
	snprintf(o->variant, sizeof o->variant, "%s", v->name);
	o->ext = pl_config_format_ext(v->format);
	o->mime = pl_config_format_mime(v->format);
	return 0;
}

/* What can fail inside libvips, with what it needs to be run again. */
struct step {
	enum { STEP_HEADER, STEP_SHARED, STEP_VARIANT } kind;
	const struct pl_resize *r;
	struct source_info *si;
	const void *data;
	size_t len;
	VipsImage *shared, **shared_out;
	const struct pl_variant *v;
	struct pl_output *o;
};

static int step_once(const struct step *s, char *why, size_t whylen)
{
	switch (s->kind) {
	case STEP_HEADER:
		return check_source(s->r, s->data, s->len, s->si, why, whylen);
	case STEP_SHARED:
		return decode_shared(s->r, s->data, s->len, s->si, s->shared_out, why, whylen);
	case STEP_VARIANT:
		return make_variant(s->v, s->si, s->shared, s->data, s->len, s->o, why, whylen);
	}
	return snprintf(why, whylen, "resize: unknown step %d", (int)s->kind), -EINVAL;
}

/* Run a step with vips_lock held for reading; when libvips fails, run it
 * again alone (see vips_lock) so that the error buffer holds this item's
 * reason and no other.  The same bytes fail the same way; if the repeat
 * succeeds (memory was short), so does the item. */
static int step(const struct step *s, char *why, size_t whylen)
{
	char prefix[PL_REASON_MAX];
	int rc = step_once(s, why, whylen);

	if (rc != VIPS_FAILED)
		return rc;
	pthread_rwlock_unlock(&vips_lock);
	pthread_rwlock_wrlock(&vips_lock);
	vips_error_clear();
	pthread_mutex_lock(&warning_lock);
	vips_warning[0] = '\0';
	warning_wanted = true;
	pthread_mutex_unlock(&warning_lock);
	rc = step_once(s, why, whylen);
	if (rc == VIPS_FAILED) {
		snprintf(prefix, sizeof prefix, "%s", why);
		why_vips(why, whylen, prefix);
		rc = -EINVAL;
	} else {
		pthread_mutex_lock(&warning_lock);
		warning_wanted = false;
		pthread_mutex_unlock(&warning_lock);
	}
	pthread_rwlock_unlock(&vips_lock);
	pthread_rwlock_rdlock(&vips_lock);
	return rc;
}

static void drop_outputs(struct pl_output *outs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g_free(outs[i].buf);
	free(outs);
}

static int convert(const struct pl_resize *r, struct pl_item *it, char *why, size_t whylen)
{
	struct source_info si;
	struct pl_output *outs;
	VipsImage *shared = NULL;
	struct step s = { .r = r, .si = &si };
	int rc;

	rc = screen_source(it->data, &it->len, why, whylen);
	if (rc < 0)
		return rc;
	s.kind = STEP_HEADER;
	s.data = it->data;
	s.len = it->len;
	rc = step(&s, why, whylen);
	if (rc < 0)
		return rc;
	outs = calloc(r->nvariants, sizeof *outs);
	if (!outs)
		return snprintf(why, whylen, "out of memory"), -ENOMEM;
	if (r->nvariants > 1) {
		s.kind = STEP_SHARED;
		s.shared_out = &shared;
		rc = step(&s, why, whylen);
		if (rc < 0) {
			free(outs);
			return rc;
		}
		/* Nothing refers to the bytes any more. */
		pl_item_free_data(it);
		s.data = NULL;
		s.len = 0;
		s.shared = shared;
	}
	s.kind = STEP_VARIANT;
	for (size_t i = 0; i < r->nvariants; i++) {
		s.v = &r->variants[i];
		s.o = &outs[i];
		rc = step(&s, why, whylen);
		if (rc < 0) {
			if (shared)
				g_object_unref(shared);
			drop_outputs(outs, i);
			return rc;
		}
	}
	if (shared)
		g_object_unref(shared);
	pl_item_free_data(it);
	it->outputs = outs;
	it->noutputs = r->nvariants;
	return 0;
}

static int resize_process(void *ctx, void *wstate, void *item, char *why, size_t whylen)
{
	struct pl_item *it = item;
	int rc;

	(void)wstate;
	it->attempts = 0;
	pl_item_free_outputs(it);	/* nothing there normally; never leak it */
	/* libvips' error buffer is neither cleared nor read here: only step()
	 * does, alone.  What successful items leave in it (libjpeg's
	 * "extraneous bytes" …) is cleared before a repeat reads it. */
	pthread_rwlock_rdlock(&vips_lock);
	rc = convert(ctx, it, why, whylen);
	pthread_rwlock_unlock(&vips_lock);
	return rc;
}

const struct pl_stage_ops pl_resize_ops = {
	.worker_start = NULL,
	.worker_stop = resize_worker_stop,
	.process = resize_process,
};

/*
 * resizedirect.h — the resize stage's direct path: one variant from a JPEG
 * or 8-bit PNG without vips_thumbnail_buffer().  See resizedirect.c for
 * why it exists and what it does differently.
 *
 * Functions that run libvips return 0, or -1 with the reason in libvips'
 * error buffer, as libvips' own operations do: resize.c reads that buffer
 * alone (step()) to name the failure.
 */
#ifndef PL_RESIZEDIRECT_H
#define PL_RESIZEDIRECT_H

#include <stdbool.h>
#include <stddef.h>

#include <vips/vips.h>

struct pl_variant;

/* What the direct path needs to know of a source, read from its header. */
struct pl_resizedirect_source {
	bool ok;		/* JPEG or PNG, 8-bit, RGB or grey, one page */
	bool jpeg;		/* else PNG */
	bool has_alpha;
	bool swap;		/* its orientation turns it by 90° */
	int raw_width, raw_height;	/* as stored, before orientation */
};

/* Fill *src from a header opened by the named loader (no pixel decoded). */
void pl_resizedirect_probe(VipsImage *header, const char *loader,
			   struct pl_resizedirect_source *src);
/* Can the direct path make v from this source?  It keeps alpha out of the
 * picture, so only for JPEG output or a source without alpha. */
bool pl_resizedirect_fits(const struct pl_variant *v, const struct pl_resizedirect_source *src);
/* Make v from the encoded bytes: resampled, colour-converted from an
 * embedded profile, turned upright and, for cover, cropped with crop.
 * *out is 8-bit in the source's bands, alpha flattened onto white. */
int pl_resizedirect_variant(const struct pl_variant *v, VipsInteresting crop,
			    const struct pl_resizedirect_source *src,
			    const void *data, size_t len, VipsImage **out);
/* Replace *img by itself flattened onto white when it has alpha (JPEG
 * output has none).  The thumbnail path uses it too. */
int pl_resizedirect_flatten_white(VipsImage **img);

#endif

/*
 * imgguard.c — what the resize stage checks in a downloaded image before
 * libvips 8.14 sees it (see imgguard.h).
 *
 * Why: max_bytes bounds the file and max_pixels the picture, but neither
 * bounded what the decoders allocate for metadata, because that follows
 * what the file says, not what it holds:
 *  - libpng allocates a chunk's claimed length before reading it.  libvips
 *    sets png_set_chunk_malloc_max(50 MB), but libpng reports a chunk over
 *    that limit through png_benign_error(), which a read struct turns into
 *    a warning, so it carries on: a 144-byte PNG whose zTXt claims 2 GB
 *    took 2.1 GB RSS and 16 s, then failed with no reason.  The limits are
 *    not reachable through libvips' API in any case.
 *  - zTXt/iTXt inflate up to that 50 MB each, up to 100 of them are kept,
 *    and libvips copies each into a metadata string: a 2.5 MB PNG of zTXt
 *    chunks reached 12 GB RSS and took minutes — and would have succeeded.
 *  - libtiff reads every tag of every directory (libvips walks them all to
 *    count pages), and tags may point at the same bytes: a 42 MB TIFF with
 *    nine text and blob tags on one 40 MB block took 1.4 GB and 60 s.
 * Measured, and held without help: libtiff and libwebp check claimed
 * lengths against the file, libheif against the file and a 512 MB limit;
 * GIF comments are skipped; JPEG markers are at most 64 KiB each.  So the
 * metadata a thumbnail does not use is cut out here, what it does use (ICC
 * for colour, EXIF for orientation) is bounded, and every length is checked
 * against the bytes present, so that "truncated" is said as such.
 *
 * Stripping rather than refusing: the output never carries metadata, so a
 * file with a novel in its text chunks still converts.  Every function
 * validates the whole file first and edits only once it passed, in place
 * (no copy of the source), so a refused buffer is left as it was.
 * Only an ICC profile is refused over budget: without it the colours would
 * be wrong.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "imgguard.h"

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}

/* A four-character code fit for a reason: anything unprintable as '?'. */
static const char *fourcc(const unsigned char *p, char out[5])
{
	for (int i = 0; i < 4; i++)
		out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	out[4] = '\0';
	return out;
}

/* ------------------------------------------------------------------ PNG */

static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

static bool png_type_valid(const unsigned char *t)
{
	for (int i = 0; i < 4; i++)
		if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z')))
			return false;
	return true;
}

/* Bytes an iCCP chunk's profile inflates to, counted up to max + 1 through
 * a small buffer: nothing of the size of the profile is allocated.  A chunk
 * that is malformed counts what inflated before the damage; libpng then
 * ignores the profile (a benign error), which is its business. */
static int png_icc_inflated(const unsigned char *p, uint32_t n, size_t max, size_t *out)
{
	const unsigned char *nul = memchr(p, 0, n < 81 ? n : 81);
	unsigned char sink[16384];
	z_stream zs;
	int zr;

	*out = 0;
	/* keyword, NUL, compression method, then the zlib stream */
	if (!nul || (size_t)(nul - p) + 2 > n)
		return 0;
	memset(&zs, 0, sizeof zs);
	if (inflateInit(&zs) != Z_OK)
		return -ENOMEM;
	zs.next_in = (unsigned char *)nul + 2;
	zs.avail_in = (uInt)(n - (uint32_t)(nul - p) - 2);
	do {
		zs.next_out = sink;
		zs.avail_out = sizeof sink;
		zr = inflate(&zs, Z_NO_FLUSH);
	} while (zr == Z_OK && zs.total_out <= max);
	*out = zs.total_out;
	inflateEnd(&zs);
	return 0;
}

/* Whether the resize stage needs this ancillary chunk: transparency and
 * colour (tRNS gAMA cHRM sRGB iCCP sBIT), the background and resolution
 * libvips reads (bKGD pHYs), and EXIF for the orientation.  Text (tEXt
 * zTXt iTXt, XMP included), sPLT, hIST, tIME, oFFs, pCAL, sCAL and
 * private chunks are not read by anything that makes a thumbnail. */
static bool png_ancillary_kept(const unsigned char *t)
{
	static const char keep[][5] = {
		"tRNS", "gAMA", "cHRM", "sRGB", "iCCP", "sBIT", "bKGD", "pHYs", "eXIf",
	};

	for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
		if (!memcmp(t, keep[i], 4))
			return true;
	return false;
}

/* Walk the chunks; with strip, close the gaps.  Returns 0 or -errno. */
static int png_walk(unsigned char *b, size_t *lenp, bool strip, char *why, size_t whylen)
{
	size_t len = *lenp, pos = 8, dst = 8;
	bool seen_icc = false, seen_exif = false;
	char prev[5] = "", name[5];

	if (len < 8 || memcmp(b, png_sig, 8))
		return snprintf(why, whylen, "not a PNG (no PNG signature)"), -EINVAL;
	for (;;) {
		const unsigned char *t;
		uint32_t n;
		size_t whole;
		bool keep, end;

		if (len - pos < 12) {
			if (pos == 8)
				snprintf(why, whylen, "PNG truncated: it ends after its signature");
			else if (pos == len)
				snprintf(why, whylen, "PNG truncated: no IEND chunk (it ends after "
					 "chunk %s at byte %zu)", prev, pos);
			else
				snprintf(why, whylen, "PNG truncated: the chunk at byte %zu has "
					 "%zu of its 12 header bytes", pos, len - pos);
			return -EINVAL;
		}
		n = be32(b + pos);
		t = b + pos + 4;
		if (!png_type_valid(t))
			return snprintf(why, whylen, "PNG chunk at byte %zu has an invalid type "
					"\"%s\"", pos, fourcc(t, name)), -EINVAL;
		fourcc(t, name);
		if (n > 0x7fffffffu)
			return snprintf(why, whylen, "PNG chunk %s claims %" PRIu32 " bytes, more "
					"than PNG allows (2^31 - 1)", name, n), -EINVAL;
		if (n > len - pos - 12)
			return snprintf(why, whylen, "PNG chunk %s at byte %zu claims %" PRIu32
					" bytes, file has %zu", name, pos, n, len), -EINVAL;
		if (pos == 8 && (memcmp(t, "IHDR", 4) || n != 13))
			return snprintf(why, whylen, "PNG does not start with a 13-byte IHDR chunk "
					"(found %s of %" PRIu32 " bytes)", name, n), -EINVAL;
		whole = (size_t)n + 12;
		end = !memcmp(t, "IEND", 4);	/* t may be overwritten below */
		if (!(t[0] & 0x20)) {	/* critical: IHDR PLTE IDAT IEND, or one libpng refuses */
			keep = true;
		} else if (!memcmp(t, "iCCP", 4)) {
			/* libpng takes the first profile and refuses any other */
			keep = !seen_icc;
			if (keep && !strip) {
				size_t got;

				if (png_icc_inflated(t + 4, n, PL_IMGGUARD_ICC_MAX, &got))
					return snprintf(why, whylen, "out of memory"), -ENOMEM;
				if (got > PL_IMGGUARD_ICC_MAX)
					return snprintf(why, whylen, "PNG iCCP profile inflates to more "
							"than %d bytes (the ICC budget)",
							PL_IMGGUARD_ICC_MAX), -EFBIG;
			}
			seen_icc = true;
		} else if (!memcmp(t, "eXIf", 4)) {
			keep = !seen_exif && n <= PL_IMGGUARD_EXIF_MAX;
			seen_exif = true;
		} else {
			keep = png_ancillary_kept(t);
		}
		if (strip && keep) {
			if (dst != pos)
				memmove(b + dst, b + pos, whole);
			dst += whole;
		}
		pos += whole;
		if (end)
			break;
		memcpy(prev, name, sizeof prev);
	}
	if (strip)
		*lenp = dst;
	return 0;
}

int pl_imgguard_png(unsigned char *data, size_t *len, char *why, size_t whylen)
{
	int rc = png_walk(data, len, false, why, whylen);

	if (rc < 0)
		return rc;
	why[0] = '\0';
	return png_walk(data, len, true, why, whylen);
}

/* ----------------------------------------------------------------- JPEG */

static const char *jpeg_marker_name(unsigned m, char out[8])
{
	if (m >= 0xe0 && m <= 0xef)
		snprintf(out, 8, "APP%u", m - 0xe0);
	else if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc)
		snprintf(out, 8, "SOF%u", m - 0xc0);
	else if (m == 0xc4)
		snprintf(out, 8, "DHT");
	else if (m == 0xdb)
		snprintf(out, 8, "DQT");
	else if (m == 0xdd)
		snprintf(out, 8, "DRI");
	else if (m == 0xda)
		snprintf(out, 8, "SOS");
	else if (m == 0xfe)
		snprintf(out, 8, "COM");
	else
		snprintf(out, 8, "0xFF%02X", m);
	return out;
}

/*
 * The segments before the first scan carry lengths; each must lie within
 * the file.  After the scan, entropy-coded data cannot hold 0xFF 0xD9 (a
 * 0xFF in it is stuffed as 0xFF 0x00), so an EOI anywhere after the first
 * SOS means the stream was not cut (trailing bytes after EOI are common and
 * harmless).  libvips fails a JPEG without EOI (fail_on=error) as well, as
 * "Premature end of input file"; this says which and where.  Anything the
 * walk does not understand (garbage between segments, a bad length) is left
 * to libjpeg, whose message is then the reason.
 */
int pl_imgguard_jpeg(const unsigned char *b, size_t len, char *why, size_t whylen)
{
	size_t pos = 2, scan;
	char name[8];

	why[0] = '\0';
	if (len < 3 || b[0] != 0xff || b[1] != 0xd8)
		return snprintf(why, whylen, "not a JPEG (no SOI marker)"), -EINVAL;
	for (;;) {
		unsigned m;
		size_t seg;

		if (pos >= len)
			return snprintf(why, whylen, "JPEG truncated: it ends at byte %zu, before "
					"any image data", len), -EINVAL;
		if (b[pos] != 0xff)
			return 0;
		while (pos < len && b[pos] == 0xff)	/* fill bytes */
			pos++;
		if (pos >= len)
			return snprintf(why, whylen, "JPEG truncated: it ends at byte %zu, before "
					"any image data", len), -EINVAL;
		m = b[pos++];
		if (m == 0x01 || (m >= 0xd0 && m <= 0xd7))	/* TEM, RSTn: no length */
			continue;
		if (m == 0xd8 || m == 0xd9 || m == 0x00)
			return 0;	/* libjpeg says what is wrong with that */
		if (len - pos < 2)
			return snprintf(why, whylen, "JPEG truncated: it ends inside the %s marker "
					"at byte %zu", jpeg_marker_name(m, name), pos - 2), -EINVAL;
		seg = (size_t)b[pos] << 8 | b[pos + 1];
		if (seg < 2)
			return 0;
		if (seg > len - pos)
			return snprintf(why, whylen, "JPEG truncated: the %s segment at byte %zu "
					"claims %zu bytes, file has %zu", jpeg_marker_name(m, name),
					pos - 2, seg, len), -EINVAL;
		pos += seg;
		if (m == 0xda)
			break;
	}
	scan = pos;
	for (size_t i = len - 1; i > scan; i--)
		if (b[i] == 0xd9 && b[i - 1] == 0xff)
			return 0;
	return snprintf(why, whylen, "JPEG truncated: no EOI marker after the image data "
			"(%zu bytes, the scan starts at byte %zu)", len, scan), -EINVAL;
}

/* ----------------------------------------------------------------- WebP */

enum webp_policy { WEBP_INPUT, WEBP_OUTPUT };

/* VP8X flag bits of the metadata chunks. */
static unsigned webp_flag(const unsigned char *t)
{
	if (!memcmp(t, "ICCP", 4))
		return 0x20;
	if (!memcmp(t, "EXIF", 4))
		return 0x08;
	if (!memcmp(t, "XMP ", 4))
		return 0x04;
	return 0;
}

/*
 * One walk over the RIFF chunks for both directions.  Input: XMP goes (a
 * thumbnail has no use for it), EXIF over budget goes (orientation lost),
 * an ICC profile over budget refuses the file.  Output (what webpsave
 * wrote): every metadata chunk goes.  The VP8X flags of removed chunks are
 * cleared.  Two passes: check, then edit.
 */
static int webp_walk(unsigned char *b, size_t *lenp, enum webp_policy pol, bool edit,
		     char *why, size_t whylen)
{
	size_t len = *lenp, riff, pos = 12, dst = 12, vp8x = 0;
	/* output: libvips may set a flag without writing the chunk */
	unsigned cleared = pol == WEBP_OUTPUT ? 0x20 | 0x08 | 0x04 : 0;
	char name[5];

	if (len < 12 || memcmp(b, "RIFF", 4) || memcmp(b + 8, "WEBP", 4))
		return snprintf(why, whylen, "not a WebP (no RIFF/WEBP header)"), -EINVAL;
	riff = (size_t)le32(b + 4) + 8;
	if (riff > len)
		return snprintf(why, whylen, "WebP truncated: its RIFF header says %zu bytes, "
				"file has %zu", riff, len), -EINVAL;
	while (pos < riff) {
		const unsigned char *t = b + pos;
		size_t sz, whole;
		bool keep = true;

		if (riff - pos < 8)
			return snprintf(why, whylen, "WebP truncated: the chunk at byte %zu has %zu "
					"of its 8 header bytes", pos, riff - pos), -EINVAL;
		sz = le32(b + pos + 4);
		if (sz > riff - pos - 8)
			return snprintf(why, whylen, "WebP chunk %s at byte %zu claims %zu bytes, "
					"file has %zu", fourcc(t, name), pos, sz, len), -EINVAL;
		/* the pad byte of an odd chunk may be missing at the very end */
		whole = 8 + sz + (sz & 1);
		if (whole > riff - pos)
			whole = riff - pos;
		if (pol == WEBP_OUTPUT) {
			keep = !webp_flag(t);
		} else if (!memcmp(t, "XMP ", 4)) {
			keep = false;
		} else if (!memcmp(t, "EXIF", 4)) {
			keep = sz <= PL_IMGGUARD_EXIF_MAX;
		} else if (!memcmp(t, "ICCP", 4) && sz > PL_IMGGUARD_ICC_MAX) {
			return snprintf(why, whylen, "WebP ICC profile holds %zu bytes, more than "
					"%d (the ICC budget)", sz, PL_IMGGUARD_ICC_MAX), -EFBIG;
		}
		if (!memcmp(t, "VP8X", 4) && sz >= 1)
			vp8x = dst;
		if (!keep)
			cleared |= webp_flag(t);
		if (edit && keep) {
			if (dst != pos)
				memmove(b + dst, b + pos, whole);
			dst += whole;
		}
		pos += whole;
	}
	if (edit) {
		if (vp8x)
			b[vp8x + 8] &= (unsigned char)~cleared;
		put_le32(b + 4, (uint32_t)(dst - 8));
		*lenp = dst;
	}
	return 0;
}

int pl_imgguard_webp(unsigned char *data, size_t *len, char *why, size_t whylen)
{
	int rc = webp_walk(data, len, WEBP_INPUT, false, why, whylen);

	if (rc < 0)
		return rc;
	why[0] = '\0';
	return webp_walk(data, len, WEBP_INPUT, true, why, whylen);
}

int pl_imgguard_webp_strip(unsigned char *data, size_t *len)
{
	char why[160];
	int rc = webp_walk(data, len, WEBP_OUTPUT, false, why, sizeof why);

	return rc < 0 ? rc : webp_walk(data, len, WEBP_OUTPUT, true, why, sizeof why);
}

/* ----------------------------------------------------------------- TIFF */

struct span {
	size_t from, to;
};

struct tiff {
	unsigned char *b;
	size_t len;
	bool be;		/* "MM" */
	bool big;		/* BigTIFF: 8-byte counts and offsets */
	unsigned cs, es, os;	/* sizes of an entry count, an entry, an offset */
	struct span *dirs;	/* check pass: where each directory lies */
	size_t ndirs, cap;
};

static uint64_t tiff_uint(const struct tiff *t, size_t off, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)t->b[off + i] << 8 * (t->be ? n - 1 - i : i);
	return v;
}

static void tiff_put(const struct tiff *t, size_t off, unsigned n, uint64_t v)
{
	for (unsigned i = 0; i < n; i++)
		t->b[off + i] = (unsigned char)(v >> 8 * (t->be ? n - 1 - i : i));
}

static unsigned tiff_type_size(unsigned type)
{
	switch (type) {
	case 1: case 2: case 6: case 7:		/* BYTE ASCII SBYTE UNDEFINED */
		return 1;
	case 3: case 8:				/* SHORT SSHORT */
		return 2;
	case 4: case 9: case 11: case 13:	/* LONG SLONG FLOAT IFD */
		return 4;
	case 5: case 10: case 12: case 16: case 17: case 18:	/* RATIONAL … IFD8 */
		return 8;
	}
	return 0;	/* libtiff ignores the entry */
}

/* Descriptive tags: text and blobs that libvips would copy into metadata
 * (ImageDescription, XMP, IPTC, Photoshop) or libtiff would read for
 * nothing.  None of them changes a pixel. */
static bool tiff_tag_stripped(unsigned tag)
{
	switch (tag) {
	case 269: case 270: case 271: case 272:	/* DocumentName ImageDescription Make Model */
	case 285: case 305: case 306:		/* PageName Software DateTime */
	case 315: case 316:			/* Artist HostComputer */
	case 700:				/* XMP */
	case 33432:				/* Copyright */
	case 33723:				/* IPTC */
	case 34377:				/* Photoshop image resources */
	case 37724:				/* ImageSourceData (Photoshop layers) */
	case 40091: case 40092: case 40093: case 40094: case 40095:	/* Windows XP* */
	case 50341:				/* PrintIM */
		return true;
	}
	return false;
}

/*
 * Walk the directory chain.  Check pass: every directory within the file,
 * the ICC profile within budget, and all tag data that libtiff would read
 * (within the file, not stripped) adding up to no more than the file holds
 * (or PL_IMGGUARD_TIFF_TAGS_MIN): tags of a real file do not share bytes,
 * so more means the same bytes would be read again and again.  Edit pass:
 * drop the stripped entries from each directory (entries stay sorted; the
 * next-directory offset moves up behind the last one).
 */
static int tiff_walk(struct tiff *t, bool edit, char *why, size_t whylen)
{
	uint64_t off = t->big ? tiff_uint(t, 8, 8) : tiff_uint(t, 4, 4), total = 0;
	uint64_t budget = t->len > PL_IMGGUARD_TIFF_TAGS_MIN ? t->len : PL_IMGGUARD_TIFF_TAGS_MIN;
	unsigned ndirs = 0;

	while (off) {
		uint64_t n, next, kept = 0;
		size_t ents;

		if (++ndirs > PL_IMGGUARD_TIFF_MAX_DIRS)
			return snprintf(why, whylen, "TIFF has more than %d directories (or they "
					"loop)", PL_IMGGUARD_TIFF_MAX_DIRS), -EINVAL;
		if (off > t->len || t->len - off < t->cs + t->os)
			return snprintf(why, whylen, "TIFF truncated: directory %u is at byte %llu, "
					"file has %zu", ndirs, (unsigned long long)off, t->len),
			       -EINVAL;
		n = tiff_uint(t, off, t->cs);
		ents = (size_t)off + t->cs;
		if (n > (t->len - ents - t->os) / t->es)
			return snprintf(why, whylen, "TIFF truncated: directory %u at byte %llu has "
					"%llu entries, file has %zu bytes", ndirs,
					(unsigned long long)off, (unsigned long long)n, t->len),
			       -EINVAL;
		if (!edit) {
			if (t->ndirs == t->cap) {
				size_t cap = t->cap ? 2 * t->cap : 16;
				struct span *d = realloc(t->dirs, cap * sizeof *d);

				if (!d)
					return snprintf(why, whylen, "out of memory"), -ENOMEM;
				t->dirs = d;
				t->cap = cap;
			}
			t->dirs[t->ndirs++] = (struct span){ (size_t)off,
							     ents + n * t->es + t->os };
		}
		next = tiff_uint(t, ents + n * t->es, t->os);
		for (uint64_t i = 0; i < n; i++) {
			size_t e = ents + i * t->es;
			unsigned tag = (unsigned)tiff_uint(t, e, 2);
			unsigned size = tiff_type_size((unsigned)tiff_uint(t, e + 2, 2));
			uint64_t count = tiff_uint(t, e + 4, t->big ? 8 : 4), bytes, at;

			if (tiff_tag_stripped(tag)) {
				continue;
			} else if (edit) {
				if (kept != i)
					memmove(t->b + ents + kept * t->es, t->b + e, t->es);
				kept++;
				continue;
			}
			if (!size || count > UINT64_MAX / size)
				continue;
			bytes = count * size;
			if (bytes <= t->os)	/* held in the entry itself */
				continue;
			at = tiff_uint(t, e + (t->big ? 12 : 8), t->os);
			if (at > t->len || bytes > t->len - at)
				continue;	/* libtiff refuses to read it */
			if (tag == 34675 && bytes > PL_IMGGUARD_ICC_MAX)
				return snprintf(why, whylen, "TIFF ICC profile (directory %u) holds "
						"%llu bytes, more than %d (the ICC budget)", ndirs,
						(unsigned long long)bytes, PL_IMGGUARD_ICC_MAX),
				       -EFBIG;
			total += bytes;
			if (total > budget)
				return snprintf(why, whylen, "TIFF tag data adds up to more than %llu "
						"bytes by directory %u, in a file of %zu: the same "
						"bytes would be read again and again",
						(unsigned long long)budget, ndirs, t->len), -EFBIG;
		}
		if (edit && kept != n) {
			tiff_put(t, off, t->cs, kept);
			memmove(t->b + ents + kept * t->es, t->b + ents + n * t->es, t->os);
		}
		off = next;
	}
	return 0;
}

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->from < y->from ? -1 : x->from > y->from;
}

/* The edit pass rewrites directories in place: that must not change the
 * header or another directory (which the check pass read as it was), so
 * directories may not overlap either.  No real file has them overlap. */
static int tiff_dirs_apart(struct tiff *t, char *why, size_t whylen)
{
	size_t head = t->big ? 16 : 8;

	if (!t->ndirs)
		return 0;	/* no directory at all: libtiff's to say */
	qsort(t->dirs, t->ndirs, sizeof *t->dirs, span_cmp);
	for (size_t i = 0; i < t->ndirs; i++)
		if (t->dirs[i].from < head || (i && t->dirs[i].from < t->dirs[i - 1].to))
			return snprintf(why, whylen, "TIFF directories overlap each other or the "
					"header (at byte %zu)", t->dirs[i].from), -EINVAL;
	return 0;
}

int pl_imgguard_tiff(unsigned char *data, size_t len, char *why, size_t whylen)
{
	struct tiff t = { .b = data, .len = len };
	unsigned magic;
	int rc;

	if (len < 8 || !((data[0] == 'I' && data[1] == 'I') || (data[0] == 'M' && data[1] == 'M')))
		return snprintf(why, whylen, "not a TIFF (no II/MM header)"), -EINVAL;
	t.be = data[0] == 'M';
	magic = (unsigned)tiff_uint(&t, 2, 2);
	if (magic == 43) {
		if (len < 16 || tiff_uint(&t, 4, 2) != 8 || tiff_uint(&t, 6, 2) != 0)
			return snprintf(why, whylen, "BigTIFF truncated or damaged: its header is "
					"not 8-byte offsets"), -EINVAL;
		t.big = true;
	} else if (magic != 42) {
		return snprintf(why, whylen, "not a TIFF (version %u)", magic), -EINVAL;
	}
	t.cs = t.big ? 8 : 2;
	t.es = t.big ? 20 : 12;
	t.os = t.big ? 8 : 4;
	rc = tiff_walk(&t, false, why, whylen);
	if (!rc)
		rc = tiff_dirs_apart(&t, why, whylen);
	free(t.dirs);
	if (rc < 0)
		return rc;
	why[0] = '\0';
	return tiff_walk(&t, true, why, whylen);
}

/*
 * imgguard.h — the resize stage's pre-check: walk a downloaded image's
 * container (PNG chunks, JPEG segments, WebP RIFF chunks, TIFF directories)
 * before libvips sees it, refuse what is truncated or claims more than it
 * holds, and strip in place the metadata a thumbnail does not need, so that
 * a file's metadata can cost no more memory than its bytes.
 *
 * Pure functions over a buffer: no allocation but zlib's inflate state and
 * a list of where the TIFF directories lie, no logging, no libvips.  Each
 * returns 0, or a negative errno with a one-line reason in why: -EINVAL for
 * a broken or truncated file, -EFBIG for metadata over a budget below (why
 * is empty on success).  On failure the buffer is left as it was.
 */
#ifndef PL_IMGGUARD_H
#define PL_IMGGUARD_H

#include <stddef.h>

/* An ICC profile larger than this (inflated, for PNG) is refused: colour
 * needs it, and real profiles are tens of KiB, the largest a few hundred. */
#define PL_IMGGUARD_ICC_MAX (4 * 1024 * 1024)
/* EXIF larger than this is stripped (only its orientation is used; a JPEG
 * cannot carry more than 64 KiB of it). */
#define PL_IMGGUARD_EXIF_MAX (1024 * 1024)
/* TIFF tags may reference at most max(file size, this) bytes in all. */
#define PL_IMGGUARD_TIFF_TAGS_MIN (1024 * 1024)
/* TIFF directories walked at most (libvips reads each to count pages). */
#define PL_IMGGUARD_TIFF_MAX_DIRS 65536

/* PNG: every chunk within the file, IHDR first, IEND present; text chunks
 * and other ancillary chunks that do not affect the pixels are removed;
 * *len shrinks (bytes after IEND go too). */
int pl_imgguard_png(unsigned char *data, size_t *len, char *why, size_t whylen);
/* JPEG: every segment before the first scan within the file, and an EOI
 * marker after it.  Nothing is changed. */
int pl_imgguard_jpeg(const unsigned char *data, size_t len, char *why, size_t whylen);
/* WebP: the RIFF and its chunks within the file; XMP and oversized EXIF are
 * removed (*len shrinks), an oversized ICC profile is refused. */
int pl_imgguard_webp(unsigned char *data, size_t *len, char *why, size_t whylen);
/* WebP written by libvips: remove EXIF, XMP and ICCP chunks (8.14's
 * webpsave writes EXIF even with strip).  0, or -EINVAL if the container is
 * not what libwebp writes. */
int pl_imgguard_webp_strip(unsigned char *data, size_t *len);
/* TIFF (classic and BigTIFF): directories within the file; descriptive
 * tags (ImageDescription, XMP, IPTC, Photoshop, …) are removed from every
 * directory in place; the ICC profile and all remaining tag data are
 * bounded.  The length does not change. */
int pl_imgguard_tiff(unsigned char *data, size_t len, char *why, size_t whylen);

#endif

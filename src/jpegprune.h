/*
 * jpegprune.h — cut a progressive JPEG down to the scans that a decode at
 * DCT scale 1/8 reads.  See jpegprune.c for why and how it stays exact.
 */
#ifndef PL_JPEGPRUNE_H
#define PL_JPEGPRUNE_H

#include <stddef.h>

/* If src is a progressive (SOF2, 8-bit, Huffman) JPEG with AC scans that a
 * 1/8-scale libjpeg decode does not need, write a smaller JPEG that decodes
 * at 1/8 to the same pixels into *out (malloc'd, *outlen bytes) and return
 * 1.  Return 0, leaving *out alone, when there is nothing to cut or the
 * stream is anything this parser does not fully understand (the caller
 * then decodes the original, and libjpeg reports what is wrong with it);
 * -ENOMEM when out of memory. */
int pl_jpegprune_dc(const void *src, size_t len, void **out, size_t *outlen);

#endif

/*
 * jpegprune.c — cut a progressive JPEG down to the scans that a decode at
 * DCT scale 1/8 reads, before libvips sees it (used by resize's direct
 * path, resizedirect.c).
 *
 * Why.  For a small variant of a big photo, resize decodes the JPEG at DCT
 * scale 1/8.  There libjpeg's inverse DCT of most components is
 * jpeg_idct_1x1, which reads the DC coefficient alone.  A baseline JPEG
 * interleaves DC and AC in one scan, so the whole entropy stream must be
 * decoded anyway; a progressive JPEG keeps them in separate scans, and its
 * AC scans (85–95 % of the bytes) are then never needed — yet libjpeg
 * decodes every scan into its coefficient buffer before it outputs a row.
 * On the 5640×3172 progressive photo of the benchmark corpus that was
 * 0.5 s of CPU for a 256-pixel thumbnail; with the AC scans cut it is a
 * tenth of that (bench/E2E.md).
 *
 * Which components.  libjpeg-turbo picks each component's IDCT size so
 * that chroma is enlarged by the IDCT rather than the upsampler: at scale
 * 1/8 a component's IDCT is 1×1 unless its sampling factors divide the
 * largest ones with a factor of 2 to spare in both directions
 * (jdmaster.c).  So luma is always DC-only, and so is chroma in 4:4:4,
 * 4:2:2 and 4:4:0; 4:2:0 chroma is decoded with a 2×2 IDCT and keeps its
 * AC scans.
 *
 * Exactness.  With AC coefficients missing, libjpeg-turbo's block
 * smoothing (on by default; libvips cannot turn it off) estimates them
 * from neighbouring DC values, and when none of AC 1..9 of a component has
 * arrived it smooths the DC itself (change_dc in jdcoefct.c, 2.1), which
 * would change the picture.  So for every component whose AC scans were
 * cut, one synthetic scan declares coefficient 1 known and zero: an AC
 * scan of that one band made of end-of-band runs only (18 bits per 32767
 * blocks).  The DC then stays as coded, and the 1×1 IDCT gives the
 * original's pixels bit for bit (tests/test_jpegprune.c compares them).
 *
 * Safety.  The bytes come from the network.  Every read is bounds-checked
 * and the output is never larger than the input plus the synthetic scans.
 * Anything this parser does not expect — not SOF2, not 8-bit, arithmetic
 * coding, DNL, a scan naming an unknown component, no EOI — returns 0, and
 * libvips decodes (or rejects) the original.  fuzz_jpegprune drives it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jpegprune.h"

#define MAX_COMPS 4
#define EOB_RUN_MAX 32767	/* EOB14 with 14 extra bits */

struct comp {
	uint8_t id, h, v;
	bool dc_only;		/* 1×1 IDCT at scale 1/8 */
	bool cut;		/* an AC scan of it was dropped */
	uint64_t blocks;	/* in a non-interleaved scan */
};

struct frame {
	bool seen;
	unsigned width, height, ncomps;
	struct comp c[MAX_COMPS];
};

static unsigned be16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static struct comp *comp_by_id(struct frame *f, uint8_t id)
{
	for (unsigned i = 0; i < f->ncomps; i++)
		if (f->c[i].id == id)
			return &f->c[i];
	return NULL;
}

/* SOF2 body (after the length).  Returns false for anything but an 8-bit
 * frame with sane sizes and sampling factors. */
static bool parse_frame(struct frame *f, const uint8_t *s, unsigned len)
{
	unsigned max_h = 1, max_v = 1, nc;

	if (f->seen || len < 6 || s[0] != 8)
		return false;
	nc = s[5];
	if (nc < 1 || nc > MAX_COMPS || len != 6 + 3 * nc || !be16(s + 1) || !be16(s + 3))
		return false;
	f->height = be16(s + 1);
	f->width = be16(s + 3);
	f->ncomps = nc;
	for (unsigned i = 0; i < f->ncomps; i++) {
		struct comp *c = &f->c[i];

		c->id = s[6 + 3 * i];
		c->h = s[7 + 3 * i] >> 4;
		c->v = s[7 + 3 * i] & 15;
		if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4)
			return false;
		for (unsigned j = 0; j < i; j++)
			if (f->c[j].id == c->id)
				return false;
		max_h = c->h > max_h ? c->h : max_h;
		max_v = c->v > max_v ? c->v : max_v;
	}
	for (unsigned i = 0; i < f->ncomps; i++) {
		struct comp *c = &f->c[i];

		c->dc_only = !(max_h % (2u * c->h) == 0 && max_v % (2u * c->v) == 0);
		c->blocks = (((uint64_t)f->width * c->h + 8 * max_h - 1) / (8 * max_h)) *
			    (((uint64_t)f->height * c->v + 8 * max_v - 1) / (8 * max_v));
	}
	f->seen = true;
	return true;
}

/* The end of the entropy-coded data that starts at p: the first marker
 * that is not a stuffed 0xFF00 nor a restart marker.  NULL if the stream
 * ends first. */
static const uint8_t *scan_end(const uint8_t *p, const uint8_t *end)
{
	while (p < end) {
		const uint8_t *ff = memchr(p, 0xFF, (size_t)(end - p));

		if (!ff || ff + 1 >= end)
			return NULL;
		if (ff[1] == 0x00 || (ff[1] >= 0xD0 && ff[1] <= 0xD7))
			p = ff + 2;
		else if (ff[1] == 0xFF)
			p = ff + 1;	/* fill byte before a marker */
		else
			return ff;
	}
	return NULL;
}

/* ---- the synthetic scans ---- */

struct bitw {
	uint8_t *p;
	uint32_t acc;
	int n;
};

static void put_bits(struct bitw *w, uint32_t v, int nbits)
{
	w->acc = (w->acc << nbits) | (v & ((1u << nbits) - 1));
	w->n += nbits;
	while (w->n >= 8) {
		uint8_t byte = (uint8_t)(w->acc >> (w->n - 8));

		*w->p++ = byte;
		if (byte == 0xFF)
			*w->p++ = 0x00;	/* byte stuffing */
		w->n -= 8;
	}
	w->acc &= (1u << w->n) - 1;
}

/* An upper bound of what synth_scan() writes for c. */
static size_t synth_scan_max(const struct comp *c)
{
	uint64_t symbols = c->blocks / EOB_RUN_MAX + 1;

	return 10 + (size_t)((symbols * 18 + 7) / 8) * 2 + 2;
}

/* SOS for coefficient 1 of component c alone, then end-of-band runs over
 * all its blocks.  The Huffman table (AC table 0, defined by synth())
 * codes EOBr as the 4 bits of r. */
static uint8_t *synth_scan(uint8_t *o, const struct comp *c)
{
	static const uint8_t sos[] = { 0xFF, 0xDA, 0x00, 0x08, 0x01, 0, 0x00, 1, 1, 0x00 };
	struct bitw w;
	uint64_t n = c->blocks;

	memcpy(o, sos, sizeof sos);
	o[5] = c->id;
	w = (struct bitw){ .p = o + sizeof sos };
	for (; n >= EOB_RUN_MAX; n -= EOB_RUN_MAX) {
		put_bits(&w, 14, 4);
		put_bits(&w, EOB_RUN_MAX - (1u << 14), 14);
	}
	if (n > 0) {
		int r = 0;

		while ((n >> (r + 1)) != 0)
			r++;
		put_bits(&w, (uint32_t)r, 4);
		if (r > 0)
			put_bits(&w, (uint32_t)(n - (1u << r)), r);
	}
	if (w.n > 0)
		put_bits(&w, 0xFF, 8 - w.n);	/* pad with 1s */
	return w.p;
}

static size_t synth_max(const struct frame *f)
{
	size_t n = 36 + 6;

	for (unsigned i = 0; i < f->ncomps; i++)
		n += synth_scan_max(&f->c[i]);
	return n;
}

/* DHT with the EOB-run table as AC table 0 (no real scan follows to need
 * the table it replaces), DRI 0 (no restart markers in what follows), then
 * one scan per cut component. */
static uint8_t *synth(uint8_t *o, const struct frame *f)
{
	static const uint8_t dri[] = { 0xFF, 0xDD, 0x00, 0x04, 0x00, 0x00 };
	uint8_t dht[36] = { 0xFF, 0xC4, 0x00, 34, 0x10 };

	dht[5 + 3] = 15;	/* 15 codes of 4 bits: 0000 … 1110 */
	for (int r = 0; r < 15; r++)
		dht[21 + r] = (uint8_t)(r << 4);	/* EOB0 … EOB14 */
	memcpy(o, dht, sizeof dht);
	o += sizeof dht;
	memcpy(o, dri, sizeof dri);
	o += sizeof dri;
	for (unsigned i = 0; i < f->ncomps; i++)
		if (f->c[i].cut)
			o = synth_scan(o, &f->c[i]);
	return o;
}

/* ---- the walk ---- */

/* Copy what is kept of src into o (which has room for len bytes).
 * Returns the bytes written up to EOI (not included), or 0 if the stream
 * is not one to touch. */
static size_t prune(const uint8_t *b, size_t len, struct frame *f, uint8_t *o)
{
	const uint8_t *p = b + 2, *end = b + len;
	size_t n = 2;

	memcpy(o, b, 2);	/* SOI */
	for (;;) {
		const uint8_t *seg, *next;
		unsigned m, L;

		if (p >= end || *p != 0xFF)
			return 0;
		while (p < end && *p == 0xFF)
			p++;
		if (p >= end)
			return 0;
		m = *p++;
		if (m == 0xD9)	/* EOI */
			return n;
		if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7) ||
		    m == 0xDC || end - p < 2)
			return 0;	/* stray, standalone or DNL */
		L = be16(p);
		if (L < 2 || (size_t)(end - p) < L)
			return 0;
		seg = p + 2;
		next = p + L;
		if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
			if (m != 0xC2 || !parse_frame(f, seg, L - 2))
				return 0;
		} else if (m == 0xDA) {
			unsigned ns = L > 2 ? seg[0] : 0, ss;
			struct comp *c;

			if (!f->seen || ns < 1 || ns > MAX_COMPS || L != 6 + 2 * ns)
				return 0;
			for (unsigned i = 0; i < ns; i++)
				if (!comp_by_id(f, seg[1 + 2 * i]))
					return 0;
			ss = seg[1 + 2 * ns];
			if (ss > 0 && ns != 1)
				return 0;
			next = scan_end(next, end);
			if (!next)
				return 0;
			c = comp_by_id(f, seg[1]);
			if (ss > 0 && c->dc_only) {
				c->cut = true;
				p = next;
				continue;
			}
		}
		o[n++] = 0xFF;
		o[n++] = (uint8_t)m;
		memcpy(o + n, p, (size_t)(next - p));
		n += (size_t)(next - p);
		p = next;
	}
}

int pl_jpegprune_dc(const void *src, size_t len, void **out, size_t *outlen)
{
	const uint8_t *b = src;
	struct frame f = { 0 };
	uint8_t *o, *t, *e;
	bool cut = false;
	size_t n;

	if (len < 4 || b[0] != 0xFF || b[1] != 0xD8)
		return 0;
	o = malloc(len);
	if (!o)
		return -ENOMEM;
	n = prune(b, len, &f, o);
	for (unsigned i = 0; f.seen && i < f.ncomps; i++)
		cut |= f.c[i].cut;
	if (!n || !cut) {
		free(o);
		return 0;
	}
	t = realloc(o, n + synth_max(&f) + 2);
	if (!t) {
		free(o);
		return -ENOMEM;
	}
	o = t;
	e = synth(o + n, &f);
	*e++ = 0xFF;
	*e++ = 0xD9;	/* EOI */
	*out = o;
	*outlen = (size_t)(e - o);
	return 1;
}

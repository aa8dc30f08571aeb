/*
 * fuzz_jpegprune.c — libFuzzer target for the progressive-JPEG pruning that
 * resize runs on downloaded bytes before libvips (src/jpegprune.c).
 *
 * The input is the JPEG.  Besides ASan's bounds (the input is copied to a
 * buffer of exactly its size), the invariants are:
 *   - the result is 1 (pruned), 0 (left alone) or -ENOMEM, and *out is only
 *     written when it is 1;
 *   - a pruned stream is a whole JPEG (SOI … EOI), never longer than the
 *     input plus the synthetic scans (a few KiB for the largest frame),
 *     and is itself accepted by the parser (it is what libvips then reads).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "jpegprune.h"

/* 4 components × (64 Ki × 64 Ki blocks / 32767 per run × 18 bits × 2 for
 * stuffing) plus the DHT and DRI: far below this. */
#define SYNTH_SLACK (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in = malloc(size ? size : 1);
	void *out = (void *)&size, *again = NULL;
	size_t outlen = 0, againlen = 0;
	int r;

	if (!in)
		abort();
	memcpy(in, data, size);
	r = pl_jpegprune_dc(in, size, &out, &outlen);
	FUZZ_CHECK(r == 1 || r == 0 || r == -ENOMEM, "returned %d", r);
	if (r == 1) {
		const uint8_t *o = out;

		FUZZ_CHECK(outlen >= 4 && o[0] == 0xFF && o[1] == 0xD8, "no SOI");
		FUZZ_CHECK(o[outlen - 2] == 0xFF && o[outlen - 1] == 0xD9, "no EOI");
		FUZZ_CHECK(outlen <= size + SYNTH_SLACK, "%zu bytes from %zu", outlen, size);
		FUZZ_CHECK(pl_jpegprune_dc(out, outlen, &again, &againlen) == 1,
			   "the pruned stream does not parse again");
		free(again);
		free(out);
	} else {
		FUZZ_CHECK(out == (void *)&size && outlen == 0, "*out written on %d", r);
	}
	free(in);
	return 0;
}

/*
 * e2e_stage.c — pipelined's resize stage alone, for profiling and A/B runs
 * behind bench/e2e: the exact pl_resize_ops.process() the daemon runs, on
 * files already in memory, on one thread, with no network and no pipeline.
 *
 *   e2e_stage REPEAT FILE…    prints per file the best CPU ms (process CPU time: the machine may be shared) of REPEAT runs
 *                             and the output size, then the total, as JSON
 *
 * Built against build/normal/libpldaemon.a (see bench/E2E.md); run it under
 * `perf record -g` or `valgrind --tool=callgrind` to see where the stage's
 * CPU goes.  One variant: 256×256 inside, JPEG Q80, as bench/e2e.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "config.h"
#include "item.h"
#include "resize.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct pl_variant v = { .name = "thumb", .width = 256, .height = 256,
				.fit = PL_FIT_INSIDE, .format = PL_FORMAT_JPEG, .quality = 80 };
	struct pl_config cfg = { 0 };
	void *ctx;
	double total = 0;
	int repeat;

	if (argc < 3 || (repeat = atoi(argv[1])) < 1)
		return fprintf(stderr, "usage: e2e_stage REPEAT FILE…\n"), 2;
	cfg.resize.max_pixels = 100000000;
	cfg.resize.variants = &v;
	cfg.resize.nvariants = 1;
	if (pl_resize_global_init(argv[0]) || pl_resize_new(&cfg, &ctx))
		return 1;
	printf("{\"files\":{");
	for (int i = 2; i < argc; i++) {
		gchar *d;
		gsize n;
		double best = 1e9;
		size_t outlen = 0;

		if (!g_file_get_contents(argv[i], &d, &n, NULL))
			return fprintf(stderr, "e2e_stage: cannot read %s\n", argv[i]), 1;
		for (int k = 0; k < repeat; k++) {
			struct pl_item it = { .line = 1, .source = argv[i], .name = "x" };
			char why[512];
			double t0;

			it.data = malloc(n);
			if (!it.data)
				return 1;
			memcpy(it.data, d, n);
			it.len = n;
			t0 = now();
			if (pl_resize_ops.process(ctx, NULL, &it, why, sizeof why) < 0)
				return fprintf(stderr, "e2e_stage: %s: %s\n", argv[i], why), 1;
			t0 = now() - t0;
			if (t0 < best)
				best = t0;
			outlen = it.outputs[0].len;
			pl_item_free_data(&it);
			pl_item_free_outputs(&it);
		}
		total += best;
		printf("%s\"%s\":{\"ms\":%.2f,\"bytes\":%zu}", i > 2 ? "," : "", argv[i],
		       best * 1000, outlen);
		g_free(d);
	}
	printf("},\"total_ms\":%.1f}\n", total * 1000);
	pl_resize_free(ctx);
	pl_resize_global_cleanup();
	return 0;
}

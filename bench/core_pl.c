/*
 * core_pl.c — throughput of pipelined's core on a no-op 3-stage pipeline.
 *
 * Part of bench/core (run by hand, not a test): the same pipeline is also
 * run in Python (core_py.py) and oneTBB (core_tbb.cpp) so the three rates
 * can be compared in one run on one machine.  The stages do nothing, so what
 * is measured is purely the cost of the core's hand-offs: queue put/get,
 * wake-ups, pool bookkeeping (stats, latency ring) and the ordered drain.
 *
 * Usage: core_pl ITEMS W1 W2 W3 CAPACITY
 * Prints one line: "items=N seconds=S rate=R" (R in items/s), exit 0 only
 * when every fed item reached the done sink exactly once.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_util.h"
#include "pipeline.h"

static atomic_ulong done_count, failed_count;

static int noop(void *ctx, void *ws, void *item, char *why, size_t whylen)
{
	(void)ctx; (void)ws; (void)item; (void)why; (void)whylen;
	return 0;
}

static void on_done(void *ud, void *item)
{
	(void)ud; (void)item;
	atomic_fetch_add_explicit(&done_count, 1, memory_order_relaxed);
}

static void on_failed(void *ud, void *item, int err, const char *why, const char *stage)
{
	(void)ud; (void)item;
	fprintf(stderr, "core_pl: item failed in %s: %s (%s)\n", stage, why, strerror(err));
	atomic_fetch_add_explicit(&failed_count, 1, memory_order_relaxed);
}

int main(int argc, char **argv)
{
	static const struct pl_stage_ops ops = { .process = noop };
	struct pl_pipeline_sinks sinks = { on_done, on_failed, NULL };
	struct pl_stage_def defs[3];
	struct pl_pipeline *p;
	unsigned long n;
	double t0, t1;
	int r;

	if (argc != 6 && argc != 7) {
		fprintf(stderr, "usage: core_pl ITEMS W1 W2 W3 CAPACITY [FEED_BATCH]\n");
		return 2;
	}
	size_t batch = argc == 7 ? arg("core_pl", argv[6], "FEED_BATCH") : 1;
	n = arg("core_pl", argv[1], "ITEMS");
	for (int i = 0; i < 3; i++) {
		static const char *names[] = { "s1", "s2", "s3" };
		defs[i] = (struct pl_stage_def){
			.name = names[i],
			.width = (unsigned)arg("core_pl", argv[2 + i], "width"),
			.capacity = arg("core_pl", argv[5], "CAPACITY"),
			.ops = &ops,
		};
	}
	if ((r = pl_pipeline_create(defs, 3, &sinks, &p)) < 0) {
		fprintf(stderr, "core_pl: pl_pipeline_create: %s\n", strerror(-r));
		return 1;
	}
	t0 = now_s();
	if ((r = pl_pipeline_start(p)) < 0) {
		fprintf(stderr, "core_pl: pl_pipeline_start: %s\n", strerror(-r));
		return 1;
	}
	/* items are opaque: the counter itself is fed, nothing is allocated */
	if (batch == 1) {
		for (unsigned long i = 0; i < n; i++) {
			if ((r = pl_pipeline_feed(p, (void *)(uintptr_t)(i + 1), -1))) {
				fprintf(stderr, "core_pl: pl_pipeline_feed: %s\n", strerror(-r));
				return 1;
			}
		}
	} else {
		void *items[256];
		if (batch > 256)
			batch = 256;
		for (unsigned long i = 0; i < n;) {
			size_t k = 0, done;
			while (k < batch && i < n)
				items[k++] = (void *)(uintptr_t)(++i);
			if ((r = pl_pipeline_feed_batch(p, items, k, &done, -1))) {
				fprintf(stderr, "core_pl: pl_pipeline_feed_batch: %s\n", strerror(-r));
				return 1;
			}
		}
	}
	pl_pipeline_stop(p);
	t1 = now_s();
	pl_pipeline_destroy(p);
	if (atomic_load(&done_count) != n || atomic_load(&failed_count)) {
		fprintf(stderr, "core_pl: %lu items fed, %lu done, %lu failed\n", n,
			atomic_load(&done_count), atomic_load(&failed_count));
		return 1;
	}
	printf("items=%lu seconds=%.3f rate=%.0f\n", n, t1 - t0, n / (t1 - t0));
	return 0;
}

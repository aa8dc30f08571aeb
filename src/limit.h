/*
 * limit.h — an adaptive concurrency limit (pure: no threads, no clock of
 * its own; the caller passes the time, so tests use a fake clock).
 *
 * Fed one sample per finished request (its latency and whether the far
 * side pushed back) and the number in flight when it finished; gives the
 * number of requests that may be in flight at once, within [min, max].
 * The algorithm is described at the top of limit.c.
 */
#ifndef PL_LIMIT_H
#define PL_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct pl_limit {
	double min, max, limit;
	double floor_us;	/* the lowest window latency seen (drifts up) */
	uint64_t window_us;	/* shortest window */
	/* the window being filled */
	uint64_t win_start_us;
	double win_sum_us;
	unsigned win_n, win_drops, win_peak;
	uint64_t last_cut_us;	/* when the limit was last cut for a drop */
	bool slow_start;	/* no cut yet: one more per success at the limit */
};

/* initial is clamped to [min, max]; min >= 1. */
void pl_limit_init(struct pl_limit *l, unsigned min, unsigned max, unsigned initial,
		   uint64_t now_us);
/* One finished request: latency_us, dropped (timeout, 429, 503, refused),
 * and how many were in flight (this one included). */
void pl_limit_sample(struct pl_limit *l, uint64_t now_us, uint64_t latency_us, bool dropped,
		     unsigned inflight);
unsigned pl_limit_get(const struct pl_limit *l);
/* New bounds (a reload); the limit is clamped into them. */
void pl_limit_set_bounds(struct pl_limit *l, unsigned min, unsigned max);

#endif

/*
 * adapt.h — adaptive stage widths: once a second, from the stages' own
 * statistics, a new width for each stage configured workers = "adaptive".
 * Pure (no threads, no clock, no pool calls): the daemon feeds it
 * pl_stage_stats and applies what it returns with pl_pipeline_set_width,
 * so tests drive it with made-up statistics.  The algorithm is described
 * at the top of adapt.c.
 */
#ifndef PL_ADAPT_H
#define PL_ADAPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

#define PL_ADAPT_STAGES_MAX 8

/* Why a width moved. */
enum pl_adapt_why {
	PL_ADAPT_SAME,		/* it did not */
	PL_ADAPT_STARVING,	/* work waits, every worker is on it, the next stage idles */
	PL_ADAPT_IDLE,		/* most workers had nothing to do for a while */
	PL_ADAPT_PUSHED,	/* the next stage's queue stays full, or the far
				   side answered with retries */
};

/* How often the caller ticks (pl_adapt_tick), and the whole second the
 * decisions other than slow start's growth wait for. */
#define PL_ADAPT_QUICK_US 125000u
#define PL_ADAPT_TICK_US 1000000u

struct pl_adapt_stage {
	bool on;		/* adaptive; otherwise left alone */
	bool retries_push;	/* its retries mean the far side pushes back */
	unsigned min, max, width;
	bool grown_past_cut;	/* after a cut, grow by one, not by doubling */
	unsigned idle_ticks;
	unsigned full_ticks;	/* the next stage's queue was full this many ticks in a row */
	uint64_t last_done, last_retried;
};

struct pl_adapt {
	size_t n;
	struct pl_adapt_stage st[PL_ADAPT_STAGES_MAX];
	size_t cap[PL_ADAPT_STAGES_MAX];	/* each stage's input queue capacity */
	uint64_t last_us;			/* the previous tick, 0 before the first */
	uint64_t last_sum_us[PL_ADAPT_STAGES_MAX];	/* each stage's hist_sum_us then */
	uint64_t last_calls[PL_ADAPT_STAGES_MAX];	/* and its process() returns */
};

/* n stages, none adaptive yet; cap[i]: stage i's queue capacity. */
/* now_us: the start the first tick measures the stages' use from (0: the
 * first tick only starts the clock). */
void pl_adapt_init(struct pl_adapt *a, size_t n, const size_t *cap, uint64_t now_us);
/* Stage i adaptive between min and max (width is clamped into them), or
 * fixed (on = false).  retries_push: see the top of adapt.c. */
void pl_adapt_set(struct pl_adapt *a, size_t i, bool on, bool retries_push, unsigned min,
		  unsigned max, unsigned width);
/* One tick at now_us (monotonic), every PL_ADAPT_QUICK_US; a tick less
 * than a whole second after the last whole one only lets a stage in slow
 * start grow; now_us 0 makes every tick a whole one.  st[] holds every
 * stage's statistics, in order.  For each
 * adaptive stage, width[i] is the width it should have now and why[i] why
 * it moved; fixed stages get PL_ADAPT_SAME and their current width. */
void pl_adapt_tick(struct pl_adapt *a, uint64_t now_us, const struct pl_stage_stats *st,
		   unsigned *width, enum pl_adapt_why *why);
const char *pl_adapt_why_name(enum pl_adapt_why w);

#endif

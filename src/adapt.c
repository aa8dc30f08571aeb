/*
 * adapt.c — adaptive widths for the I/O stages (see adapt.h).
 *
 * An I/O stage needs as many workers as its latency times the rate the
 * pipeline can go at (Little's law): 3 downloads keep up with a source on
 * the LAN but give a quarter of the machine's rate from one 250 ms away.
 * Neither factor is known in advance, so the width is found the way TCP
 * finds a window: grow while the stage is the bottleneck, back off when
 * something says "too much".  Once a second, for each adaptive stage, from
 * the pool's own statistics (a snapshot, plus counters since last time):
 *
 *   starving   work waits (queued or deferred), (nearly) every worker is inside
 *              process(), and the next stage has room: idle workers and
 *              nothing queued at the tick, or busy less than 85 % of its
 *              workers' time since the last tick (from its processing-time
 *              sum: a snapshot alone seldom catches a next stage that is
 *              nearly, not wholly, fed).  The last stage has no next one.  The stage holds the
 *              pipeline back, and since a download or upload worker inside
 *              process() is waiting on the network — the CPU work of
 *              the pipeline is resize's — more of them help.  Grow by the
 *              room the next stage has: × its width / its busy workers (at
 *              least 2, at most 4; × 2 for the last stage), so a stage that
 *              feeds a quarter of what resize could take reaches its width
 *              in a tick or two, not ten — until the first cut; after it,
 *              by a quarter (the width is near right, only drift is left).
 *   full       the next stage's queue is full at two ticks in a row or
 *              more: the bottleneck is downstream (the CPU), the workers only
 *              wait to hand items on.  Narrow by one per tick while it lasts:
 *              throughput is the next stage's either way, so this only gives
 *              back memory, and a cut would starve the next stage when it
 *              speeds up again (once full could be a burst of transfers
 *              that started together ending together, hence two ticks).
 *   pushed     for a stage whose retries are the far side refusing (upload:
 *              timeouts, 429, 5xx), more than one retry per four items
 *              done.  Cut to 0.7×, at least by one.  The download stage does
 *              not count its retries: its per-host limits (hostlimit.c)
 *              already answer a host that pushes back, and its retries
 *              include the short deferrals of an item whose host is at its
 *              limit, which say "this host is full", not "fewer workers".
 *   idle       fewer than half the workers busy and nothing queued, five
 *              ticks in a row: shrink by a quarter (and count again).
 *
 * Always within [min, max]: min is the stage's starting width (the fixed
 * default it replaces, so an adaptive stage is never narrower than the
 * shipped configuration was), max its workers_max.  A stage that is not
 * adaptive is left alone, so a fixed number in the configuration pins it.
 *
 * The daemon calls it eight times a second: the ticks between the whole
 * seconds may only grow a stage in slow start (quick_step), so a source
 * 250 ms away gets its width before its first answers are back (its
 * per-host limit, which grows with those answers, then sets the pace, as
 * it does for a fixed width); at four a second the first look came after
 * them, and the width trailed the host's limit by a round trip all through
 * its slow start.  Every other decision, and every counter difference, is
 * per whole second.
 *
 * Why a snapshot once a second is enough: the pool's deferral and queues
 * smooth the stage (a starving stage stays starving for many seconds), a
 * wrong step costs one second of a few idle threads or a few items late,
 * and everything that needs a faster answer to a host is per request, in
 * the per-host limit.
 */
#include <string.h>

#include "adapt.h"

#define CUT 0.7
#define IDLE_TICKS 5
#define ROOM_USE 0.85	/* a next stage busy less than this has room */

static unsigned clamp(const struct pl_adapt_stage *s, double v)
{
	return v < s->min ? s->min : v > s->max ? s->max : (unsigned)v;
}

void pl_adapt_init(struct pl_adapt *a, size_t n, const size_t *cap, uint64_t now_us)
{
	memset(a, 0, sizeof *a);
	a->last_us = now_us;
	a->n = n > PL_ADAPT_STAGES_MAX ? PL_ADAPT_STAGES_MAX : n;
	for (size_t i = 0; i < a->n; i++)
		a->cap[i] = cap[i];
}

void pl_adapt_set(struct pl_adapt *a, size_t i, bool on, bool retries_push, unsigned min,
		  unsigned max, unsigned width)
{
	struct pl_adapt_stage *s;

	if (i >= a->n)
		return;
	s = &a->st[i];
	s->on = on;
	s->retries_push = retries_push;
	s->min = min < 1 ? 1 : min;
	s->max = max < s->min ? s->min : max;
	s->width = clamp(s, width);
	s->idle_ticks = s->full_ticks = 0;
}

static uint64_t calls(const struct pl_stage_stats *st)
{
	return st->done + st->failed + st->retried;
}

/* How much of stage i's workers' time went into process() since the last
 * tick, 0..1; negative when not known: the first tick, or fewer than two
 * returns per worker since (the sum counts finished calls only, so a few
 * long ones in flight would read as idle). */
static double use_of(const struct pl_adapt *a, size_t i, const struct pl_stage_stats *st,
		     uint64_t dt_us)
{
	double u;

	if (!dt_us || !st[i].width || st[i].hist_sum_us < a->last_sum_us[i] ||
	    calls(&st[i]) < a->last_calls[i] + 2ull * st[i].width)
		return -1;
	u = (double)(st[i].hist_sum_us - a->last_sum_us[i]) / ((double)st[i].width * (double)dt_us);
	return u > 1 ? 1 : u;
}

/* Waiting work (queued, or deferred: a retry, or an item whose host is at
 * its limit) and (nearly) every worker inside process(). */
static bool saturated(const struct pl_stage_stats *me, unsigned w)
{
	return me->queued + me->delayed > 0 && me->busy + w / 8 >= w;
}

/* A tick between the once-a-second ones: only slow start's growth, on
 * what the snapshot shows (an eighth of a second holds too few finished
 * items to judge the next stage's use), so a far source gets its width in
 * a quarter second instead of three.  Everything else waits for the whole
 * second. */
static enum pl_adapt_why quick_step(struct pl_adapt *a, size_t i, const struct pl_stage_stats *st)
{
	struct pl_adapt_stage *s = &a->st[i];
	const struct pl_stage_stats *next = i + 1 < a->n ? &st[i + 1] : NULL;
	unsigned w = s->width;
	double room;

	if (s->grown_past_cut || s->full_ticks || !saturated(&st[i], w) ||
	    (next && (next->queued > 0 || next->busy >= next->width)))
		return PL_ADAPT_SAME;
	room = next ? (double)next->width / (next->busy ? next->busy : 1) : 2;
	room = room < 2 ? 2 : room > 4 ? 4 : room;
	s->width = clamp(s, room * w);
	return s->width != w ? PL_ADAPT_STARVING : PL_ADAPT_SAME;
}

static enum pl_adapt_why step(struct pl_adapt *a, size_t i, const struct pl_stage_stats *st,
			      uint64_t dt_us)
{
	struct pl_adapt_stage *s = &a->st[i];
	const struct pl_stage_stats *me = &st[i];
	const struct pl_stage_stats *next = i + 1 < a->n ? &st[i + 1] : NULL;
	uint64_t done = me->done + me->failed;
	uint64_t done_d = done - s->last_done, retried_d = me->retried - s->last_retried;
	unsigned w = s->width;
	bool pushed, starving;

	s->last_done = done;
	s->last_retried = me->retried;
	if (next && next->queued >= a->cap[i + 1])
		s->full_ticks++;
	else
		s->full_ticks = 0;
	pushed = s->retries_push && retried_d > 0 && retried_d * 4 > done_d;
	double use = next ? use_of(a, i + 1, st, dt_us) : -1;

	starving = saturated(me, w) &&
		   (!next || (next->queued == 0 && next->busy < next->width) ||
		    (use >= 0 && use < ROOM_USE));
	if (pushed || s->full_ticks >= 2) {
		s->idle_ticks = 0;
		s->grown_past_cut = true;
		s->width = clamp(s, pushed && w * CUT < w - 1 ? w * CUT : w - 1);
		return s->width != w ? PL_ADAPT_PUSHED : PL_ADAPT_SAME;
	}
	if (starving) {
		double room = !next ? 2 : use > 0 ? 1 / use :
			      (double)next->width / (next->busy ? next->busy : 1);

		room = room < 2 ? 2 : room > 4 ? 4 : room;
		s->idle_ticks = 0;
		s->width = clamp(s, s->grown_past_cut ? w + (w >= 4 ? w / 4 : 1) : room * w);
		return s->width != w ? PL_ADAPT_STARVING : PL_ADAPT_SAME;
	}
	if (me->queued == 0 && 2 * me->busy < w) {
		if (++s->idle_ticks < IDLE_TICKS)
			return PL_ADAPT_SAME;
		s->idle_ticks = 0;
		s->width = clamp(s, w - (w >= 4 ? w / 4 : 1));
		return s->width != w ? PL_ADAPT_IDLE : PL_ADAPT_SAME;
	}
	s->idle_ticks = 0;
	return PL_ADAPT_SAME;
}

void pl_adapt_tick(struct pl_adapt *a, uint64_t now_us, const struct pl_stage_stats *st,
		   unsigned *width, enum pl_adapt_why *why)
{
	uint64_t dt_us = a->last_us && now_us > a->last_us ? now_us - a->last_us : 0;
	/* a whole second since the last full tick, give or take half a quick
	 * one (or no clock: every tick is) */
	bool full = !now_us || !a->last_us || dt_us >= PL_ADAPT_TICK_US - PL_ADAPT_QUICK_US / 2;

	for (size_t i = 0; i < a->n; i++) {
		if (a->st[i].on) {
			why[i] = full ? step(a, i, st, dt_us) : quick_step(a, i, st);
			width[i] = a->st[i].width;
		} else {
			why[i] = PL_ADAPT_SAME;
			width[i] = st[i].width;
		}
	}
	if (!full)
		return;
	for (size_t i = 0; i < a->n; i++) {
		a->last_sum_us[i] = st[i].hist_sum_us;
		a->last_calls[i] = calls(&st[i]);
	}
	a->last_us = now_us;
}

const char *pl_adapt_why_name(enum pl_adapt_why w)
{
	switch (w) {
	case PL_ADAPT_STARVING: return "work waits and the next stage starves";
	case PL_ADAPT_IDLE: return "idle";
	case PL_ADAPT_PUSHED: return "pushed back";
	case PL_ADAPT_SAME: break;
	}
	return "unchanged";
}

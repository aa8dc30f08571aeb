/*
 * limit.c — an adaptive concurrency limit (see limit.h).
 *
 * Little's law: a stage needs latency × throughput requests in flight, and
 * neither factor is known in advance.  So the limit is found the way TCP
 * Vegas finds a congestion window, with AIMD's reaction to loss:
 *
 *   - Samples are grouped in windows of at least window_us (and at least
 *     twice the latency floor, so a window spans a round trip) and at least
 *     3 requests.  A window's latency is its mean over requests that were
 *     not dropped (a fast 503 says nothing about queueing).
 *   - floor is the lowest window latency seen; it drifts up 1 % per window
 *     so that a path that really became slower is accepted in time.
 *   - A drop (timeout, 429, 503, refused) cuts the limit to 0.7 × at once,
 *     at most once per window length: the far side said "too many".
 *   - Slow start, until the first cut, as TCP's: each success that
 *     finds the limit in use (in flight, this one included, at the limit
 *     less one) and answered within 1.3 × the floor (any time, before the
 *     first window sets one) adds one.  A round trip at the limit returns
 *     limit successes, so it doubles per round trip: a start of 4 reaches
 *     a far source's 16 in two round trips, where doubling per window (two
 *     round trips each) took four and held a source 250 ms away at 8 for
 *     half a second.  The limit never runs ahead of what is in flight by
 *     more than two, so a host that is not asked for more gains nothing.
 *   - At the end of a window without drops, with ratio = latency / floor:
 *       ratio > 2     the far side queues our requests: limit × 2 / ratio
 *                     (never below half), and slow start is over;
 *       ratio < 1.3   and the limit was used (the peak in flight reached
 *                     it, less one): after slow start, limit + limit / 4
 *                     (+ 1 below 4) — a doubling takes three windows;
 *       peak in flight < limit / 2: limit − 1 (a limit nobody uses says
 *                     nothing, and would let a burst through unchecked);
 *       otherwise the limit holds.
 *   - Always within [min, max].  Recovery after a cut is the same growth.
 *
 * Why not a fixed table: the right width differs by orders of magnitude
 * between a source on the LAN and one 250 ms away, and changes over time.
 */
#include "limit.h"

#define CUT 0.7
#define HIGH_RATIO 2.0
#define LOW_RATIO 1.3
#define FLOOR_DRIFT 1.01
#define WIN_MIN_SAMPLES 3
#define DEFAULT_WINDOW_US 100000u

static double clamp(const struct pl_limit *l, double v)
{
	return v < l->min ? l->min : v > l->max ? l->max : v;
}

static void window_reset(struct pl_limit *l, uint64_t now_us)
{
	l->win_start_us = now_us;
	l->win_sum_us = 0;
	l->win_n = l->win_drops = l->win_peak = 0;
}

void pl_limit_init(struct pl_limit *l, unsigned min, unsigned max, unsigned initial,
		   uint64_t now_us)
{
	l->min = min < 1 ? 1 : min;
	l->max = max < l->min ? l->min : max;
	l->limit = clamp(l, initial);
	l->floor_us = 0;
	l->window_us = DEFAULT_WINDOW_US;
	l->last_cut_us = 0;
	l->slow_start = true;
	window_reset(l, now_us);
}

void pl_limit_set_bounds(struct pl_limit *l, unsigned min, unsigned max)
{
	l->min = min < 1 ? 1 : min;
	l->max = max < l->min ? l->min : max;
	l->limit = clamp(l, l->limit);
}

unsigned pl_limit_get(const struct pl_limit *l)
{
	return (unsigned)l->limit;
}

static uint64_t window_len(const struct pl_limit *l)
{
	double two_rtt = 2 * l->floor_us;

	return two_rtt > (double)l->window_us ? (uint64_t)two_rtt : l->window_us;
}

static void window_end(struct pl_limit *l)
{
	unsigned ok = l->win_n - l->win_drops;
	double lat, ratio;

	if (!ok)
		return;
	lat = l->win_sum_us / ok;
	if (lat < 1)
		lat = 1;
	if (l->floor_us <= 0 || lat < l->floor_us)
		l->floor_us = lat;
	else
		l->floor_us *= FLOOR_DRIFT;
	if (l->floor_us > lat)
		l->floor_us = lat;
	ratio = lat / l->floor_us;
	if (ratio > HIGH_RATIO) {
		double f = HIGH_RATIO / ratio;
		l->limit = clamp(l, l->limit * (f < 0.5 ? 0.5 : f));
		l->slow_start = false;
	} else if (ratio < LOW_RATIO && !l->win_drops && (double)l->win_peak + 1 >= l->limit) {
		if (!l->slow_start)	/* slow start grew with each sample */
			l->limit = clamp(l, l->limit + (l->limit >= 4 ? l->limit / 4 : 1));
	} else if ((double)l->win_peak < l->limit / 2) {
		l->limit = clamp(l, l->limit - 1);
	}
}

void pl_limit_sample(struct pl_limit *l, uint64_t now_us, uint64_t latency_us, bool dropped,
		     unsigned inflight)
{
	if (dropped) {
		if (!l->last_cut_us || now_us - l->last_cut_us >= window_len(l)) {
			l->limit = clamp(l, l->limit * CUT);
			l->slow_start = false;
			l->last_cut_us = now_us ? now_us : 1;
			window_reset(l, now_us);	/* what follows is under the new limit */
			return;
		}
		l->win_drops++;
		l->win_n++;
		return;
	}
	l->win_n++;
	l->win_sum_us += (double)latency_us;
	if (inflight > l->win_peak)
		l->win_peak = inflight;
	if (l->slow_start && (double)inflight + 1 >= l->limit &&
	    (l->floor_us <= 0 || (double)latency_us < LOW_RATIO * l->floor_us))
		l->limit = clamp(l, l->limit + 1);
	if (now_us - l->win_start_us >= window_len(l) && l->win_n >= WIN_MIN_SAMPLES) {
		window_end(l);
		window_reset(l, now_us);
	}
}

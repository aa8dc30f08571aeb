/*
 * test_limit.c — the adaptive concurrency limit on a fake clock: it grows
 * while latency stays at its floor and the limit is used (by one per such
 * success until the first cut, then per window), backs off on
 * drops and on latency growth, never leaves [min, max], and recovers.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "limit.h"

/* n windows' worth of requests at latency lat_us, each finishing with
 * `inflight` in flight (the caller's full use: the current limit). */
static uint64_t run(struct pl_limit *l, uint64_t t, int n, uint64_t lat_us, bool use_all)
{
	for (int i = 0; i < n; i++) {
		t += 10000;	/* 10 ms between completions */
		pl_limit_sample(l, t, lat_us, false, use_all ? pl_limit_get(l) : 1);
	}
	return t;
}

START_TEST(grows_while_latency_is_flat)
{
	struct pl_limit l;
	uint64_t t = 1000;

	pl_limit_init(&l, 1, 64, 3, t);
	t = run(&l, t, 3000, 250000, true);
	ck_assert_uint_eq(pl_limit_get(&l), 64);	/* reached max, never past */
}
END_TEST

/* n completions, 10 ms apart, at latency lat_us, each with `inflight` in
 * flight. */
static uint64_t finish(struct pl_limit *l, uint64_t t, int n, uint64_t lat_us, unsigned inflight)
{
	for (int i = 0; i < n; i++)
		pl_limit_sample(l, t += 10000, lat_us, false, inflight);
	return t;
}

/* Slow start, as TCP's: one more for each success that found the limit in
 * use (in flight, less one, at the limit) — doubling per round trip, not
 * per window — until the first cut, then by a quarter per window. */
START_TEST(slow_start_until_the_first_cut)
{
	struct pl_limit l;
	uint64_t t = 1000;
	unsigned before;

	pl_limit_init(&l, 1, 1000, 4, t);
	t = run(&l, t, 4, 250000, true);	/* a round trip at the limit */
	ck_assert_uint_eq(pl_limit_get(&l), 8);
	t = run(&l, t, 8, 250000, true);	/* the next one: doubled again */
	ck_assert_uint_eq(pl_limit_get(&l), 16);
	t = finish(&l, t, 1, 250000, 15);	/* one short of it counts as in use */
	ck_assert_uint_eq(pl_limit_get(&l), 17);
	t = finish(&l, t, 20, 250000, 4);	/* far below it: no growth */
	ck_assert_uint_eq(pl_limit_get(&l), 17);
	pl_limit_sample(&l, t += 1000, 1000, true, 17);	/* a drop: 11 */
	before = pl_limit_get(&l);
	ck_assert_uint_eq(before, 11);
	t = finish(&l, t, 11, 250000, 11);	/* successes at the limit, within a window */
	ck_assert_uint_eq(pl_limit_get(&l), before);	/* no longer one each */
	t = run(&l, t, 60, 250000, true);		/* a window of 500 ms and more */
	ck_assert_uint_gt(pl_limit_get(&l), before);		/* by a quarter, */
	ck_assert_uint_lt(pl_limit_get(&l), 2 * before - 2);	/* no longer doubling */
}
END_TEST

/* In slow start a success that took far longer than the floor (the host
 * begins to queue) does not grow the limit. */
START_TEST(slow_start_stops_on_latency_growth)
{
	struct pl_limit l;
	uint64_t t = 1000;

	pl_limit_init(&l, 1, 1000, 4, t);
	t = run(&l, t, 11, 100000, true);	/* a first window: the floor, 100 ms */
	ck_assert_uint_eq(pl_limit_get(&l), 15);
	t = run(&l, t, 30, 150000, true);	/* 1.5 × the floor: holds */
	ck_assert_uint_eq(pl_limit_get(&l), 15);
}
END_TEST

START_TEST(unused_limit_does_not_grow)
{
	struct pl_limit l;
	uint64_t t = 1000;

	pl_limit_init(&l, 1, 64, 8, t);
	t = run(&l, t, 400, 1000, false);
	ck_assert_uint_le(pl_limit_get(&l), 8);
}
END_TEST

START_TEST(drops_cut_and_it_recovers)
{
	struct pl_limit l;
	uint64_t t = 1000;
	unsigned before, after;

	pl_limit_init(&l, 1, 64, 3, t);
	t = run(&l, t, 300, 50000, true);
	before = pl_limit_get(&l);
	ck_assert_uint_gt(before, 3);
	pl_limit_sample(&l, t += 1000, 1000, true, before);
	after = pl_limit_get(&l);
	ck_assert_uint_lt(after, before);
	/* a burst of drops in the same window cuts once */
	for (int i = 0; i < 10; i++)
		pl_limit_sample(&l, t += 100, 1000, true, after);
	ck_assert_uint_eq(pl_limit_get(&l), after);
	/* persistent drops keep cutting, down to min and not below */
	for (int i = 0; i < 200; i++)
		pl_limit_sample(&l, t += 200000, 1000, true, 1);
	ck_assert_uint_eq(pl_limit_get(&l), 1);
	/* healthy again: recovers */
	t = run(&l, t, 600, 50000, true);
	ck_assert_uint_ge(pl_limit_get(&l), before);
}
END_TEST

START_TEST(latency_growth_backs_off)
{
	struct pl_limit l;
	uint64_t t = 1000;
	unsigned before;

	pl_limit_init(&l, 2, 64, 16, t);
	t = run(&l, t, 100, 20000, true);
	before = pl_limit_get(&l);
	t = run(&l, t, 30, 200000, true);	/* ten times the floor */
	ck_assert_uint_lt(pl_limit_get(&l), before);
	ck_assert_uint_ge(pl_limit_get(&l), 2);
}
END_TEST

START_TEST(bounds)
{
	struct pl_limit l;

	pl_limit_init(&l, 0, 0, 99, 0);
	ck_assert_uint_eq(pl_limit_get(&l), 1);
	pl_limit_init(&l, 2, 10, 99, 0);
	ck_assert_uint_eq(pl_limit_get(&l), 10);
	pl_limit_set_bounds(&l, 2, 4);
	ck_assert_uint_eq(pl_limit_get(&l), 4);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("limit");
	TCase *tc = tcase_create("limit");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, grows_while_latency_is_flat);
	tcase_add_test(tc, slow_start_until_the_first_cut);
	tcase_add_test(tc, slow_start_stops_on_latency_growth);
	tcase_add_test(tc, unused_limit_does_not_grow);
	tcase_add_test(tc, drops_cut_and_it_recovers);
	tcase_add_test(tc, latency_growth_backs_off);
	tcase_add_test(tc, bounds);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * test_hostlimit.c — the per-host limits on a fake clock: a host starts at
 * 4, grows while it is used and answers at its floor (doubling per round
 * trip at first), never past the ceiling; a drop cuts that host and no
 * other; a host that sheds load past 8 in flight gets about 8, with every
 * item done once; the table stays bounded while hosts come and go, and a
 * busy host's entry is never taken.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostlimit.h"

/* Keep host as full as its limit allows for n completions, lat_us each,
 * 10 ms apart; returns the clock. */
static uint64_t saturate(struct pl_hostlimit *h, const char *host, uint64_t t, int n,
			 uint64_t lat_us, unsigned ceiling)
{
	unsigned held = 0;

	for (int i = 0; i < n; i++) {
		while (pl_hostlimit_acquire(h, host, t) == 0)
			held++;
		ck_assert_uint_le(held, ceiling);
		ck_assert_uint_eq(held, pl_hostlimit_get(h, host));
		t += 10000;
		pl_hostlimit_release(h, host, t, lat_us, false);
		held--;
	}
	while (held--)
		pl_hostlimit_release(h, host, t, lat_us, false);
	return t;
}

START_TEST(grows_to_the_ceiling_and_no_further)
{
	struct pl_hostlimit *h;
	uint64_t t = 1000;

	ck_assert_int_eq(pl_hostlimit_new(12, &h), 0);
	ck_assert_uint_eq(pl_hostlimit_get(h, "a"), 4);
	t = saturate(h, "a", t, 2000, 50000, 12);
	ck_assert_uint_eq(pl_hostlimit_get(h, "a"), 12);
	pl_hostlimit_free(h);
}
END_TEST

/* Slow start: each success with the host at its limit adds one, so a
 * round trip's worth of them doubles it (4 -> 8 -> 16), up to the
 * ceiling and not past it. */
START_TEST(a_round_trip_at_the_limit_doubles_it)
{
	struct pl_hostlimit *h;
	uint64_t t = 1000;

	ck_assert_int_eq(pl_hostlimit_new(12, &h), 0);
	t = saturate(h, "a", t, 4, 250000, 12);
	ck_assert_uint_eq(pl_hostlimit_get(h, "a"), 8);
	t = saturate(h, "a", t, 4, 250000, 12);
	ck_assert_uint_eq(pl_hostlimit_get(h, "a"), 12);
	t = saturate(h, "a", t, 100, 250000, 12);
	ck_assert_uint_eq(pl_hostlimit_get(h, "a"), 12);
	pl_hostlimit_free(h);
}
END_TEST

/*
 * A host 250 ms away that answers 503 at once to a request finding 8 of
 * ours in flight, and 16 workers that retry what it refuses, on a fake
 * clock in steps of 10 ms.  The limit grows into the refusals, is cut,
 * and settles around 8: in the second half few requests are refused, and
 * the items go through at nearly the 8 per round trip the host takes.
 * Every item is done exactly once, none is lost to the refusals, and the
 * limit never passes the ceiling.
 */
enum { SHED_ITEMS = 2000, SHED_AT = 8, SHED_WORKERS = 16, SHED_CEILING = 32 };

START_TEST(a_shedding_host_settles_at_its_capacity)
{
	static unsigned done[SHED_ITEMS];
	struct { int item; uint64_t due; } fly[SHED_WORKERS];
	int pending[SHED_ITEMS], npending = SHED_ITEMS, nfly = 0, ndone = 0;
	unsigned requests[2] = { 0, 0 }, refused[2] = { 0, 0 };
	struct pl_hostlimit *h;
	uint64_t t = 1000;

	memset(done, 0, sizeof done);
	for (int i = 0; i < SHED_ITEMS; i++)
		pending[i] = SHED_ITEMS - 1 - i;		/* a stack: last is next */
	ck_assert_int_eq(pl_hostlimit_new(SHED_CEILING, &h), 0);
	while (ndone < SHED_ITEMS) {
		int half = ndone >= SHED_ITEMS / 2;

		ck_assert_uint_le(pl_hostlimit_get(h, "far"), SHED_CEILING);
		/* the answers due by now */
		for (int i = 0; i < nfly;) {
			if (fly[i].due > t) {
				i++;
				continue;
			}
			pl_hostlimit_release(h, "far", t, 250000, false);
			done[fly[i].item]++;
			ndone++;
			fly[i] = fly[--nfly];
		}
		/* idle workers take the next items; a refused one goes back,
		 * and its worker tries again at the next step */
		for (int idle = SHED_WORKERS - nfly; idle > 0 && npending > 0 &&
		     pl_hostlimit_acquire(h, "far", t) == 0; idle--) {
			int item = pending[--npending];

			requests[half]++;
			if (nfly >= SHED_AT) {
				refused[half]++;
				pl_hostlimit_release(h, "far", t, 1000, true);
				pending[npending++] = item;
				continue;
			}
			fly[nfly].item = item;
			fly[nfly++].due = t + 250000;
		}
		t += 10000;
	}
	for (int i = 0; i < SHED_ITEMS; i++)
		ck_assert_uint_eq(done[i], 1);
	ck_assert_uint_gt(refused[0], 0);	/* it did push past 8, */
	ck_assert_msg(refused[1] * 10 < requests[1], "second half: %u of %u refused",
		      refused[1], requests[1]);		/* and settled, */
	/* near the host's capacity, 8 per 250 ms (the clock is the fake one) */
	ck_assert_uint_lt(t - 1000, (uint64_t)SHED_ITEMS * 250000 / SHED_AT * 5 / 4);
	pl_hostlimit_free(h);
}
END_TEST

START_TEST(a_small_ceiling_is_the_start)
{
	struct pl_hostlimit *h;

	ck_assert_int_eq(pl_hostlimit_new(2, &h), 0);
	ck_assert_uint_eq(pl_hostlimit_get(h, "a"), 2);
	ck_assert_int_eq(pl_hostlimit_acquire(h, "a", 1), 0);
	ck_assert_int_eq(pl_hostlimit_acquire(h, "a", 1), 0);
	ck_assert_int_eq(pl_hostlimit_acquire(h, "a", 1), -EBUSY);
	pl_hostlimit_release(h, "a", 2, 100, false);
	pl_hostlimit_release(h, "a", 2, 100, false);
	pl_hostlimit_free(h);
}
END_TEST

START_TEST(a_drop_cuts_that_host_only)
{
	struct pl_hostlimit *h;
	uint64_t t = 1000;
	unsigned a, b;

	ck_assert_int_eq(pl_hostlimit_new(32, &h), 0);
	t = saturate(h, "a", t, 400, 50000, 32);
	t = saturate(h, "b", t, 400, 50000, 32);
	a = pl_hostlimit_get(h, "a");
	b = pl_hostlimit_get(h, "b");
	ck_assert_uint_gt(a, 4);
	/* a 503 from a */
	ck_assert_int_eq(pl_hostlimit_acquire(h, "a", t), 0);
	pl_hostlimit_release(h, "a", t + 1000, 1000, true);
	ck_assert_uint_lt(pl_hostlimit_get(h, "a"), a);
	ck_assert_uint_eq(pl_hostlimit_get(h, "b"), b);
	/* timeouts from a, again and again: down to 1, not 0 */
	for (int i = 0; i < 100; i++) {
		t += 2000000;
		ck_assert_int_eq(pl_hostlimit_acquire(h, "a", t), 0);
		pl_hostlimit_release(h, "a", t + 1000000, 1000000, true);
	}
	ck_assert_uint_eq(pl_hostlimit_get(h, "a"), 1);
	ck_assert_int_eq(pl_hostlimit_acquire(h, "a", t), 0);
	ck_assert_int_eq(pl_hostlimit_acquire(h, "a", t), -EBUSY);
	pl_hostlimit_release(h, "a", t + 1000, 1000, false);
	ck_assert_uint_eq(pl_hostlimit_get(h, "b"), b);
	pl_hostlimit_free(h);
}
END_TEST

START_TEST(the_table_is_bounded_and_busy_hosts_stay)
{
	struct pl_hostlimit *h;
	uint64_t t = 1000;
	char name[32];
	unsigned busy_limit;

	ck_assert_int_eq(pl_hostlimit_new(32, &h), 0);
	t = saturate(h, "busy", t, 400, 50000, 32);
	busy_limit = pl_hostlimit_get(h, "busy");
	ck_assert_uint_gt(busy_limit, 4);
	ck_assert_int_eq(pl_hostlimit_acquire(h, "busy", t), 0);
	/* many more hosts than the table holds, one at a time */
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "h%d", i);
		ck_assert_int_eq(pl_hostlimit_acquire(h, name, ++t), 0);
		pl_hostlimit_release(h, name, ++t, 1000, false);
	}
	/* the busy one kept its entry: its limit and its slot */
	ck_assert_uint_eq(pl_hostlimit_get(h, "busy"), busy_limit);
	for (unsigned i = 1; i < busy_limit; i++)
		ck_assert_int_eq(pl_hostlimit_acquire(h, "busy", t), 0);
	ck_assert_int_eq(pl_hostlimit_acquire(h, "busy", t), -EBUSY);
	for (unsigned i = 0; i < busy_limit; i++)
		pl_hostlimit_release(h, "busy", t, 50000, false);
	pl_hostlimit_free(h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostlimit");
	TCase *tc = tcase_create("hostlimit");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, grows_to_the_ceiling_and_no_further);
	tcase_add_test(tc, a_round_trip_at_the_limit_doubles_it);
	tcase_add_test(tc, a_shedding_host_settles_at_its_capacity);
	tcase_add_test(tc, a_small_ceiling_is_the_start);
	tcase_add_test(tc, a_drop_cuts_that_host_only);
	tcase_add_test(tc, the_table_is_bounded_and_busy_hosts_stay);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/*
 * test_hostlimit.c — the per-host limits on a fake clock: a host starts at
 * 4, grows while it is used and answers at its floor, never past the
 * ceiling; a drop cuts that host and no other; the table stays bounded
 * while hosts come and go, and a busy host's entry is never taken.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

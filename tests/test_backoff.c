/*
 * test_backoff.c — the shared retry delay: full jitter inside the doubling
 * window, the one-minute cap, Retry-After winning, never 0.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "backoff.h"

START_TEST(jitter_stays_in_the_window)
{
	uint64_t rng;
	long max_seen[5] = { 0 };

	pl_backoff_seed(&rng);
	for (int i = 0; i < 20000; i++)
		for (int n = 1; n <= 4; n++) {
			long ms = pl_backoff_ms(0.5, n, 0, &rng);
			ck_assert_int_ge(ms, 1);
			ck_assert_int_le(ms, 500L << (n - 1));
			if (ms > max_seen[n])
				max_seen[n] = ms;
		}
	/* the window really doubles: each retry reaches past the last window */
	for (int n = 2; n <= 4; n++)
		ck_assert_int_gt(max_seen[n], 500L << (n - 2));
}
END_TEST

START_TEST(caps_and_retry_after)
{
	uint64_t rng = 42;

	for (int i = 0; i < 1000; i++)
		ck_assert_int_le(pl_backoff_ms(10.0, 30, 0, &rng), PL_BACKOFF_MAX_MS);
	ck_assert_int_eq(pl_backoff_ms(0.5, 1, 2, &rng), 2000);
	ck_assert_int_eq(pl_backoff_ms(0.5, 1, 3600, &rng), PL_BACKOFF_MAX_MS);
	ck_assert_int_ge(pl_backoff_ms(0.0, 1, 0, &rng), 1);	/* 0 would mean success */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("backoff");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, jitter_stays_in_the_window);
	tcase_add_test(tc, caps_and_retry_after);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

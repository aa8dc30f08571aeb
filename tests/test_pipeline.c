/*
 * test_pipeline.c — three stages of widths 3/4/5 over 10^5 items, the middle
 * one failing every 7th: every item leaves exactly once, failures carry
 * their reason and stage; graceful drain; fast stop hands back exactly the
 * items that never entered a stage.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

#define P(n) ((void *)(uintptr_t)(n))
enum { N = 100000 };

struct world {
	atomic_uchar *entered;	/* item reached stage 1's process() */
	atomic_uchar *stage_seen[3];
	atomic_uchar *done, *failed, *returned;
	atomic_int bad_reason;
	atomic_bool gate_closed;	/* stage 1 blocks while set (fast stop test) */
	atomic_int in_stage1;
};

static struct world *W;

static int stage_fn(void *ctx, void *ws, void *item, char *why, size_t len)
{
	int idx = (int)(intptr_t)ctx;
	uintptr_t i = (uintptr_t)item;

	(void)ws;
	if (idx == 0) {
		atomic_fetch_add(&W->entered[i], 1);
		atomic_fetch_add(&W->in_stage1, 1);
		while (atomic_load(&W->gate_closed))
			sched_yield();
		atomic_fetch_sub(&W->in_stage1, 1);
	}
	atomic_fetch_add(&W->stage_seen[idx][i], 1);
	if (idx == 1 && i % 7 == 0) {
		snprintf(why, len, "seven divides %lu", (unsigned long)i);
		return -EDOM;
	}
	return 0;
}

static const struct pl_stage_ops ops = { NULL, NULL, stage_fn };

static void on_done(void *ud, void *item)
{
	(void)ud;
	atomic_fetch_add(&W->done[(uintptr_t)item], 1);
}

static void on_failed(void *ud, void *item, int err, const char *why, const char *stage)
{
	char want[64];

	(void)ud;
	snprintf(want, sizeof want, "seven divides %lu", (unsigned long)(uintptr_t)item);
	if (err != EDOM || strcmp(why, want) != 0 || strcmp(stage, "two") != 0)
		atomic_store(&W->bad_reason, 1);
	atomic_fetch_add(&W->failed[(uintptr_t)item], 1);
}

static struct pl_pipeline *make(void)
{
	struct pl_stage_def defs[3] = {
		{ "one", 3, 16, &ops, (void *)0 },
		{ "two", 4, 16, &ops, (void *)1 },
		{ "three", 5, 16, &ops, (void *)2 },
	};
	struct pl_pipeline_sinks sinks = { on_done, on_failed, NULL };
	struct pl_pipeline *p;

	W = calloc(1, sizeof *W);
	W->entered = calloc(N, 1);
	for (int i = 0; i < 3; i++)
		W->stage_seen[i] = calloc(N, 1);
	W->done = calloc(N, 1);
	W->failed = calloc(N, 1);
	W->returned = calloc(N, 1);
	ck_assert_int_eq(pl_pipeline_create(defs, 3, &sinks, &p), 0);
	ck_assert_uint_eq(pl_pipeline_stages(p), 3);
	ck_assert_str_eq(pl_pipeline_stage_name(p, 1), "two");
	return p;
}

static void world_free(void)
{
	free(W->entered);
	for (int i = 0; i < 3; i++)
		free(W->stage_seen[i]);
	free(W->done);
	free(W->failed);
	free(W->returned);
	free(W);
}

START_TEST(graceful_drain_accounts_for_every_item)
{
	struct pl_pipeline *p = make();
	struct pl_stage_stats st;
	unsigned long failures = 0;

	ck_assert_int_eq(pl_pipeline_start(p), 0);
	for (uintptr_t i = 0; i < N; i++)
		ck_assert_int_eq(pl_pipeline_feed(p, P(i), -1), 0);
	ck_assert_int_eq(pl_pipeline_stop(p), 0);	/* returns only when all left */
	ck_assert_int_eq(pl_pipeline_feed(p, P(0), 0), -EPIPE);
	for (long i = 0; i < N; i++) {
		int d = atomic_load(&W->done[i]), f = atomic_load(&W->failed[i]);
		ck_assert_int_eq(d + f, 1);
		ck_assert_int_eq(f, i % 7 == 0);
		ck_assert_int_eq(atomic_load(&W->stage_seen[2][i]), i % 7 != 0);
		failures += f;
	}
	ck_assert_int_eq(atomic_load(&W->bad_reason), 0);
	pl_pipeline_stats(p, 1, &st);
	ck_assert_uint_eq(st.in, N);
	ck_assert_uint_eq(st.failed, failures);
	ck_assert_uint_eq(st.done + st.failed, N);
	ck_assert_uint_eq(st.width, 4);
	ck_assert_uint_eq(st.alive, 0);
	pl_pipeline_stats(p, 2, &st);
	ck_assert_uint_eq(st.done, N - failures);
	pl_pipeline_destroy(p);
	world_free();
}
END_TEST

static void *feeder(void *arg)
{
	struct pl_pipeline *p = arg;

	for (uintptr_t i = 0; i < N; i++)
		if (pl_pipeline_feed(p, P(i), -1) == -EPIPE) {
			/* never entered: the feeder keeps it, as the daemon does */
			atomic_fetch_add(&W->returned[i], 1);
			for (uintptr_t j = i + 1; j < N; j++)
				atomic_fetch_add(&W->returned[j], 1);
			break;
		}
	return NULL;
}

static void *drainer(void *arg)
{
	pl_pipeline_stop(arg);
	return NULL;
}

START_TEST(fast_stop_returns_exactly_the_unentered)
{
	struct pl_pipeline *p = make();
	pthread_t feed, drain;
	void *items[7];
	size_t n;

	ck_assert_int_eq(pl_pipeline_start(p), 0);
	pthread_create(&feed, NULL, feeder, p);
	/* let items flow, then hold stage one so its queue fills up */
	while (atomic_load(&W->done[1000]) + atomic_load(&W->failed[1000]) == 0)
		sched_yield();
	atomic_store(&W->gate_closed, true);
	while (atomic_load(&W->in_stage1) < 3)
		sched_yield();
	/* graceful drain starts in another thread, as in the daemon ... */
	pthread_create(&drain, NULL, drainer, p);
	/* ... and a second signal turns it into a fast stop */
	while ((n = pl_pipeline_abort(p, items, 7)) > 0)
		for (size_t k = 0; k < n; k++)
			atomic_fetch_add(&W->returned[(uintptr_t)items[k]], 1);
	atomic_store(&W->gate_closed, false);
	pthread_join(feed, NULL);
	pthread_join(drain, NULL);

	size_t back = 0;
	for (long i = 0; i < N; i++) {
		int e = atomic_load(&W->entered[i]), r = atomic_load(&W->returned[i]);
		int d = atomic_load(&W->done[i]), f = atomic_load(&W->failed[i]);
		/* exactly one way out: returned iff it never entered a stage */
		ck_assert_int_eq(r, !e);
		ck_assert_int_eq(e, d + f);
		ck_assert_int_le(e, 1);
		back += r;
	}
	ck_assert_uint_gt(back, 0);
	ck_assert_int_eq(atomic_load(&W->bad_reason), 0);
	pl_pipeline_destroy(p);
	world_free();
}
END_TEST

START_TEST(width_change_mid_flight)
{
	struct pl_pipeline *p = make();
	struct pl_stage_stats st;

	pl_pipeline_start(p);
	for (uintptr_t i = 0; i < N; i++) {
		if (i == N / 3)
			ck_assert_int_eq(pl_pipeline_set_width(p, 1, 1), 0);
		if (i == 2 * N / 3)
			ck_assert_int_eq(pl_pipeline_set_width(p, 1, 6), 0);
		pl_pipeline_feed(p, P(i), -1);
	}
	ck_assert_int_eq(pl_pipeline_set_width(p, 7, 1), -EINVAL);
	pl_pipeline_stop(p);
	pl_pipeline_stats(p, 1, &st);
	ck_assert_uint_eq(st.width, 6);
	for (long i = 0; i < N; i++)
		ck_assert_int_eq(atomic_load(&W->done[i]) + atomic_load(&W->failed[i]), 1);
	pl_pipeline_destroy(p);
	world_free();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pipeline");
	TCase *tc = tcase_create("pipeline");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, graceful_drain_accounts_for_every_item);
	tcase_add_test(tc, fast_stop_returns_exactly_the_unentered);
	tcase_add_test(tc, width_change_mid_flight);
	/* seconds: a lost wake-up fails fast instead of hanging (tests/CMakeLists.txt
	 * stretches it with CK_TIMEOUT_MULTIPLIER under a sanitizer) */
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

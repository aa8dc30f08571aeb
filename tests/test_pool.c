/*
 * test_pool.c — stage pools: width changes under load without loss or
 * duplication, failures reach the failure sink with their reason while the
 * worker carries on, retries through the pool's heap, per-worker start/stop,
 * signals blocked in workers, stats, the longest-running item named safely,
 * and where a worker that cannot start is reported (the logging hook, or
 * stderr).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "clock.h"
#include "pool.h"

#define P(n) ((void *)(uintptr_t)(n))

struct ctx {
	atomic_uchar *passed;	/* per item: times passed */
	atomic_uchar *failed;
	atomic_uchar *attempts;
	atomic_int in_process;	/* workers inside process() */
	atomic_int max_in_process;
	atomic_int started, stopped;
	atomic_int signals_unblocked;
	int fail_every;		/* fail items i % fail_every == 0 */
	int retry_every;	/* first attempt of these asks for a retry */
	char reasons_ok;
};

static int w_start(void *c, void **ws)
{
	struct ctx *x = c;
	sigset_t cur;

	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	if (!sigismember(&cur, SIGTERM) || !sigismember(&cur, SIGHUP))
		atomic_fetch_add(&x->signals_unblocked, 1);
	atomic_fetch_add(&x->started, 1);
	*ws = P(0xbeef);
	return 0;
}

static void w_stop(void *c, void *ws)
{
	struct ctx *x = c;

	ck_assert_ptr_eq(ws, P(0xbeef));
	atomic_fetch_add(&x->stopped, 1);
}

static int process(void *c, void *ws, void *item, char *why, size_t len)
{
	struct ctx *x = c;
	uintptr_t i = (uintptr_t)item;
	int inside = atomic_fetch_add(&x->in_process, 1) + 1, m;

	(void)ws;
	while ((m = atomic_load(&x->max_in_process)) < inside &&
	       !atomic_compare_exchange_weak(&x->max_in_process, &m, inside))
		;
	int attempt = atomic_fetch_add(&x->attempts[i], 1);
	atomic_fetch_sub(&x->in_process, 1);
	if (x->retry_every && i % x->retry_every == 0 && attempt == 0)
		return 5;	/* retry in 5 ms */
	if (x->fail_every && i % x->fail_every == 0) {
		snprintf(why, len, "item %lu is divisible by %d", (unsigned long)i, x->fail_every);
		return -EIO;
	}
	return 0;
}

static const struct pl_stage_ops ops = { w_start, w_stop, process };

static int sink_pass(void *ud, void *item)
{
	struct ctx *x = ud;

	atomic_fetch_add(&x->passed[(uintptr_t)item], 1);
	return 0;
}

static int sink_pass_many(void *ud, void **items, size_t n, size_t *done)
{
	for (size_t i = 0; i < n; i++)
		sink_pass(ud, items[i]);
	*done = n;
	return 0;
}

static void sink_fail(void *ud, void *item, int err, const char *why)
{
	struct ctx *x = ud;
	char want[64];

	snprintf(want, sizeof want, "item %lu is divisible by %d",
		 (unsigned long)(uintptr_t)item, x->fail_every);
	if (err != EIO || strcmp(why, want) != 0)
		x->reasons_ok = 0;
	atomic_fetch_add(&x->failed[(uintptr_t)item], 1);
}

static struct ctx *ctx_new(long n)
{
	struct ctx *x = calloc(1, sizeof *x);

	x->passed = calloc(n, 1);
	x->failed = calloc(n, 1);
	x->attempts = calloc(n, 1);
	x->reasons_ok = 1;
	return x;
}

static void ctx_free(struct ctx *x)
{
	free(x->passed);
	free(x->failed);
	free(x->attempts);
	free(x);
}

START_TEST(width_changes_under_load)
{
	enum { N = 100000 };
	static const unsigned widths[] = { 1, 8, 2, 5 };
	struct ctx *x = ctx_new(N);
	struct pl_queue *q = pl_queue_create(32);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x,
				.pass_many = sink_pass_many };
	struct pl_pool *p;
	struct pl_stage_stats st;

	x->fail_every = 7;
	p = pl_pool_create("test", q, &ops, x, &sink);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(pl_pool_set_width(p, widths[0]), 0);
	for (uintptr_t i = 0; i < N; i++) {
		if (i % (N / 4) == 0 && i) {
			ck_assert_int_eq(pl_pool_set_width(p, widths[i / (N / 4)]), 0);
			pl_pool_stats(p, &st);
			ck_assert_uint_eq(st.width, widths[i / (N / 4)]);
		}
		ck_assert_int_eq(pl_queue_put(q, P(i), -1), 0);
	}
	ck_assert_int_eq(pl_queue_join(q, -1), 0);
	pl_pool_stats(p, &st);
	ck_assert_uint_eq(st.in, N);
	ck_assert_uint_eq(st.done + st.failed, N);
	ck_assert_uint_eq(st.failed, (N + 6) / 7);
	ck_assert_uint_eq(st.busy, 0);
	ck_assert_int_eq(pl_pool_stop(p), 0);
	pl_pool_stats(p, &st);
	ck_assert_uint_eq(st.alive, 0);
	/* a width change after the stop (a reload during the drain) starts
	 * nothing that nobody would join */
	ck_assert_int_eq(pl_pool_set_width(p, 4), -ESHUTDOWN);
	pl_pool_stats(p, &st);
	ck_assert_uint_eq(st.alive, 0);
	for (long i = 0; i < N; i++) {
		ck_assert_int_eq(atomic_load(&x->passed[i]) + atomic_load(&x->failed[i]), 1);
		ck_assert_int_eq(atomic_load(&x->attempts[i]), 1);
		ck_assert_int_eq(atomic_load(&x->failed[i]), i % 7 == 0);
	}
	ck_assert(x->reasons_ok);
	/* every worker that started also ran its stop in its own thread */
	ck_assert_int_eq(atomic_load(&x->started), atomic_load(&x->stopped));
	ck_assert_int_ge(atomic_load(&x->started), 8);
	ck_assert_int_eq(atomic_load(&x->signals_unblocked), 0);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

START_TEST(shrink_to_one_never_runs_more)
{
	enum { N = 20000 };
	struct ctx *x = ctx_new(N);
	struct pl_queue *q = pl_queue_create(16);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x };
	struct pl_pool *p = pl_pool_create("one", q, &ops, x, &sink);
	struct pl_stage_stats st;

	pl_pool_set_width(p, 6);
	for (uintptr_t i = 0; i < N / 2; i++)
		pl_queue_put(q, P(i), -1);
	pl_pool_set_width(p, 1);
	pl_queue_join(q, -1);
	/* now at most one worker may ever be inside process() */
	atomic_store(&x->max_in_process, 0);
	for (uintptr_t i = N / 2; i < N; i++)
		pl_queue_put(q, P(i), -1);
	pl_queue_join(q, -1);
	ck_assert_int_eq(atomic_load(&x->max_in_process), 1);
	/* the workers above the width leave once idle, which may be after
	 * the join returned: await it (the test's timeout bounds the wait) */
	for (pl_pool_stats(p, &st); st.alive > 1; pl_pool_stats(p, &st))
		sched_yield();
	pl_pool_stop(p);
	for (long i = 0; i < N; i++)
		ck_assert_int_eq(atomic_load(&x->passed[i]), 1);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

START_TEST(retries_go_through_the_heap)
{
	enum { N = 3000 };
	struct ctx *x = ctx_new(N);
	struct pl_queue *q = pl_queue_create(8);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x };
	struct pl_pool *p = pl_pool_create("retry", q, &ops, x, &sink);
	struct pl_stage_stats st;

	x->retry_every = 3;
	x->fail_every = 10;
	pl_pool_set_width(p, 3);
	for (uintptr_t i = 0; i < N; i++)
		pl_queue_put(q, P(i), -1);
	pl_queue_close(q);	/* retries still pending after close are served */
	ck_assert_int_eq(pl_queue_join(q, -1), 0);
	pl_pool_stop(p);
	pl_pool_stats(p, &st);
	ck_assert_uint_eq(st.done + st.failed, N);
	ck_assert_uint_eq(st.delayed, 0);
	for (long i = 0; i < N; i++) {
		ck_assert_int_eq(atomic_load(&x->attempts[i]), i % 3 == 0 ? 2 : 1);
		ck_assert_int_eq(atomic_load(&x->passed[i]) + atomic_load(&x->failed[i]), 1);
	}
	ck_assert(x->reasons_ok);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

/* A retry due while every worker is blocked on an empty, open queue must
 * still be served: the pool wakes them rather than relying on more puts. */
START_TEST(retry_served_on_idle_queue)
{
	struct ctx *x = ctx_new(4);
	struct pl_queue *q = pl_queue_create(8);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x };
	struct pl_pool *p = pl_pool_create("idle", q, &ops, x, &sink);

	x->retry_every = 1;	/* every item asks for one retry */
	pl_pool_set_width(p, 2);
	pl_queue_put(q, P(1), -1);
	ck_assert_int_eq(pl_queue_join(q, 10000), 0);
	ck_assert_int_eq(atomic_load(&x->attempts[1]), 2);
	ck_assert_int_eq(atomic_load(&x->passed[1]), 1);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

/* process() that takes at least 1 ms, and at least 8 ms for every tenth
 * item: whatever the load, p50 >= 1 ms and p95 >= 8 ms (the ten slowest of
 * 100 samples include index 94 of the sorted window).  All-zero or
 * microsecond-for-millisecond stats fail. */
static int timed(void *c, void *ws, void *item, char *why, size_t len)
{
	uint64_t until = pl_now_us() + ((uintptr_t)item % 10 == 0 ? 8000 : 1000);

	(void)c; (void)ws; (void)why; (void)len;
	while (pl_now_us() < until)
		sched_yield();
	return 0;
}

START_TEST(latency_stats)
{
	static const struct pl_stage_ops tops = { NULL, NULL, timed };
	struct ctx *x = ctx_new(100);
	struct pl_queue *q = pl_queue_create(0);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x };
	struct pl_pool *p = pl_pool_create("lat", q, &tops, x, &sink);
	struct pl_stage_stats st;

	pl_pool_stats(p, &st);
	ck_assert(st.p50_ms == 0 && st.p95_ms == 0);	/* no sample yet */
	pl_pool_set_width(p, 2);
	for (uintptr_t i = 0; i < 100; i++)
		pl_queue_put(q, P(i), -1);
	pl_queue_join(q, -1);
	pl_pool_stats(p, &st);
	ck_assert_uint_eq(st.done, 100);
	ck_assert_msg(st.p50_ms >= 1.0, "p50 %.3f ms, but every item took at least 1 ms", st.p50_ms);
	ck_assert_msg(st.p95_ms >= 8.0, "p95 %.3f ms, but 10 of 100 items took at least 8 ms",
		      st.p95_ms);
	ck_assert(st.p95_ms >= st.p50_ms);
	ck_assert_uint_ne(st.progress_us, 0);
	ck_assert_str_eq(pl_pool_name(p), "lat");
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

static atomic_bool gate_open;
static atomic_int gate_inside;

static int gated(void *c, void *ws, void *item, char *why, size_t len)
{
	(void)c; (void)ws; (void)item; (void)why; (void)len;
	atomic_fetch_add(&gate_inside, 1);
	while (!atomic_load(&gate_open))
		sched_yield();
	return 0;
}

struct seen {
	const void *item;
	uint64_t since_us;
	int calls;
};

static void note_busy(void *ud, const void *item, uint64_t since_us)
{
	struct seen *s = ud;

	s->item = item;
	s->since_us = since_us;
	s->calls++;
}

/* The stats name the start of the longest-running current item, so a
 * worker stuck on one item is visible while its siblings move on, and
 * the item itself can be named (the watchdog says which one is stuck). */
START_TEST(oldest_busy_item)
{
	static const struct pl_stage_ops gops = { NULL, NULL, gated };
	struct ctx *x = ctx_new(4);
	struct pl_queue *q = pl_queue_create(0);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x };
	struct pl_pool *p = pl_pool_create("gate", q, &gops, x, &sink);
	struct pl_stage_stats st;
	struct seen s = { 0 };
	uint64_t before = pl_now_us();

	pl_pool_stats(p, &st);
	ck_assert_uint_eq(st.oldest_busy_us, 0);
	ck_assert(!pl_pool_oldest_busy(p, note_busy, &s));
	pl_pool_set_width(p, 2);
	pl_queue_put(q, P(1), -1);
	while (atomic_load(&gate_inside) < 1)
		sched_yield();
	pl_pool_stats(p, &st);
	ck_assert_uint_ge(st.oldest_busy_us, before);
	ck_assert_uint_eq(st.busy, 1);
	ck_assert(pl_pool_oldest_busy(p, note_busy, &s));
	ck_assert_ptr_eq(s.item, P(1));
	ck_assert_uint_eq(s.since_us, st.oldest_busy_us);
	atomic_store(&gate_open, true);
	ck_assert_int_eq(pl_queue_join(q, 10000), 0);
	pl_pool_stats(p, &st);
	ck_assert_uint_eq(st.oldest_busy_us, 0);
	ck_assert(!pl_pool_oldest_busy(p, note_busy, &s));
	ck_assert_int_eq(s.calls, 1);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

/* Items that the sink frees as soon as they leave the stage, described
 * over and over while they run: a described item is never one already
 * freed (ASan, TSan and the marks below would see it). */
enum { LIVE = 0x11, GONE = 0x22 };

struct heap_item {
	atomic_int mark;
};

static int quick(void *c, void *ws, void *item, char *why, size_t len)
{
	(void)c; (void)ws; (void)why; (void)len;
	sched_yield();		/* a window in which it is busy */
	return atomic_load(&((struct heap_item *)item)->mark) == LIVE ? 0 : -EINVAL;
}

static int free_pass(void *ud, void *item)
{
	struct heap_item *it = item;

	atomic_fetch_add((atomic_long *)ud, 1);
	atomic_store(&it->mark, GONE);
	free(it);
	return 0;
}

static void free_fail(void *ud, void *item, int err, const char *why)
{
	(void)err; (void)why;
	free_pass(ud, item);
}

static void check_live(void *ud, const void *item, uint64_t since_us)
{
	const struct heap_item *it = item;

	(void)since_us;
	if (atomic_load(&it->mark) != LIVE)
		atomic_fetch_add((atomic_int *)ud, 1);
}

START_TEST(described_items_are_never_freed)
{
	static const struct pl_stage_ops qops = { NULL, NULL, quick };
	enum { N = 20000 };
	atomic_long left = 0;
	atomic_int dead = 0;
	struct pl_queue *q = pl_queue_create(64);
	struct pl_sink sink = { .pass = free_pass, .fail = free_fail, .ud = &left };
	struct pl_pool *p = pl_pool_create("free", q, &qops, NULL, &sink);

	ck_assert_int_eq(pl_pool_set_width(p, 3), 0);
	for (long i = 0; i < N; i++) {
		struct heap_item *it = malloc(sizeof *it);

		ck_assert_ptr_nonnull(it);
		atomic_init(&it->mark, LIVE);
		ck_assert_int_eq(pl_queue_put(q, it, -1), 0);
		pl_pool_oldest_busy(p, check_live, &dead);
	}
	while (atomic_load(&left) < N)
		pl_pool_oldest_busy(p, check_live, &dead);
	ck_assert_int_eq(pl_queue_join(q, 10000), 0);
	ck_assert_int_eq(atomic_load(&dead), 0);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
}
END_TEST

/* A pool whose workers run but never got an item says so: nothing taken,
 * done, failed, retried, busy or measured, and no latency made up. */
START_TEST(idle_pool_reports_zero)
{
	struct ctx *x = ctx_new(1);
	struct pl_queue *q = pl_queue_create(4);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x };
	struct pl_pool *p = pl_pool_create("idle", q, &ops, x, &sink);
	struct pl_stage_stats st;

	ck_assert_int_eq(pl_pool_set_width(p, 3), 0);
	while (atomic_load(&x->started) < 3)	/* every worker is in its loop */
		sched_yield();
	pl_pool_stats(p, &st);
	ck_assert_uint_eq(st.width, 3);
	ck_assert_uint_eq(st.alive, 3);
	ck_assert_uint_eq(st.busy, 0);
	ck_assert_uint_eq(st.queued, 0);
	ck_assert_uint_eq(st.delayed, 0);
	ck_assert_uint_eq(st.in, 0);
	ck_assert_uint_eq(st.done, 0);
	ck_assert_uint_eq(st.failed, 0);
	ck_assert_uint_eq(st.retried, 0);
	ck_assert_uint_eq(st.progress_us, 0);
	ck_assert_uint_eq(st.oldest_busy_us, 0);
	ck_assert(st.p50_ms == 0 && st.p95_ms == 0);
	for (unsigned i = 0; i <= PL_POOL_HIST_N; i++)
		ck_assert_uint_eq(st.hist[i], 0);
	ck_assert_uint_eq(st.hist_sum_us, 0);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

/* ---- a worker that cannot start: reported, not returned ---- */

static int start_fails(void *c, void **ws)
{
	(void)c; (void)ws;
	return -EIO;
}

static const struct pl_stage_ops failing_ops = { start_fails, NULL, process };

static atomic_int nlogged;
static int logged_prio[4];
static char logged[4][128];

static void capture_log(int prio, const char *fmt, ...)
{
	int i = atomic_fetch_add(&nlogged, 1);
	va_list ap;

	if (i >= 4)
		return;
	logged_prio[i] = prio;
	va_start(ap, fmt);
	vsnprintf(logged[i], sizeof logged[i], fmt, ap);
	va_end(ap);
}

/* Wait until every worker of p has left (the test's timeout bounds it). */
static void await_no_worker(struct pl_pool *p)
{
	struct pl_stage_stats st;

	for (pl_pool_stats(p, &st); st.alive; pl_pool_stats(p, &st))
		sched_yield();
}

/* Through the hook when there is one; without, the line goes to stderr
 * as it is, with no syslog "<3>" prefix: the core does not know whether
 * anyone reads one. */
START_TEST(unstartable_worker_is_reported)
{
	struct ctx *x = ctx_new(1);
	struct pl_queue *q = pl_queue_create(4);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x };
	struct pl_pool *p = pl_pool_create("cold", q, &failing_ops, x, &sink);
	bool seen[2] = { false, false };
	FILE *cap = tmpfile();
	char line[128] = "";
	int saved;

	pl_pool_set_logger(capture_log);
	ck_assert_int_eq(pl_pool_set_width(p, 2), 0);
	await_no_worker(p);
	ck_assert_int_eq(atomic_load(&nlogged), 2);
	for (int i = 0; i < 2; i++) {
		int w;
		char tail;

		ck_assert_int_eq(logged_prio[i], LOG_ERR);
		ck_assert_msg(sscanf(logged[i], "stage cold: worker %d could not star%c", &w,
				     &tail) == 2 && tail == 't' && (w == 0 || w == 1),
			      "logged: %s", logged[i]);
		seen[w] = true;
	}
	ck_assert(seen[0] && seen[1]);

	pl_pool_set_logger(NULL);
	ck_assert_ptr_nonnull(cap);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fileno(cap), STDERR_FILENO), 0);
	ck_assert_int_eq(pl_pool_set_width(p, 1), 0);	/* worker 0 tries again */
	await_no_worker(p);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(cap);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, cap));
	ck_assert_str_eq(line, "stage cold: worker 0 could not start\n");
	ck_assert_int_eq(atomic_load(&nlogged), 2);
	fclose(cap);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

START_TEST(bad_arguments)
{
	struct pl_queue *q = pl_queue_create(1);
	struct ctx *x = ctx_new(1);
	struct pl_sink sink = { .pass = sink_pass, .fail = sink_fail, .ud = x };
	struct pl_pool *p = pl_pool_create("x", q, &ops, x, &sink);

	ck_assert_ptr_null(pl_pool_create("x", NULL, &ops, x, &sink));
	ck_assert_int_eq(pl_pool_set_width(p, 0), -EINVAL);
	pl_pool_destroy(p);
	pl_queue_destroy(q);
	ctx_free(x);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("pool");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, width_changes_under_load);
	tcase_add_test(tc, shrink_to_one_never_runs_more);
	tcase_add_test(tc, retries_go_through_the_heap);
	tcase_add_test(tc, retry_served_on_idle_queue);
	tcase_add_test(tc, latency_stats);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, oldest_busy_item);
	tcase_add_test(tc, described_items_are_never_freed);
	tcase_add_test(tc, idle_pool_reports_zero);
	tcase_add_test(tc, unstartable_worker_is_reported);
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

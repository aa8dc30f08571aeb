/*
 * test_queue.c — conformance of src/queue.c to the contract in queue.h
 * (Python 3.13 queue.Queue semantics, close = shutdown(immediate=False)).
 * Timing is measured on CLOCK_MONOTONIC; threads synchronise on conditions
 * (counters, joins, a thread seen asleep in the queue), never on sleeps.
 * Each test has a short timeout, so a lost wake-up fails in seconds.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

#define P(n) ((void *)(uintptr_t)(n))

START_TEST(fifo_and_null_items)
{
	struct pl_queue *q = pl_queue_create(0);
	void *it = P(99);

	ck_assert_ptr_nonnull(q);
	for (uintptr_t i = 0; i < 1000; i++)	/* unbounded: grows past 64 */
		ck_assert_int_eq(pl_queue_put(q, P(i), 0), 0);
	ck_assert_uint_eq(pl_queue_size(q), 1000);
	for (uintptr_t i = 0; i < 1000; i++) {
		ck_assert_int_eq(pl_queue_get(q, &it, 0), 0);
		ck_assert_ptr_eq(it, P(i));
	}
	ck_assert_int_eq(pl_queue_put(q, NULL, 0), 0);
	ck_assert_int_eq(pl_queue_get(q, &it, 0), 0);
	ck_assert_ptr_null(it);
	ck_assert_int_eq(pl_queue_get(q, &it, 0), EAGAIN);
	pl_queue_destroy(q);
}
END_TEST

START_TEST(bounded_put_would_block)
{
	struct pl_queue *q = pl_queue_create(2);
	void *it;

	ck_assert_int_eq(pl_queue_put(q, P(1), 0), 0);
	ck_assert_int_eq(pl_queue_put(q, P(2), 0), 0);
	ck_assert_int_eq(pl_queue_put(q, P(3), 0), EAGAIN);
	ck_assert_uint_eq(pl_queue_size(q), 2);
	ck_assert_uint_eq(pl_queue_unfinished(q), 2);	/* failed put adds nothing */
	ck_assert_int_eq(pl_queue_get(q, &it, 0), 0);
	ck_assert_int_eq(pl_queue_put(q, P(3), 0), 0);
	pl_queue_destroy(q);
}
END_TEST

START_TEST(timeouts_on_monotonic_clock)
{
	struct pl_queue *q = pl_queue_create(1);
	void *it;
	long t;

	t = now_ms();
	ck_assert_int_eq(pl_queue_get(q, &it, 150), ETIMEDOUT);
	t = now_ms() - t;
	ck_assert_int_ge(t, 150);
	ck_assert_int_lt(t, 2000);

	ck_assert_int_eq(pl_queue_put(q, P(1), 0), 0);
	t = now_ms();
	ck_assert_int_eq(pl_queue_put(q, P(2), 120), ETIMEDOUT);
	t = now_ms() - t;
	ck_assert_int_ge(t, 120);
	ck_assert_int_lt(t, 2000);

	t = now_ms();
	ck_assert_int_eq(pl_queue_join(q, 100), ETIMEDOUT);
	ck_assert_int_ge(now_ms() - t, 100);
	ck_assert_int_eq(pl_queue_join(q, 0), EAGAIN);
	pl_queue_destroy(q);
}
END_TEST

START_TEST(task_done_accounting)
{
	struct pl_queue *q = pl_queue_create(0);
	void *it;

	ck_assert_int_eq(pl_queue_task_done(q), EINVAL);	/* none unfinished */
	ck_assert_int_eq(pl_queue_join(q, 0), 0);		/* returns at once */
	ck_assert_int_eq(pl_queue_join(q, -1), 0);
	pl_queue_put(q, P(1), 0);
	pl_queue_put(q, P(2), 0);
	ck_assert_uint_eq(pl_queue_unfinished(q), 2);
	pl_queue_get(q, &it, 0);
	ck_assert_uint_eq(pl_queue_unfinished(q), 2);		/* get does not finish */
	ck_assert_int_eq(pl_queue_task_done(q), 0);
	ck_assert_int_eq(pl_queue_join(q, 0), EAGAIN);
	pl_queue_get(q, &it, 0);
	ck_assert_int_eq(pl_queue_task_done(q), 0);
	ck_assert_int_eq(pl_queue_task_done(q), EINVAL);	/* changes nothing */
	ck_assert_uint_eq(pl_queue_unfinished(q), 0);
	ck_assert_int_eq(pl_queue_join(q, 0), 0);
	pl_queue_destroy(q);
}
END_TEST

START_TEST(close_semantics)
{
	struct pl_queue *q = pl_queue_create(4);
	void *it;

	pl_queue_put(q, P(1), 0);
	pl_queue_put(q, P(2), 0);
	ck_assert(!pl_queue_closed(q));
	pl_queue_close(q);
	pl_queue_close(q);			/* twice is harmless */
	ck_assert(pl_queue_closed(q));
	ck_assert_int_eq(pl_queue_put(q, P(3), 0), EPIPE);
	ck_assert_int_eq(pl_queue_put(q, P(3), -1), EPIPE);
	ck_assert_int_eq(pl_queue_get(q, &it, -1), 0);	/* remaining items in order */
	ck_assert_ptr_eq(it, P(1));
	ck_assert_int_eq(pl_queue_get(q, &it, 0), 0);
	ck_assert_ptr_eq(it, P(2));
	for (int i = 0; i < 3; i++) {		/* then EPIPE, every time, any timeout */
		ck_assert_int_eq(pl_queue_get(q, &it, -1), EPIPE);
		ck_assert_int_eq(pl_queue_get(q, &it, 0), EPIPE);
		ck_assert_int_eq(pl_queue_get(q, &it, 50), EPIPE);
	}
	ck_assert_uint_eq(pl_queue_unfinished(q), 2);	/* close keeps accounting */
	pl_queue_task_done(q);
	pl_queue_task_done(q);
	ck_assert_int_eq(pl_queue_join(q, 0), 0);
	pl_queue_destroy(q);
}
END_TEST

START_TEST(invalid_arguments)
{
	struct pl_queue *q = pl_queue_create(1);

	ck_assert_int_eq(pl_queue_get(q, NULL, 0), EINVAL);
	ck_assert_int_eq(pl_queue_put(NULL, P(1), 0), EINVAL);
	pl_queue_destroy(q);
}
END_TEST

/* ---- blocked callers woken by close ---- */

struct blocked {
	struct pl_queue *q;
	atomic_int started;
	atomic_int tid[8];	/* of the started threads, 0 until known */
	atomic_int result[8];
};

/* A blocked caller's thread: its slot, with its thread id published. */
static int enter(struct blocked *b)
{
	int me = atomic_fetch_add(&b->started, 1);

	atomic_store(&b->tid[me], (int)gettid());
	return me;
}

static void *blocked_getter(void *arg)
{
	struct blocked *b = arg;
	void *it;
	int me = enter(b);

	atomic_store(&b->result[me], pl_queue_get(b->q, &it, -1));
	return NULL;
}

static void *blocked_putter(void *arg)
{
	struct blocked *b = arg;
	int me = enter(b);

	atomic_store(&b->result[me], pl_queue_put(b->q, P(7), -1));
	return NULL;
}

/*
 * A thread that has started may not have reached its wait yet, and a close
 * (or interrupt, or get) that comes first is seen on entry: the test would
 * pass with a queue that wakes nobody.  The queue counts its sleepers but
 * has no API that tells them, so the threads are looked at from outside,
 * in /proc: each must sleep (state S) in a futex wait on an address inside
 * the queue's own allocation (its mutex and condition variables live in the
 * block pl_queue_create allocates), and stay asleep without a single
 * context switch from one look at all of them to the next.  Then there is
 * an instant at which all of them slept in the queue at once; at that
 * instant nobody ran holding the queue's lock, so none of them waited for
 * the lock: each sleeps on a condition variable, and only the call the test
 * makes next can wake it.
 */
struct look {
	char state;		/* S: asleep, interruptibly */
	long vcsw;		/* voluntary context switches so far */
	long nr;		/* system call in progress, -1 none */
	uintptr_t arg0;		/* its first argument: the futex address */
};

static void look_at(int tid, struct look *l)
{
	char path[64], line[256];
	FILE *f;

	*l = (struct look){ .state = '?', .vcsw = -1, .nr = -1 };
	snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
	if ((f = fopen(path, "r"))) {
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "State: %c", &l->state) != 1)
				sscanf(line, "voluntary_ctxt_switches: %ld", &l->vcsw);
		fclose(f);
	}
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
	if ((f = fopen(path, "r"))) {	/* "NR 0xARG0 …", or "running" */
		if (fgets(line, sizeof line, f) &&
		    sscanf(line, "%ld %" SCNxPTR, &l->nr, &l->arg0) != 2)
			l->nr = -1;
		fclose(f);
	}
}

static bool asleep_in(const struct look *l, uintptr_t lo, uintptr_t hi)
{
	return l->state == 'S' && l->nr == SYS_futex && l->arg0 >= lo && l->arg0 < hi;
}

/* Wait until n started threads all sleep in the queue (above); fail after
 * 10 s naming what the first laggard was doing. */
static void await_asleep(struct blocked *b, int n)
{
	uintptr_t lo = (uintptr_t)b->q, hi = lo + malloc_usable_size(b->q);
	long deadline = now_ms() + 10000;
	struct look first[8], second[8];
	int i, lag;

	ck_assert_int_le(n, 8);
	for (;;) {
		for (i = 0; i < n && atomic_load(&b->tid[i]); i++)
			;
		lag = -1;
		if (i == n) {
			for (i = 0; i < n; i++)
				look_at(atomic_load(&b->tid[i]), &first[i]);
			for (i = 0; i < n; i++)
				look_at(atomic_load(&b->tid[i]), &second[i]);
			for (i = 0; i < n && lag < 0; i++)
				if (!asleep_in(&first[i], lo, hi) || !asleep_in(&second[i], lo, hi) ||
				    first[i].vcsw != second[i].vcsw)
					lag = i;
			if (lag < 0) {
				/* a timeout reported "after this point": the
				 * sleepers were never woken */
				mark_point();
				return;
			}
		}
		if (now_ms() > deadline) {
			if (lag < 0)
				ck_abort_msg("only %d of %d threads started within 10 s",
					     atomic_load(&b->started), n);
			ck_abort_msg("thread %d of %d not asleep in the queue (%#" PRIxPTR "..%#"
				     PRIxPTR ") after 10 s: state %c, syscall %ld on %#" PRIxPTR,
				     lag, n, lo, hi, second[lag].state, second[lag].nr,
				     second[lag].arg0);
		}
		sched_yield();
	}
}

START_TEST(close_wakes_blocked_getters)
{
	struct blocked b = { .q = pl_queue_create(0) };
	pthread_t t[4];

	for (int i = 0; i < 8; i++)
		atomic_store(&b.result[i], -1);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, blocked_getter, &b);
	await_asleep(&b, 4);
	pl_queue_close(b.q);		/* one close ends every consumer */
	/* result[] is indexed by start order, not by t[]: join them all first */
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(atomic_load(&b.result[i]), EPIPE);
	pl_queue_destroy(b.q);
}
END_TEST

START_TEST(close_wakes_blocked_putters)
{
	struct blocked b = { .q = pl_queue_create(1) };
	pthread_t t[3];
	void *it;

	pl_queue_put(b.q, P(1), 0);
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, blocked_putter, &b);
	await_asleep(&b, 3);
	pl_queue_close(b.q);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(atomic_load(&b.result[i]), EPIPE);
	ck_assert_uint_eq(pl_queue_size(b.q), 1);
	ck_assert_int_eq(pl_queue_get(b.q, &it, 0), 0);
	ck_assert_ptr_eq(it, P(1));
	pl_queue_destroy(b.q);
}
END_TEST

START_TEST(blocked_put_resumes_after_get)
{
	struct blocked b = { .q = pl_queue_create(1) };
	pthread_t t;
	void *it;

	pl_queue_put(b.q, P(1), 0);
	atomic_store(&b.result[0], -1);
	pthread_create(&t, NULL, blocked_putter, &b);
	await_asleep(&b, 1);
	ck_assert_int_eq(pl_queue_get(b.q, &it, 0), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&b.result[0]), 0);
	ck_assert_int_eq(pl_queue_get(b.q, &it, 0), 0);
	ck_assert_ptr_eq(it, P(7));
	pl_queue_destroy(b.q);
}
END_TEST

/* ---- join with workers, CPython's test_queue_join ---- */

struct joiner {
	struct pl_queue *q;
	atomic_long cum;
};

static void *join_worker(void *arg)
{
	struct joiner *j = arg;
	void *it;

	while (pl_queue_get(j->q, &it, -1) == 0) {
		atomic_fetch_add(&j->cum, (long)(uintptr_t)it);
		pl_queue_task_done(j->q);
	}
	return NULL;
}

START_TEST(join_with_workers)
{
	struct joiner j = { .q = pl_queue_create(0) };
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, join_worker, &j);
	for (int round = 0; round < 2; round++) {	/* joined twice, twice over */
		atomic_store(&j.cum, 0);
		for (uintptr_t i = 0; i < 100; i++)
			pl_queue_put(j.q, P(i), -1);
		ck_assert_int_eq(pl_queue_join(j.q, -1), 0);
		ck_assert_int_eq(atomic_load(&j.cum), 4950);
		ck_assert_int_eq(pl_queue_join(j.q, -1), 0);	/* no-op the second time */
		ck_assert_int_eq(atomic_load(&j.cum), 4950);
	}
	pl_queue_close(j.q);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pl_queue_destroy(j.q);
}
END_TEST

/*
 * A sleeper is signalled only for items (room) nobody else is coming for:
 * a batch put in one lock round must still reach every sleeping getter,
 * and a batch taken in one round every sleeping putter.  A wake counted
 * wrong leaves threads asleep beside the items and the test times out.
 */
START_TEST(one_batch_wakes_every_sleeper)
{
	struct blocked g = { .q = pl_queue_create(0) }, p = { .q = pl_queue_create(4) };
	void *items[4] = { P(1), P(2), P(3), P(4) };
	pthread_t t[4];
	size_t n;

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, blocked_getter, &g);
	await_asleep(&g, 4);
	ck_assert_int_eq(pl_queue_put_batch(g.q, items, 4, &n, 0), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(atomic_load(&g.result[i]), 0);
	}
	ck_assert_uint_eq(pl_queue_size(g.q), 0);

	ck_assert_int_eq(pl_queue_put_batch(p.q, items, 4, &n, 0), 0);	/* full */
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, blocked_putter, &p);
	await_asleep(&p, 4);
	ck_assert_int_eq(pl_queue_get_batch(p.q, items, 4, &n, 0, pl_queue_interrupt_gen(p.q)), 0);
	ck_assert_uint_eq(n, 4);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(atomic_load(&p.result[i]), 0);
	}
	ck_assert_uint_eq(pl_queue_size(p.q), 4);
	pl_queue_destroy(g.q);
	pl_queue_destroy(p.q);
}
END_TEST

/* ---- drain ---- */

START_TEST(drain_basic)
{
	struct pl_queue *q = pl_queue_create(0);
	void *items[8];
	void *it;

	for (uintptr_t i = 0; i < 5; i++)
		pl_queue_put(q, P(i), 0);
	pl_queue_get(q, &it, 0);		/* one in flight */
	ck_assert_uint_eq(pl_queue_drain(q, items, 2), 2);
	ck_assert_ptr_eq(items[0], P(1));
	ck_assert_ptr_eq(items[1], P(2));
	ck_assert_uint_eq(pl_queue_drain(q, items, 8), 2);
	ck_assert_ptr_eq(items[0], P(3));
	ck_assert_ptr_eq(items[1], P(4));
	ck_assert_uint_eq(pl_queue_drain(q, items, 8), 0);
	ck_assert_uint_eq(pl_queue_unfinished(q), 1);	/* the in-flight one */
	ck_assert_int_eq(pl_queue_join(q, 0), EAGAIN);
	pl_queue_task_done(q);
	ck_assert_int_eq(pl_queue_join(q, 0), 0);
	pl_queue_destroy(q);
}
END_TEST

static void *join_forever(void *arg)
{
	struct blocked *b = arg;
	int me = enter(b);

	atomic_store(&b->result[me], pl_queue_join(b->q, -1));
	return NULL;
}

START_TEST(drain_wakes_join)
{
	struct blocked b = { .q = pl_queue_create(0) };
	void *items[4];
	pthread_t t;

	atomic_store(&b.result[0], -1);
	pl_queue_put(b.q, P(1), 0);
	pl_queue_put(b.q, P(2), 0);
	pthread_create(&t, NULL, join_forever, &b);
	await_asleep(&b, 1);
	ck_assert_int_eq(atomic_load(&b.result[0]), -1);
	ck_assert_uint_eq(pl_queue_drain(b.q, items, 4), 2);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&b.result[0]), 0);
	pl_queue_destroy(b.q);
}
END_TEST

/* A sleeping joiner is woken by the task_done that finishes the last item
 * (task_done takes no lock on the way there). */
START_TEST(task_done_wakes_join)
{
	struct blocked b = { .q = pl_queue_create(0) };
	pthread_t t;
	void *it;

	atomic_store(&b.result[0], -1);
	pl_queue_put(b.q, P(1), 0);
	pl_queue_put(b.q, P(2), 0);
	pl_queue_get(b.q, &it, 0);
	pl_queue_get(b.q, &it, 0);
	pl_queue_task_done(b.q);
	pthread_create(&t, NULL, join_forever, &b);
	await_asleep(&b, 1);
	ck_assert_int_eq(atomic_load(&b.result[0]), -1);
	ck_assert_int_eq(pl_queue_task_done(b.q), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&b.result[0]), 0);
	pl_queue_destroy(b.q);
}
END_TEST

/* drain while consumers are taking items: every item is seen exactly once,
 * by a consumer or by the drain, and join returns after the consumers' task_done */
struct inflight {
	struct pl_queue *q;
	atomic_uchar *seen;
};

static void *slow_consumer(void *arg)
{
	struct inflight *f = arg;
	void *it;

	while (pl_queue_get(f->q, &it, -1) == 0) {
		atomic_fetch_add(&f->seen[(uintptr_t)it], 1);
		sched_yield();
		pl_queue_task_done(f->q);
	}
	return NULL;
}

START_TEST(drain_while_in_flight)
{
	enum { N = 20000 };
	struct inflight f = { .q = pl_queue_create(64), .seen = calloc(N, 1) };
	void *items[64];
	pthread_t t[3];
	size_t drained = 0;

	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, slow_consumer, &f);
	for (uintptr_t i = 0; i < N; i++) {
		pl_queue_put(f.q, P(i), -1);
		if (i % 997 == 0) {
			size_t n = pl_queue_drain(f.q, items, 64);
			for (size_t k = 0; k < n; k++)
				atomic_fetch_add(&f.seen[(uintptr_t)items[k]], 1);
			drained += n;
		}
	}
	pl_queue_close(f.q);
	ck_assert_int_eq(pl_queue_join(f.q, -1), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(atomic_load(&f.seen[i]), 1);
	ck_assert_uint_eq(pl_queue_unfinished(f.q), 0);
	(void)drained;
	free(f.seen);
	pl_queue_destroy(f.q);
}
END_TEST

/* ---- stress: 4 producers x 4 consumers x 10^6 items ---- */

enum { STRESS_P = 4, STRESS_C = 4 };
static long stress_n = 1000000;

struct stress {
	struct pl_queue *q;
	atomic_uchar *seen;
	atomic_long done;
	atomic_int next_producer;
};

static void *stress_producer(void *arg)
{
	struct stress *s = arg;
	long me = atomic_fetch_add(&s->next_producer, 1), per = stress_n / STRESS_P;

	for (long i = me * per; i < (me + 1) * per; i++)
		ck_assert_int_eq(pl_queue_put(s->q, P(i), -1), 0);
	return NULL;
}

static void *stress_consumer(void *arg)
{
	struct stress *s = arg;
	void *it;

	while (pl_queue_get(s->q, &it, -1) == 0) {
		atomic_fetch_add(&s->seen[(uintptr_t)it], 1);
		atomic_fetch_add(&s->done, 1);
		pl_queue_task_done(s->q);
	}
	return NULL;
}

START_TEST(stress_exactly_once)
{
	struct stress s = { .q = pl_queue_create(256) };
	pthread_t p[STRESS_P], c[STRESS_C];
	const char *env = getenv("PL_STRESS_ITEMS");

	if (env)
		stress_n = atol(env);
	s.seen = calloc(stress_n, 1);
	for (int i = 0; i < STRESS_C; i++)
		pthread_create(&c[i], NULL, stress_consumer, &s);
	for (int i = 0; i < STRESS_P; i++)
		pthread_create(&p[i], NULL, stress_producer, &s);
	for (int i = 0; i < STRESS_P; i++)
		pthread_join(p[i], NULL);
	ck_assert_int_eq(pl_queue_join(s.q, -1), 0);
	/* join returned: every task_done has happened */
	ck_assert_int_eq(atomic_load(&s.done), stress_n);
	pl_queue_close(s.q);
	for (int i = 0; i < STRESS_C; i++)
		pthread_join(c[i], NULL);
	for (long i = 0; i < stress_n; i++)
		if (atomic_load(&s.seen[i]) != 1)
			ck_abort_msg("item %ld seen %d times", i, atomic_load(&s.seen[i]));
	free(s.seen);
	pl_queue_destroy(s.q);
}
END_TEST

START_TEST(interrupt_wakes_getters)
{
	struct blocked b = { .q = pl_queue_create(0) };
	pthread_t t;

	atomic_store(&b.result[0], -1);
	pthread_create(&t, NULL, blocked_getter, &b);
	await_asleep(&b, 1);
	pl_queue_interrupt(b.q);	/* once: the getter sleeps, so this must wake it */
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&b.result[0]), EINTR);
	ck_assert_uint_eq(pl_queue_unfinished(b.q), 0);
	pl_queue_destroy(b.q);
}
END_TEST

/* The pool's batch extensions behave as repeated single calls. */
START_TEST(batch_extensions)
{
	struct pl_queue *q = pl_queue_create(4);
	void *in[6] = { P(1), P(2), P(3), P(4), P(5), P(6) }, *out[8];
	size_t n = 99;

	ck_assert_int_eq(pl_queue_put_batch(q, in, 3, &n, 0), 0);
	ck_assert_uint_eq(n, 3);
	/* room for one more: the fourth goes in, the fifth would block */
	ck_assert_int_eq(pl_queue_put_batch(q, in + 3, 3, &n, 0), EAGAIN);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(pl_queue_unfinished(q), 4);
	ck_assert_int_eq(pl_queue_get_batch(q, out, 3, &n, 0, pl_queue_interrupt_gen(q)), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_ptr_eq(out[0], P(1));
	ck_assert_ptr_eq(out[2], P(3));
	ck_assert_int_eq(pl_queue_get_batch(q, out, 8, &n, 0, pl_queue_interrupt_gen(q)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_eq(out[0], P(4));
	ck_assert_int_eq(pl_queue_get_batch(q, out, 8, &n, 0, pl_queue_interrupt_gen(q)), EAGAIN);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(pl_queue_task_done_n(q, 5), EINVAL);	/* only 4 unfinished */
	ck_assert_uint_eq(pl_queue_unfinished(q), 4);
	ck_assert_int_eq(pl_queue_task_done_n(q, 4), 0);
	ck_assert_int_eq(pl_queue_join(q, 0), 0);
	/* a stale generation: EINTR even with items ready */
	unsigned long gen = pl_queue_interrupt_gen(q);
	ck_assert_int_eq(pl_queue_put_batch(q, in, 2, &n, 0), 0);
	pl_queue_interrupt(q);
	ck_assert_int_eq(pl_queue_get_batch(q, out, 8, &n, 0, gen), EINTR);
	ck_assert_uint_eq(pl_queue_size(q), 2);
	pl_queue_close(q);
	ck_assert_int_eq(pl_queue_put_batch(q, in, 2, &n, -1), EPIPE);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(pl_queue_get_batch(q, out, 8, &n, -1, pl_queue_interrupt_gen(q)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(pl_queue_get_batch(q, out, 8, &n, -1, pl_queue_interrupt_gen(q)), EPIPE);
	pl_queue_destroy(q);
}
END_TEST

/* Batched producers and consumers: every item exactly once, and a batch
 * larger than the capacity waits for room instead of failing. */
struct bstress {
	struct pl_queue *q;
	atomic_uchar *seen;
	atomic_int next;
};

static void *batch_producer(void *arg)
{
	struct bstress *s = arg;
	long me = atomic_fetch_add(&s->next, 1);
	void *items[40];

	for (long i = me * 50000; i < (me + 1) * 50000;) {
		size_t k = 0, done;
		while (k < 40 && i < (me + 1) * 50000)
			items[k++] = P(i++);
		ck_assert_int_eq(pl_queue_put_batch(s->q, items, k, &done, -1), 0);
		ck_assert_uint_eq(done, k);
	}
	return NULL;
}

static void *batch_consumer(void *arg)
{
	struct bstress *s = arg;
	void *items[16];
	size_t n;

	while (pl_queue_get_batch(s->q, items, 16, &n, -1, pl_queue_interrupt_gen(s->q)) == 0) {
		for (size_t k = 0; k < n; k++)
			atomic_fetch_add(&s->seen[(uintptr_t)items[k]], 1);
		pl_queue_task_done_n(s->q, n);
	}
	return NULL;
}

START_TEST(batch_stress_exactly_once)
{
	struct bstress s = { .q = pl_queue_create(24), .seen = calloc(200000, 1) };
	pthread_t p[4], c[3];

	for (int i = 0; i < 3; i++)
		pthread_create(&c[i], NULL, batch_consumer, &s);
	for (int i = 0; i < 4; i++)
		pthread_create(&p[i], NULL, batch_producer, &s);
	for (int i = 0; i < 4; i++)
		pthread_join(p[i], NULL);
	ck_assert_int_eq(pl_queue_join(s.q, -1), 0);
	pl_queue_close(s.q);
	for (int i = 0; i < 3; i++)
		pthread_join(c[i], NULL);
	for (long i = 0; i < 200000; i++)
		ck_assert_int_eq(atomic_load(&s.seen[i]), 1);
	free(s.seen);
	pl_queue_destroy(s.q);
}
END_TEST

/* ---- while the CPUs are contended ---- */

/*
 * Contended, a put wakes a sleeper only once a batch waits for it, and
 * sleepers that slept contended look again on their own after a
 * millisecond.  One item must still reach a getter asleep before it was
 * put, and one free slot a putter: one that slept while contended (the
 * backstop), and one that went to sleep while the CPUs were calm and has
 * no backstop (pool workers sleep so: only a wake reaches it).
 */
static void one_reaches_sleeper(bool slept_contended)
{
	struct blocked g = { .q = pl_queue_create(16) }, p = { .q = pl_queue_create(16) };
	void *items[16];
	pthread_t t;
	size_t n;

	pl_queue_assume_contended(slept_contended ? 3600 * 1000L : 0);
	atomic_store(&g.result[0], -1);
	pthread_create(&t, NULL, blocked_getter, &g);
	await_asleep(&g, 1);
	pl_queue_assume_contended(3600 * 1000L);
	ck_assert_int_eq(pl_queue_put(g.q, P(1), 0), 0);
	pthread_join(t, NULL);			/* the tcase timeout fails a lost wake */
	ck_assert_int_eq(atomic_load(&g.result[0]), 0);
	ck_assert_uint_eq(pl_queue_size(g.q), 0);

	for (int i = 0; i < 16; i++)
		items[i] = P(i + 1);
	ck_assert_int_eq(pl_queue_put_batch(p.q, items, 16, &n, 0), 0);	/* full */
	pl_queue_assume_contended(slept_contended ? 3600 * 1000L : 0);
	atomic_store(&p.result[0], -1);
	pthread_create(&t, NULL, blocked_putter, &p);
	await_asleep(&p, 1);
	pl_queue_assume_contended(3600 * 1000L);
	ck_assert_int_eq(pl_queue_get(p.q, &items[0], 0), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(atomic_load(&p.result[0]), 0);
	ck_assert_uint_eq(pl_queue_size(p.q), 16);
	pl_queue_assume_contended(0);
	pl_queue_destroy(g.q);
	pl_queue_destroy(p.q);
}

START_TEST(contended_one_item_reaches_sleeper)
{
	one_reaches_sleeper(true);
}
END_TEST

START_TEST(calm_sleeper_woken_when_contended)
{
	one_reaches_sleeper(false);
}
END_TEST

/* The "contended" case runs the threaded tests again under the other rule. */
static void contended_setup(void)
{
	pl_queue_assume_contended(3600 * 1000L);
}

static void contended_teardown(void)
{
	pl_queue_assume_contended(0);
}

int main(void)
{
	Suite *s = suite_create("queue");
	TCase *basic = tcase_create("basic"), *threads = tcase_create("threads");
	TCase *contended = tcase_create("contended");
	SRunner *sr;
	int failed;

	tcase_add_test(basic, fifo_and_null_items);
	tcase_add_test(basic, bounded_put_would_block);
	tcase_add_test(basic, timeouts_on_monotonic_clock);
	tcase_add_test(basic, task_done_accounting);
	tcase_add_test(basic, close_semantics);
	tcase_add_test(basic, invalid_arguments);
	tcase_add_test(basic, drain_basic);
	tcase_add_test(basic, batch_extensions);
	tcase_add_test(threads, batch_stress_exactly_once);
	tcase_add_test(threads, close_wakes_blocked_getters);
	tcase_add_test(threads, close_wakes_blocked_putters);
	tcase_add_test(threads, blocked_put_resumes_after_get);
	tcase_add_test(threads, join_with_workers);
	tcase_add_test(threads, drain_wakes_join);
	tcase_add_test(threads, drain_while_in_flight);
	tcase_add_test(threads, stress_exactly_once);
	tcase_add_test(threads, interrupt_wakes_getters);
	tcase_add_test(threads, task_done_wakes_join);
	tcase_add_test(threads, one_batch_wakes_every_sleeper);
	tcase_add_test(threads, contended_one_item_reaches_sleeper);
	tcase_add_test(threads, calm_sleeper_woken_when_contended);
	tcase_add_checked_fixture(contended, contended_setup, contended_teardown);
	tcase_add_test(contended, timeouts_on_monotonic_clock);
	tcase_add_test(contended, batch_stress_exactly_once);
	tcase_add_test(contended, close_wakes_blocked_getters);
	tcase_add_test(contended, close_wakes_blocked_putters);
	tcase_add_test(contended, blocked_put_resumes_after_get);
	tcase_add_test(contended, join_with_workers);
	tcase_add_test(contended, drain_wakes_join);
	tcase_add_test(contended, drain_while_in_flight);
	tcase_add_test(contended, stress_exactly_once);
	tcase_add_test(contended, interrupt_wakes_getters);
	tcase_add_test(contended, task_done_wakes_join);
	tcase_add_test(contended, one_batch_wakes_every_sleeper);
	/* seconds: a lost wake-up fails fast instead of hanging (tests/CMakeLists.txt
	 * stretches it with CK_TIMEOUT_MULTIPLIER under a sanitizer) */
	tcase_set_timeout(basic, 20);
	tcase_set_timeout(threads, 20);
	tcase_set_timeout(contended, 20);
	suite_add_tcase(s, basic);
	suite_add_tcase(s, threads);
	suite_add_tcase(s, contended);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

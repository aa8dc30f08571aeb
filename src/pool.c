/*
 * pool.c — a stage's worker threads (see pool.h).
 *
 * Why it is built this way:
 * - Workers own no items between iterations.  Every item taken from the
 *   queue leaves through the sink (pass or fail) or the retry heap before
 *   the worker looks at anything else, and task_done follows only the final
 *   outcome, so join() cannot hang on a dead worker the way Python's does.
 * - Width changes never interrupt an item.  Worker i runs while i < want;
 *   shrinking lowers want and interrupts blocked getters so idle workers
 *   notice at once, busy ones after their current item.  Growing reuses
 *   slots: a worker that has not yet noticed it should retire simply keeps
 *   running, and a slot whose thread is leaving is reaped before reuse.
 *   set_width never waits for an item to finish, so the event loop that
 *   calls it on SIGHUP stays responsive.
 * - Retries (process() > 0) go to a small heap ordered by due time, owned
 *   by the pool: the worker is free at once, and whichever worker is free
 *   when the item is due takes it.  The item stays unfinished in the input
 *   queue meanwhile, so the ordered drain waits for it.
 * - Stats are atomics (and a lock-free latency ring) so a status report
 *   never pauses the workers.  The processing-time histogram is one
 *   relaxed increment of a fixed bucket per item, cumulative since the
 *   start as a Prometheus histogram wants it.
 * - Batches, only where they cannot hurt.  On 2 cores, a pipeline whose
 *   items take microseconds spends its time handing items over: every
 *   hand-off to a sleeping worker is a futex wake and a context switch
 *   (measured: ~1.2 switches per item, slower than Python's GIL).  So a
 *   stage whose recent items took under PL_POOL_FAST_NS each takes up to
 *   PL_POOL_BATCH items per lock round, passes its successes on in one
 *   put and finishes them with one task_done, paying one wake per batch.
 *   A stage doing real work (an image takes milliseconds) takes one item
 *   at a time, so no worker ever sits on items an idle worker could run.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "clock.h"
#include "pool.h"

#define LAT_WINDOW 1024		/* latency samples kept for p50/p95 */
#define PL_POOL_BATCH 64	/* most items a fast stage takes at once */
#define PL_POOL_FAST_NS 20000	/* "fast": a moving average under 20 µs per item */

/* RUNNING → LEAVING (decided, under lock) → EXITED (thread done) → EMPTY (joined) */
enum worker_state { W_EMPTY, W_RUNNING, W_LEAVING, W_EXITED };

struct worker {
	struct pl_pool *pool;
	unsigned idx;
	atomic_uint_fast64_t busy_since;	/* start of the current item, 0 = idle */
	_Atomic(void *) item;		/* the current item while busy_since is set */
	enum worker_state state;	/* under pool->lock */
	pthread_t tid;
};

struct delayed {
	void *item;
	uint64_t due_us;
};

struct pl_pool {
	char name[32];
	struct pl_queue *in;
	const struct pl_stage_ops *ops;
	void *ctx;
	struct pl_sink sink;

	pthread_mutex_t lock;
	pthread_cond_t changed;		/* a worker exited, or the heap changed */
	struct worker **slots;
	unsigned nslots;
	atomic_uint want;
	bool stopping;			/* pl_pool_stop began: no worker starts again */
	atomic_bool describing;		/* pl_pool_oldest_busy holds an item: under lock */

	struct delayed *heap;		/* min-heap on due_us, under lock */
	size_t nheap, capheap;
	atomic_size_t nheap_hint;

	atomic_uint alive, busy;
	atomic_uint_fast64_t in_count, done, failed, progress_us;
	atomic_uint_fast64_t avg_ns;	/* moving average of process() time */
	atomic_uint lat_next;
	atomic_uint lat[LAT_WINDOW];	/* µs, saturating */
	atomic_uint_fast64_t retried;
	atomic_uint_fast64_t hist[PL_POOL_HIST_N + 1], hist_sum_us;
};

static _Atomic(pl_pool_log_fn *) logger;

void pl_pool_set_logger(pl_pool_log_fn *log)
{
	atomic_store(&logger, log);
}

/* A line through the hook, or plainly on stderr without one. */
__attribute__((format(printf, 2, 3)))
static void pool_log(int prio, const char *fmt, ...)
{
	pl_pool_log_fn *log = atomic_load(&logger);
	char line[PL_REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (log)
		log(prio, "%s", line);
	else
		fprintf(stderr, "%s\n", line);
}

const uint32_t pl_pool_hist_bounds_us[PL_POOL_HIST_N] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

/* ---- retry heap (caller holds lock) ---- */

static int heap_push(struct pl_pool *p, void *item, uint64_t due)
{
	size_t i;

	if (p->nheap == p->capheap) {
		size_t ncap = p->capheap ? p->capheap * 2 : 16;
		struct delayed *n = realloc(p->heap, ncap * sizeof *n);
		if (!n)
			return -ENOMEM;
		p->heap = n;
		p->capheap = ncap;
	}
	for (i = p->nheap++; i > 0 && p->heap[(i - 1) / 2].due_us > due; i = (i - 1) / 2)
		p->heap[i] = p->heap[(i - 1) / 2];
	p->heap[i] = (struct delayed){ item, due };
	atomic_store(&p->nheap_hint, p->nheap);
	return 0;
}

static void *heap_pop(struct pl_pool *p)
{
	void *item = p->heap[0].item;
	struct delayed last = p->heap[--p->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= p->nheap)
			break;
		if (c + 1 < p->nheap && p->heap[c + 1].due_us < p->heap[c].due_us)
			c++;
		if (p->heap[c].due_us >= last.due_us)
			break;
		p->heap[i] = p->heap[c];
		i = c;
	}
	if (p->nheap)
		p->heap[i] = last;
	atomic_store(&p->nheap_hint, p->nheap);
	return item;
}

/* ---- one item ---- */

static void record_latency(struct pl_pool *p, uint64_t us)
{
	unsigned slot = atomic_fetch_add_explicit(&p->lat_next, 1, memory_order_relaxed), b;

	atomic_store_explicit(&p->lat[slot % LAT_WINDOW], us > UINT32_MAX ? UINT32_MAX : (unsigned)us,
			      memory_order_relaxed);
	for (b = 0; b < PL_POOL_HIST_N && us > pl_pool_hist_bounds_us[b]; b++)
		;
	atomic_fetch_add_explicit(&p->hist[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->hist_sum_us, us, memory_order_relaxed);
}

/* Run process() on one item; its outcome: 0 pass on, > 0 retry (already
 * scheduled, no task_done), < 0 failed (already reported). */
static int run_one(struct pl_pool *p, struct worker *w, void *ws, void *item)
{
	char why[PL_REASON_MAX] = "";
	uint64_t t0 = pl_now_us(), t1, avg;
	int r;

	atomic_fetch_add_explicit(&p->busy, 1, memory_order_relaxed);
	atomic_store_explicit(&w->item, item, memory_order_relaxed);
	atomic_store_explicit(&w->busy_since, t0, memory_order_release);
	r = p->ops->process(p->ctx, ws, item, why, sizeof why);
	t1 = pl_now_us();
	/* the item may be freed once passed on: not while it is being described
	 * (pl_pool_oldest_busy says why this cannot miss one) */
	atomic_store(&w->busy_since, 0);
	if (atomic_load(&p->describing)) {
		pthread_mutex_lock(&p->lock);
		pthread_mutex_unlock(&p->lock);
	}
	atomic_fetch_sub_explicit(&p->busy, 1, memory_order_relaxed);
	record_latency(p, t1 - t0);
	atomic_store_explicit(&p->progress_us, t1, memory_order_relaxed);
	/* racy read-modify-write across workers: an estimate is all we need */
	avg = atomic_load_explicit(&p->avg_ns, memory_order_relaxed);
	avg = avg - avg / 8 + (t1 - t0) * 1000 / 8;
	atomic_store_explicit(&p->avg_ns, avg, memory_order_relaxed);

	if (r > 0) {
		atomic_fetch_add_explicit(&p->retried, 1, memory_order_relaxed);
		pthread_mutex_lock(&p->lock);
		int pr = heap_push(p, item, t1 + (uint64_t)r * 1000u);
		pthread_cond_broadcast(&p->changed);
		pthread_mutex_unlock(&p->lock);
		if (pr == 0) {
			/* blocked getters recompute their timeout */
			pl_queue_interrupt(p->in);
			return r;
		}
		r = pr;
		snprintf(why, sizeof why, "cannot schedule a retry: out of memory");
	}
	if (r < 0) {
		if (!why[0])
			snprintf(why, sizeof why, "%s", strerror(-r));
		atomic_fetch_add(&p->failed, 1);
		p->sink.fail(p->sink.ud, item, -r, why);
	}
	return r;
}

static void pass_failed(struct pl_pool *p, void *item, int r)
{
	char why[PL_REASON_MAX];

	snprintf(why, sizeof why, "cannot pass the item on from stage %s: %s", p->name,
		 strerror(-r));
	atomic_fetch_add(&p->failed, 1);
	p->sink.fail(p->sink.ud, item, -r, why);
}

/* Process a batch taken from the queue: successes are passed on together,
 * then everything that is finished is task_done'd at once. */
static void handle(struct pl_pool *p, struct worker *w, void *ws, void **items, size_t n)
{
	size_t npass = 0, finished = 0;

	for (size_t i = 0; i < n; i++) {
		int r = run_one(p, w, ws, items[i]);
		if (r == 0)
			items[npass++] = items[i];	/* compact in place, order kept */
		else if (r < 0)
			finished++;
	}
	if (npass == 1 || (npass && !p->sink.pass_many)) {
		for (size_t i = 0; i < npass; i++) {
			int r = p->sink.pass(p->sink.ud, items[i]);
			if (r == 0)
				atomic_fetch_add(&p->done, 1);
			else
				pass_failed(p, items[i], r);
		}
	} else if (npass) {
		size_t done = 0;
		int r = p->sink.pass_many(p->sink.ud, items, npass, &done);
		atomic_fetch_add(&p->done, done);
		for (size_t i = done; r < 0 && i < npass; i++)
			pass_failed(p, items[i], r);
	}
	finished += npass;
	if (finished == 1)
		pl_queue_task_done(p->in);
	else if (finished)
		pl_queue_task_done_n(p->in, finished);
}

static size_t batch_max(struct pl_pool *p)
{
	return atomic_load_explicit(&p->avg_ns, memory_order_relaxed) < PL_POOL_FAST_NS
		       ? PL_POOL_BATCH : 1;
}

/* ---- the worker ---- */

/* Under lock: true and *item for a due delayed item (NULL is a valid item),
 * else false and *wait_ms until the next one (-1: none). */
static bool due_item(struct pl_pool *p, void **item, long *wait_ms)
{
	uint64_t now;

	*wait_ms = -1;
	if (!p->nheap)
		return false;
	now = pl_now_us();
	if (p->heap[0].due_us <= now) {
		*item = heap_pop(p);
		return true;
	}
	*wait_ms = (long)((p->heap[0].due_us - now + 999) / 1000);
	return false;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pl_pool *p = w->pool;
	void *ws = NULL;

	if (p->ops->worker_start && p->ops->worker_start(p->ctx, &ws) < 0) {
		pool_log(LOG_ERR, "stage %s: worker %u could not start", p->name, w->idx);
		goto out;
	}
	for (;;) {
		void *item = NULL, *batch[PL_POOL_BATCH];
		size_t got = 0;
		long wait_ms = -1;
		unsigned long gen = pl_queue_interrupt_gen(p->in);
		int r;

		if (w->idx >= atomic_load(&p->want) || atomic_load(&p->nheap_hint)) {
			pthread_mutex_lock(&p->lock);
			/* the last worker never leaves items behind in the heap */
			if (w->idx >= atomic_load(&p->want) &&
			    (p->nheap == 0 || atomic_load(&p->alive) > 1)) {
				w->state = W_LEAVING;
				pthread_mutex_unlock(&p->lock);
				break;
			}
			bool due = due_item(p, &item, &wait_ms);
			pthread_mutex_unlock(&p->lock);
			if (due) {
				handle(p, w, ws, &item, 1);
				continue;
			}
		}
		r = pl_queue_get_batch(p->in, batch, batch_max(p), &got, wait_ms, gen);
		if (r == 0) {
			atomic_fetch_add(&p->in_count, got);
			handle(p, w, ws, batch, got);
		} else if (r == EPIPE) {
			/* closed and empty: leave unless retries are pending */
			pthread_mutex_lock(&p->lock);
			if (p->nheap == 0) {
				w->state = W_LEAVING;
				pthread_mutex_unlock(&p->lock);
				break;
			}
			bool due = due_item(p, &item, &wait_ms);
			if (!due) {
				struct timespec ts;
				if (pl_clock_deadline(&ts, wait_ms) == 0)
					pthread_cond_timedwait(&p->changed, &p->lock, &ts);
			}
			pthread_mutex_unlock(&p->lock);
			if (due)
				handle(p, w, ws, &item, 1);
		}
		/* ETIMEDOUT: a retry is due; EINTR: re-check want and the heap */
	}
	if (p->ops->worker_stop)
		p->ops->worker_stop(p->ctx, ws);
out:
	pthread_mutex_lock(&p->lock);
	w->state = W_EXITED;
	atomic_fetch_sub(&p->alive, 1);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Under lock.  Workers inherit a fully blocked signal mask: signals are the
 * main thread's business (signalfd). */
static int spawn(struct pl_pool *p, struct worker *w)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	w->state = W_RUNNING;
	atomic_fetch_add(&p->alive, 1);
	r = pthread_create(&w->tid, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		w->state = W_EMPTY;
		atomic_fetch_sub(&p->alive, 1);
		return -r;
	}
	return 0;
}

/* Under lock: wait for a leaving worker and reap it. */
static void reap(struct pl_pool *p, struct worker *w)
{
	while (w->state == W_LEAVING)
		pthread_cond_wait(&p->changed, &p->lock);
	if (w->state == W_EXITED) {
		pthread_join(w->tid, NULL);
		w->state = W_EMPTY;
	}
}

struct pl_pool *pl_pool_create(const char *name, struct pl_queue *in,
			       const struct pl_stage_ops *ops, void *ctx,
			       const struct pl_sink *sink)
{
	struct pl_pool *p;
	pthread_condattr_t ca;

	if (!in || !ops || !ops->process || !sink || !sink->pass || !sink->fail) {
		errno = EINVAL;
		return NULL;
	}
	p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	snprintf(p->name, sizeof p->name, "%s", name ? name : "stage");
	p->in = in;
	p->ops = ops;
	p->ctx = ctx;
	p->sink = *sink;
	atomic_init(&p->avg_ns, 1000000);	/* presumed slow until measured */
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->changed, &ca);
	pthread_condattr_destroy(&ca);
	return p;
}

int pl_pool_set_width(struct pl_pool *p, unsigned width)
{
	int r = 0;

	if (!p || width == 0 || width > 4096)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		r = -ESHUTDOWN;
		goto out;
	}
	if (width > p->nslots) {
		struct worker **n = realloc(p->slots, width * sizeof *n);
		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		p->slots = n;
		for (; p->nslots < width; p->nslots++) {
			n[p->nslots] = calloc(1, sizeof **n);
			if (!n[p->nslots]) {
				r = -ENOMEM;
				goto out;
			}
			n[p->nslots]->pool = p;
			n[p->nslots]->idx = p->nslots;
		}
	}
	atomic_store(&p->want, width);
	for (unsigned i = 0; i < width && r == 0; i++) {
		struct worker *w = p->slots[i];
		if (w->state == W_LEAVING || w->state == W_EXITED)
			reap(p, w);
		if (w->state == W_EMPTY)
			r = spawn(p, w);
	}
	/* reap what already left above the width; never wait for the busy */
	for (unsigned i = width; i < p->nslots; i++)
		if (p->slots[i]->state == W_EXITED)
			reap(p, p->slots[i]);
out:
	pthread_mutex_unlock(&p->lock);
	pl_queue_interrupt(p->in);	/* idle workers above the width retire now */
	return r;
}

int pl_pool_stop(struct pl_pool *p)
{
	pl_queue_close(p->in);
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	while (atomic_load(&p->alive) > 0)
		pthread_cond_wait(&p->changed, &p->lock);
	for (unsigned i = 0; i < p->nslots; i++)
		reap(p, p->slots[i]);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static int cmp_uint(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return (x > y) - (x < y);
}

void pl_pool_stats(struct pl_pool *p, struct pl_stage_stats *st)
{
	unsigned n = atomic_load(&p->lat_next), samples[LAT_WINDOW];

	memset(st, 0, sizeof *st);
	st->width = atomic_load(&p->want);
	st->alive = atomic_load(&p->alive);
	st->busy = atomic_load(&p->busy);
	st->queued = pl_queue_size(p->in);
	st->delayed = atomic_load(&p->nheap_hint);
	st->in = atomic_load(&p->in_count);
	st->done = atomic_load(&p->done);
	st->failed = atomic_load(&p->failed);
	st->progress_us = atomic_load(&p->progress_us);
	st->retried = atomic_load_explicit(&p->retried, memory_order_relaxed);
	for (unsigned i = 0; i <= PL_POOL_HIST_N; i++)
		st->hist[i] = atomic_load_explicit(&p->hist[i], memory_order_relaxed);
	st->hist_sum_us = atomic_load_explicit(&p->hist_sum_us, memory_order_relaxed);
	/* a worker stuck inside one item shows here even while its siblings
	 * keep the stage's progress going (the watchdog looks at both) */
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nslots; i++) {
		uint64_t since = atomic_load_explicit(&p->slots[i]->busy_since,
						      memory_order_relaxed);
		if (since && (!st->oldest_busy_us || since < st->oldest_busy_us))
			st->oldest_busy_us = since;
	}
	pthread_mutex_unlock(&p->lock);
	if (n > LAT_WINDOW)
		n = LAT_WINDOW;
	for (unsigned i = 0; i < n; i++)
		samples[i] = atomic_load_explicit(&p->lat[i], memory_order_relaxed);
	if (n) {
		qsort(samples, n, sizeof *samples, cmp_uint);
		st->p50_ms = samples[(n - 1) / 2] / 1000.0;
		st->p95_ms = samples[(n - 1) * 95 / 100] / 1000.0;
	}
}

/*
 * The worker's hot path stays without a lock: it clears busy_since and
 * then looks at `describing`, while this sets `describing` and then reads
 * busy_since, all sequentially consistent.  So either this sees the worker
 * idle, or the worker sees `describing` and waits for the lock, which is
 * held until fn has returned: the item cannot leave the worker (and be
 * freed downstream) while fn looks at it.  Only a stuck worker is ever
 * described, so the wait is as rare as the watchdog's complaint.
 */
bool pl_pool_oldest_busy(struct pl_pool *p, pl_pool_busy_fn *fn, void *ud)
{
	uint64_t oldest = 0;
	void *item = NULL;

	pthread_mutex_lock(&p->lock);
	atomic_store(&p->describing, true);
	for (unsigned i = 0; i < p->nslots; i++) {
		uint64_t since = atomic_load(&p->slots[i]->busy_since);

		if (since && (!oldest || since < oldest)) {
			oldest = since;
			item = atomic_load_explicit(&p->slots[i]->item, memory_order_relaxed);
		}
	}
	if (oldest)
		fn(ud, item, oldest);
	atomic_store(&p->describing, false);
	pthread_mutex_unlock(&p->lock);
	return oldest != 0;
}

const char *pl_pool_name(const struct pl_pool *p)
{
	return p->name;
}

void pl_pool_destroy(struct pl_pool *p)
{
	if (!p)
		return;
	pl_pool_stop(p);
	for (unsigned i = 0; i < p->nslots; i++)
		free(p->slots[i]);
	free(p->slots);
	free(p->heap);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->changed);
	free(p);
}

/*
 * queue.c — bounded, closable FIFO with task_done/join (see queue.h).
 *
 * Why it is built this way:
 * - One mutex and three condition variables (not_empty, not_full, all_done),
 *   exactly Python's queue.Queue, because the semantics (join, close waking
 *   every waiter, drain) are easiest to get provably right under one lock.
 * - A ring buffer allocated once (bounded) or grown by doubling (unbounded):
 *   no allocation per item on the hot path.
 * - The cost of a condvar queue on few cores is not the lock but the wake-ups:
 *   signalling a sleeper on every put makes producer and consumer ping-pong
 *   through the scheduler (and on a VM a wake across cores is an
 *   interrupt between virtual CPUs).  So a getter that finds the queue
 *   empty, or a putter that finds it full, spins briefly before it goes to
 *   sleep, and spinners and signalled sleepers are counted: a sleeper is
 *   woken only when nobody is on the way already, and the one that comes
 *   passes the wake on if work is left (wake_getters).  The spin yields the
 *   CPU (sched_yield) rather than busy-waiting with a pause instruction:
 *   on a 2-core machine with a dozen workers, a pause spin holds the core
 *   the other side needs to make progress and measured 2-10x slower.  A
 *   busy pipeline then hands items over mostly without a futex wake at
 *   all, and the wakes that remain are sent after unlocking.
 * - That only works while the CPUs are ours.  Behind CPU-bound work a
 *   yield waits out the other task's slice (and under EEVDF it moves the
 *   yielder back by a slice each time), so spinners that were counted on
 *   come milliseconds late and the pipeline fell to a few thousand items/s,
 *   below Python's.  The queue therefore watches for it: yields (and, while
 *   contended, wake-ups) that take milliseconds, repeatedly, switch every
 *   queue of the process to the contended rule for a fifth of a second
 *   after the last one: no spin, sleep at once, and wake a sleeper only
 *   when a batch (PL_QUEUE_LAZY) waits for it, because each wake costs a
 *   wait for the CPU and the thread that gets it should find work for the
 *   whole turn; sleepers look again after a millisecond on their own, so
 *   nothing waits longer than that for the batch to fill.  Measured on the
 *   2-core VM (bench/core_queue.c): the calm rule alone runs 1.5-2M
 *   items/s idle but 5-10k/s behind four busy loops, where Python runs
 *   30-80k/s; the contended rule alone ~0.4M/s idle, 0.1-0.25M/s behind
 *   them; the switch between them keeps the better of the two.
 * - The mutex and the fields used under it come first; the lock-free
 *   counters and the condition variables sit on cache lines of their own,
 *   so the other CPU's task_done and spinners polling the count do not
 *   pull away the lines the lock holder works on.
 * - task_done, called once per item by every worker, is a lock-free
 *   counter; only the last one takes the lock, and only when a joiner
 *   waits.
 * - Timeouts use CLOCK_MONOTONIC (pthread_condattr_setclock) so wall-clock
 *   steps cannot stretch or cut them.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "queue.h"

/* Rounds of sched_yield() a getter (empty queue) or putter (full queue)
 * spends before sleeping, while the CPUs are calm. */
#define PL_QUEUE_SPIN 16
/* A yield, or a wake-up from signal to running, that takes longer than
 * this says other work holds the CPUs: on a calm machine a yield returns
 * in microseconds (well under 1 ms even with a dozen of our own threads
 * queued), behind a CPU-bound task it waits out that task's slice
 * (3.8 ms typical behind busy loops here). */
#define PL_QUEUE_SLOW_US 2000
/* Slow yields count only this close together in one thread (see spin_for) */
#define PL_QUEUE_SLOW_RECENT 64
/* That many slow ones within the window make the CPUs contended ... */
#define PL_QUEUE_SLOW_EVENTS 3
#define PL_QUEUE_SLOW_WINDOW_US 100000
/* ... until this long after the last of them. */
#define PL_QUEUE_CALM_US 200000
/* While contended: a sleeper is woken only once this many items (or free
 * slots) wait for it, or the whole queue when it is smaller ... */
#define PL_QUEUE_LAZY 8
/* ... and sleepers look again after at most this long on their own, so
 * fewer items than that wait no longer. */
#define PL_QUEUE_BACKSTOP_MS 1

struct pl_queue {
	pthread_mutex_t lock;
	void **ring;
	size_t head, count;
	size_t cap;		/* slots in ring */
	size_t bound;		/* capacity limit, 0 = unbounded */
	bool closed;
	unsigned getters, putters;		/* sleepers, to skip useless signals */
	unsigned wakes;				/* getters signalled, not yet running */
	unsigned pwakes;			/* putters signalled, not yet running */
	unsigned gspin, pspin;			/* getters / putters spinning, unlocked */
	unsigned gtimed, ptimed;		/* sleepers with the backstop (contended) */
	atomic_ulong intr_gen;			/* bumped by pl_queue_interrupt, under lock */
	uint64_t wake_us;			/* when the oldest pending wake was sent, while contended */

	_Alignas(64) atomic_size_t unfinished;	/* put under the lock, done without it */
	atomic_uint joiners;			/* read by the lock-free task_done */

	_Alignas(64) atomic_size_t count_hint;	/* count, stored under the lock, read without it */
	atomic_bool closed_hint;		/* closed, read without the lock */

	_Alignas(64) pthread_cond_t not_empty, not_full, all_done;
};

/* The checks every call that may wait starts with: EINVAL without a queue,
 * else the deadline of a positive timeout, or a positive errno value. */
static int deadline_for(const struct pl_queue *q, long timeout_ms, struct timespec *ts)
{
	if (!q)
		return EINVAL;
	return timeout_ms > 0 ? -pl_clock_deadline(ts, timeout_ms) : 0;
}

/* Wait on cv; 0 when woken (maybe spuriously), ETIMEDOUT past the deadline. */
static int wait_on(pthread_cond_t *cv, pthread_mutex_t *m, long timeout_ms,
		   const struct timespec *deadline)
{
	if (timeout_ms < 0)
		return pthread_cond_wait(cv, m);
	return pthread_cond_timedwait(cv, m, deadline);
}

struct pl_queue *pl_queue_create(size_t capacity)
{
	struct pl_queue *q = aligned_alloc(_Alignof(struct pl_queue), sizeof *q);
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	int r;

	if (!q)
		return NULL;
	memset(q, 0, sizeof *q);
	q->bound = capacity;
	q->cap = capacity ? capacity : 64;
	q->ring = malloc(q->cap * sizeof *q->ring);
	if (!q->ring) {
		free(q);
		return NULL;
	}
	pthread_mutexattr_init(&ma);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
	/* spin a little on contention instead of sleeping at once */
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
	r = pthread_mutex_init(&q->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_init(&ca);
	if (!r)
		r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!r)
		r = pthread_cond_init(&q->not_empty, &ca);
	if (!r)
		r = pthread_cond_init(&q->not_full, &ca);
	if (!r)
		r = pthread_cond_init(&q->all_done, &ca);
	pthread_condattr_destroy(&ca);
	if (r) {
		free(q->ring);
		free(q);
		errno = r;
		return NULL;
	}
	return q;
}

void pl_queue_destroy(struct pl_queue *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->not_full);
	pthread_cond_destroy(&q->all_done);
	free(q->ring);
	free(q);
}

/* Unbounded queue is full: double the ring, unrolling it. */
static int grow(struct pl_queue *q)
{
	size_t ncap = q->cap * 2;
	void **n;

	if (ncap < q->cap || ncap > SIZE_MAX / sizeof *n)
		return ENOMEM;
	n = malloc(ncap * sizeof *n);
	if (!n)
		return ENOMEM;
	for (size_t i = 0; i < q->count; i++)
		n[i] = q->ring[(q->head + i) % q->cap];
	free(q->ring);
	q->ring = n;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

/* Before sleeping, give the other side a moment: true once the queue has
 * an item (want_item) or room (!want_item), or is closed. */
static bool ready(struct pl_queue *q, bool want_item)
{
	size_t c = atomic_load_explicit(&q->count_hint, memory_order_relaxed);

	if (atomic_load_explicit(&q->closed_hint, memory_order_relaxed))
		return true;
	return want_item ? c != 0 : !q->bound || c < q->bound;
}

/*
 * Whether the CPUs are contended is a property of the machine, not of one
 * queue, so it is kept once for the process: every queue of a pipeline
 * sees it as soon as any of them does.  Relaxed atomics: this is a
 * heuristic, a stale read only picks the other rule for a moment.
 */
static _Atomic uint64_t busy_until, slow_since;	/* µs on pl_now_us */
static atomic_uint slow_count;

static void saw_slow(uint64_t now)
{
	uint64_t since = atomic_load_explicit(&slow_since, memory_order_relaxed);

	if (now - since > PL_QUEUE_SLOW_WINDOW_US) {
		atomic_store_explicit(&slow_since, now, memory_order_relaxed);
		atomic_store_explicit(&slow_count, 1, memory_order_relaxed);
		return;
	}
	if (atomic_fetch_add_explicit(&slow_count, 1, memory_order_relaxed) + 1 >=
	    PL_QUEUE_SLOW_EVENTS)
		atomic_store_explicit(&busy_until, now + PL_QUEUE_CALM_US, memory_order_relaxed);
}

/* Calm costs one relaxed load; the clock is read only while contended. */
static bool contended(void)
{
	uint64_t b = atomic_load_explicit(&busy_until, memory_order_relaxed);

	if (!b)
		return false;
	if (pl_now_us() < b)
		return true;
	atomic_compare_exchange_strong(&busy_until, &b, 0);
	return false;
}

void pl_queue_assume_contended(long ms)
{
	atomic_store(&busy_until, ms > 0 ? pl_now_us() + (uint64_t)ms * 1000u : 0);
}

/*
 * Yield until ready(), at most PL_QUEUE_SPIN times, and stop at the first
 * yield that took long: then the CPU is wanted elsewhere, and a sleeper
 * woken later gets it back sooner than a thread that keeps yielding.  A
 * slow yield counts as a sign of contention only when the same thread saw
 * another one within its last PL_QUEUE_SLOW_RECENT yields: on the calm
 * (virtual) machine single slow yields do come, a few a second, most of
 * them all threads at the same instant (the whole VM paused), which no
 * way of waiting can help; behind CPU-bound work almost every spin ends
 * in one.
 */
static void spin_for(struct pl_queue *q, bool want_item)
{
	static _Thread_local unsigned since_slow = UINT_MAX;
	uint64_t t = pl_now_us(), u;

	for (int i = 0; i < PL_QUEUE_SPIN; i++) {
		if (ready(q, want_item))
			return;
		sched_yield();
		u = pl_now_us();
		if (u - t > PL_QUEUE_SLOW_US) {
			if (since_slow < PL_QUEUE_SLOW_RECENT)
				saw_slow(u);
			since_slow = 0;
			return;
		}
		if (since_slow < UINT_MAX)
			since_slow++;
		t = u;
	}
}

static bool full(const struct pl_queue *q)
{
	return q->bound && q->count >= q->bound;
}

static size_t lazy_at(const struct pl_queue *q)
{
	return q->bound && q->bound < PL_QUEUE_LAZY ? q->bound : PL_QUEUE_LAZY;
}

/*
 * How many sleeping getters to wake now (counted in wakes; the caller
 * signals them, after unlocking where it can).  One at a time, and only
 * when nobody is on the way already (no getter spinning, none signalled
 * and not yet running): the one that comes takes its item and, at the end
 * of its get, calls this again, so it passes the wake on while items are
 * left.  A burst of puts into a busy pipeline so costs no wake at all, and
 * stages with real work still fan out over every sleeper, one wake per
 * taken item.  While the CPUs are contended it waits further, until
 * PL_QUEUE_LAZY items are there: a thread woken then runs only after
 * whatever holds the CPU, and had better find a batch; the sleepers'
 * backstop (await_turn) takes care of fewer — but only a sleeper that went
 * to sleep while contended has one: with none of those (timed), a sleeper
 * is woken as when calm, or an item put after contention began would wait
 * for the next put (pool workers sleep without a timeout).  Putters and
 * free room, the same.
 */
static unsigned wake_one(struct pl_queue *q, size_t avail, unsigned sleepers, unsigned spinners,
			 unsigned timed, unsigned *wakes)
{
	if (!avail || sleepers <= *wakes || spinners + *wakes)
		return 0;
	if (timed && contended()) {
		if (avail < lazy_at(q))
			return 0;
		if (!q->wake_us)
			q->wake_us = pl_now_us();
	}
	(*wakes)++;
	return 1;
}

static unsigned wake_getters(struct pl_queue *q)
{
	return wake_one(q, q->count, q->getters, q->gspin, q->gtimed, &q->wakes);
}

static unsigned wake_putters(struct pl_queue *q)
{
	return wake_one(q, q->bound > q->count ? q->bound - q->count : 0, q->putters, q->pspin,
			q->ptimed, &q->pwakes);
}

/* Unlock, then send the wakes: a sleeper woken while the lock is still
 * held would only block on it, and a signal inside the lock keeps the
 * other CPU waiting for it longer. */
static void unlock_and_wake(struct pl_queue *q)
{
	unsigned g = wake_getters(q), p = wake_putters(q);

	pthread_mutex_unlock(&q->lock);
	if (g)
		pthread_cond_signal(&q->not_empty);
	if (p)
		pthread_cond_signal(&q->not_full);
}

/*
 * One round of waiting, with the lock held, by a getter that found no item
 * (or a putter that found no room): the first round spins without the lock
 * and is counted in gspin (pspin), unless the CPUs are contended; later
 * ones sleep on not_empty (not_full), counted in getters (putters), and
 * consume the wake they were sent, if any, timing it.  While contended a
 * sleep lasts at most PL_QUEUE_BACKSTOP_MS.  0 after a spin or a wake-up,
 * ETIMEDOUT past the caller's deadline: the caller looks again either way.
 */
static int await_turn(struct pl_queue *q, bool getter, bool *spun, long timeout_ms,
		      const struct timespec *deadline)
{
	unsigned *spinning = getter ? &q->gspin : &q->pspin;
	unsigned *sleeping = getter ? &q->getters : &q->putters;
	unsigned *woken = getter ? &q->wakes : &q->pwakes;
	unsigned *timed = getter ? &q->gtimed : &q->ptimed;
	pthread_cond_t *cv = getter ? &q->not_empty : &q->not_full;
	struct timespec soon;
	bool busy = contended();	/* once: while contended it reads the clock */
	int r;

	if (!*spun && !busy) {
		*spun = true;
		(*spinning)++;
		pthread_mutex_unlock(&q->lock);
		spin_for(q, getter);
		pthread_mutex_lock(&q->lock);
		(*spinning)--;
		return 0;
	}
	(*sleeping)++;
	if (busy && !pl_clock_deadline(&soon, PL_QUEUE_BACKSTOP_MS) &&
	    (timeout_ms < 0 || soon.tv_sec < deadline->tv_sec ||
	     (soon.tv_sec == deadline->tv_sec && soon.tv_nsec < deadline->tv_nsec))) {
		(*timed)++;
		r = pthread_cond_timedwait(cv, &q->lock, &soon);
		(*timed)--;
		if (r == ETIMEDOUT)
			r = 0;	/* the backstop, not the caller's deadline */
	} else {
		r = wait_on(cv, &q->lock, timeout_ms, deadline);
	}
	(*sleeping)--;
	if (*woken) {
		(*woken)--;
		if (q->wake_us) {
			uint64_t now = pl_now_us();

			if (now - q->wake_us > PL_QUEUE_SLOW_US)
				saw_slow(now);
			q->wake_us = 0;
		}
	}
	return r;
}

/* Put n items in order, waiting for room as the timeout says; *done tells
 * how many went in before an error. */
static int put_impl(struct pl_queue *q, void *const *items, size_t n, size_t *done,
		    long timeout_ms)
{
	struct timespec deadline;
	size_t k = 0;
	bool spun = false;
	int r = 0;

	if ((r = deadline_for(q, timeout_ms, &deadline)))
		return r;
	pthread_mutex_lock(&q->lock);
	while (k < n) {
		while (!q->closed && full(q)) {
			if (wake_getters(q))	/* let consumers make room */
				pthread_cond_signal(&q->not_empty);
			if (timeout_ms == 0) {
				r = EAGAIN;
				goto out;
			}
			r = await_turn(q, false, &spun, timeout_ms, &deadline);
			if (r == ETIMEDOUT && !q->closed && full(q))
				goto out;
			r = 0;
		}
		if (q->closed) {
			r = EPIPE;
			goto out;
		}
		if (q->count == q->cap && (r = grow(q)))
			goto out;
		q->ring[(q->head + q->count) % q->cap] = items[k++];
		q->count++;
		atomic_fetch_add(&q->unfinished, 1);
		spun = false;	/* progress: wait patiently again for the next slot */
	}
out:
	atomic_store_explicit(&q->count_hint, q->count, memory_order_relaxed);
	unlock_and_wake(q);	/* items put, and room this putter was counted for */
	if (done)
		*done = k;
	return r;
}

int pl_queue_put(struct pl_queue *q, void *item, long timeout_ms)
{
	return put_impl(q, &item, 1, NULL, timeout_ms);
}

int pl_queue_put_batch(struct pl_queue *q, void *const *items, size_t n, size_t *done,
		       long timeout_ms)
{
	return put_impl(q, items, n, done, timeout_ms);
}

static void *take(struct pl_queue *q)
{
	void *item = q->ring[q->head];

	q->head = (q->head + 1) % q->cap;
	q->count--;
	atomic_store_explicit(&q->count_hint, q->count, memory_order_relaxed);
	return item;
}

/*
 * Take up to max items (at least one, waiting as the timeout says).  With
 * check_gen, EINTR as soon as the interrupt generation is not gen.
 */
static int get_impl(struct pl_queue *q, void **items, size_t max, size_t *got,
		    long timeout_ms, bool check_gen, unsigned long gen)
{
	struct timespec deadline;
	bool spun = false;
	size_t n = 0;
	int r = 0;

	if (!items || !max)
		return EINVAL;
	if ((r = deadline_for(q, timeout_ms, &deadline)))
		return r;
	pthread_mutex_lock(&q->lock);
	if (!check_gen)
		gen = q->intr_gen;
	for (;;) {
		if (q->intr_gen != gen) {
			r = EINTR;
			goto out;
		}
		if (q->count)
			break;
		if (q->closed) {
			r = EPIPE;
			goto out;
		}
		if (timeout_ms == 0) {
			r = EAGAIN;
			goto out;
		}
		r = await_turn(q, true, &spun, timeout_ms, &deadline);
		if (r == ETIMEDOUT && q->count == 0 && !q->closed && q->intr_gen == gen)
			goto out;
		r = 0;
	}
	while (n < max && q->count)
		items[n++] = take(q);
out:
	unlock_and_wake(q);	/* room made, and items this getter was counted for */
	if (got)
		*got = n;
	return r;
}

int pl_queue_get(struct pl_queue *q, void **item, long timeout_ms)
{
	return get_impl(q, item, 1, NULL, timeout_ms, false, 0);
}

unsigned long pl_queue_interrupt_gen(struct pl_queue *q)
{
	return atomic_load(&q->intr_gen);
}

int pl_queue_get_batch(struct pl_queue *q, void **items, size_t max, size_t *got,
		       long timeout_ms, unsigned long gen)
{
	return get_impl(q, items, max, got, timeout_ms, true, gen);
}

/*
 * Lock-free: every worker calls this once per item, and the lock is only
 * needed to wake a joiner.  The count goes down by compare-and-swap so that
 * one call too many is refused (EINVAL) without changing it.  A joiner
 * registers (joiners++) before it looks at the count, under the lock it
 * holds until it sleeps; this side lowers the count before it looks at
 * joiners: either the joiner sees 0 and does not sleep, or this side sees
 * the joiner and its broadcast, under the lock, comes after the joiner
 * sleeps.
 */
int pl_queue_task_done_n(struct pl_queue *q, size_t n)
{
	size_t u;

	if (!q)
		return EINVAL;
	u = atomic_load(&q->unfinished);
	do {
		if (u < n)
			return EINVAL;
	} while (!atomic_compare_exchange_weak(&q->unfinished, &u, u - n));
	if (u == n && n && atomic_load(&q->joiners)) {
		pthread_mutex_lock(&q->lock);
		pthread_cond_broadcast(&q->all_done);
		pthread_mutex_unlock(&q->lock);
	}
	return 0;
}

int pl_queue_task_done(struct pl_queue *q)
{
	return pl_queue_task_done_n(q, 1);
}

int pl_queue_join(struct pl_queue *q, long timeout_ms)
{
	struct timespec deadline;
	int r = 0;

	if ((r = deadline_for(q, timeout_ms, &deadline)))
		return r;
	pthread_mutex_lock(&q->lock);
	while (atomic_load(&q->unfinished)) {
		if (timeout_ms == 0) {
			r = EAGAIN;
			break;
		}
		atomic_fetch_add(&q->joiners, 1);
		/* look again once registered: see pl_queue_task_done_n */
		if (atomic_load(&q->unfinished))
			r = wait_on(&q->all_done, &q->lock, timeout_ms, &deadline);
		atomic_fetch_sub(&q->joiners, 1);
		if (r == ETIMEDOUT && atomic_load(&q->unfinished))
			break;
		r = 0;
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

void pl_queue_close(struct pl_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	if (!q->closed) {
		q->closed = true;
		atomic_store_explicit(&q->closed_hint, true, memory_order_relaxed);
		/* spinners see closed_hint; only sleepers need a wake */
		if (q->getters)
			pthread_cond_broadcast(&q->not_empty);
		if (q->putters)
			pthread_cond_broadcast(&q->not_full);
	}
	pthread_mutex_unlock(&q->lock);
}

bool pl_queue_closed(struct pl_queue *q)
{
	bool c;

	pthread_mutex_lock(&q->lock);
	c = q->closed;
	pthread_mutex_unlock(&q->lock);
	return c;
}

size_t pl_queue_drain(struct pl_queue *q, void **items, size_t max)
{
	size_t n = 0;

	if (!q || (!items && max))
		return 0;
	pthread_mutex_lock(&q->lock);
	while (n < max && q->count)
		items[n++] = take(q);
	if (n && atomic_fetch_sub(&q->unfinished, n) == n && atomic_load(&q->joiners))
		pthread_cond_broadcast(&q->all_done);
	if (n && q->putters)
		pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
	return n;
}

/* Lock-free: the count as it was at some moment, which is all a caller
 * outside the lock can know anyway, and stats never stall the workers. */
size_t pl_queue_size(struct pl_queue *q)
{
	return atomic_load_explicit(&q->count_hint, memory_order_relaxed);
}

size_t pl_queue_unfinished(struct pl_queue *q)
{
	return atomic_load(&q->unfinished);
}

void pl_queue_interrupt(struct pl_queue *q)
{
	pthread_mutex_lock(&q->lock);
	atomic_fetch_add(&q->intr_gen, 1);
	pthread_cond_broadcast(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
}

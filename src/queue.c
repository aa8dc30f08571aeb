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
 *   sleep, and spinners and signalled sleepers are counted: a put wakes a
 *   sleeper only for an item nobody is already on the way to
 *   (wake_getters).  The spin yields the CPU (sched_yield) rather than
 *   busy-waiting with a pause instruction: on a 2-core machine with a
 *   dozen workers, a pause spin holds the core the other side needs to
 *   make progress and measured 2-10x slower.  A busy pipeline then hands
 *   items over mostly without a futex wake at all.
 * - task_done, called once per item by every worker, is a lock-free
 *   counter; only the last one takes the lock, and only when a joiner
 *   waits.
 * - Timeouts use CLOCK_MONOTONIC (pthread_condattr_setclock) so wall-clock
 *   steps cannot stretch or cut them.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "queue.h"

/* Rounds of sched_yield() a getter (empty queue) or putter (full queue)
 * spends before sleeping. */
#define PL_QUEUE_SPIN 16

struct pl_queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full, all_done;

	void **ring;
	size_t cap;		/* slots in ring */
	size_t bound;		/* capacity limit, 0 = unbounded */
	size_t head, count;
	bool closed;

	unsigned getters, putters;		/* sleepers, to skip useless signals */
	unsigned wakes;				/* getters signalled, not yet running */
	unsigned pwakes;			/* putters signalled, not yet running */
	unsigned gspin, pspin;			/* getters / putters spinning, unlocked */
	atomic_uint joiners;			/* read by the lock-free task_done */
	atomic_size_t unfinished;		/* put under the lock, done without it */
	atomic_bool closed_hint;		/* closed, read without the lock */
	atomic_ulong intr_gen;			/* bumped by pl_queue_interrupt, under lock */
	atomic_size_t count_hint;		/* count, stored under the lock, read without it */
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
	struct pl_queue *q = calloc(1, sizeof *q);
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	int r;

	if (!q)
		return NULL;
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

static void spin_for(struct pl_queue *q, bool want_item)
{
	for (int i = 0; i < PL_QUEUE_SPIN; i++) {
		if (ready(q, want_item))
			return;
		sched_yield();
	}
}

static bool full(const struct pl_queue *q)
{
	return q->bound && q->count >= q->bound;
}

/*
 * Wake one sleeping getter per item nobody is coming for yet: a spinning
 * getter takes an item when it looks again, a signalled one when it runs,
 * so items up to spinners + signalled cost no wake; never more than are
 * asleep and not already signalled, so a burst of puts costs one wake per
 * sleeper, not per item.  Called after a put, and again at the end of
 * every get: a spinner or signalled getter that leaves without an item it
 * was counted for (another took it, an interrupt) hands it on here.
 * Passing one wake at a time along the sleepers instead was faster on an
 * idle machine but stalled under load, where a woken thread gets the CPU
 * sooner than a yielding one.  Putters and free room, the same.
 */
static void wake_getters(struct pl_queue *q)
{
	while (q->getters > q->wakes && q->count > q->gspin + q->wakes) {
		q->wakes++;
		pthread_cond_signal(&q->not_empty);
	}
}

static void wake_putters(struct pl_queue *q)
{
	while (q->putters > q->pwakes && q->bound > q->count &&
	       q->bound - q->count > q->pspin + q->pwakes) {
		q->pwakes++;
		pthread_cond_signal(&q->not_full);
	}
}

/*
 * One round of waiting, with the lock held, by a getter that found no item
 * (or a putter that found no room): the first round spins without the lock
 * and is counted in gspin (pspin); later ones sleep on not_empty
 * (not_full), counted in getters (putters), and consume the wake they were
 * sent, if any.  0 after a spin or a wake-up, ETIMEDOUT past the deadline:
 * the caller looks again either way.
 */
static int await_turn(struct pl_queue *q, bool getter, bool *spun, long timeout_ms,
		      const struct timespec *deadline)
{
	unsigned *spinning = getter ? &q->gspin : &q->pspin;
	unsigned *sleeping = getter ? &q->getters : &q->putters;
	unsigned *woken = getter ? &q->wakes : &q->pwakes;
	int r;

	if (!*spun) {
		*spun = true;
		(*spinning)++;
		pthread_mutex_unlock(&q->lock);
		spin_for(q, getter);
		pthread_mutex_lock(&q->lock);
		(*spinning)--;
		return 0;
	}
	(*sleeping)++;
	r = wait_on(getter ? &q->not_empty : &q->not_full, &q->lock, timeout_ms, deadline);
	(*sleeping)--;
	if (*woken)
		(*woken)--;
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
			wake_getters(q);	/* let consumers make room */
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
	wake_getters(q);
	wake_putters(q);	/* room this putter was counted for */
	pthread_mutex_unlock(&q->lock);
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
	wake_putters(q);
out:
	wake_getters(q);	/* items this getter was counted for */
	pthread_mutex_unlock(&q->lock);
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

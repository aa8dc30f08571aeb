/*
 * core_plain_queue.c — the reference queue of bench/core's per-item row: a
 * plain mutex + condition-variable queue with a short spin before sleeping.
 *
 * Part of bench/core (run by hand, not a test).  Issue 14 set the per-item
 * target by such a queue, measured on another harness and host ("about 20×
 * Python").  Whether a ratio to Python is reachable depends on the host
 * (what a context switch and a futex call cost there), so bench/core runs
 * this design in the same run, on the same driver: core_queue.c is linked
 * once with src/queue.c and once with this file, which defines only the
 * queue.h calls that driver makes.  It is deliberately the textbook
 * design — one lock, not_empty/not_full/all_done, a signal per put or get
 * when someone sleeps — plus the spin the reference had: up to
 * PLAIN_SPIN rounds of sched_yield() while the queue is empty (full)
 * before taking the lock and sleeping.  No wake accounting, no
 * contention detection; that is what src/queue.c adds.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "queue.h"

/* Yields before sleeping; 16 is src/queue.c's calm spin too. */
#define PLAIN_SPIN 16

struct pl_queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full, all_done;
	void **ring;
	size_t head, count, cap, bound;
	unsigned getters, putters;	/* asleep, so that a signal is sent only to someone */
	bool closed;
	atomic_size_t unfinished;
	atomic_size_t count_hint;	/* count, for the spin and pl_queue_size */
};

struct pl_queue *pl_queue_create(size_t capacity)
{
	struct pl_queue *q = calloc(1, sizeof *q);

	if (!q)
		return NULL;
	q->bound = capacity;
	q->cap = capacity ? capacity : 64;
	if (!(q->ring = malloc(q->cap * sizeof *q->ring))) {
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	pthread_cond_init(&q->all_done, NULL);
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

/* The unbounded done queue grows by doubling, unrolling the ring. */
static int grow(struct pl_queue *q)
{
	void **n = malloc(2 * q->cap * sizeof *n);

	if (!n)
		return ENOMEM;
	for (size_t i = 0; i < q->count; i++)
		n[i] = q->ring[(q->head + i) % q->cap];
	free(q->ring);
	q->ring = n;
	q->cap *= 2;
	q->head = 0;
	return 0;
}

static void spin(struct pl_queue *q, bool want_item)
{
	for (int i = 0; i < PLAIN_SPIN; i++) {
		size_t c = atomic_load_explicit(&q->count_hint, memory_order_relaxed);

		if (want_item ? c > 0 : !q->bound || c < q->bound)
			return;
		sched_yield();
	}
}

/* timeout_ms is ignored: the driver always waits (-1). */
int pl_queue_put(struct pl_queue *q, void *item, long timeout_ms)
{
	bool wake;
	int r = 0;

	(void)timeout_ms;
	spin(q, false);
	pthread_mutex_lock(&q->lock);
	while (q->bound && q->count >= q->bound && !q->closed) {
		q->putters++;
		pthread_cond_wait(&q->not_full, &q->lock);
		q->putters--;
	}
	if (q->closed) {
		pthread_mutex_unlock(&q->lock);
		return EPIPE;
	}
	if (q->count == q->cap && (r = grow(q))) {
		pthread_mutex_unlock(&q->lock);
		return r;
	}
	q->ring[(q->head + q->count) % q->cap] = item;
	q->count++;
	atomic_store_explicit(&q->count_hint, q->count, memory_order_relaxed);
	atomic_fetch_add(&q->unfinished, 1);
	wake = q->getters;
	pthread_mutex_unlock(&q->lock);
	if (wake)
		pthread_cond_signal(&q->not_empty);
	return 0;
}

int pl_queue_get(struct pl_queue *q, void **item, long timeout_ms)
{
	bool wake;

	(void)timeout_ms;
	spin(q, true);
	pthread_mutex_lock(&q->lock);
	while (!q->count && !q->closed) {
		q->getters++;
		pthread_cond_wait(&q->not_empty, &q->lock);
		q->getters--;
	}
	if (!q->count) {
		pthread_mutex_unlock(&q->lock);
		return EPIPE;
	}
	*item = q->ring[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
	atomic_store_explicit(&q->count_hint, q->count, memory_order_relaxed);
	wake = q->putters;
	pthread_mutex_unlock(&q->lock);
	if (wake)
		pthread_cond_signal(&q->not_full);
	return 0;
}

int pl_queue_task_done(struct pl_queue *q)
{
	size_t u = atomic_load(&q->unfinished);

	do {
		if (!u)
			return EINVAL;
	} while (!atomic_compare_exchange_weak(&q->unfinished, &u, u - 1));
	if (u == 1) {
		pthread_mutex_lock(&q->lock);
		pthread_cond_broadcast(&q->all_done);
		pthread_mutex_unlock(&q->lock);
	}
	return 0;
}

int pl_queue_join(struct pl_queue *q, long timeout_ms)
{
	(void)timeout_ms;
	pthread_mutex_lock(&q->lock);
	while (atomic_load(&q->unfinished))
		pthread_cond_wait(&q->all_done, &q->lock);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void pl_queue_close(struct pl_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->not_full);
	pthread_mutex_unlock(&q->lock);
}

size_t pl_queue_size(struct pl_queue *q)
{
	return atomic_load_explicit(&q->count_hint, memory_order_relaxed);
}

/*
 * queue.h — bounded, closable FIFO of opaque pointers with task_done/join.
 *
 * The hand-off between pipeline stages.  Semantics follow Python 3.13's
 * queue.Queue with shutdown(immediate=False) as pl_queue_close(): close is
 * the sentinel that ends every consumer at once, so no per-worker poison
 * items are needed.  Return values are 0 or a positive errno value
 * (EAGAIN, ETIMEDOUT, EPIPE, EINVAL), as Python's queue raises Full, Empty
 * and ShutDown: callers compare against them rather than test the sign.
 *
 * timeout_ms: negative waits forever, 0 never waits, positive waits at most
 * that long on CLOCK_MONOTONIC.
 */
#ifndef PL_QUEUE_H
#define PL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct pl_queue;

struct pl_queue *pl_queue_create(size_t capacity);  /* 0 = unbounded; NULL + errno on failure */
/* Only once no thread is inside a call on q any more: join returning does
 * not mean the last task_done has returned (it takes no lock), so join
 * the workers first. */
void   pl_queue_destroy(struct pl_queue *q);
int    pl_queue_put(struct pl_queue *q, void *item, long timeout_ms);
int    pl_queue_get(struct pl_queue *q, void **item, long timeout_ms);
int    pl_queue_task_done(struct pl_queue *q);
int    pl_queue_join(struct pl_queue *q, long timeout_ms);
void   pl_queue_close(struct pl_queue *q);
bool   pl_queue_closed(struct pl_queue *q);
size_t pl_queue_drain(struct pl_queue *q, void **items, size_t max);
size_t pl_queue_size(struct pl_queue *q);
size_t pl_queue_unfinished(struct pl_queue *q);

/*
 * Extension for the stage pool, outside the Queue contract: make every
 * getter blocked at this moment return EINTR, so a worker that is asked to
 * retire (or has delayed work falling due) re-checks its state without
 * polling.  Accounting is unchanged.
 */
void   pl_queue_interrupt(struct pl_queue *q);
/* The interrupt generation now.  get_batch returns EINTR (even when items
 * are ready) once an interrupt has happened since gen was read: a worker
 * reads the generation, checks its own state, then gets, and cannot miss an
 * interrupt that falls in between.
 * Batches, for stages whose items take microseconds: the same semantics as
 * repeated get/put/task_done, with one lock round and at most one wake per
 * sleeper for the whole batch.  get_batch takes between 1 and max items
 * (*got); put_batch puts all n in order, waiting for room, and on an error
 * says in *done how many went in. */
unsigned long pl_queue_interrupt_gen(struct pl_queue *q);
int    pl_queue_get_batch(struct pl_queue *q, void **items, size_t max, size_t *got,
			  long timeout_ms, unsigned long gen);
int    pl_queue_put_batch(struct pl_queue *q, void *const *items, size_t n, size_t *done,
			  long timeout_ms);
int    pl_queue_task_done_n(struct pl_queue *q, size_t n);

/*
 * How queues wait adapts to the machine (see queue.c): once yields and
 * wake-ups are seen to take milliseconds, every queue in the process
 * waits as suits contended CPUs, until a fifth of a second after the
 * last such sign.  This says so for ms milliseconds from now (0: calm
 * again now), for callers that know better, and for the tests of both
 * ways.  The semantics are the same either way.
 */
void   pl_queue_assume_contended(long ms);

#endif

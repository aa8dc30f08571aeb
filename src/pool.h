/*
 * pool.h — a stage: N worker threads over one input queue.
 *
 * A worker loops get → process → hand on → task_done.  The width can change
 * at any moment; shrinking retires workers between items, never during one.
 * The pool knows nothing about what an item is: it calls the stage's ops.
 *
 * Errors: every function here returns 0 or a negative errno value
 * (pl_pool_create: NULL with errno set), and so do the ops and sinks the
 * pool calls; only the queue underneath speaks positive values (queue.h).
 */
#ifndef PL_POOL_H
#define PL_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue.h"

/*
 * What a stage implements.  process() returns
 *   0        the item succeeded and moves on;
 *   < 0      -errno: the item failed; why[] holds a one-line reason;
 *   > 0      retry the item after that many milliseconds.  The pool keeps
 *            the item (still unfinished in its queue) and hands it to the
 *            next free worker when due, so no worker sleeps through a
 *            backoff while other items wait.
 * worker_start/worker_stop run in the worker thread itself (per-thread
 * state such as a CURL handle; vips_thread_shutdown()).  Both optional.
 */
struct pl_stage_ops {
	int  (*worker_start)(void *ctx, void **wstate);
	void (*worker_stop)(void *ctx, void *wstate);
	int  (*process)(void *ctx, void *wstate, void *item, char *why, size_t whylen);
};

#define PL_REASON_MAX 512

/* Where items go when a worker is done with them.  Called from workers.
 * pass_many (optional) hands on a batch at once: 0, or -errno with *done
 * saying how many of the first items went through. */
struct pl_sink {
	int  (*pass)(void *ud, void *item);	/* success: hand on; 0 or -errno */
	void (*fail)(void *ud, void *item, int err, const char *why);
	void *ud;
	int  (*pass_many)(void *ud, void **items, size_t n, size_t *done);
};

/* Bounds of the processing-time histogram, in µs (pool.c): what a stage
 * takes spans a local file (a millisecond) to a slow upload (a minute). */
#define PL_POOL_HIST_N 15
extern const uint32_t pl_pool_hist_bounds_us[PL_POOL_HIST_N];

struct pl_stage_stats {
	unsigned width;		/* workers wanted */
	unsigned alive;		/* worker threads running */
	unsigned busy;		/* workers inside process() */
	size_t   queued;	/* items waiting in the input queue */
	size_t   delayed;	/* items waiting for a retry */
	uint64_t in;		/* items taken from the queue */
	uint64_t done;		/* items passed on */
	uint64_t failed;	/* items failed */
	uint64_t progress_us;	/* monotonic time of the last process() return */
	uint64_t oldest_busy_us;/* start of the longest-running current item, 0 = none */
	double   p50_ms, p95_ms;/* latency of process() over a recent window */
	uint64_t retried;	/* process() returns that asked for a retry */
	/* Every process() call since the start: how many took at most
	 * bound i (hist[i], not cumulative; hist[PL_POOL_HIST_N] took longer)
	 * and their total time. */
	uint64_t hist[PL_POOL_HIST_N + 1];
	uint64_t hist_sum_us;
};

struct pl_pool;

/*
 * Where the pools report what no caller can be told (a worker that could
 * not start): a syslog priority (LOG_ERR, …) and a printf format, the
 * signature of the daemon's pl_log.  Process-wide, for every pool; NULL,
 * the default, writes a plain line to stderr.  Set it before the pools
 * start: the core itself knows no logger.
 */
typedef void pl_pool_log_fn(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void pl_pool_set_logger(pl_pool_log_fn *log);

struct pl_pool *pl_pool_create(const char *name, struct pl_queue *in,
			       const struct pl_stage_ops *ops, void *ctx,
			       const struct pl_sink *sink);
/* Workers are started or retired to reach width; -ESHUTDOWN once
 * pl_pool_stop has begun (a width change then would start workers that
 * nobody joins). */
int  pl_pool_set_width(struct pl_pool *p, unsigned width);
/* Wait until every worker has exited (the input queue is closed and empty,
 * and no delayed item is left) and reap them. */
int  pl_pool_stop(struct pl_pool *p);
void pl_pool_stats(struct pl_pool *p, struct pl_stage_stats *st);
/*
 * The item of the worker that has been on its current item the longest
 * (stats' oldest_busy_us): fn(ud, item, since_us) is called with it under
 * the pool's lock, while that worker cannot let go of the item, so fn may
 * read what the item held when it was fed (to name it in a log line), but
 * not what the stage is changing, and must not call into the pool.
 * Returns whether a worker was busy (and fn called).
 */
typedef void pl_pool_busy_fn(void *ud, const void *item, uint64_t since_us);
bool pl_pool_oldest_busy(struct pl_pool *p, pl_pool_busy_fn *fn, void *ud);
const char *pl_pool_name(const struct pl_pool *p);
void pl_pool_destroy(struct pl_pool *p);

#endif

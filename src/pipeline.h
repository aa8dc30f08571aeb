/*
 * pipeline.h — stages wired by queues, fed at one end, drained in order.
 *
 * Stage i reads queue i and passes successes to queue i+1; the last stage
 * passes to the success sink.  Every fed item leaves exactly once: through
 * the success sink, the failure sink, or pl_pipeline_abort() (items that
 * never entered a stage).
 *
 * Errors: every function here returns 0 or a negative errno value, like
 * pool.h; the feed functions turn the input queue's positive values
 * (queue.h) into negative ones.
 */
#ifndef PL_PIPELINE_H
#define PL_PIPELINE_H

#include <stddef.h>

#include "pool.h"

struct pl_stage_def {
	const char *name;
	unsigned width;
	size_t capacity;		/* input queue capacity, 0 = unbounded */
	const struct pl_stage_ops *ops;
	void *ctx;
};

struct pl_pipeline_sinks {
	void (*done)(void *ud, void *item);
	void (*failed)(void *ud, void *item, int err, const char *why, const char *stage);
	void *ud;
};

struct pl_pipeline;

int  pl_pipeline_create(const struct pl_stage_def *defs, size_t n,
			const struct pl_pipeline_sinks *sinks, struct pl_pipeline **out);
int  pl_pipeline_start(struct pl_pipeline *p);
/* 0, or -EPIPE once the input is closed, -EAGAIN/-ETIMEDOUT as pl_queue_put. */
int  pl_pipeline_feed(struct pl_pipeline *p, void *item, long timeout_ms);
/* Feed n items in order, waiting for room; *done says how many went in
 * (all of them when it returns 0).  One lock round and one wake per batch
 * instead of per item: what a producer with many items at hand should use. */
int  pl_pipeline_feed_batch(struct pl_pipeline *p, void *const *items, size_t n,
			    size_t *done, long timeout_ms);
/* pl_pool_set_width on that stage's pool: -ESHUTDOWN once it is stopping. */
int  pl_pipeline_set_width(struct pl_pipeline *p, size_t stage, unsigned width);
/* Graceful: close stage 1's queue, join it, stop its workers, then stage 2
 * and so on.  Blocks until the last stage is empty; safe to call from a
 * thread other than the one that calls abort. */
int  pl_pipeline_stop(struct pl_pipeline *p);
/* Fast stop: close the input and hand back up to max items that never
 * entered a stage; call until it returns 0.  A concurrent pl_pipeline_stop()
 * then finishes only what is inside the stages. */
size_t pl_pipeline_abort(struct pl_pipeline *p, void **items, size_t max);
size_t pl_pipeline_stages(const struct pl_pipeline *p);
void pl_pipeline_stats(struct pl_pipeline *p, size_t stage, struct pl_stage_stats *st);
/* pl_pool_oldest_busy for one stage: its longest-running current item. */
bool pl_pipeline_oldest_busy(struct pl_pipeline *p, size_t stage, pl_pool_busy_fn *fn, void *ud);
const char *pl_pipeline_stage_name(const struct pl_pipeline *p, size_t stage);
void pl_pipeline_destroy(struct pl_pipeline *p);

#endif

/*
 * pipeline.c — stages wired by queues (see pipeline.h).
 *
 * Why it is built this way: the drain is Effective Python's stop_threads done
 * with close instead of one sentinel per worker.  Stage i's queue is closed
 * and joined before stage i+1's, so when stage i's workers have left, every
 * item they will ever produce is already in queue i+1 and closing it cannot
 * cut anything off.  A fast stop only differs in what happens to queue 0: its
 * items are handed back instead of processed; whatever is already past it
 * finishes as in a graceful drain, so no item is ever half done.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "pipeline.h"

struct stage {
	struct pl_pipeline *pipe;
	size_t idx;
	const char *name;
	struct pl_queue *q;
	struct pl_pool *pool;
	unsigned width;
};

struct pl_pipeline {
	size_t n;
	struct stage *st;
	struct pl_pipeline_sinks sinks;
	pthread_mutex_t stop_lock;
	bool started, stopped;
};

static int pass_on(void *ud, void *item)
{
	struct stage *s = ud;
	struct pl_pipeline *p = s->pipe;
	int r;

	if (s->idx + 1 == p->n) {
		p->sinks.done(p->sinks.ud, item);
		return 0;
	}
	r = pl_queue_put(p->st[s->idx + 1].q, item, -1);
	return r ? -r : 0;
}

static int pass_many(void *ud, void **items, size_t n, size_t *done)
{
	struct stage *s = ud;
	struct pl_pipeline *p = s->pipe;
	int r;

	if (s->idx + 1 == p->n) {
		for (size_t i = 0; i < n; i++)
			p->sinks.done(p->sinks.ud, items[i]);
		*done = n;
		return 0;
	}
	r = pl_queue_put_batch(p->st[s->idx + 1].q, items, n, done, -1);
	return r ? -r : 0;
}

static void fail(void *ud, void *item, int err, const char *why)
{
	struct stage *s = ud;

	s->pipe->sinks.failed(s->pipe->sinks.ud, item, err, why, s->name);
}

int pl_pipeline_create(const struct pl_stage_def *defs, size_t n,
		       const struct pl_pipeline_sinks *sinks, struct pl_pipeline **out)
{
	struct pl_pipeline *p;

	if (!defs || !n || !sinks || !sinks->done || !sinks->failed || !out)
		return -EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->st = calloc(n, sizeof *p->st);
	if (!p->st) {
		free(p);
		return -ENOMEM;
	}
	p->n = n;
	p->sinks = *sinks;
	pthread_mutex_init(&p->stop_lock, NULL);
	for (size_t i = 0; i < n; i++) {
		struct stage *s = &p->st[i];
		struct pl_sink sink = { pass_on, fail, s, pass_many };

		s->pipe = p;
		s->idx = i;
		s->name = defs[i].name;
		s->width = defs[i].width ? defs[i].width : 1;
		s->q = pl_queue_create(defs[i].capacity);
		if (s->q)
			s->pool = pl_pool_create(defs[i].name, s->q, defs[i].ops, defs[i].ctx, &sink);
		if (!s->q || !s->pool) {
			int r = errno ? -errno : -ENOMEM;
			pl_pipeline_destroy(p);
			return r;
		}
	}
	*out = p;
	return 0;
}

int pl_pipeline_start(struct pl_pipeline *p)
{
	/* last stage first: nothing is ever put into a queue nobody reads */
	for (size_t i = p->n; i-- > 0;) {
		int r = pl_pool_set_width(p->st[i].pool, p->st[i].width);
		if (r < 0)
			return r;
	}
	p->started = true;
	return 0;
}

int pl_pipeline_feed(struct pl_pipeline *p, void *item, long timeout_ms)
{
	return -pl_queue_put(p->st[0].q, item, timeout_ms);
}

int pl_pipeline_feed_batch(struct pl_pipeline *p, void *const *items, size_t n,
			   size_t *done, long timeout_ms)
{
	return -pl_queue_put_batch(p->st[0].q, items, n, done, timeout_ms);
}

int pl_pipeline_set_width(struct pl_pipeline *p, size_t stage, unsigned width)
{
	if (stage >= p->n)
		return -EINVAL;
	return pl_pool_set_width(p->st[stage].pool, width);
}

int pl_pipeline_stop(struct pl_pipeline *p)
{
	pthread_mutex_lock(&p->stop_lock);
	if (!p->stopped) {
		for (size_t i = 0; i < p->n; i++) {
			pl_queue_close(p->st[i].q);
			pl_queue_join(p->st[i].q, -1);
			pl_pool_stop(p->st[i].pool);
		}
		p->stopped = true;
	}
	pthread_mutex_unlock(&p->stop_lock);
	return 0;
}

size_t pl_pipeline_abort(struct pl_pipeline *p, void **items, size_t max)
{
	pl_queue_close(p->st[0].q);
	return pl_queue_drain(p->st[0].q, items, max);
}

size_t pl_pipeline_stages(const struct pl_pipeline *p)
{
	return p->n;
}

void pl_pipeline_stats(struct pl_pipeline *p, size_t stage, struct pl_stage_stats *st)
{
	pl_pool_stats(p->st[stage].pool, st);
}

bool pl_pipeline_oldest_busy(struct pl_pipeline *p, size_t stage, pl_pool_busy_fn *fn, void *ud)
{
	return pl_pool_oldest_busy(p->st[stage].pool, fn, ud);
}

const char *pl_pipeline_stage_name(const struct pl_pipeline *p, size_t stage)
{
	return p->st[stage].name;
}

void pl_pipeline_destroy(struct pl_pipeline *p)
{
	if (!p)
		return;
	if (p->started)
		pl_pipeline_stop(p);
	for (size_t i = 0; i < p->n; i++) {
		pl_pool_destroy(p->st[i].pool);
		pl_queue_destroy(p->st[i].q);
	}
	pthread_mutex_destroy(&p->stop_lock);
	free(p->st);
	free(p);
}

/*
 * daemon_feed.c — the daemon's intake: the feeder thread, which claims the
 * spool's jobs and feeds their items, and with a stream group the puller,
 * which feeds the pipeline from the stream, and the collector, which writes
 * the results of our jobs that come back from it.
 *
 * How it fits: daemon.c starts these threads and joins them; its signals
 * end them through daemon_stop_intake().  The sinks in daemon.c count what
 * leaves the pipeline, which is what wait_idle() below waits for.
 *
 * Why apart from daemon.c: these threads block (on the first queue, the
 * spool, the stream) and never touch sd-event, while everything in daemon.c
 * runs on the main loop; keeping them in their own file keeps that line
 * visible.  The feeder also runs the ordered drain, so that the main loop
 * stays free to answer a second signal while items drain.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "daemon_int.h"
#include "item.h"
#include "log.h"
#include "pipeline.h"
#include "spool.h"
#include "stream.h"
/* ---- the feeder thread ---- */

static void wake(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof one) < 0 && errno != EAGAIN)
		pl_log_errno(LOG_ERR, errno, "eventfd write: %m");
}

/*
 * Until every item fed has left the pipeline, or a stop.  No wake-up is
 * lost: the sinks count before they look at idle_waiting, and this sets it
 * before it looks at the counts (all sequentially consistent), so a sink
 * that saw no waiter counted early enough for the check below to see it.
 */
static void wait_idle(struct daemon *d)
{
	pthread_mutex_lock(&d->idle_lock);
	atomic_store(&d->idle_waiting, true);
	while (!atomic_load(&d->stopping) &&
	       atomic_load(&d->done) + atomic_load(&d->failed) < d->fed)
		pthread_cond_wait(&d->idle, &d->idle_lock);
	atomic_store(&d->idle_waiting, false);
	pthread_mutex_unlock(&d->idle_lock);
}

static int feed(struct daemon *d, struct pl_item *it)
{
	int r;

	it->fed_us = pl_now_us();
	d->fed++;
	r = pl_pipeline_feed(d->pipe, it, -1);
	if (r)
		d->fed--;
	return r;
}

/*
 * An item that may have crashed the daemon runs with nothing else in the
 * pipeline, named on disk as the suspect first: if the daemon dies now, it
 * is the one to blame, and its batch-mates of the first crash are not
 * (crashguard.h).
 */
static int feed_alone(struct daemon *d, struct pl_item *it)
{
	int r;

	wait_idle(d);
	if (atomic_load(&d->stopping))
		return -ECANCELED;
	it->intake->alone(it);
	pl_log_item(LOG_NOTICE, it, NULL, 0, "running alone: it was in the pipeline when a "
		    "daemon died");
	if ((r = feed(d, it)) == 0)
		wait_idle(d);
	return r;
}

/* With the stream, a spool item goes out on it instead of into our own
 * pipeline; its result comes back through the collector. */
static int publish(struct daemon *d, struct pl_item *it)
{
	char why[512];
	int r = pl_stream_publish_item(d->stream, it->job_name, pl_spool_job_id(it), it->line,
				       it->source, it->name, why, sizeof why);

	/* The stream will not take it (a limit reached), or the server will
	 * not let us publish it (permissions): failed with what the server
	 * said, so that its job finishes into failed/ rather than wait in cur/
	 * for a restart that would meet the same refusal. */
	if (r == -EREMOTEIO || r == -EACCES) {
		pl_log_item(LOG_ERR, it, NULL, -r, "not run: %s", why);
		pl_spool_item_failed(it, -r, why);
		atomic_fetch_add(&d->remote_failed, 1);
		return 0;
	}
	if (r == -EILSEQ) {
		pl_log_item(LOG_WARNING, it, NULL, EILSEQ, "not run: not valid UTF-8, which a "
			    "stream message cannot carry");
		pl_spool_item_failed(it, EILSEQ, "source or NAME is not valid UTF-8, which a "
				     "stream message cannot carry");
		atomic_fetch_add(&d->remote_failed, 1);
		return 0;
	}
	if (r == 0)
		pl_spool_item_sent(it);
	return r;
}

/* Feed one claimed job until its end, a stop, or a closed pipeline. */
static void feed_job(struct daemon *d, struct pl_job *job)
{
	while (!atomic_load(&d->stopping)) {
		struct pl_item *it;
		const char *bad = NULL;
		int r = pl_spool_next_item(job, &it, &bad);

		if (r == -ENODATA || r == -EINTR)
			break;
		if (r < 0) {
			pl_log_errno(LOG_ERR, -r, "reading a job: %s", strerror(-r));
			break;
		}
		if (bad) {
			pl_log_item(LOG_WARNING, it, NULL, EINVAL, "not run: %s", bad);
			pl_spool_item_failed(it, EINVAL, bad);
			if (d->stream) {
				atomic_fetch_add(&d->remote_failed, 1);
				continue;
			}
			d->fed++;
			atomic_fetch_add(&d->failed, 1);
			continue;
		}
		r = d->stream ? publish(d, it) : it->alone ? feed_alone(d, it) : feed(d, it);
		if (r) {		/* EPIPE: a fast stop closed the input */
			it->intake->requeue(it);
			break;
		}
	}
	pl_spool_job_release(job);
}

/* Wait until new/ may have changed or someone wakes us. */
static void wait_for_jobs(struct daemon *d)
{
	struct pollfd p[2] = {
		{ .fd = pl_spool_fd(d->spool), .events = POLLIN },
		{ .fd = d->wake_fd, .events = POLLIN },
	};

	if (poll(p, 2, -1) < 0 && errno != EINTR)
		pl_log_errno(LOG_ERR, errno, "poll: %m");
}

/* No new items from here on: the feeder and the puller stop, an item
 * waiting to run alone gives up, long reads give up.  From the main loop
 * (a signal) or the feeder (--once with the stream). */
void daemon_stop_intake(struct daemon *d)
{
	if (atomic_exchange(&d->stopping, true))
		return;
	pl_spool_interrupt(d->spool);
	if (d->stream)
		pl_stream_stop(d->stream, false);
	pthread_mutex_lock(&d->idle_lock);
	pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->idle_lock);
	wake(d->wake_fd);
}

/* The stages drain in order, then the main loop hears of it. */
static void drain(struct daemon *d)
{
	pl_debug("intake stopped; draining the stages in order");
	pl_pipeline_stop(d->pipe);
	if (d->stream)
		pl_stream_flush(d->stream);	/* the results of what drained */
	wake(d->drained_fd);
}

/*
 * --once with the stream: our jobs are done when their results are all
 * back, which other daemons may still be working on.  Wait for that (a
 * stop ends the wait), then stop the whole daemon as a signal would.
 */
static void await_own_jobs(struct daemon *d)
{
	struct pollfd p = { .fd = d->wake_fd, .events = POLLIN };

	while (!atomic_load(&d->stopping) && pl_spool_open_jobs(d->spool) > 0)
		if (poll(&p, 1, 200) < 0 && errno != EINTR)
			break;
	daemon_stop_intake(d);
}

/* Open jobs waiting for results from the stream hold an fd each: claim no
 * more than this many at once. */
#define REMOTE_JOBS_MAX 256

void *daemon_feeder_main(void *arg)
{
	struct daemon *d = arg;

	while (!atomic_load(&d->stopping)) {
		struct pl_job *job;
		int r;

		if (d->stream && pl_spool_open_jobs(d->spool) >= REMOTE_JOBS_MAX) {
			struct pollfd p = { .fd = d->wake_fd, .events = POLLIN };

			poll(&p, 1, 200);
			continue;
		}
		pl_spool_handle_events(d->spool);
		r = pl_spool_claim(d->spool, &job);
		if (r == 0) {
			feed_job(d, job);
		} else if (r == -EAGAIN) {
			if (d->opts->once && d->stream) {
				await_own_jobs(d);
				break;
			}
			if (d->opts->once)
				break;
			wait_for_jobs(d);
		} else {
			pl_log_errno(LOG_ERR, -r, "claiming a job: %s", strerror(-r));
			wait_for_jobs(d);
		}
	}
	if (!d->stream)
		drain(d);	/* with the stream, the puller feeds the pipeline */
	return NULL;
}

/* ---- the stream: the puller and the collector ---- */

/* How many items the first queue has room for: what to pull, so that a
 * daemon never holds items it cannot start soon (another may have room). */
static size_t room(struct daemon *d)
{
	struct pl_stage_stats st;
	size_t cap = d->cfg->download.stage.queue;

	pl_pipeline_stats(d->pipe, 0, &st);
	return st.queued < cap ? cap - st.queued : 1;
}

void *daemon_puller_main(void *arg)
{
	struct daemon *d = arg;
	struct pl_item *items[64];

	while (!atomic_load(&d->stopping)) {
		size_t n = 0, want = room(d), i;

		pl_stream_pull(d->stream, want < 64 ? want : 64, 1000, items, &n);
		for (i = 0; i < n && !atomic_load(&d->stopping); i++) {
			struct pl_item *it = items[i];

			if ((it->alone ? feed_alone(d, it) : feed(d, it)) != 0)
				break;
		}
		for (; i < n; i++)		/* a stop: others take them now */
			items[i]->intake->requeue(items[i]);
	}
	drain(d);
	return NULL;
}

static int record_remote(void *ud, const char *job, unsigned long line, bool ok,
			 const char *rec, size_t len)
{
	struct daemon *d = ud;
	int r = pl_spool_record_remote(d->spool, job, line, ok, rec, len);

	if (r == 0)
		atomic_fetch_add(ok ? &d->remote_ok : &d->remote_failed, 1);
	return r;
}

void *daemon_collector_main(void *arg)
{
	struct daemon *d = arg;

	while (!atomic_load(&d->collector_stop))
		pl_stream_take_results(d->stream, 64, 500, record_remote, d);
	return NULL;
}

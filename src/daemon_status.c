/*
 * daemon_status.c — how the daemon says how it goes: the snapshot of the
 * stages and counters, STATUS= and status.json, the metrics sample, the
 * --once progress bar, the one-second tick, and the watchdog's health
 * check (progress, and no worker stuck on one item).
 *
 * How it fits: everything here runs on the main thread, from sd-event
 * timers that daemon.c adds (the tick, the bar, the watchdog) or from its
 * set-up and SIGUSR1; it reads the pipeline's statistics and the atomic
 * counters that worker threads bump, and never blocks on them.
 *
 * Why apart: these are the daemon's readers, one concern whatever they
 * write to (systemd, a file, the metrics thread, the terminal); keeping
 * them out of daemon.c leaves that file the set-up and the signals.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "daemon_int.h"
#include "download.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "spool.h"
#include "status.h"
#include "stream.h"
#include "upload.h"

#define BAR_PERIOD_US 250000ULL	/* --once on a terminal: the bar's frame interval */

void daemon_snapshot(struct daemon *d, struct pl_status *s)
{
	memset(s, 0, sizeof *s);
	s->nstages = d->pipe ? ST_COUNT : 0;	/* none yet while starting */
	for (size_t i = 0; i < s->nstages; i++) {
		s->names[i] = daemon_stage_names[i];
		pl_pipeline_stats(d->pipe, i, &s->st[i]);
	}
	s->done = atomic_load(&d->done);
	s->failed = atomic_load(&d->failed);
	s->total = d->total;
	s->uptime_s = (double)(pl_now_us() - d->start_us) / 1e6;
	/* until the window has filled, the rate since start: a window of one
	 * sample would say 0.0/s (and no ETA) after the first items are done */
	if (d->rate_n < RATE_WINDOW) {
		if (s->uptime_s > 0)
			s->rate = (double)(s->done + s->failed) / s->uptime_s;
	} else {
		unsigned oldest = (d->rate_pos + RATE_WINDOW - d->rate_n) % RATE_WINDOW;
		unsigned newest = (d->rate_pos + RATE_WINDOW - 1) % RATE_WINDOW;
		s->rate = (double)(d->rate_hist[newest] - d->rate_hist[oldest]) / (d->rate_n - 1);
	}
	s->state = atomic_load(&d->fast) ? "stopping fast" :
		   atomic_load(&d->stopping) ? "stopping" : "running";
	if (d->stream) {
		pl_stream_stats(d->stream, &s->stream);
		s->has_stream = true;
		s->remote_ok = atomic_load(&d->remote_ok);
		s->remote_failed = atomic_load(&d->remote_failed);
	}
}

/* What scrapes show until the next tick: the daemon_snapshot and a few counters
 * more, all atomics (metrics.c says why scrapes do not read them). */
void daemon_publish_metrics(struct daemon *d, const struct pl_status *s)
{
	struct pl_metrics_sample m = { .status = *s };

	if (!d->metrics)
		return;
	m.bytes_downloaded = pl_download_bytes(d->stages.ctx[ST_DOWNLOAD]);
	m.bytes_uploaded = pl_upload_bytes(d->stages.ctx[ST_UPLOAD]);
	pl_spool_jobs_finished(d->spool, &m.jobs_done, &m.jobs_failed);
	m.tmp_removed = pl_spool_tmp_removed(d->spool);
	pl_metrics_publish(d->metrics, &m);
}

/* The metrics thread's count of new/ (pl_metrics_backlog_fn). */
int daemon_count_backlog(void *ud, unsigned long *jobs, unsigned long *items)
{
	struct daemon *d = ud;

	return pl_spool_count_waiting(d->spool, jobs, items);
}

/* STATUS= and status.json, when the line changed: a reader of the file
 * (pipelinectl status) sees within a second what SIGUSR1 would report,
 * and an idle daemon writes nothing. */
static void send_status(struct daemon *d, const struct pl_status *s)
{
	char line[1024];
	int r;

	pl_status_line(s, line, sizeof line);
	if (strcmp(line, d->last_status) != 0) {
		sd_notifyf(0, "STATUS=%s", line);
		snprintf(d->last_status, sizeof d->last_status, "%s", line);
		if ((r = pl_status_write_json(s, d->cfg->runtime)) < 0 && !d->status_warned)
			pl_log_errno(LOG_WARNING, -r, "cannot write %s/status.json: %s",
				     d->cfg->runtime, strerror(-r));
		d->status_warned = r < 0;
	}
}

/*
 * status.json in a state of its own, outside the tick: "starting" once the
 * spool is ours and "running" before READY=1, so that pipelinectl status
 * never finds a live daemon without one; "stopped" when the daemon leaves,
 * so that the file left behind does not say "running".  Only a daemon
 * holding the spool's lock writes it: one refused the spool must not
 * overwrite the status of the one that has it.
 */
void daemon_write_status(struct daemon *d, const char *state)
{
	struct pl_status s;
	int r;

	daemon_snapshot(d, &s);
	s.state = state;
	if ((r = pl_status_write_json(&s, d->cfg->runtime)) < 0 && !d->status_warned)
		pl_log_errno(LOG_WARNING, -r, "cannot write %s/status.json: %s", d->cfg->runtime,
			     strerror(-r));
	d->status_warned = r < 0;
}

/* Has any stage made progress within the last `us`? */
static bool recent_progress(const struct pl_status *s, uint64_t us)
{
	uint64_t now = pl_now_us();

	for (size_t i = 0; i < s->nstages; i++)
		if (s->st[i].progress_us && now - s->st[i].progress_us < us)
			return true;
	return false;
}

/* sd-event timers are one-shot: set the next time and switch it on again. */
int daemon_rearm(sd_event_source *src, uint64_t when)
{
	int r = sd_event_source_set_time(src, when);

	return r < 0 ? r : sd_event_source_set_enabled(src, SD_EVENT_ON);
}

/* The bar, drawn under the log's lock, as wide as the terminal is now. */
void daemon_draw_bar(struct daemon *d)
{
	struct pl_status s;
	struct winsize ws;
	char text[256];

	daemon_snapshot(d, &s);
	pl_status_progress_bar(&s, text, sizeof text,
			       ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80);
	pl_log_bar(text);
}

/* A few frames a second, so the bar moves as soon as an item is done. */
int daemon_on_bar(sd_event_source *src, uint64_t usec, void *ud)
{
	daemon_draw_bar(ud);
	return daemon_rearm(src, usec + BAR_PERIOD_US);
}

int daemon_on_tick(sd_event_source *src, uint64_t usec, void *ud)
{
	struct daemon *d = ud;
	struct pl_status s;

	d->rate_hist[d->rate_pos] = atomic_load(&d->done) + atomic_load(&d->failed);
	d->rate_pos = (d->rate_pos + 1) % RATE_WINDOW;
	if (d->rate_n < RATE_WINDOW)
		d->rate_n++;
	if (d->stream)
		pl_stream_tick(d->stream);
	daemon_snapshot(d, &s);
	send_status(d, &s);
	daemon_publish_metrics(d, &s);
	if (!d->tty && d->opts->once && ++d->ticks % 10 == 0)
		pl_log(LOG_INFO, "progress: %s", d->last_status);
	/* a drain that still moves earns more time from systemd */
	if (atomic_load(&d->stopping) && recent_progress(&s, 90ULL * 1000000ULL))
		sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)EXTEND_USEC);
	return daemon_rearm(src, usec + 1000000ULL);
}

/*
 * How long one item may keep a worker before it counts as stuck: longer
 * than any item can take when the stage's own timeouts work.  What this
 * catches is a worker that never comes back (libvips 8.14 has a thread-exit
 * race that can leave a save waiting forever) while its siblings keep the
 * stage moving, which the progress check alone cannot see.
 */
void daemon_stuck_limits(struct daemon *d)
{
	const struct pl_config *c = d->cfg;
	double dl = c->download.connect_timeout + c->download.timeout;
	double up = (c->upload.connect_timeout + c->upload.timeout) * (double)c->resize.nvariants;

	d->stuck_us[ST_DOWNLOAD] = (uint64_t)((dl + 60.0) * 1e6);
	d->stuck_us[ST_RESIZE] = 120ULL * 1000000ULL;
	d->stuck_us[ST_UPLOAD] = (uint64_t)((up + 60.0) * 1e6);
#ifdef PL_TEST_HOOKS
	const char *test_s = getenv("PL_TEST_STUCK_S");

	for (size_t i = 0; test_s && *test_s && i < ST_COUNT; i++)
		d->stuck_us[i] = (uint64_t)(strtod(test_s, NULL) * 1e6);
#endif
}

struct stuck {
	size_t stage;
	uint64_t now, limit_us;
	bool named;		/* the line named the item */
};

/* The stuck item, named as every item's trouble is (job, item, URL).
 * Under the pool's lock (pl_pool_oldest_busy): the item's intake fields,
 * all pl_log_item reads, stay as they were fed. */
static void log_stuck(void *ud, const void *item, uint64_t since_us)
{
	struct stuck *k = ud;

	if (since_us >= k->now || k->now - since_us <= k->limit_us)	/* it came back since */
		return;
	k->named = true;
	pl_log_item(LOG_ERR, item, daemon_stage_names[k->stage], 0,
		    "stage %s: a worker has been on one item for %.0f s (limit %.0f s); "
		    "withholding the watchdog ping", daemon_stage_names[k->stage],
		    (double)(k->now - since_us) / 1e6, (double)k->limit_us / 1e6);
}

/* WATCHDOG=1 only if every stage that has work moved since the last ping,
 * and no worker is stuck on one item. */
int daemon_on_watchdog(sd_event_source *src, uint64_t usec, void *ud)
{
	struct daemon *d = ud;
	uint64_t period = 0, now = pl_now_us();
	bool healthy = true;

	sd_watchdog_enabled(0, &period);
	for (size_t i = 0; i < ST_COUNT; i++) {
		struct pl_stage_stats st;

		pl_pipeline_stats(d->pipe, i, &st);
		if (st.oldest_busy_us && now - st.oldest_busy_us > d->stuck_us[i]) {
			struct stuck k = { i, now, d->stuck_us[i], false };

			pl_pipeline_oldest_busy(d->pipe, i, log_stuck, &k);
			/* it came back since the stats were taken: still a worker
			 * that was stuck for longer than the limit */
			if (!k.named)
				pl_log(LOG_ERR, "stage %s: a worker has been on one item for %.0f s "
				       "(limit %.0f s); withholding the watchdog ping",
				       daemon_stage_names[i], (double)(now - st.oldest_busy_us) / 1e6,
				       (double)d->stuck_us[i] / 1e6);
			healthy = false;
		}
		bool has_work = st.busy || st.queued || st.delayed;
		if (has_work && st.progress_us == d->wd_progress[i] && d->wd_last_ping_us) {
			pl_log(LOG_WARNING, "stage %s made no progress for %.0f s with work waiting; "
			       "withholding the watchdog ping", daemon_stage_names[i],
			       (double)(pl_now_us() - d->wd_last_ping_us) / 1e6);
			healthy = false;
		}
		d->wd_progress[i] = st.progress_us;
	}
	if (healthy) {
		sd_notify(0, "WATCHDOG=1");
		d->wd_last_ping_us = pl_now_us();
	}
	return daemon_rearm(src, usec + (period ? period / 2 : 1000000ULL));
}

/*
 * daemon.c — the control plane (see daemon.h).
 *
 * Threads and who owns what:
 * - The main thread owns every libsystemd object: one sd-event loop with the
 *   signals (through signalfd: they are blocked in every thread before the
 *   first thread starts), a one-second status timer, the watchdog timer, an
 *   hourly sweep of tmp/ and an eventfd that says "the pipeline has drained".
 * - One feeder thread owns intake: it claims jobs and feeds their items,
 *   blocking on the pipeline's first queue, which is what makes a spool of a
 *   million items cost no more memory than one of ten.  When it stops
 *   feeding (stop signal, or --once with an empty spool) it runs the ordered
 *   drain itself and then writes the eventfd, so the main loop stays free to
 *   answer a second signal, the watchdog and systemd while items drain.
 * - Worker threads never touch sd-event: they record results in the spool
 *   (thread-safe) and bump atomic counters that the timers read.
 *
 * Stops: the first TERM/INT sets `stopping`; the feeder notices between
 * items, releases its job (a job not read to its end goes back to new/ at
 * exit and resumes there) and drains.  A second one also closes the first
 * queue and hands its items back to the spool (pl_pipeline_abort); what is
 * already inside a stage still finishes.  With the stream the first one
 * already hands the first queue back (a nak each), so that other daemons
 * start those items at once.
 *
 * This file sets up, runs the loop and answers the signals; the intake
 * threads are in daemon_feed.c, the status and watchdog timers in
 * daemon_status.c, the adaptive widths in daemon_adapt.c (daemon_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "adapt.h"
#include "config.h"
#include "daemon.h"
#include "daemon_int.h"
#include "download.h"
#include "http.h"
#include "item.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "resize.h"
#include "spool.h"
#include "status.h"
#include "stream.h"
#include "upload.h"

const char *const daemon_stage_names[ST_COUNT] = { "download", "resize", "upload" };

/* ---- configuration and stages ---- */

static void report_stderr(void *ud, const char *msg)
{
	(void)ud;
	fprintf(stderr, "%s\n", msg);
}

static void report_log(void *ud, const char *msg)
{
	(void)ud;
	pl_log(LOG_ERR, "%s", msg);
}

static void stages_free(struct stages *s)
{
	if (s->ctx[ST_DOWNLOAD])
		pl_download_free(s->ctx[ST_DOWNLOAD]);
	if (s->ctx[ST_RESIZE])
		pl_resize_free(s->ctx[ST_RESIZE]);
	if (s->ctx[ST_UPLOAD])
		pl_upload_free(s->ctx[ST_UPLOAD]);
	memset(s, 0, sizeof *s);
}

/* Global library set-up and the three stage contexts.  Each stage logs what
 * it refuses (an avif variant libvips cannot write, a bad credentials file). */
static int stages_new(const struct pl_config *cfg, const char *argv0, struct stages *s)
{
	int r;

	memset(s, 0, sizeof *s);
	if ((r = pl_http_global_init()) < 0 || (r = pl_resize_global_init(argv0)) < 0) {
		pl_log_errno(LOG_ERR, -r, "cannot initialise libcurl/libvips: %s", strerror(-r));
		return r;
	}
	if ((r = pl_download_new(cfg, &s->ctx[ST_DOWNLOAD])) < 0 ||
	    (r = pl_resize_new(cfg, &s->ctx[ST_RESIZE])) < 0 ||
	    (r = pl_upload_new(cfg, &s->ctx[ST_UPLOAD])) < 0) {
		stages_free(s);
		return r;
	}
	return 0;
}

static void globals_cleanup(void)
{
	pl_resize_global_cleanup();
	pl_http_global_cleanup();
}

int pl_daemon_check(const struct pl_daemon_opts *o)
{
	struct pl_config *cfg;
	struct stages s;
	int r;

	pl_log_open();
	r = pl_config_load(o->config, report_stderr, NULL, &cfg);
	if (r < 0)
		return PL_EXIT_CONFIG;
	r = stages_new(cfg, o->argv0, &s);
	if (r == 0)
		stages_free(&s);
	globals_cleanup();
	pl_config_free(cfg);
	if (r < 0)
		return r == -ENOMEM ? PL_EXIT_INTERNAL : PL_EXIT_CONFIG;
	printf("configuration OK\n");
	return PL_EXIT_OK;
}

/* ---- sinks: called from worker threads ---- */

/* An item that runs alone (see feed_alone in daemon_feed.c) waits for the
 * pipeline to be empty: wake it when an item leaves. */
static void left_pipeline(struct daemon *d)
{
	/* Counted before this look: see wait_idle for why no wake-up is lost. */
	if (!atomic_load(&d->idle_waiting))
		return;
	pthread_mutex_lock(&d->idle_lock);
	pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->idle_lock);
}

static void sink_done(void *ud, void *item)
{
	struct daemon *d = ud;
	struct pl_item *it = item;

	pl_log_item(LOG_DEBUG, it, NULL, 0, "done in %.0f ms",
		    (double)(pl_now_us() - it->fed_us) / 1000.0);
	it->intake->done(it);
	atomic_fetch_add(&d->done, 1);
	left_pipeline(d);
}

static void sink_failed(void *ud, void *item, int err, const char *why, const char *stage)
{
	struct daemon *d = ud;
	struct pl_item *it = item;

	pl_log_item(LOG_WARNING, it, stage, err, "failed in %s: %s", stage, why);
	it->intake->failed(it, err, why);
	atomic_fetch_add(&d->failed, 1);
	left_pipeline(d);
}

#ifdef PL_TEST_HOOKS
/*
 * Test builds only (cmake -DPL_TEST_HOOKS=ON, as scripts/test builds): with
 * PL_TEST_CRASH=TEXT in the environment, the download stage aborts the
 * daemon on any item whose source contains TEXT — the poison item of the
 * crash-loop tests, which no real input must ever be.  With PL_TEST_HANG=TEXT
 * the worker never comes back from such an item, as a worker lost in a
 * library would, while its siblings go on; PL_TEST_STUCK_S
 * (daemon_stuck_limits, in daemon_status.c) shortens the time before the
 * watchdog counts it as stuck.
 */
static int crash_hook_process(void *ctx, void *ws, void *item, char *why, size_t whylen)
{
	const char *poison = getenv("PL_TEST_CRASH"), *hang = getenv("PL_TEST_HANG");
	const struct pl_item *it = item;

	if (poison && *poison && strstr(it->source, poison))
		abort();
	while (hang && *hang && strstr(it->source, hang))
		pause();
	return pl_download_ops.process(ctx, ws, item, why, whylen);
}

static const struct pl_stage_ops *download_ops(void)
{
	static struct pl_stage_ops ops;		/* set once, before any worker */

	ops = pl_download_ops;
	ops.process = crash_hook_process;
	return &ops;
}
#else
static const struct pl_stage_ops *download_ops(void)
{
	return &pl_download_ops;
}
#endif

static int pipeline_new(struct daemon *d)
{
	const struct pl_stage_ops *const ops[ST_COUNT] = {
		download_ops(), &pl_resize_ops, &pl_upload_ops
	};
	const struct pl_stage_conf *sc[ST_COUNT] = {
		&d->cfg->download.stage, &d->cfg->resize.stage, &d->cfg->upload.stage
	};
	struct pl_stage_def defs[ST_COUNT];
	struct pl_pipeline_sinks sinks = { sink_done, sink_failed, d };

	for (int i = 0; i < ST_COUNT; i++)
		defs[i] = (struct pl_stage_def){ daemon_stage_names[i], sc[i]->workers, sc[i]->queue,
						 ops[i], d->stages.ctx[i] };
	return pl_pipeline_create(defs, ST_COUNT, &sinks, &d->pipe);
}

/* ---- signals ---- */

/* The items of the download queue, which no stage has started, go back to
 * their intake: the spool (their job resumes there) or the stream (a nak:
 * another daemon takes them now, not after AckWait).  The input is closed
 * from here on, so what the puller feeds later comes back to it instead. */
static size_t give_back(struct daemon *d)
{
	void *items[64];
	size_t n, back = 0;

	while ((n = pl_pipeline_abort(d->pipe, items, 64)) > 0) {
		for (size_t i = 0; i < n; i++) {
			struct pl_item *it = items[i];

			it->intake->requeue(it);
		}
		back += n;
	}
	return back;
}

/*
 * A graceful stop of a spool-only daemon drains the stages in order: every
 * item it read finishes.  With the stream, the items waiting in the
 * download queue are other daemons' work as much as ours, so the first
 * signal already gives them back and only what is inside a stage finishes.
 */
static void begin_stop(struct daemon *d, const char *signame)
{
	if (!atomic_load(&d->stopping)) {
		daemon_stop_intake(d);
		if (d->stream)
			pl_log(LOG_NOTICE, "%s: graceful stop: no new items; %zu queued items go back "
			       "to the stream; finishing the items inside the stages (send it again "
			       "for a fast stop)", signame, give_back(d));
		else
			pl_log(LOG_NOTICE, "%s: graceful stop: no new items; draining the stages in "
			       "order (send it again for a fast stop)", signame);
		sd_notify(0, "STOPPING=1");
		sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)EXTEND_USEC);
		return;
	}
	if (!atomic_exchange(&d->fast, true)) {
		size_t back;

		if (d->stream)
			pl_stream_stop(d->stream, true);
		back = give_back(d);
		pl_log(LOG_NOTICE, "%s: fast stop: %zu queued items go back to the %s; "
		       "finishing the items inside the stages", signame, back,
		       d->stream ? "stream" : "spool");
	}
}

static void reload(struct daemon *d)
{
	struct pl_config *n;
	unsigned widths[ST_COUNT];
	bool adaptive[ST_COUNT];

	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)pl_now_us());
	pl_log(LOG_NOTICE, "reloading %s", d->opts->config);
	if (pl_config_load(d->opts->config, report_log, NULL, &n) < 0) {
		pl_log(LOG_ERR, "reload rejected: keeping the old configuration");
		sd_notify(0, "READY=1");
		return;
	}
	widths[ST_DOWNLOAD] = n->download.stage.workers;
	widths[ST_RESIZE] = n->resize.stage.workers;
	widths[ST_UPLOAD] = n->upload.stage.workers;
	adaptive[ST_DOWNLOAD] = n->download.stage.workers_adaptive;
	adaptive[ST_RESIZE] = n->resize.stage.workers_adaptive;
	adaptive[ST_UPLOAD] = n->upload.stage.workers_adaptive;
	for (size_t i = 0; i < ST_COUNT; i++)
		if (!adaptive[i])
			daemon_set_width(d, i, widths[i]);
	daemon_adapt_configure(d, n);	/* adaptive ones keep their width, within the new bounds */
	for (size_t i = 0; i < ST_COUNT; i++)
		if (adaptive[i])
			widths[i] = d->adapt.st[i].width;
	if (!d->debug_toggled)
		pl_log_set_level(n->log_level);
	if (pl_config_restart_differs(d->cfg, n))
		pl_log(LOG_WARNING, "settings other than the stage widths and log_level changed; "
		       "they take effect at the next restart");
	pl_log(LOG_NOTICE, "reloaded: widths download %u%s, resize %u, upload %u%s",
	       widths[ST_DOWNLOAD], adaptive[ST_DOWNLOAD] ? " (adaptive)" : "",
	       widths[ST_RESIZE], widths[ST_UPLOAD], adaptive[ST_UPLOAD] ? " (adaptive)" : "");
	if (d->live != d->cfg)
		pl_config_free(d->live);
	d->live = n;
	sd_notify(0, "READY=1");
}

static void report(struct daemon *d)
{
	struct pl_status s;
	int r;

	daemon_snapshot(d, &s);
	pl_status_log_report(&s);
	r = pl_status_write_json(&s, d->cfg->runtime);
	if (r < 0)
		pl_log_errno(LOG_ERR, -r, "cannot write %s/status.json: %s", d->cfg->runtime,
			     strerror(-r));
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *ud)
{
	struct daemon *d = ud;

	(void)src;
	switch (si->ssi_signo) {
	case SIGTERM:
	case SIGINT:
		begin_stop(d, si->ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	case SIGHUP:
		reload(d);
		break;
	case SIGUSR1:
		report(d);
		break;
	case SIGUSR2:
		pl_log_set_level(d->debug_toggled ? d->live->log_level : LOG_DEBUG);
		d->debug_toggled = !d->debug_toggled;
		pl_log(LOG_NOTICE, "debug logging %s", d->debug_toggled ? "on" : "off");
		break;
	}
	return 0;
}

static int on_drained(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
	struct daemon *d = ud;
	uint64_t v;

	(void)revents;
	if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
		pl_log_errno(LOG_ERR, errno, "eventfd read: %m");
	(void)d;
	return sd_event_exit(sd_event_source_get_event(src), 0);
}

/*
 * What dead producers left in tmp/ goes at start and then every hour
 * (spooldir.c says what goes): a file is removed at most an hour after its
 * 36 hours are up, for one listing of tmp/ an hour, on the main thread
 * where nothing waits on it.  Only here: -t and pipelinectl never sweep.
 */
#define SWEEP_PERIOD_US (3600ULL * 1000000ULL)

/* The sweep's wall clock.  A file's ctime cannot be set back, so a test
 * build (PL_TEST_HOOKS) moves the clock on instead, by PL_TEST_SWEEP_AHEAD_S
 * seconds, to make what it planted old. */
static time_t sweep_clock(void)
{
	time_t now = time(NULL);
#ifdef PL_TEST_HOOKS
	const char *ahead = getenv("PL_TEST_SWEEP_AHEAD_S");

	if (ahead && *ahead)
		now += (time_t)strtoll(ahead, NULL, 10);
#endif
	return now;
}

static int on_sweep(sd_event_source *src, uint64_t usec, void *ud)
{
	struct daemon *d = ud;

	pl_spool_sweep_tmp(d->spool, sweep_clock());
	return daemon_rearm(src, usec + SWEEP_PERIOD_US);
}

/* ---- set-up and tear-down ---- */

/*
 * glibc gives every thread that allocates its own malloc arena (up to
 * 8 × cores), and libvips' large, short-lived buffers fragment them: RSS
 * grew ~13% from 10 to 10,000 jobs with the default and ~8% with two arenas
 * (bench/E2E.md), at no measurable cost in speed.  MALLOC_ARENA_MAX in the
 * environment still wins.  Before any thread starts.
 */
static void limit_arenas(void)
{
	if (!getenv("MALLOC_ARENA_MAX") && mallopt(M_ARENA_MAX, 2) != 1)
		pl_log(LOG_DEBUG, "mallopt(M_ARENA_MAX) refused");
}

static int block_signals(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
	sigset_t set;
	int r;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaddset(&set, sigs[i]);
	signal(SIGPIPE, SIG_IGN);
	r = pthread_sigmask(SIG_BLOCK, &set, NULL);
	return -r;
}

static int event_loop_new(struct daemon *d)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
	uint64_t now, period = 0;
	int r;

	if ((r = sd_event_default(&d->ev)) < 0)
		return r;
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		if ((r = sd_event_add_signal(d->ev, NULL, sigs[i], on_signal, d)) < 0)
			return r;
	if ((r = sd_event_add_io(d->ev, NULL, d->drained_fd, EPOLLIN, on_drained, d)) < 0)
		return r;
	sd_event_now(d->ev, CLOCK_MONOTONIC, &now);
	if ((r = sd_event_add_time(d->ev, NULL, CLOCK_MONOTONIC, now + 1000000ULL, 100000ULL,
				   daemon_on_tick, d)) < 0)
		return r;
	if (d->tty && (r = sd_event_add_time(d->ev, NULL, CLOCK_MONOTONIC, now, 50000ULL,
					     daemon_on_bar, d)) < 0)
		return r;
	/* to within 10 ms: a tick 50 ms late is one after a far source's first
	 * answers, which its width should not wait for */
	if ((r = sd_event_add_time(d->ev, NULL, CLOCK_MONOTONIC, now + PL_ADAPT_QUICK_US, 10000ULL,
				   daemon_on_adapt, d)) < 0)
		return r;
	if ((r = sd_event_add_time(d->ev, NULL, CLOCK_MONOTONIC, now + SWEEP_PERIOD_US,
				   60ULL * 1000000ULL, on_sweep, d)) < 0)
		return r;
	daemon_stuck_limits(d);
	if (sd_watchdog_enabled(0, &period) > 0 && period > 0) {
		r = sd_event_add_time(d->ev, NULL, CLOCK_MONOTONIC, now + period / 2, 0,
				      daemon_on_watchdog, d);
		if (r < 0)
			return r;
		pl_log(LOG_INFO, "watchdog every %.1f s", (double)period / 2e6);
	}
	return 0;
}

static void teardown(struct daemon *d)
{
	if (d->feeder_running)
		pthread_join(d->feeder, NULL);
	if (d->puller_running)
		pthread_join(d->puller, NULL);
	if (d->collector_running) {	/* after the drain: our own results too */
		atomic_store(&d->collector_stop, true);
		pthread_join(d->collector, NULL);
	}
	pl_metrics_stop(d->metrics);	/* it counts new/: before the spool goes */
	pl_pipeline_destroy(d->pipe);
	pl_stream_close(d->stream);
	if (d->spool)
		pl_spool_close(d->spool);
	stages_free(&d->stages);
	globals_cleanup();
	sd_event_unref(d->ev);
	if (d->drained_fd >= 0)
		close(d->drained_fd);
	if (d->wake_fd >= 0)
		close(d->wake_fd);
	if (d->live != d->cfg)
		pl_config_free(d->live);
	pl_config_free(d->cfg);
}

static int start(struct daemon *d)
{
	unsigned long pending = 0;
	int r;

	if ((r = pl_spool_open(d->cfg->spool, &d->spool)) < 0) {
		if (r != -EBUSY)	/* in use: the spool said by whom */
			pl_log_errno(LOG_ERR, -r, "cannot open the spool %s: %s", d->cfg->spool,
				     strerror(-r));
		return r;
	}
	daemon_write_status(d, "starting");
	if ((r = pl_spool_recover(d->spool)) < 0)
		return r;
	pl_spool_sweep_tmp(d->spool, sweep_clock());	/* logs its own trouble */
	if (d->opts->once && pl_spool_count_pending(d->spool, &pending) == 0)
		d->total = pending;
	if (*d->cfg->metrics.listen &&
	    (r = pl_metrics_start(d->cfg->metrics.listen, (unsigned)d->cfg->metrics.connections,
				  d->cfg->metrics.timeout, daemon_count_backlog, d, &d->metrics)) < 0)
		return r;
	if (d->cfg->stream.enabled) {
		pl_spool_set_remote(d->spool);
		if ((r = pl_stream_open(&d->cfg->stream, d->cfg->spool, &d->stream)) < 0)
			return r;
	}
	if ((r = pipeline_new(d)) < 0 || (r = pl_pipeline_start(d->pipe)) < 0) {
		pl_log_errno(LOG_ERR, -r, "cannot start the pipeline: %s", strerror(-r));
		return r;
	}
	daemon_adapt_init(d);
	if (d->metrics) {	/* a scrape before the first tick sees zeros, not nothing */
		struct pl_status s;

		daemon_snapshot(d, &s);
		daemon_publish_metrics(d, &s);
	}
	if ((r = event_loop_new(d)) < 0) {
		pl_log_errno(LOG_ERR, -r, "cannot set up the event loop: %s", strerror(-r));
		return r;
	}
	r = pthread_create(&d->feeder, NULL, daemon_feeder_main, d);
	if (r) {
		pl_log_errno(LOG_ERR, r, "cannot start the feeder: %s", strerror(r));
		return -r;
	}
	d->feeder_running = true;
	if (!d->stream)
		return 0;
	if ((r = pthread_create(&d->puller, NULL, daemon_puller_main, d)) == 0) {
		d->puller_running = true;
		r = pthread_create(&d->collector, NULL, daemon_collector_main, d);
		d->collector_running = r == 0;
	}
	if (r) {
		pl_log_errno(LOG_ERR, r, "cannot start the stream's threads: %s", strerror(r));
		daemon_stop_intake(d);
		return -r;
	}
	return 0;
}

int pl_daemon_run(const struct pl_daemon_opts *o)
{
	struct daemon d = { .opts = o, .drained_fd = -1, .wake_fd = -1,
			    .idle_lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER };
	int r, status = PL_EXIT_OK;

	pl_log_open();
	pl_pool_set_logger(pl_log);	/* the core's own lines, through our log */
	limit_arenas();
	if ((r = block_signals()) < 0)
		return PL_EXIT_INTERNAL;
	if (pl_config_load(o->config, report_log, NULL, &d.cfg) < 0)
		return PL_EXIT_CONFIG;
	d.live = d.cfg;
	pl_log_set_level(d.cfg->log_level);
	d.start_us = pl_now_us();
	d.tty = o->once && isatty(STDERR_FILENO);
	if (stages_new(d.cfg, o->argv0, &d.stages) < 0) {
		teardown(&d);
		return PL_EXIT_CONFIG;
	}
	d.drained_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d.drained_fd < 0 || d.wake_fd < 0 || (r = start(&d)) < 0) {
		if (d.spool)
			daemon_write_status(&d, "stopped");
		teardown(&d);
		return r == -EBUSY ? PL_EXIT_LOCKED : PL_EXIT_INTERNAL;
	}
	daemon_write_status(&d, "running");	/* before the log says so, and READY=1 */
	pl_log(LOG_INFO, "pipelined %s running: spool %s, widths download %u%s, resize %u, "
	       "upload %u%s%s", PL_VERSION, d.cfg->spool, d.cfg->download.stage.workers,
	       d.cfg->download.stage.workers_adaptive ? " (adaptive)" : "",
	       d.cfg->resize.stage.workers, d.cfg->upload.stage.workers,
	       d.cfg->upload.stage.workers_adaptive ? " (adaptive)" : "",
	       o->once ? ", until the spool is drained" : "");
	sd_notify(0, "READY=1\nSTATUS=running");

	r = sd_event_loop(d.ev);
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "event loop: %s", strerror(-r));
		status = PL_EXIT_INTERNAL;
	}
	if (d.tty) {
		daemon_draw_bar(&d);
		pl_log_bar_end();
	}
	{
		double secs = (double)(pl_now_us() - d.start_us) / 1e6;
		uint64_t done = atomic_load(&d.done), failed = atomic_load(&d.failed);
		pl_log(LOG_NOTICE, "%llu items in %.1f s: %llu ok, %llu failed (%.1f items/s)",
		       (unsigned long long)(done + failed), secs, (unsigned long long)done,
		       (unsigned long long)failed, secs > 0 ? (double)(done + failed) / secs : 0.0);
		unsigned long rejected = pl_spool_rejected(d.spool);

		if (rejected)
			pl_log(LOG_WARNING, "%lu entr%s of new/ %s not a job; moved to failed/ with a "
			       "reason in NAME.result", rejected, rejected == 1 ? "y" : "ies",
			       rejected == 1 ? "was" : "were");
		uint64_t remote_failed = atomic_load(&d.remote_failed);

		if (d.stream)
			pl_log(LOG_NOTICE, "our jobs' items through the stream: %llu ok, %llu failed",
			       (unsigned long long)atomic_load(&d.remote_ok),
			       (unsigned long long)remote_failed);
		if (o->once && ((d.stream ? remote_failed : failed) || rejected) && status == PL_EXIT_OK)
			status = PL_EXIT_FAILED_ITEMS;
	}
	daemon_write_status(&d, "stopped");	/* while the lock is ours: see daemon_write_status */
	teardown(&d);
	return status;
}

/*
 * daemon_int.h — what the files of the daemon's control plane share, and
 * nothing main() sees (that is daemon.h): daemon.c sets up, runs the event
 * loop and answers signals, daemon_feed.c feeds the pipeline from the spool
 * and the stream, daemon_status.c says how it goes (STATUS=, status.json,
 * the metrics, the bar, the watchdog), daemon_adapt.c sizes the stages.
 * One `struct daemon` runs through all of them, so it is declared once
 * here; its names are daemon_ rather than a module's pl_, being private.
 */
#ifndef PL_DAEMON_INT_H
#define PL_DAEMON_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "adapt.h"

struct pl_config;
struct pl_daemon_opts;
struct pl_metrics;
struct pl_pipeline;
struct pl_spool;
struct pl_status;
struct pl_stream;

enum { ST_DOWNLOAD, ST_RESIZE, ST_UPLOAD, ST_COUNT };
extern const char *const daemon_stage_names[ST_COUNT];	/* "download", … */

#define RATE_WINDOW 10		/* seconds of history behind items/s */
#define EXTEND_USEC (30ULL * 1000000ULL)

struct stages {
	void *ctx[ST_COUNT];
};

struct daemon {
	const struct pl_daemon_opts *opts;
	struct pl_config *cfg;		/* the one the stages were built from */
	struct pl_config *live;		/* the latest accepted (widths, log level) */
	struct stages stages;
	struct pl_spool *spool;
	struct pl_stream *stream;	/* NULL without a stream group */
	struct pl_metrics *metrics;	/* NULL without a metrics group */
	struct pl_pipeline *pipe;

	sd_event *ev;
	int drained_fd;			/* eventfd: feeder finished the drain */
	int wake_fd;			/* eventfd: wake the feeder (stop) */
	pthread_t feeder;
	bool feeder_running;
	/* With the stream: the puller feeds the pipeline from the stream (the
	 * feeder then publishes the spool's items), the collector writes
	 * the results of our jobs that come back. */
	pthread_t puller, collector;
	bool puller_running, collector_running;
	atomic_bool collector_stop;
	atomic_uint_fast64_t remote_ok, remote_failed;	/* results of our jobs */

	atomic_bool stopping, fast;
	atomic_uint_fast64_t done, failed;
	uint64_t fed;			/* items fed to the pipeline (feeder only) */
	pthread_mutex_t idle_lock;	/* an item running alone waits on idle */
	pthread_cond_t idle;		/* done + failed reached `fed`, or a stop */
	atomic_bool idle_waiting;	/* the feeder waits on `idle` */
	uint64_t total;			/* --once: items waiting at start */
	uint64_t start_us;
	bool debug_toggled;		/* SIGUSR2 turned debug on */
	bool tty;			/* --once progress bar */

	uint64_t rate_hist[RATE_WINDOW];	/* done+failed at each of the last seconds */
	unsigned rate_pos, rate_n;
	char last_status[1024];
	bool status_warned;	/* writing status.json failed, said once */
	unsigned long ticks;
	uint64_t wd_last_ping_us;
	uint64_t wd_progress[ST_COUNT];
	uint64_t stuck_us[ST_COUNT];	/* one item longer than this is stuck */
	struct pl_adapt adapt;		/* the adaptive widths (main thread) */
	unsigned adapt_noted[ST_COUNT];	/* width last logged at notice level */
};

/* daemon_feed.c: the intake threads (pthread start routines, arg is the
 * struct daemon) and the stop of all intake, from a signal or the feeder. */
void *daemon_feeder_main(void *arg);
void *daemon_puller_main(void *arg);
void *daemon_collector_main(void *arg);
void daemon_stop_intake(struct daemon *d);

/* daemon_adapt.c: the adaptive widths, from the configuration c (at start
 * and on reload) and on their own timer, eight times a second (adapt.c
 * says why).  Main thread only. */
void daemon_adapt_init(struct daemon *d);
/* Stage i to width w, an error logged (a stopping stage's -ESHUTDOWN is
 * none); false if it did not move. */
bool daemon_set_width(struct daemon *d, size_t i, unsigned w);
void daemon_adapt_configure(struct daemon *d, const struct pl_config *c);
int daemon_on_adapt(sd_event_source *src, uint64_t usec, void *ud);

/* daemon_status.c: the main thread's readers.  The on_ ones are sd-event
 * timer callbacks (ud is the struct daemon); write_status writes
 * status.json in a state of its own, outside the tick. */
void daemon_snapshot(struct daemon *d, struct pl_status *s);
void daemon_publish_metrics(struct daemon *d, const struct pl_status *s);
int daemon_count_backlog(void *ud, unsigned long *jobs, unsigned long *items);
void daemon_write_status(struct daemon *d, const char *state);
void daemon_draw_bar(struct daemon *d);
int daemon_on_bar(sd_event_source *src, uint64_t usec, void *ud);
int daemon_on_tick(sd_event_source *src, uint64_t usec, void *ud);
int daemon_rearm(sd_event_source *src, uint64_t when);
void daemon_stuck_limits(struct daemon *d);
int daemon_on_watchdog(sd_event_source *src, uint64_t usec, void *ud);

#endif

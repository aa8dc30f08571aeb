/*
 * status.h — what the daemon says about its progress: the one-line STATUS=
 * for systemd, the SIGUSR1 report and RUNTIME/status.json, and the --once
 * progress bar.  All of them render one snapshot, so they never disagree.
 */
#ifndef PL_STATUS_H
#define PL_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pool.h"
#include "stream.h"

#define PL_STATUS_STAGES_MAX 8

struct pl_status {
	size_t nstages;
	const char *names[PL_STATUS_STAGES_MAX];
	struct pl_stage_stats st[PL_STATUS_STAGES_MAX];
	uint64_t done, failed;		/* items recorded, totals */
	uint64_t total;			/* items known to be waiting at start (--once), 0 = unknown */
	double rate;			/* items/s, recent */
	double uptime_s;
	const char *state;		/* "starting", "running", "reloading", "stopping",
					 * "stopping fast", "stopped" */
	bool has_stream;		/* the stream intake is on: */
	struct pl_stream_stats stream;
	uint64_t remote_ok, remote_failed;	/* results of our jobs that came back */
};

/* "142 done, 3 failed, 41.2 items/s · download 3/3 busy q12 · …" */
void pl_status_line(const struct pl_status *s, char *buf, size_t len);
/* One log line per stage plus totals, at LOG_INFO. */
void pl_status_log_report(const struct pl_status *s);
/* DIR/status.json, written to a temporary file and renamed: 0 or -errno. */
int  pl_status_write_json(const struct pl_status *s, const char *dir);
/* "[#####.....] 123/1000 …" for a terminal this many columns wide, cut to
 * fit one line of it (drawn by pl_log_bar). */
void pl_status_progress_bar(const struct pl_status *s, char *buf, size_t len, int columns);

#endif

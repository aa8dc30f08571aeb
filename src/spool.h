/*
 * spool.h — job intake and results, Maildir style.
 *
 *   SPOOL/tmp  producers write here, then rename into new/ (what a dead
 *              producer left is removed after 36 hours: the sweep)
 *   SPOOL/new  waiting jobs (discovered by inotify, rescanned at start and
 *              after an inotify overflow)
 *   SPOOL/cur  claimed jobs, with their growing JOB.result beside them
 *   SPOOL/done, SPOOL/failed   finished jobs, each next to JOB.result
 *
 * A job is read lazily, one item at a time, as fast as the pipeline takes
 * items, so a huge spool costs no memory.  Result records are appended to
 * cur/JOB.result as items finish; a job re-claimed after a crash or a stop
 * skips the lines already recorded, so nothing is lost and nothing repeated.
 */
#ifndef PL_SPOOL_H
#define PL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Names on disk that producers and pipelinectl(1) rely on. */
#define PL_SPOOL_RESULT_SUFFIX ".result"	/* JOB.result beside JOB */
#define PL_SPOOL_LOCK_NAME "pipelined.lock"	/* in the spool: the holder's pid */
/* The folders, in the order a job moves through them. */
enum { PL_SPOOL_TMP, PL_SPOOL_NEW, PL_SPOOL_CUR, PL_SPOOL_DONE, PL_SPOOL_FAILED,
       PL_SPOOL_FOLDERS };
extern const char *const pl_spool_folder_names[PL_SPOOL_FOLDERS];	/* "tmp", … */

struct pl_item;
struct pl_job;
struct pl_spool;

/* Create the five folders if needed, lock the spool for this process and
 * start watching new/.  -EBUSY (logged, with the holder's pid) when another
 * daemon holds the spool. */
int  pl_spool_open(const char *dir, struct pl_spool **out);
/* At start: move every job left in cur/ back to new/. Returns how many. */
int  pl_spool_recover(struct pl_spool *s);
/* Remove the files of tmp/ that producers abandoned (untouched for 36 h by
 * the wall clock `now`; spooldir.h says which), each one logged.  Only the
 * daemon that holds the spool calls it: at start and now and then after.
 * How many went, or -errno. */
int  pl_spool_sweep_tmp(struct pl_spool *s, time_t now);
/* How many files the sweeps removed since the spool was opened. */
unsigned long pl_spool_tmp_removed(const struct pl_spool *s);
/* fd that becomes readable when new/ may hold something new (inotify). */
int  pl_spool_fd(const struct pl_spool *s);
/* Consume pending inotify events; flags a rescan on overflow. */
void pl_spool_handle_events(struct pl_spool *s);
/* Claim the oldest job of new/ into cur/: 0, or -EAGAIN when none waits. */
int  pl_spool_claim(struct pl_spool *s, struct pl_job **job);
/*
 * Next item of a claimed job, skipping lines already recorded.  0 and *item
 * set, or -ENODATA at the end of the file.  A line that does not parse comes
 * back as an item with *bad set to a reason (valid until the next call):
 * record it with pl_spool_item_failed() without feeding it.  So does a good
 * line that crashed the daemon too often to run again (crashguard.h); one
 * with item->alone set must run alone (pl_spool_item_alone).  -EINTR after
 * pl_spool_interrupt.
 */
int  pl_spool_next_item(struct pl_job *job, struct pl_item **item, const char **bad);
/* Items-left count of the jobs waiting in new/ (for --once progress). */
int  pl_spool_count_pending(struct pl_spool *s, unsigned long *items);
/* The same pass, also counting the jobs (the metrics' spool backlog).  It
 * reads every waiting job: call it where a slow answer harms nobody. */
int  pl_spool_count_waiting(struct pl_spool *s, unsigned long *jobs, unsigned long *items);
/* Jobs this daemon moved to done/ and to failed/ since it opened the spool.
 * Safe from any thread. */
void pl_spool_jobs_finished(struct pl_spool *s, unsigned long *done, unsigned long *failed);
/* A stop: reading and counting give up soon (-EINTR), however big the file.
 * Safe from any thread. */
void pl_spool_interrupt(struct pl_spool *s);
/* How many entries of new/ were moved to failed/ as not jobs at all. */
unsigned long pl_spool_rejected(const struct pl_spool *s);
/*
 * An item with it->alone set may have crashed the daemon before: the caller
 * runs it with nothing else in the pipeline and calls this first, which
 * puts it on disk as the suspect (see crashguard.h).  0 or -errno (the item
 * still runs; a crash is then only not pinned on it).
 */
int  pl_spool_item_alone(struct pl_item *it);

/* Record an item's outcome and free it.  Thread-safe (called from workers).
 * When the job is read to its end and its last item is recorded, the job and
 * its result move to done/ or failed/. */
void pl_spool_item_done(struct pl_item *it);
void pl_spool_item_failed(struct pl_item *it, int err, const char *why);
/* Fast stop: the item never entered a stage; free it, its job stays open. */
void pl_spool_item_requeue(struct pl_item *it);
/* The feeder stops reading this job (stop): it finishes when its items have
 * left the pipeline only if it was read to its end. */
void pl_spool_job_release(struct pl_job *job);

/* The spool intake's outcomes (item.h), set on every item it hands out. */
extern const struct pl_intake pl_spool_intake;

/*
 * With the stream (stream.h), a job's items run wherever there is room:
 * the feeder publishes each and calls pl_spool_item_sent, which keeps the
 * job open until pl_spool_record_remote brings the line's record back
 * (thread-safe).  That returns 0 (recorded, or a copy of one recorded),
 * -EAGAIN when the job waits in new/ to be claimed again, -ENOENT when
 * this spool has no such job, -EINVAL (logged, with why) for a line that
 * is not one of the job's items, -EAGAIN too for a line the feeder has
 * not read yet (the result of an earlier run's item).
 * Call pl_spool_set_remote before the first claim.
 */
void pl_spool_set_remote(struct pl_spool *s);
void pl_spool_item_sent(struct pl_item *it);
int  pl_spool_record_remote(struct pl_spool *s, const char *job, unsigned long line, bool ok,
			    const char *rec, size_t len);
uint64_t pl_spool_job_id(const struct pl_item *it);	/* stable across restarts */
unsigned long pl_spool_open_jobs(struct pl_spool *s);	/* claimed, not yet gone */

/* At exit: every job still in cur/ goes back to new/ (its partial result
 * stays, so a later run skips what is recorded).  Then free everything. */
void pl_spool_close(struct pl_spool *s);

#endif

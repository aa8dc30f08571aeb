/*
 * spool.c — see spool.h.  Jobs come in through a Maildir-like folder and
 * their results go out beside them.  What a job line means is jobline.c's
 * business, what a result record looks like record.c's, the folders, their
 * modes and the lock spooldir.c's, finding names in new/ spoolscan.c's,
 * counting what waits spoolcount.c's, and what the crash guard says of a
 * job's lines jobguard.c's: here is the life of a job, in the order it is
 * lived.
 *
 * The life of a job:
 *
 *   new/JOB ──claim──> cur/JOB, with cur/JOB.result and cur/.JOB.guard
 *     open     the spool is locked and its folders made; jobs a crash left
 *              in cur/ go back to new/ (recover).
 *     claim    the oldest name of new/ that is a job moves to cur/; the
 *              feeder now holds it (one reference).
 *     resume   lines an earlier run recorded are skipped; lines the crash
 *              guard suspects run alone, one that crashed the daemon too
 *              often fails unrun (jobguard.c).
 *     read     each item handed out holds one more reference, until it is
 *              recorded (or requeued at a fast stop).
 *     settle   when the last reference goes (items recorded, feeder done):
 *                closed                          -> freed (it is in new/);
 *                read to its end, all recorded   -> JOB and JOB.result
 *                                                   to done/ or failed/;
 *                otherwise (a stop)              -> parked in cur/.
 *     release  the feeder lets go: its reference goes.
 *     close    every job not on its way out goes back to new/ (closed);
 *              a parked one is freed there and then, one with items still
 *              out by whoever records the last of them.
 *
 * So a job's state is four fields under its lock: refs, eof, incomplete
 * and closed.  A job with no reference left is on its way out (and owned
 * by whoever dropped the last one) unless it is parked: neither closed nor
 * complete.
 *
 * Why it is built this way:
 *  - A job is read one line at a time, as the pipeline takes items.  What
 *    a job remembers is small: a bitmap of line numbers already recorded
 *    (from a previous run) and a set of 64-bit hashes of the names handed
 *    out, to keep derived names unique.
 *  - Results are appended to cur/JOB.result with one write() per record
 *    (O_APPEND), under the job's mutex, so records from concurrent workers
 *    never interleave, and a crash leaves at most one torn last line, which
 *    the next claim cuts off.  Because recorded lines are skipped on resume
 *    but still parsed, derived names come out the same in every run.
 *  - Finishing renames the result first and the job second: a crash in
 *    between leaves the job in cur/ without its result, and it is simply
 *    run again (outputs are idempotent).
 *  - Locking: the spool mutex guards the scan list and the list of open
 *    jobs; a job mutex guards its counters, flags and result fd.  The only
 *    nesting is spool → job (in pl_spool_close).  An object is freed by
 *    whoever drops its last reference: a job as above, the spool when it
 *    was closed and no job is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "item.h"
#include "jobguard.h"
#include "jobline.h"
#include "linemap.h"
#include "log.h"
#include "nameset.h"
#include "record.h"
#include "spool.h"
#include "spoolcount.h"
#include "spooldir.h"
#include "spoolscan.h"

#define RESULT_SUFFIX PL_SPOOL_RESULT_SUFFIX
#define INTERRUPT_EVERY PL_SPOOLDIR_STOP_EVERY

enum { D_TMP = PL_SPOOL_TMP, D_NEW = PL_SPOOL_NEW, D_CUR = PL_SPOOL_CUR, D_DONE = PL_SPOOL_DONE,
       D_FAILED = PL_SPOOL_FAILED, D_COUNT = PL_SPOOL_FOLDERS };

struct pl_spool {
	struct pl_spooldir dir;	/* the folders and the lock (spooldir.h) */
	struct pl_spoolscan scan;	/* new/'s names (spoolscan.h); its list under lock */
	struct pl_spoolcount *count;	/* what waits in new/, as last counted */
	atomic_bool interrupted;/* a stop: long reads give up */
	atomic_ulong rejected;	/* entries of new/ moved to failed/ */
	atomic_ulong tmp_removed;	/* abandoned files of tmp/ removed */
	atomic_ulong jobs_done, jobs_failed;	/* moved to done/, failed/ */

	pthread_mutex_t lock;	/* everything below */
	struct pl_job *jobs;	/* claimed and not yet freed */
	struct pl_nameset warned;	/* dot-files of new/ already logged */
	bool closed;
	bool remote;		/* items go out on the stream (pl_spool_set_remote) */
};

struct pl_job {
	struct pl_spool *spool;
	struct pl_job *next;
	char *name;

	/* Used by the feeder only (next_item is not called concurrently). */
	FILE *in;
	char *buf;		/* PL_JOBLINE_MAX + 2 */
	unsigned long lineno;
	unsigned long unread;	/* bytes read since the last look at a stop */
	struct pl_jobguard guard;	/* lines that run alone or fail unrun */
	uint64_t *recorded;	/* bitmap by line number, NULL if none; for a
				 * remote job also this run's, under lock */
	unsigned long nbits;
	struct pl_nameset names;
	uint64_t id;		/* inode and mtime: names its stream messages */

	pthread_mutex_t lock;	/* everything below */
	int resfd;
	unsigned long ok, failed;	/* records in JOB.result, earlier runs' too */
	unsigned long refs;	/* the feeder's until it releases, one per item out */
	bool eof;		/* the feeder read it to its end */
	bool incomplete;	/* an item was requeued or could not be recorded */
	bool closed;		/* pl_spool_close moved it back to new/ */
	/* A remote job: lines out on the stream, each holding a reference
	 * until its result comes back (pl_spool_record_remote). */
	uint64_t *sent;		/* bitmap by line number, nbits long */
	unsigned long sent_out;
	/* The lines the feeder has read that are items (bitmap), and how far
	 * it has read: a result is taken only for a line that is an item. */
	uint64_t *items;
	unsigned long read_to;
};

/* Freeing comes last, where a job's and the spool's lives end. */
static void job_free(struct pl_job *j);
static void spool_free(struct pl_spool *s);

/* ---- small helpers -------------------------------------------------- */

static bool line_recorded(const struct pl_job *j, unsigned long line)
{
	return pl_linemap_test(j->recorded, j->nbits, line);
}

/* ---- open: the lock and the folders (spooldir.c) -------------------- */

int pl_spool_open(const char *dir, struct pl_spool **out)
{
	struct pl_spool *s = calloc(1, sizeof *s);
	int r;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	pl_spoolscan_init(&s->scan);
	atomic_init(&s->interrupted, false);
	atomic_init(&s->rejected, 0);
	atomic_init(&s->tmp_removed, 0);
	if ((r = -pthread_mutex_init(&s->lock, NULL)) < 0) {
		free(s);
		return r;
	}
	if ((r = pl_spooldir_open(&s->dir, dir)) < 0 || (r = pl_spoolcount_new(&s->count)) < 0) {
		spool_free(s);
		return r;
	}
	if ((r = pl_spoolscan_watch(&s->scan, &s->dir)) < 0) {
		spool_free(s);
		return r;
	}
	*out = s;
	return 0;
}

/* ---- recover: what a crash left in cur/ (spooldir.c) ---------------- */

int pl_spool_recover(struct pl_spool *s)
{
	int r = pl_spooldir_recover(&s->dir);

	if (r >= 0)
		pl_spoolscan_again(&s->scan);
	return r;
}

/* ---- sweep: what dead producers left in tmp/ (spooldir.c) ---------- */

int pl_spool_sweep_tmp(struct pl_spool *s, time_t now)
{
	int r = pl_spooldir_sweep_tmp(&s->dir, now);

	if (r > 0)
		atomic_fetch_add(&s->tmp_removed, (unsigned long)r);
	return r;
}

unsigned long pl_spool_tmp_removed(const struct pl_spool *s)
{
	return atomic_load(&s->tmp_removed);
}

/* ---- watch new/ (spoolscan.c), count what waits (spoolcount.c) ----- */

int pl_spool_fd(const struct pl_spool *s)
{
	return s->scan.ifd;
}

void pl_spool_handle_events(struct pl_spool *s)
{
	pl_spoolscan_handle_events(&s->scan, &s->dir);
}

int pl_spool_count_pending(struct pl_spool *s, unsigned long *items)
{
	unsigned long jobs;

	return pl_spool_count_waiting(s, &jobs, items);
}

int pl_spool_count_waiting(struct pl_spool *s, unsigned long *jobs, unsigned long *items)
{
	return pl_spoolcount_waiting(&s->dir, s->count, &s->interrupted, jobs, items);
}

unsigned long pl_spool_rejected(const struct pl_spool *s)
{
	return atomic_load(&s->rejected);
}

void pl_spool_jobs_finished(struct pl_spool *s, unsigned long *done, unsigned long *failed)
{
	*done = atomic_load(&s->jobs_done);
	*failed = atomic_load(&s->jobs_failed);
}

/* ---- claim: new/ -> cur/ -------------------------------------------- */

/* A name of new/ (or, after a swap, cur/) that is not a job: counted, and
 * moved out of the way (spooldir.c). */
static void reject_to_failed(struct pl_spool *s, int from, const char *name, const char *why)
{
	atomic_fetch_add(&s->rejected, 1);
	pl_spooldir_reject(&s->dir, from, name, why);
}

/* Dot-files are what tools such as rsync write while a file is on its way
 * in: left alone (a later rename makes them a job), and said once. */
static void note_dotfile(struct pl_spool *s, const char *name)
{
	if (pl_nameset_add(&s->warned, name) == 1)
		pl_log(LOG_WARNING, "spool %s: new/%s starts with a dot, so it is not a job; "
		       "left where it is", s->dir.path, name);
}

/* Opens the job just moved into cur/ and resumes it: in the next section. */
static int job_open(struct pl_spool *s, const char *name, struct pl_job **out,
		    const char **why, char *whybuf, size_t whylen);

static int claim_one(struct pl_spool *s, const char *name, struct pl_job **job)
{
	char whybuf[96];
	const char *why;
	struct stat st;
	int r;

	if (name[0] == '.') {
		note_dotfile(s, name);
		return -EAGAIN;
	}
	if (pl_spooldir_is_result(name)) {
		reject_to_failed(s, D_NEW, name, "ends in \"" RESULT_SUFFIX "\" and would collide "
				 "with a result file");
		return -EAGAIN;
	}
	if (strlen(name) + strlen(RESULT_SUFFIX) > NAME_MAX) {
		reject_to_failed(s, D_NEW, name, "has a name too long for its result file");
		return -EAGAIN;
	}
	if (fstatat(s->dir.dfd[D_NEW], name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -EAGAIN;		/* gone: someone else took it */
	if ((why = pl_spooldir_not_a_job(&st, whybuf, sizeof whybuf))) {
		reject_to_failed(s, D_NEW, name, why);
		return -EAGAIN;
	}
	r = pl_spooldir_move(&s->dir, D_NEW, D_CUR, name);
	if (r == -ENOENT)
		return -EAGAIN;		/* someone else took it */
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot claim new/%s: %s", s->dir.path, name, strerror(-r));
		return r == -ENOMEM ? r : -EAGAIN;
	}
	r = job_open(s, name, job, &why, whybuf, sizeof whybuf);
	if (r == -EINVAL && why) {
		reject_to_failed(s, D_CUR, name, why);
		return -EAGAIN;
	}
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot open job cur/%s (left in cur/): %s",
			     s->dir.path, name, strerror(-r));
		return r == -ENOMEM ? r : -EAGAIN;
	}
	(*job)->next = s->jobs;
	s->jobs = *job;
	pl_log(LOG_INFO, "job %s claimed", name);
	return 0;
}

int pl_spool_claim(struct pl_spool *s, struct pl_job **job)
{
	int r = -EAGAIN, err = 0;
	char *name;

	*job = NULL;
	pthread_mutex_lock(&s->lock);
	while (r == -EAGAIN && !s->closed && (name = pl_spoolscan_next(&s->scan, &s->dir, &err)))
		r = claim_one(s, name, job);
	if (r == -EAGAIN && err == -ENOMEM)
		r = -ENOMEM;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- resume: open the claimed job, take back what earlier runs left - */

/* One record of an existing result: mark its line number and count it. */
static void resume_record(void *arg, unsigned long line, bool ok)
{
	struct pl_job *j = arg;

	if (line == 0 || line >= j->nbits || line_recorded(j, line))
		return;
	pl_linemap_set(j->recorded, line, true);
	if (ok)
		j->ok++;
	else
		j->failed++;
}

/*
 * Read what a previous run recorded.  Line numbers cannot exceed the job
 * file's size, which bounds the bitmap whatever the result file says.  A
 * torn last line (crash mid-write) is cut off so that appends stay valid.
 */
static int resume_read(struct pl_job *j, off_t jobsize)
{
	struct stat st;
	off_t good;
	int r;

	if (fstat(j->resfd, &st) < 0)
		return -errno;
	if (st.st_size == 0)
		return 0;
	j->nbits = (unsigned long)jobsize + 2;
	j->recorded = pl_linemap_new(j->nbits);
	if (!j->recorded)
		return -ENOMEM;
	if ((r = pl_record_read_file(j->resfd, resume_record, j, &good)) < 0)
		return r;
	if (good < st.st_size) {
		pl_log(LOG_WARNING, "job %s: cutting a torn last record off cur/%s%s",
		       j->name, j->name, RESULT_SUFFIX);
		if (ftruncate(j->resfd, good) < 0)
			r = -errno;
	}
	return r;
}

/* Open what the job file says of earlier runs: its result, and its crash
 * guard.  A guard about another file of the same name is started afresh. */
static int job_open_state(struct pl_job *j, const struct stat *st)
{
	struct pl_spool *s = j->spool;
	char resname[NAME_MAX + 1];
	struct stat rs;
	int r;

	snprintf(resname, sizeof resname, "%s%s", j->name, RESULT_SUFFIX);
	j->resfd = openat(s->dir.dfd[D_CUR], resname,
			  O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
	if (j->resfd < 0 || fstat(j->resfd, &rs) < 0)
		return -errno;
	if (!S_ISREG(rs.st_mode))
		return -EBADF;
	if ((r = resume_read(j, st->st_size)) < 0)
		return r;
	if ((r = pl_jobguard_open(&j->guard, s->dir.dfd[D_CUR], j->name, (uint64_t)st->st_ino,
				  j->recorded, j->nbits)) < 0)
		return r;
	/* The inode alone is not enough: a job name used again at once may get
	 * the inode just freed, and the server would drop its items as
	 * duplicates of the old job's (for its two-minute window).  Its mtime
	 * (kept by the renames new/ -> cur/ -> new/ of a restart) tells them
	 * apart. */
	j->id = (uint64_t)st->st_ino ^ ((uint64_t)st->st_mtim.tv_sec * 1000000000u +
					(uint64_t)st->st_mtim.tv_nsec) * 0x9e3779b97f4a7c15u;
	if (!s->remote)
		return 0;
	/* results may come back in any order and more than once */
	j->nbits = (unsigned long)st->st_size + 2;
	if (!j->recorded && !(j->recorded = pl_linemap_new(j->nbits)))
		return -ENOMEM;
	if (!(j->sent = pl_linemap_new(j->nbits)) ||
	    !(j->items = pl_linemap_new(j->nbits)))
		return -ENOMEM;
	return 0;
}

/* Open a job just moved into cur/.  -EINVAL with *why set when what was
 * moved is not a file that can be a job (it may have been swapped after the
 * checks in new/: this is the check that counts). */
static int job_open(struct pl_spool *s, const char *name, struct pl_job **out,
		    const char **why, char *whybuf, size_t whylen)
{
	struct pl_job *j = calloc(1, sizeof *j);
	struct stat st;
	int fd, r;

	*why = NULL;
	if (!j)
		return -ENOMEM;
	j->resfd = -1;
	j->spool = s;
	j->refs = 1;		/* the feeder's, until pl_spool_job_release */
	if ((r = -pthread_mutex_init(&j->lock, NULL)) < 0) {
		free(j);
		return r;
	}
	if (!(j->name = strdup(name)) || !(j->buf = malloc(PL_JOBLINE_MAX + 2))) {
		job_free(j);
		return -ENOMEM;
	}
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	fd = openat(s->dir.dfd[D_CUR], name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP)
		*why = "is a symbolic link, not a regular file";
	else if (fd >= 0 && fstat(fd, &st) == 0)
		*why = pl_spooldir_not_a_job(&st, whybuf, whylen);
	if (fd < 0 || *why || !(j->in = fdopen(fd, "r"))) {
		r = *why ? -EINVAL : -errno;
		if (fd >= 0)
			close(fd);
		job_free(j);
		return r;
	}
	if ((r = job_open_state(j, &st)) < 0) {
		job_free(j);
		return r;
	}
	*out = j;
	return 0;
}

/* ---- read: one item at a time --------------------------------------- */

/* One line into j->buf without its "\n" (pl_jobline_judge drops a "\r").
 * Keeps one byte more than allowed so that "too long" is known; the rest is
 * skipped. */
static int read_line(struct pl_job *j, size_t *len, bool *toolong)
{
	size_t n = 0;
	bool any = false;
	int c;

	*toolong = false;
	while ((c = getc_unlocked(j->in)) != EOF) {
		/* a huge file (one endless line, say) must not hold a stop up */
		if (++j->unread >= INTERRUPT_EVERY) {
			j->unread = 0;
			if (atomic_load(&j->spool->interrupted))
				return -EINTR;
		}
		any = true;
		if (c == '\n')
			break;
		if (n <= PL_JOBLINE_MAX)
			j->buf[n++] = (char)c;
		else
			*toolong = true;
	}
	if (ferror(j->in))
		return -EIO;
	if (!any)
		return -ENODATA;
	*len = n;
	return 0;
}

static int make_item(struct pl_job *j, const char *source, const char *name,
		     struct pl_item **out)
{
	struct pl_item *it = pl_item_new();

	if (!it)
		return -ENOMEM;
	it->intake = &pl_spool_intake;
	it->job = j;
	it->job_name = j->name;
	it->line = j->lineno;
	it->source = strdup(source);
	it->name = name ? strdup(name) : NULL;
	if (!it->source || (name && !it->name)) {
		pl_item_free(it);
		return -ENOMEM;
	}
	it->fed_us = pl_now_us();
	pthread_mutex_lock(&j->lock);
	j->refs++;
	pthread_mutex_unlock(&j->lock);
	*out = it;
	return 0;
}

int pl_spool_next_item(struct pl_job *j, struct pl_item **item, const char **bad)
{
	char quoted[PL_JOBLINE_QUOTE_MAX + 1], name[PL_JOBLINE_NAME_MAX + 1];

	*item = NULL;
	*bad = NULL;
	for (;;) {
		char *src = NULL;
		const char *why = NULL;
		bool toolong;
		size_t len;
		int r = read_line(j, &len, &toolong);

		if (r == -ENODATA) {
			pthread_mutex_lock(&j->lock);
			j->read_to = j->lineno;
			j->eof = true;
			pthread_mutex_unlock(&j->lock);
			return r;
		}
		if (r == -EINTR)
			return r;	/* a stop: nothing wrong with the job */
		if (r < 0) {
			pl_log_errno(LOG_ERR, -r, "job %s: reading line %lu: %s", j->name,
				     j->lineno + 1, strerror(-r));
			return r;
		}
		j->lineno++;
		r = pl_jobline_judge(j->buf, len, toolong, &j->names, &src, name, quoted, &why);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		pthread_mutex_lock(&j->lock);	/* remote results mark it too */
		bool recorded = line_recorded(j, j->lineno);
		if (j->items && j->lineno < j->nbits) {
			pl_linemap_set(j->items, j->lineno, true);
			j->read_to = j->lineno;
		}
		pthread_mutex_unlock(&j->lock);
		if (recorded)
			continue;
		if ((r = make_item(j, why ? quoted : src, why ? NULL : name, item)) < 0)
			return r;
		if (!why)	/* a good line, but maybe one that must not run */
			why = pl_jobguard_condemned(&j->guard, j->lineno);
		if (!why && !j->spool->remote)	/* remote: the stream guards it */
			(*item)->alone = pl_jobguard_item(&j->guard, j->lineno);
		*bad = why;
		return 0;
	}
}

int pl_spool_item_alone(struct pl_item *it)
{
	return it->job ? pl_jobguard_suspect(&it->job->guard, it->line) : 0;
}

/* ---- settle: an item's outcome, and the end of a job ---------------- */

enum settle { KEEP, FINISH, DROP };

/* Read to its end and every item recorded: it can go to done/ or failed/. */
static bool complete(const struct pl_job *j)
{
	return j->eof && !j->incomplete;
}

/* Drop one reference, under j->lock, and say what the caller must do now.
 * Only the caller that drops the last one ever gets FINISH or DROP, and
 * the job is then its own: pl_spool_close leaves it alone (see the top). */
static enum settle unref_locked(struct pl_job *j)
{
	if (--j->refs > 0)
		return KEEP;
	if (j->closed)
		return DROP;
	return complete(j) ? FINISH : KEEP;	/* KEEP: parked until pl_spool_close */
}

static void finish_files(struct pl_job *j)
{
	struct pl_spool *s = j->spool;
	bool failed = j->failed > 0;
	int dest = s->dir.dfd[failed ? D_FAILED : D_DONE];
	char resname[NAME_MAX + 1];

	snprintf(resname, sizeof resname, "%s%s", j->name, RESULT_SUFFIX);
	if (fsync(j->resfd) < 0)
		pl_log_errno(LOG_WARNING, errno, "job %s: fsync of its result: %s", j->name,
			     strerror(errno));
	/* Result first: a crash after it leaves the job in cur/ to run again. */
	if (renameat(s->dir.dfd[D_CUR], resname, dest, resname) < 0 ||
	    renameat(s->dir.dfd[D_CUR], j->name, dest, j->name) < 0) {
		pl_log_errno(LOG_ERR, errno, "job %s: cannot move it to %s/: %s", j->name,
			     failed ? "failed" : "done", strerror(errno));
		return;
	}
	fsync(s->dir.dfd[D_CUR]);
	fsync(dest);
	atomic_fetch_add(failed ? &s->jobs_failed : &s->jobs_done, 1);
	pl_jobguard_close(&j->guard, true);
	pl_log(LOG_INFO, "job %s finished: %lu ok, %lu failed; moved to %s/", j->name, j->ok,
	       j->failed, failed ? "failed" : "done");
}

/* The job leaves the spool's list and memory; the last one out after
 * pl_spool_close frees the spool. */
static void job_leave(struct pl_job *j, enum settle how)
{
	struct pl_spool *s = j->spool;
	bool free_spool;

	if (how == KEEP)
		return;
	if (how == FINISH)
		finish_files(j);
	pthread_mutex_lock(&s->lock);
	for (struct pl_job **p = &s->jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	free_spool = s->closed && !s->jobs;
	pthread_mutex_unlock(&s->lock);
	job_free(j);
	if (free_spool)
		spool_free(s);
}

static void record(struct pl_item *it, bool ok, const char *error)
{
	struct pl_job *j = it->job;
	uint64_t now = pl_now_us();
	unsigned long long ms = now > it->fed_us ? (now - it->fed_us) / 1000 : 0;
	char *rec = pl_record_format(it, ok, error, ms), fallback[PL_RECORD_OOM_SIZE];
	enum settle how;
	int r;

	if (!rec) {	/* still record the line, so that it is not lost */
		pl_record_format_oom(fallback, it->line, ms);
		ok = false;
	}
	pthread_mutex_lock(&j->lock);
	r = pl_fdio_write_all(j->resfd, rec ? rec : fallback, strlen(rec ? rec : fallback));
	if (r < 0) {
		j->incomplete = true;	/* unrecorded: the job must run again */
		/* logged under the lock: once it is dropped, another worker may
		 * finish the job and free it */
		pl_log_item(LOG_ERR, it, NULL, -r, "cannot record the result in cur/%s%s: %s",
			    j->name, RESULT_SUFFIX, strerror(-r));
	}
	else if (ok)
		j->ok++;
	else
		j->failed++;
	how = unref_locked(j);
	pthread_mutex_unlock(&j->lock);

	free(rec);
	pl_item_free(it);
	job_leave(j, how);
}

void pl_spool_item_done(struct pl_item *it)
{
	if (!it || !it->job) {
		pl_item_free(it);
		return;
	}
	record(it, true, NULL);
}

void pl_spool_item_failed(struct pl_item *it, int err, const char *why)
{
	const char *desc = err ? strerrordesc_np(err > 0 ? err : -err) : NULL;

	if (!it || !it->job) {
		pl_item_free(it);
		return;
	}
	record(it, false, why ? why : desc ? desc : "failed");
}

void pl_spool_item_requeue(struct pl_item *it)
{
	struct pl_job *j;
	enum settle how;

	if (!it || !it->job) {
		pl_item_free(it);
		return;
	}
	j = it->job;
	pl_item_free(it);
	pthread_mutex_lock(&j->lock);
	j->incomplete = true;
	how = unref_locked(j);
	pthread_mutex_unlock(&j->lock);
	job_leave(j, how);
}

const struct pl_intake pl_spool_intake = {
	.done = pl_spool_item_done,
	.failed = pl_spool_item_failed,
	.requeue = pl_spool_item_requeue,
	.alone = pl_spool_item_alone,
};

/* ---- remote: items out on the stream, results back from it ---------- */

void pl_spool_set_remote(struct pl_spool *s)
{
	s->remote = true;
}

uint64_t pl_spool_job_id(const struct pl_item *it)
{
	return it->job ? it->job->id : 0;
}

void pl_spool_item_sent(struct pl_item *it)
{
	struct pl_job *j = it->job;
	enum settle how = KEEP;

	pthread_mutex_lock(&j->lock);
	if (line_recorded(j, it->line)) {
		how = unref_locked(j);	/* its result beat us to it */
	} else {
		pl_linemap_set(j->sent, it->line, true);
		j->sent_out++;		/* the item's reference waits for the result */
	}
	pthread_mutex_unlock(&j->lock);
	pl_item_free(it);
	job_leave(j, how);
}

/* The open (not closed) job of that name; its lock taken.  Under s->lock. */
static struct pl_job *find_open_locked(struct pl_spool *s, const char *name)
{
	for (struct pl_job *j = s->jobs; j; j = j->next) {
		if (strcmp(j->name, name) != 0)
			continue;
		pthread_mutex_lock(&j->lock);
		if (!j->closed && j->sent)
			return j;
		pthread_mutex_unlock(&j->lock);
	}
	return NULL;
}

int pl_spool_record_remote(struct pl_spool *s, const char *job, unsigned long line, bool ok,
			   const char *rec, size_t len)
{
	enum settle how = KEEP;
	struct pl_job *j;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	j = find_open_locked(s, job);
	pthread_mutex_unlock(&s->lock);
	if (!j) {	/* waiting in new/ (a restart) comes back; anything else not */
		return strchr(job, '/') || faccessat(s->dir.dfd[D_NEW], job, F_OK, AT_SYMLINK_NOFOLLOW) < 0
		       ? -ENOENT : -EAGAIN;
	}
	if (!len || rec[len - 1] != '\n') {
		pthread_mutex_unlock(&j->lock);
		return -EINVAL;
	}
	/* Only a line that is one of the job's items gets a record: whoever
	 * sent this one, JOB.result must not say more than the job does.  A
	 * line past where the feeder has read may be an item of an earlier run
	 * of this job, whose result came back first: asked again later. */
	if (line == 0 || line >= j->nbits || !pl_linemap_test(j->items, j->nbits, line)) {
		bool later = !j->eof && line > j->read_to && line < j->nbits;
		unsigned long read_to = j->read_to;

		pthread_mutex_unlock(&j->lock);
		if (later)
			return -EAGAIN;
		if (line == 0)
			pl_log(LOG_WARNING, "job %s: a result for line 0 rejected: lines count from 1",
			       job);
		else if (line >= j->nbits)
			pl_log(LOG_WARNING, "job %s: a result for line %lu rejected: the job file is "
			       "too short to have that line", job, line);
		else if (line > read_to)
			pl_log(LOG_WARNING, "job %s: a result for line %lu rejected: the job has %lu "
			       "line%s", job, line, read_to, read_to == 1 ? "" : "s");
		else
			pl_log(LOG_WARNING, "job %s: a result for line %lu rejected: that line is "
			       "blank or a comment, not an item", job, line);
		return -EINVAL;
	}
	if (!line_recorded(j, line)) {
		r = pl_fdio_write_all(j->resfd, rec, len);
		if (r < 0) {
			j->incomplete = true;
			pl_log_errno(LOG_ERR, -r, "job %s: cannot record line %lu in cur/%s%s: %s",
				     j->name, line, j->name, RESULT_SUFFIX, strerror(-r));
		} else {
			pl_linemap_set(j->recorded, line, true);
			if (ok)
				j->ok++;
			else
				j->failed++;
		}
	}
	if (pl_linemap_test(j->sent, j->nbits, line)) {	/* a second copy of a result only once */
		pl_linemap_set(j->sent, line, false);
		j->sent_out--;
		how = unref_locked(j);
	}
	pthread_mutex_unlock(&j->lock);
	job_leave(j, how);
	return r;
}

unsigned long pl_spool_open_jobs(struct pl_spool *s)
{
	unsigned long n = 0;

	pthread_mutex_lock(&s->lock);
	for (struct pl_job *j = s->jobs; j; j = j->next)
		n++;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- release: the feeder lets go ------------------------------------ */

void pl_spool_job_release(struct pl_job *j)
{
	enum settle how;

	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	how = unref_locked(j);
	pthread_mutex_unlock(&j->lock);
	job_leave(j, how);
}

/* ---- close: a stop, and every job back to new/ ---------------------- */

void pl_spool_interrupt(struct pl_spool *s)
{
	atomic_store(&s->interrupted, true);
}

void pl_spool_close(struct pl_spool *s)
{
	struct pl_job *drop = NULL, **p;
	bool free_now;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	for (p = &s->jobs; *p;) {
		struct pl_job *j = *p;
		enum settle how = KEEP;

		pthread_mutex_lock(&j->lock);
		if (j->refs > 0 || !complete(j)) {	/* not on its way to done/ or failed/ */
			int r;

			j->closed = true;
			fdatasync(j->resfd);
			pl_jobguard_settle(&j->guard, j->lineno, j->recorded, j->nbits);
			r = pl_spooldir_move(&s->dir, D_CUR, D_NEW, j->name);
			if (r < 0)
				pl_log_errno(LOG_ERR, -r, "job %s: cannot move it back to new/ "
					     "(recovered at the next start): %s", j->name, strerror(-r));
			else
				pl_log(LOG_INFO, "job %s: unfinished, back to new/", j->name);
			j->refs -= j->sent_out;	/* their results find it in new/ */
			j->sent_out = 0;
			if (j->refs == 0)
				how = DROP;	/* parked: no one else will come for it */
		}
		pthread_mutex_unlock(&j->lock);
		if (how == DROP) {
			*p = j->next;
			j->next = drop;
			drop = j;
		} else {
			p = &j->next;
		}
	}
	s->closed = true;
	free_now = !s->jobs;
	pl_spoolscan_stop(&s->scan);
	pthread_mutex_unlock(&s->lock);

	while (drop) {
		struct pl_job *j = drop;
		drop = j->next;
		job_free(j);
	}
	if (free_now)
		spool_free(s);
}

/* ---- free ----------------------------------------------------------- */

static void job_free(struct pl_job *j)
{
	if (j->in)
		fclose(j->in);
	if (j->resfd >= 0)
		close(j->resfd);
	pl_jobguard_close(&j->guard, false);
	free(j->sent);
	free(j->items);
	pthread_mutex_destroy(&j->lock);
	free(j->recorded);
	pl_nameset_free(&j->names);
	free(j->buf);
	free(j->name);
	free(j);
}

static void spool_free(struct pl_spool *s)
{
	pl_spooldir_close(&s->dir);
	pl_spoolscan_free(&s->scan);
	pl_spoolcount_free(s->count);
	pl_nameset_free(&s->warned);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

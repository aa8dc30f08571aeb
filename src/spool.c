/*
 * spool.c — see spool.h.  Jobs come in through a Maildir-like folder and
 * their results go out beside them; this file is the only one that touches
 * the spool on disk.  What a job line means is jobline.c's business, what
 * a result record looks like record.c's: here are the folders, the lock,
 * and the life of a job, in the order it is lived.
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
 *              often fails unrun (guard_judge).
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
 *  - Discovery: inotify only says "new/ changed"; the names themselves come
 *    from a sorted readdir that is redone only when the list of the last
 *    scan is used up and something changed since (or inotify overflowed).
 *    A spool with a million waiting jobs therefore costs one scan, not one
 *    per claim.
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crashguard.h"
#include "fdio.h"
#include "item.h"
#include "jobline.h"
#include "log.h"
#include "nameset.h"
#include "record.h"
#include "spool.h"

#define RESULT_SUFFIX PL_SPOOL_RESULT_SUFFIX
#define LOCK_NAME PL_SPOOL_LOCK_NAME	/* one daemon per spool */
#define GUARD_SUFFIX ".guard"		/* cur/.JOB.guard: see crashguard.h */
/* How far ahead of the item being handed out the crash guard's mark is
 * raised: one fdatasync per this many lines, and at most this many
 * never-started lines run alone after a crash. */
#define MARK_STEP 32
#define INTERRUPT_EVERY 65536	/* bytes read between looks at a stop */

enum { D_TMP = PL_SPOOL_TMP, D_NEW = PL_SPOOL_NEW, D_CUR = PL_SPOOL_CUR, D_DONE = PL_SPOOL_DONE,
       D_FAILED = PL_SPOOL_FAILED, D_COUNT = PL_SPOOL_FOLDERS };
const char *const pl_spool_folder_names[PL_SPOOL_FOLDERS] = { "tmp", "new", "cur", "done", "failed" };

struct pl_spool {
	char *dir;
	int dfd[D_COUNT];
	int ifd;		/* inotify on new/ */
	int lockfd;		/* LOCK_NAME, flock'ed for the spool's life */
	atomic_bool rescan;	/* new/ may hold names the list lacks */
	atomic_bool interrupted;/* a stop: long reads give up */
	atomic_ulong rejected;	/* entries of new/ moved to failed/ */
	atomic_ulong jobs_done, jobs_failed;	/* moved to done/, failed/ */

	pthread_mutex_t lock;	/* everything below */
	char **names;		/* sorted names of the last scan of new/ */
	size_t nnames, next;
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
	/* The crash guard (crashguard.h): lines up to `alone_end` were maybe
	 * inside the pipeline when the daemon last died, so they run alone;
	 * `condemned` crashed it PL_CRASHGUARD_LIMIT times and fails unrun. */
	struct pl_crashguard *guard;
	struct pl_crashguard_state gs;
	unsigned long alone_end, condemned;
	char condemned_why[64];
	uint64_t *recorded;	/* bitmap by line number, NULL if none; for a
				 * remote job also this run's, under lock */
	unsigned long nbits;
	struct pl_nameset names;
	uint64_t id;		/* the job file's inode: names its stream messages */

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

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Move without overwriting: a same-named job already there must not be
 * lost.  Falls back to a check + rename where renameat2 is unsupported. */
static int move_noreplace(int from, int to, const char *name)
{
	if (renameat2(from, name, to, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (faccessat(to, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(from, name, to, name) < 0 ? -errno : 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void pl_spool_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* What each name is gets decided where it is used, from the file itself:
 * a type seen here could change before then. */
int pl_spool_list_names(int dfd, char ***out, size_t *count)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	int r = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((errno = 0, e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap) {
			char **bigger = realloc(names, (cap ? cap * 2 : 16) * sizeof *names);
			if (!bigger) {
				r = -ENOMEM;
				break;
			}
			names = bigger;
			cap = cap ? cap * 2 : 16;
		}
		if (!(names[n] = strdup(e->d_name))) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	if (r < 0) {
		pl_spool_names_free(names, n);
		return r;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_names);
	*out = names;
	*count = n;
	return 0;
}

static int list_dir(struct pl_spool *s, int which, char ***out, size_t *count)
{
	return pl_spool_list_names(s->dfd[which], out, count);
}

static bool line_recorded(const struct pl_job *j, unsigned long line)
{
	return j->recorded && line < j->nbits && (j->recorded[line / 64] >> (line % 64) & 1);
}

/* ---- open: the lock and the folders --------------------------------- */

/*
 * One daemon per spool: a second one would move the first one's job from
 * cur/ back to new/ and run it again.  The lock is an flock on a file in the
 * spool, held through an fd for as long as the spool is open, so it goes
 * with the process however that ends.  The file holds the holder's pid,
 * for the message the next one prints.  -EBUSY when another holds it.
 */
static int lock_spool(struct pl_spool *s)
{
	char pid[32] = "";
	ssize_t n;
	int dfd, r;

	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	s->lockfd = openat(dfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			   0640);
	r = s->lockfd < 0 ? -errno : 0;
	close(dfd);
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot open %s: %s", s->dir, LOCK_NAME,
			     strerror(-r));
		return r;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) == 0) {
		/* readable by the spool's group: pipelinectl status reads the pid */
		fchmod(s->lockfd, 0640);
		n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
		if (ftruncate(s->lockfd, 0) < 0 || pwrite(s->lockfd, pid, (size_t)n, 0) != n)
			pl_log_errno(LOG_WARNING, errno, "spool %s: cannot write %s: %m", s->dir,
				     LOCK_NAME);
		return 0;
	}
	r = errno;
	if (r != EWOULDBLOCK) {
		pl_log_errno(LOG_ERR, r, "spool %s: cannot lock %s: %s", s->dir, LOCK_NAME,
			     strerror(r));
		return -r;
	}
	n = pread(s->lockfd, pid, sizeof pid - 1, 0);
	pid[n > 0 ? n : 0] = '\0';
	pid[strcspn(pid, "\n")] = '\0';
	pl_log(LOG_ERR, "spool %s is in use by another pipelined%s%s%s; one daemon runs per spool",
	       s->dir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
	return -EBUSY;
}

/*
 * The modes that let producers in the spool's group submit and read
 * results and keep everyone else out (pipelinectl(1), PERMISSIONS): tmp/
 * and new/ writable by the group, sticky so that a producer cannot rename
 * or remove another's job; the rest readable by the group.  Set at every
 * open, not only at creation, so that a spool made under an older unit or
 * umask is brought in line.  No set-group-ID bit: the shipped unit forbids
 * it (RestrictSUIDSGID=); pipelinectl gives each job the group instead.
 */
static const mode_t folder_modes[D_COUNT] = { 01770, 01770, 0750, 0750, 0750 };
#define SPOOL_MODE 0750

static void set_mode(int fd, mode_t mode, const char *dir, const char *sub)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && (st.st_mode & 07777) == mode)
		return;
	if (fchmod(fd, mode) < 0)
		pl_log_errno(LOG_WARNING, errno, "spool %s: cannot set mode %04o on %s%s: %m "
			     "(producers in its group may be kept out)", dir, (unsigned)mode,
			     *sub ? sub : ".", *sub ? "/" : "");
}

static int open_subdirs(struct pl_spool *s)
{
	char path[4096];
	int r;

	if (mkdir(s->dir, 0750) < 0 && errno != EEXIST) {
		r = -errno;
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot create it: %s", s->dir, strerror(-r));
		return r;
	}
	if ((r = lock_spool(s)) < 0)
		return r;
	if ((r = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		set_mode(r, SPOOL_MODE, s->dir, "");
		close(r);
	}
	for (int i = 0; i < D_COUNT; i++) {
		if (snprintf(path, sizeof path, "%s/%s", s->dir, pl_spool_folder_names[i]) >= (int)sizeof path)
			return -ENAMETOOLONG;
		if (mkdir(path, 0750) < 0 && errno != EEXIST) {
			int r = -errno;
			pl_log_errno(LOG_ERR, -r, "spool: cannot create %s: %s", path, strerror(-r));
			return r;
		}
		s->dfd[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->dfd[i] < 0) {
			int r = -errno;
			pl_log_errno(LOG_ERR, -r, "spool: cannot open %s: %s", path, strerror(-r));
			return r;
		}
		set_mode(s->dfd[i], folder_modes[i], s->dir, pl_spool_folder_names[i]);
	}
	return 0;
}

int pl_spool_open(const char *dir, struct pl_spool **out)
{
	struct pl_spool *s = calloc(1, sizeof *s);
	char path[4096];
	int r;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	for (int i = 0; i < D_COUNT; i++)
		s->dfd[i] = -1;
	s->ifd = s->lockfd = -1;
	atomic_init(&s->rescan, true);
	atomic_init(&s->interrupted, false);
	atomic_init(&s->rejected, 0);
	if ((r = -pthread_mutex_init(&s->lock, NULL)) < 0) {
		free(s);
		return r;
	}
	if (!(s->dir = strdup(dir))) {
		spool_free(s);
		return -ENOMEM;
	}
	if ((r = open_subdirs(s)) < 0) {
		spool_free(s);
		return r;
	}
	s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	snprintf(path, sizeof path, "%s/new", dir);
	if (s->ifd < 0 || inotify_add_watch(s->ifd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		r = -errno;
		pl_log_errno(LOG_ERR, -r, "spool: cannot watch %s: %s", path, strerror(-r));
		spool_free(s);
		return r;
	}
	*out = s;
	return 0;
}

/* ---- recover: what a crash left in cur/ ----------------------------- */

/* The guard of a job that is in neither cur/ nor new/ (someone removed it
 * after a crash) is of no use; the id it holds keeps it from ever applying
 * to another job of the same name, so this is only tidying. */
static void drop_stale_guard(struct pl_spool *s, const char *name)
{
	size_t n = strlen(name), k = strlen(GUARD_SUFFIX);
	char job[NAME_MAX + 1];

	if (n <= k + 1 || !has_suffix(name, GUARD_SUFFIX))
		return;
	snprintf(job, sizeof job, "%.*s", (int)(n - k - 1), name + 1);
	if (faccessat(s->dfd[D_CUR], job, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
	    faccessat(s->dfd[D_NEW], job, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		unlinkat(s->dfd[D_CUR], name, 0);
}

int pl_spool_recover(struct pl_spool *s)
{
	char **names;
	size_t n;
	int r = list_dir(s, D_CUR, &names, &n), moved = 0;

	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot read cur/: %s", s->dir, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (names[i][0] == '.') {
			drop_stale_guard(s, names[i]);
			continue;
		}
		if (has_suffix(names[i], RESULT_SUFFIX))
			continue;
		r = move_noreplace(s->dfd[D_CUR], s->dfd[D_NEW], names[i]);
		if (r < 0)
			pl_log_errno(LOG_ERR, -r, "spool %s: cannot move cur/%s back to new/: %s",
				     s->dir, names[i], strerror(-r));
		else
			moved++;
	}
	pl_spool_names_free(names, n);
	if (moved)
		fsync(s->dfd[D_NEW]);
	atomic_store(&s->rescan, true);
	pl_log(moved ? LOG_NOTICE : LOG_INFO, "spool %s: %d interrupted job%s moved from cur/ back to new/",
	       s->dir, moved, moved == 1 ? "" : "s");
	return moved;
}

/* ---- watch new/, count what waits ----------------------------------- */

int pl_spool_fd(const struct pl_spool *s)
{
	return s->ifd;
}

void pl_spool_handle_events(struct pl_spool *s)
{
	/* Which event it was does not matter (overflow included): the names
	 * come from the next scan anyway. */
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(s->ifd, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			pl_log_errno(LOG_WARNING, errno, "spool %s: reading inotify: %s",
				     s->dir, strerror(errno));
		if (n != 0)
			atomic_store(&s->rescan, true);
		if (n <= 0)
			return;
	}
}

/* Item lines (not blank, not comment) of one job file. */
static unsigned long count_items(struct pl_spool *s, FILE *f)
{
	unsigned long n = 0, unread = 0;
	bool start = true;
	int c;

	while ((c = getc_unlocked(f)) != EOF) {
		if (++unread % INTERRUPT_EVERY == 0 && atomic_load(&s->interrupted))
			break;
		if (c == '\n') {
			start = true;
		} else if (start && !pl_jobline_space((char)c)) {
			start = false;
			n += c != '#';
		}
	}
	return n;
}

FILE *pl_spool_open_regular(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	FILE *f;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	if (!(f = fdopen(fd, "r")))
		close(fd);
	return f;
}

static unsigned long count_lines_at(int dfd, const char *name)
{
	FILE *f = pl_spool_open_regular(dfd, name);
	unsigned long n = 0;
	int c;

	if (!f)
		return 0;
	while ((c = getc_unlocked(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

int pl_spool_count_pending(struct pl_spool *s, unsigned long *items)
{
	unsigned long jobs;

	return pl_spool_count_waiting(s, &jobs, items);
}

int pl_spool_count_waiting(struct pl_spool *s, unsigned long *jobs, unsigned long *items)
{
	char resname[NAME_MAX + 1], **names;
	size_t n;
	int r = list_dir(s, D_NEW, &names, &n);

	*jobs = *items = 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && !atomic_load(&s->interrupted); i++) {
		unsigned long lines, done = 0;
		FILE *f;

		if (names[i][0] == '.' || has_suffix(names[i], RESULT_SUFFIX) ||
		    !(f = pl_spool_open_regular(s->dfd[D_NEW], names[i])))
			continue;
		lines = count_items(s, f);
		fclose(f);
		++*jobs;
		/* A job resumed later skips what it already recorded. */
		if (snprintf(resname, sizeof resname, "%s%s", names[i], RESULT_SUFFIX) <
		    (int)sizeof resname)
			done = count_lines_at(s->dfd[D_CUR], resname);
		*items += lines > done ? lines - done : 0;
	}
	pl_spool_names_free(names, n);
	return 0;
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

/* Why the file behind st cannot be a job; NULL if it can.  A hard link is
 * refused because it may be a second name of a file the producer could not
 * read itself, whose lines would then be quoted back in the result. */
static const char *not_a_job(const struct stat *st, char *buf, size_t len)
{
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		break;
	case S_IFLNK:
		return "is a symbolic link, not a regular file";
	case S_IFDIR:
		return "is a directory, not a regular file";
	case S_IFIFO:
		return "is a FIFO, not a regular file";
	case S_IFSOCK:
		return "is a socket, not a regular file";
	default:
		return "is a device, not a regular file";
	}
	if (st->st_nlink > 1) {
		snprintf(buf, len, "has %lu hard links, and a job must be a file of its own",
			 (unsigned long)st->st_nlink);
		return buf;
	}
	return NULL;
}

/* Write failed/NAME.result for something in new/ that never was a job, so
 * that the operator finds the reason beside it, not only in the log. */
static void reject_record(struct pl_spool *s, const char *name, const char *why)
{
	struct pl_item it = { .line = 0 };
	char resname[NAME_MAX + 1], *rec;
	int fd;

	if (snprintf(resname, sizeof resname, "%s%s", name, RESULT_SUFFIX) >= (int)sizeof resname)
		return;
	if (!(rec = pl_record_format(&it, false, why, 0)))
		return;
	fd = openat(s->dfd[D_FAILED], resname,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
	if (fd < 0 || pl_fdio_write_all(fd, rec, strlen(rec)) < 0)
		pl_log_errno(LOG_ERR, errno, "spool %s: cannot write failed/%s: %m", s->dir, resname);
	if (fd >= 0)
		close(fd);
	free(rec);
}

/* A name in new/ (or, after a swap, cur/) that can never be a job: out of
 * the way into failed/, with a reason in the log and in NAME.result.
 * Renaming moves a symbolic link itself, never what it points to. */
static void reject_to_failed(struct pl_spool *s, int from, const char *name, const char *why)
{
	const char *dir = pl_spool_folder_names[from];

	atomic_fetch_add(&s->rejected, 1);
	if (renameat(s->dfd[from], name, s->dfd[D_FAILED], name) < 0) {
		if (errno != ENOENT)
			pl_log_errno(LOG_ERR, errno, "spool %s: %s/%s %s, and cannot be moved to "
				     "failed/: %m", s->dir, dir, name, why);
		return;
	}
	pl_log(LOG_WARNING, "spool %s: %s/%s %s; moved to failed/", s->dir, dir, name, why);
	reject_record(s, name, why);
}

/* Dot-files are what tools such as rsync write while a file is on its way
 * in: left alone (a later rename makes them a job), and said once. */
static void note_dotfile(struct pl_spool *s, const char *name)
{
	if (pl_nameset_add(&s->warned, name) == 1)
		pl_log(LOG_WARNING, "spool %s: new/%s starts with a dot, so it is not a job; "
		       "left where it is", s->dir, name);
}

/* Next name from the list, rescanning new/ only when the list is used up
 * and new/ changed since.  NULL when nothing waits.  Under s->lock. */
static char *next_name(struct pl_spool *s, int *err)
{
	*err = 0;
	if (s->next == s->nnames) {
		pl_spool_names_free(s->names, s->nnames);
		s->names = NULL;
		s->nnames = s->next = 0;
		if (!atomic_exchange(&s->rescan, false))
			return NULL;
		*err = list_dir(s, D_NEW, &s->names, &s->nnames);
		if (*err < 0) {
			atomic_store(&s->rescan, true);
			pl_log_errno(LOG_ERR, -*err, "spool %s: cannot read new/: %s",
				     s->dir, strerror(-*err));
			return NULL;
		}
		if (s->nnames == 0)
			return NULL;
	}
	return s->names[s->next++];
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
	if (has_suffix(name, RESULT_SUFFIX)) {
		reject_to_failed(s, D_NEW, name, "ends in \"" RESULT_SUFFIX "\" and would collide "
				 "with a result file");
		return -EAGAIN;
	}
	if (strlen(name) + strlen(RESULT_SUFFIX) > NAME_MAX) {
		reject_to_failed(s, D_NEW, name, "has a name too long for its result file");
		return -EAGAIN;
	}
	if (fstatat(s->dfd[D_NEW], name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -EAGAIN;		/* gone: someone else took it */
	if ((why = not_a_job(&st, whybuf, sizeof whybuf))) {
		reject_to_failed(s, D_NEW, name, why);
		return -EAGAIN;
	}
	r = move_noreplace(s->dfd[D_NEW], s->dfd[D_CUR], name);
	if (r == -ENOENT)
		return -EAGAIN;		/* someone else took it */
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot claim new/%s: %s", s->dir, name, strerror(-r));
		return r == -ENOMEM ? r : -EAGAIN;
	}
	r = job_open(s, name, job, &why, whybuf, sizeof whybuf);
	if (r == -EINVAL && why) {
		reject_to_failed(s, D_CUR, name, why);
		return -EAGAIN;
	}
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot open job cur/%s (left in cur/): %s",
			     s->dir, name, strerror(-r));
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
	while (r == -EAGAIN && !s->closed && (name = next_name(s, &err)))
		r = claim_one(s, name, job);
	if (r == -EAGAIN && err == -ENOMEM)
		r = -ENOMEM;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- resume: open the claimed job, take back what earlier runs left - */

/* One line of an existing result: mark its line number and count it. */
static void resume_record(struct pl_job *j, const char *rec, size_t len)
{
	unsigned long line;
	bool ok;

	if (pl_record_parse(rec, len, &line, &ok) < 0 || line == 0 || line >= j->nbits ||
	    line_recorded(j, line))
		return;
	j->recorded[line / 64] |= 1ull << (line % 64);
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
	char *rec = NULL;
	size_t cap = 0;
	ssize_t n;
	off_t good = 0;
	FILE *f;
	int fd, r = 0;

	if (fstat(j->resfd, &st) < 0)
		return -errno;
	if (st.st_size == 0)
		return 0;
	j->nbits = (unsigned long)jobsize + 2;
	j->recorded = calloc(j->nbits / 64 + 1, sizeof(uint64_t));
	if (!j->recorded)
		return -ENOMEM;
	if ((fd = dup(j->resfd)) < 0)
		return -errno;
	if (!(f = fdopen(fd, "r"))) {
		r = -errno;
		close(fd);
		return r;
	}
	if (fseeko(f, 0, SEEK_SET) < 0)
		r = -errno;
	while (r == 0 && (n = getline(&rec, &cap, f)) > 0 && rec[n - 1] == '\n') {
		good += n;
		resume_record(j, rec, (size_t)n);
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	free(rec);
	fclose(f);
	if (r == 0 && good < st.st_size) {
		pl_log(LOG_WARNING, "job %s: cutting a torn last record off cur/%s%s",
		       j->name, j->name, RESULT_SUFFIX);
		if (ftruncate(j->resfd, good) < 0)
			r = -errno;
	}
	return r;
}

/*
 * What the guard says about this run.  A mark means the daemon died with
 * this job claimed: unrecorded lines up to it were maybe inside the
 * pipeline, so they run alone (the daemon's feeder waits for an empty
 * pipeline around each), and whichever crashes it again is caught as the
 * suspect.  A suspect still unrecorded was running alone when the daemon
 * died: one more crash to its name, and at PL_CRASHGUARD_LIMIT it fails
 * without running.  Its batch-mates are never blamed.
 */
static void guard_judge(struct pl_job *j)
{
	struct pl_crashguard_state *g = &j->gs;

	if (g->suspect && !line_recorded(j, g->suspect)) {
		g->crashes++;
		pl_log(LOG_WARNING, "job %s: line %llu was running alone when the daemon died "
		       "(%u time%s)", j->name, (unsigned long long)g->suspect, g->crashes,
		       g->crashes == 1 ? "" : "s");
		if (g->crashes >= PL_CRASHGUARD_LIMIT) {
			j->condemned = g->suspect;
			snprintf(j->condemned_why, sizeof j->condemned_why,
				 "crashed the daemon %u times", g->crashes);
		}
	} else {
		g->suspect = 0;
		g->crashes = 0;
	}
	if (g->mark) {
		j->alone_end = g->mark;
		pl_log(LOG_NOTICE, "job %s: the daemon died while running it; its unrecorded lines "
		       "up to %llu run one at a time, to find any that crashes it", j->name,
		       (unsigned long long)g->mark);
	}
}

/* Open what the job file says of earlier runs: its result, and its crash
 * guard.  A guard about another file of the same name is started afresh. */
static int job_open_state(struct pl_job *j, const struct stat *st)
{
	struct pl_spool *s = j->spool;
	char resname[NAME_MAX + 1], gname[NAME_MAX + 1];
	struct stat rs;
	int r;

	snprintf(resname, sizeof resname, "%s%s", j->name, RESULT_SUFFIX);
	j->resfd = openat(s->dfd[D_CUR], resname,
			  O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
	if (j->resfd < 0 || fstat(j->resfd, &rs) < 0)
		return -errno;
	if (!S_ISREG(rs.st_mode))
		return -EBADF;
	if ((r = resume_read(j, st->st_size)) < 0)
		return r;
	snprintf(gname, sizeof gname, ".%s%s", j->name, GUARD_SUFFIX);
	if ((r = pl_crashguard_open(s->dfd[D_CUR], gname, &j->guard, &j->gs)) < 0)
		return r;
	if (j->gs.id != (uint64_t)st->st_ino)
		j->gs = (struct pl_crashguard_state){ .id = (uint64_t)st->st_ino };
	j->id = (uint64_t)st->st_ino;
	guard_judge(j);
	if (!s->remote)
		return 0;
	/* results may come back in any order and more than once */
	j->nbits = (unsigned long)st->st_size + 2;
	if (!j->recorded && !(j->recorded = calloc(j->nbits / 64 + 1, sizeof(uint64_t))))
		return -ENOMEM;
	if (!(j->sent = calloc(j->nbits / 64 + 1, sizeof(uint64_t))) ||
	    !(j->items = calloc(j->nbits / 64 + 1, sizeof(uint64_t))))
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
	fd = openat(s->dfd[D_CUR], name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP)
		*why = "is a symbolic link, not a regular file";
	else if (fd >= 0 && fstat(fd, &st) == 0)
		*why = not_a_job(&st, whybuf, whylen);
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

/* Before an item leaves the feeder: it runs alone if the guard says it may
 * have crashed the daemon; otherwise the mark is raised ahead of it, on
 * disk, so that a crash from here on knows where to look. */
static void guard_item(struct pl_job *j, struct pl_item *it)
{
	int r;

	if (j->spool->remote)
		return;		/* it runs elsewhere: the stream guards it */
	if (it->line <= j->alone_end) {
		it->alone = true;
		return;
	}
	if (!j->guard || it->line <= j->gs.mark)
		return;
	j->gs.mark = it->line + MARK_STEP;
	if ((r = pl_crashguard_write(j->guard, &j->gs)) < 0) {
		pl_log_errno(LOG_ERR, -r, "job %s: cannot write its crash guard (a crashing item "
			     "will not be found): %s", j->name, strerror(-r));
		pl_crashguard_close(j->guard, 0);
		j->guard = NULL;
	}
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
			j->items[j->lineno / 64] |= 1ull << (j->lineno % 64);
			j->read_to = j->lineno;
		}
		pthread_mutex_unlock(&j->lock);
		if (recorded)
			continue;
		if ((r = make_item(j, why ? quoted : src, why ? NULL : name, item)) < 0)
			return r;
		if (!why && j->lineno == j->condemned)
			why = j->condemned_why;		/* a good line that must not run */
		else if (!why)
			guard_item(j, *item);
		*bad = why;
		return 0;
	}
}

int pl_spool_item_alone(struct pl_item *it)
{
	struct pl_job *j = it->job;
	int r;

	if (!j || !j->guard)
		return 0;
	if (j->gs.suspect != it->line)
		j->gs.crashes = 0;	/* counts belong to the one suspect */
	j->gs.suspect = it->line;
	if ((r = pl_crashguard_write(j->guard, &j->gs)) < 0)
		pl_log_errno(LOG_ERR, -r, "job %s: cannot write its crash guard: %s", j->name,
			     strerror(-r));
	return r;
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
	int dest = s->dfd[failed ? D_FAILED : D_DONE];
	char resname[NAME_MAX + 1];

	snprintf(resname, sizeof resname, "%s%s", j->name, RESULT_SUFFIX);
	if (fsync(j->resfd) < 0)
		pl_log_errno(LOG_WARNING, errno, "job %s: fsync of its result: %s", j->name,
			     strerror(errno));
	/* Result first: a crash after it leaves the job in cur/ to run again. */
	if (renameat(s->dfd[D_CUR], resname, dest, resname) < 0 ||
	    renameat(s->dfd[D_CUR], j->name, dest, j->name) < 0) {
		pl_log_errno(LOG_ERR, errno, "job %s: cannot move it to %s/: %s", j->name,
			     failed ? "failed" : "done", strerror(errno));
		return;
	}
	fsync(s->dfd[D_CUR]);
	fsync(dest);
	atomic_fetch_add(failed ? &s->jobs_failed : &s->jobs_done, 1);
	pl_crashguard_close(j->guard, 1);
	j->guard = NULL;
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

static bool bit(const uint64_t *map, unsigned long line)
{
	return map[line / 64] >> (line % 64) & 1;
}

static void set_bit(uint64_t *map, unsigned long line, bool on)
{
	if (on)
		map[line / 64] |= 1ull << (line % 64);
	else
		map[line / 64] &= ~(1ull << (line % 64));
}

void pl_spool_item_sent(struct pl_item *it)
{
	struct pl_job *j = it->job;
	enum settle how = KEEP;

	pthread_mutex_lock(&j->lock);
	if (line_recorded(j, it->line)) {
		how = unref_locked(j);	/* its result beat us to it */
	} else {
		set_bit(j->sent, it->line, true);
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
		return strchr(job, '/') || faccessat(s->dfd[D_NEW], job, F_OK, AT_SYMLINK_NOFOLLOW) < 0
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
	if (line == 0 || line >= j->nbits || !bit(j->items, line)) {
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
			set_bit(j->recorded, line, true);
			if (ok)
				j->ok++;
			else
				j->failed++;
		}
	}
	if (bit(j->sent, line)) {	/* a second copy of a result only once */
		set_bit(j->sent, line, false);
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

/*
 * A stop that drained: every item that entered the pipeline was recorded,
 * so nothing of this job can have crashed the daemon, except the lines of
 * a window left from an earlier crash that have not run yet.
 */
static void guard_settle(struct pl_job *j)
{
	bool window_left = false;

	if (!j->guard)
		return;
	for (unsigned long l = j->lineno; l <= j->alone_end && !window_left; l++)
		window_left = !line_recorded(j, l);
	j->gs.suspect = 0;
	j->gs.crashes = 0;
	j->gs.mark = window_left ? j->alone_end : 0;
	if (!window_left) {
		pl_crashguard_close(j->guard, 1);
		j->guard = NULL;
	} else if (pl_crashguard_write(j->guard, &j->gs) < 0) {
		pl_log(LOG_WARNING, "job %s: cannot update its crash guard", j->name);
	}
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
			guard_settle(j);
			r = move_noreplace(s->dfd[D_CUR], s->dfd[D_NEW], j->name);
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
	if (s->ifd >= 0)
		close(s->ifd);
	s->ifd = -1;
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
	pl_crashguard_close(j->guard, 0);
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
	for (int i = 0; i < D_COUNT; i++)
		if (s->dfd[i] >= 0)
			close(s->dfd[i]);
	if (s->ifd >= 0)
		close(s->ifd);
	if (s->lockfd >= 0)
		close(s->lockfd);	/* releases the flock */
	pl_spool_names_free(s->names, s->nnames);
	pl_nameset_free(&s->warned);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

/*
 * spooldir.c — see spooldir.h.  The spool as a directory: what it is made
 * of, who may enter it, and the moves between its folders that belong to
 * no job's life.  Kept apart from spool.c so that spool.c is the life of a
 * job read top to bottom, and so that the rules about the disk (modes, the
 * one-daemon lock, no overwriting rename, what file can be a job at all)
 * are in one place for whoever checks them.
 *
 * Why it is built this way:
 *  - Every folder is held open by an fd for the spool's life and every
 *    name is used relative to it (openat, renameat): a spool path that is
 *    renamed or swapped under the daemon cannot redirect a move.
 *  - Names are listed whole and sorted, and what each one is gets decided
 *    where it is used, from the file itself: a type seen in the listing
 *    could change before then.
 *  - Recovery at start only moves names; what a moved job had recorded is
 *    read back when it is claimed again (spool.c, resume).
 *  - tmp/ is the producers' own, but a producer killed while it writes
 *    leaves its file there for ever.  Maildir's rule settles it: a file
 *    untouched for 36 hours is abandoned.  "Untouched" is judged on both
 *    mtime and ctime: a writer refreshes both with every write, and the
 *    ctime is the one a producer's tools cannot set back (cp -p, rsync -t
 *    and tar give a file just made an old mtime, on its way to new/).
 *    The sweep removes only regular files with one link (the name is
 *    judged by fstatat without following, removed by unlinkat on the
 *    tmp/ fd, which takes a link away and never a directory): a job is
 *    written as such a file, and a link, a FIFO or a folder is none, so
 *    whoever put one there meant something the sweep cannot know; the
 *    second name of a file frees nothing when it goes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "item.h"
#include "log.h"
#include "record.h"
#include "spooldir.h"

#define RESULT_SUFFIX PL_SPOOL_RESULT_SUFFIX
#define LOCK_NAME PL_SPOOL_LOCK_NAME	/* one daemon per spool */
#define GUARD_SUFFIX PL_SPOOLDIR_GUARD_SUFFIX

enum { D_TMP = PL_SPOOL_TMP, D_NEW = PL_SPOOL_NEW, D_CUR = PL_SPOOL_CUR, D_DONE = PL_SPOOL_DONE,
       D_FAILED = PL_SPOOL_FAILED, D_COUNT = PL_SPOOL_FOLDERS };
const char *const pl_spool_folder_names[PL_SPOOL_FOLDERS] = { "tmp", "new", "cur", "done", "failed" };

/* ---- names: list, move ---------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool pl_spooldir_is_result(const char *name)
{
	return has_suffix(name, RESULT_SUFFIX);
}

/* Move without overwriting: a same-named job already there must not be
 * lost.  Falls back to a check + rename where renameat2 is unsupported. */
int pl_spooldir_move(const struct pl_spooldir *d, int from, int to, const char *name)
{
	if (renameat2(d->dfd[from], name, d->dfd[to], name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (faccessat(d->dfd[to], name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(d->dfd[from], name, d->dfd[to], name) < 0 ? -errno : 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void pl_spooldir_free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Every name in one spool folder but "." and "..", sorted.  What each one
 * is gets decided where it is used, from the file itself: a type seen here
 * could change before then. */
int pl_spooldir_list_at(int dfd, char ***out, size_t *count)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *dir;
	int r = 0;

	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((errno = 0, e = readdir(dir))) {
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
	closedir(dir);
	if (r < 0) {
		pl_spooldir_free_names(names, n);
		return r;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_names);
	*out = names;
	*count = n;
	return 0;
}

int pl_spooldir_list(const struct pl_spooldir *d, int which, char ***out, size_t *count)
{
	return pl_spooldir_list_at(d->dfd[which], out, count);
}

/* The daemon refuses a hard-linked job (its other name could be changed
 * under it), so every reader of spool files, pipelinectl too, opens them
 * the same way. */
FILE *pl_spooldir_open_regular(int dfd, const char *name)
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

/* ---- open: the lock, the folders and their modes -------------------- */

/*
 * One daemon per spool: a second one would move the first one's job from
 * cur/ back to new/ and run it again.  The lock is an flock on a file in the
 * spool, held through an fd for as long as the spool is open, so it goes
 * with the process however that ends.  The file holds the holder's pid,
 * for the message the next one prints.  -EBUSY when another holds it.
 */
static int lock_spool(struct pl_spooldir *d)
{
	char pid[32] = "";
	ssize_t n;
	int dfd, r;

	dfd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	d->lockfd = openat(dfd, LOCK_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			   0640);
	r = d->lockfd < 0 ? -errno : 0;
	close(dfd);
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot open %s: %s", d->path, LOCK_NAME,
			     strerror(-r));
		return r;
	}
	if (flock(d->lockfd, LOCK_EX | LOCK_NB) == 0) {
		/* readable by the spool's group: pipelinectl status reads the pid */
		fchmod(d->lockfd, 0640);
		n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
		if (ftruncate(d->lockfd, 0) < 0 || pwrite(d->lockfd, pid, (size_t)n, 0) != n)
			pl_log_errno(LOG_WARNING, errno, "spool %s: cannot write %s: %m", d->path,
				     LOCK_NAME);
		return 0;
	}
	r = errno;
	if (r != EWOULDBLOCK) {
		pl_log_errno(LOG_ERR, r, "spool %s: cannot lock %s: %s", d->path, LOCK_NAME,
			     strerror(r));
		return -r;
	}
	n = pread(d->lockfd, pid, sizeof pid - 1, 0);
	pid[n > 0 ? n : 0] = '\0';
	pid[strcspn(pid, "\n")] = '\0';
	pl_log(LOG_ERR, "spool %s is in use by another pipelined%s%s%s; one daemon runs per spool",
	       d->path, *pid ? " (pid " : "", pid, *pid ? ")" : "");
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

int pl_spooldir_open(struct pl_spooldir *d, const char *dir)
{
	char path[4096];
	int r;

	for (int i = 0; i < D_COUNT; i++)
		d->dfd[i] = -1;
	d->lockfd = -1;
	if (!(d->path = strdup(dir)))
		return -ENOMEM;
	if (mkdir(d->path, 0750) < 0 && errno != EEXIST) {
		r = -errno;
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot create it: %s", d->path, strerror(-r));
		return r;
	}
	if ((r = lock_spool(d)) < 0)
		return r;
	if ((r = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		set_mode(r, SPOOL_MODE, d->path, "");
		close(r);
	}
	for (int i = 0; i < D_COUNT; i++) {
		if (snprintf(path, sizeof path, "%s/%s", d->path, pl_spool_folder_names[i]) >= (int)sizeof path)
			return -ENAMETOOLONG;
		if (mkdir(path, 0750) < 0 && errno != EEXIST) {
			int r = -errno;
			pl_log_errno(LOG_ERR, -r, "spool: cannot create %s: %s", path, strerror(-r));
			return r;
		}
		d->dfd[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d->dfd[i] < 0) {
			int r = -errno;
			pl_log_errno(LOG_ERR, -r, "spool: cannot open %s: %s", path, strerror(-r));
			return r;
		}
		set_mode(d->dfd[i], folder_modes[i], d->path, pl_spool_folder_names[i]);
	}
	return 0;
}

void pl_spooldir_close(struct pl_spooldir *d)
{
	for (int i = 0; i < D_COUNT; i++)
		if (d->dfd[i] >= 0)
			close(d->dfd[i]);
	if (d->lockfd >= 0)
		close(d->lockfd);	/* releases the flock */
	free(d->path);
	d->path = NULL;
}

/* ---- recover: what a crash left in cur/ ----------------------------- */

/* The guard of a job that is in neither cur/ nor new/ (someone removed it
 * after a crash) is of no use; the id it holds keeps it from ever applying
 * to another job of the same name, so this is only tidying. */
static void drop_stale_guard(const struct pl_spooldir *d, const char *name)
{
	size_t n = strlen(name), k = strlen(GUARD_SUFFIX);
	char job[NAME_MAX + 1];

	if (n <= k + 1 || !has_suffix(name, GUARD_SUFFIX))
		return;
	snprintf(job, sizeof job, "%.*s", (int)(n - k - 1), name + 1);
	if (faccessat(d->dfd[D_CUR], job, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
	    faccessat(d->dfd[D_NEW], job, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		unlinkat(d->dfd[D_CUR], name, 0);
}

int pl_spooldir_recover(const struct pl_spooldir *d)
{
	char **names;
	size_t n;
	int r = pl_spooldir_list(d, D_CUR, &names, &n), moved = 0;

	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot read cur/: %s", d->path, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (names[i][0] == '.') {
			drop_stale_guard(d, names[i]);
			continue;
		}
		if (has_suffix(names[i], RESULT_SUFFIX))
			continue;
		r = pl_spooldir_move(d, D_CUR, D_NEW, names[i]);
		if (r < 0)
			pl_log_errno(LOG_ERR, -r, "spool %s: cannot move cur/%s back to new/: %s",
				     d->path, names[i], strerror(-r));
		else
			moved++;
	}
	pl_spooldir_free_names(names, n);
	if (moved)
		fsync(d->dfd[D_NEW]);
	pl_log(moved ? LOG_NOTICE : LOG_INFO, "spool %s: %d interrupted job%s moved from cur/ back to new/",
	       d->path, moved, moved == 1 ? "" : "s");
	return moved;
}

/* ---- sweep: what killed producers left in tmp/ ---------------------- */

/* Both times, and not the atime: under relatime or noatime it says little,
 * and a backup reading tmp/ would keep a dead file there for ever.  Dot
 * names are judged like any other: pipelinectl writes its jobs in tmp/
 * under dot names, and everything in tmp/ is on its way in. */
bool pl_spooldir_tmp_abandoned(const struct stat *st, time_t now)
{
	time_t cutoff = now - PL_SPOOLDIR_TMP_MAX_AGE;

	return S_ISREG(st->st_mode) && st->st_nlink == 1 && st->st_mtime < cutoff &&
	       st->st_ctime < cutoff;
}

int pl_spooldir_sweep_tmp(const struct pl_spooldir *d, time_t now)
{
	char **names;
	size_t n;
	int r = pl_spooldir_list(d, D_TMP, &names, &n), removed = 0;
	struct stat st;

	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot read tmp/: %s", d->path, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (fstatat(d->dfd[D_TMP], names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !pl_spooldir_tmp_abandoned(&st, now))
			continue;	/* gone (renamed into new/ meanwhile), or not ours to take */
		/* flags 0: should the name have become a folder since, this
		 * fails (EISDIR); a link would go itself, not what it names */
		if (unlinkat(d->dfd[D_TMP], names[i], 0) < 0) {
			if (errno != ENOENT)
				pl_log_errno(LOG_WARNING, errno, "spool %s: cannot remove abandoned "
					     "tmp/%s: %m", d->path, names[i]);
			continue;
		}
		removed++;
		pl_log(LOG_NOTICE, "spool %s: removed tmp/%s, %lld bytes untouched for %.0f hours "
		       "(abandoned by the producer that wrote it)", d->path, names[i],
		       (long long)st.st_size,
		       (double)(now - (st.st_mtime > st.st_ctime ? st.st_mtime : st.st_ctime)) / 3600.0);
	}
	pl_spooldir_free_names(names, n);
	return removed;
}

/* ---- reject: a name of new/ that can never be a job ----------------- */

/* Why the file behind st cannot be a job; NULL if it can.  A hard link is
 * refused because it may be a second name of a file the producer could not
 * read itself, whose lines would then be quoted back in the result. */
const char *pl_spooldir_not_a_job(const struct stat *st, char *buf, size_t len)
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
static void reject_record(const struct pl_spooldir *d, const char *name, const char *why)
{
	struct pl_item it = { .line = 0 };
	char resname[NAME_MAX + 1], *rec;
	int fd;

	if (snprintf(resname, sizeof resname, "%s%s", name, RESULT_SUFFIX) >= (int)sizeof resname)
		return;
	if (!(rec = pl_record_format(&it, false, why, 0)))
		return;
	fd = openat(d->dfd[D_FAILED], resname,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
	if (fd < 0 || pl_fdio_write_all(fd, rec, strlen(rec)) < 0)
		pl_log_errno(LOG_ERR, errno, "spool %s: cannot write failed/%s: %m", d->path, resname);
	if (fd >= 0)
		close(fd);
	free(rec);
}

/* A name in new/ (or, after a swap, cur/) that can never be a job: out of
 * the way into failed/, with a reason in the log and in NAME.result.
 * Renaming moves a symbolic link itself, never what it points to. */
void pl_spooldir_reject(const struct pl_spooldir *d, int from, const char *name, const char *why)
{
	const char *dir = pl_spool_folder_names[from];

	if (renameat(d->dfd[from], name, d->dfd[D_FAILED], name) < 0) {
		if (errno != ENOENT)
			pl_log_errno(LOG_ERR, errno, "spool %s: %s/%s %s, and cannot be moved to "
				     "failed/: %m", d->path, dir, name, why);
		return;
	}
	pl_log(LOG_WARNING, "spool %s: %s/%s %s; moved to failed/", d->path, dir, name, why);
	reject_record(d, name, why);
}


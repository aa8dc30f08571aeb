/*
 * ctl.c — pipelinectl(1), the producer's command: submit a job to the
 * spool (and wait for it), list the jobs, show a job's results, resubmit
 * a failed job's failed items, and read the daemon's status.
 *
 * How it fits: it is a second client of the spool on disk, beside the
 * daemon, and takes from the daemon's own modules everything the two must
 * agree on: where the spool and the runtime folder are (config.c, with the
 * same precedence of settings and environment), what a job line means
 * (jobline.c: a job is checked by the rule the daemon applies, so a line
 * the daemon would fail is refused before anything is submitted), what a
 * result record is (record.c), the spool's names (spool.h) and the
 * progress bar (status.c).  It never talks to the daemon: the spool and
 * status.json are the interface (pipelined(8)), so it needs no socket and
 * no privilege of its own, and works whether the daemon runs or not.
 *
 * Why it is built this way:
 *  - Submission is the Maildir protocol: the job is written to tmp/ under
 *    a dot-name of its own, synced, and renamed into new/ without
 *    replacing (RENAME_NOREPLACE), so the daemon never sees half a job.
 *  - A job name is never reused: a second JOB would overwrite the first
 *    one's done/JOB.result.  Submitters serialise on an flock of tmp/ and
 *    look for the name in new/, cur/, done/ and failed/ in that order, the
 *    order a job moves in, so a job moving while they look is still seen.
 *  - Access is the file system's: the unit gives the spool's group to
 *    producers (pipelinectl(1), PERMISSIONS).  The job file is made 0640
 *    and given the group of new/, so the daemon can read it whoever wrote
 *    it, without a set-group-ID folder (the unit forbids setting one).
 *  - --wait polls the folders a few times a second and reads the growing
 *    cur/JOB.result from where it left off; the file keeps its inode when
 *    the daemon renames it into done/ or failed/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "jobline.h"
#include "log.h"
#include "nameset.h"
#include "record.h"
#include "spool.h"
#include "status.h"
#include "strbuf.h"

#ifndef PL_CTL_CONFIG
#define PL_CTL_CONFIG "/etc/pipelined/pipeline.conf"
#endif
/* Where systemd passes a system unit's credentials: a configuration that
 * names credentials bare loads outside the unit too (they are not read). */
#define UNIT_CREDENTIALS "/run/credentials/pipelined.service"
#define EXIT_FAILED_ITEMS 1	/* as pipelined --once */
#define EXIT_USAGE 2
#define POLL_NS 100000000L	/* --wait looks ten times a second */

enum { F_TMP = PL_SPOOL_TMP, F_NEW = PL_SPOOL_NEW, F_CUR = PL_SPOOL_CUR,
       F_DONE = PL_SPOOL_DONE, F_FAILED = PL_SPOOL_FAILED, F_COUNT = PL_SPOOL_FOLDERS };
static const char *const state_names[F_COUNT] = { "", "waiting", "running", "done", "failed" };

struct ctl {
	struct pl_config *cfg;
	int dfd[F_COUNT];	/* opened on first use; -1 not yet */
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("pipelinectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The exit status for a failed system call (pipelinectl(1), EXIT STATUS). */
static int exit_for(int err)
{
	switch (err) {
	case -EACCES:
	case -EPERM:
		return EX_NOPERM;
	case -ENOENT:
		return EX_NOINPUT;
	case -EEXIST:
		return EX_CANTCREAT;
	default:
		return EX_SOFTWARE;
	}
}

/* Text from a job file or a record may hold any byte: a terminal gets
 * no control character from it. */
static void put_safe(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

static bool job_name_ok(const char *n)
{
	size_t len = strlen(n), k = strlen(PL_SPOOL_RESULT_SUFFIX);

	return pl_jobline_name_valid(n) &&
	       !(len >= k && strcmp(n + len - k, PL_SPOOL_RESULT_SUFFIX) == 0);
}

/* A folder of the spool: its fd, or a negative errno after saying why. */
static int folder(struct ctl *c, int f)
{
	char path[PATH_MAX];
	int fd;

	if (c->dfd[f] >= 0)
		return c->dfd[f];
	snprintf(path, sizeof path, "%s/%s", c->cfg->spool, pl_spool_folder_names[f]);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		say("%s: %s%s", path, strerror(-r),
		    r == -EACCES ? " (producers need the spool's group; see PERMISSIONS in pipelinectl(1))" :
		    r == -ENOENT ? " (the daemon makes the spool when it first starts)" : "");
		return r;
	}
	return c->dfd[f] = fd;
}

/* A regular file of a folder, never through a link or into a FIFO. */
static FILE *open_in(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	FILE *f;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	if (!(f = fdopen(fd, "r")))
		close(fd);
	return f;
}

static bool exists_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The folder a job is in, looked for in the order jobs move; -ENOENT.
 * A name the daemon never takes as a job is in none. */
static int find_job(struct ctl *c, const char *name)
{
	if (!*name || name[0] == '.' || strchr(name, '/'))
		return -ENOENT;
	for (int f = F_NEW; f < F_COUNT; f++) {
		int fd = folder(c, f);

		if (fd < 0)
			return fd;
		if (exists_at(fd, name))
			return f;
	}
	return -ENOENT;
}

/* Is name used by a job, or by a result (a rejected entry leaves one)? */
static int name_taken(struct ctl *c, const char *name, int *where)
{
	char res[NAME_MAX + 1];

	snprintf(res, sizeof res, "%s%s", name, PL_SPOOL_RESULT_SUFFIX);
	for (int f = F_NEW; f < F_COUNT; f++) {
		int fd = folder(c, f);

		if (fd < 0)
			return fd;
		if (exists_at(fd, name) || exists_at(fd, res)) {
			*where = f;
			return 1;
		}
	}
	return 0;
}

/* ---- reading jobs and results ----------------------------------------- */

struct tally {
	unsigned long items, bad;	/* of a job file */
	unsigned long ok, failed;	/* of a result file */
};

/*
 * Read a job from in, judging every line as the daemon will; each bad one
 * is said as WHERE:LINE (where non-NULL).  With copy, the lines go there
 * as read, each ending in a newline.  0 or -errno.
 */
static int scan_job(FILE *in, FILE *copy, const char *where, struct tally *t)
{
	struct pl_nameset names = { 0 };
	char name[PL_JOBLINE_NAME_MAX + 1], quote[PL_JOBLINE_QUOTE_MAX + 1], *line = NULL, *src;
	unsigned long lineno = 0;
	size_t cap = 0;
	ssize_t n;
	int r = 0;

	while ((errno = 0, n = getline(&line, &cap, in)) > 0) {
		size_t len = (size_t)n;
		const char *why;
		bool cut = false;

		lineno++;
		if (copy && (fwrite(line, 1, len, copy) != len ||
			     (line[len - 1] != '\n' && fputc('\n', copy) == EOF))) {
			r = -errno;
			break;
		}
		if (line[len - 1] == '\n')
			len--;
		if (len > PL_JOBLINE_MAX + 1) {
			len = PL_JOBLINE_MAX + 1;
			cut = true;
		}
		r = pl_jobline_judge(line, len, cut, &names, &src, name, quote, &why);
		if (r < 0)
			break;
		if (r == 1 && why) {
			t->bad++;
			if (where) {
				fprintf(stderr, "%s:%lu: %s: ", where, lineno, why);
				put_safe(stderr, quote);
				fputc('\n', stderr);
			}
		} else if (r == 1) {
			t->items++;
		}
		r = 0;
	}
	if (r == 0 && n < 0 && errno)
		r = -errno;
	if (r == 0 && ferror(in))
		r = -EIO;
	free(line);
	pl_nameset_free(&names);
	return r;
}

/* Count the complete records from f's position on; a torn last line is
 * left for the next call. */
static void read_records(FILE *f, struct tally *t)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	clearerr(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		unsigned long lineno;
		bool ok;

		if (line[n - 1] != '\n') {
			fseeko(f, -(off_t)n, SEEK_CUR);
			break;
		}
		if (pl_record_parse(line, (size_t)n, &lineno, &ok) == 0)
			ok ? t->ok++ : t->failed++;
	}
	free(line);
}

/* Where a job's result is: beside it, and in cur/ for a waiting job, which
 * keeps there what an interrupted run recorded and resumes after it. */
static int result_folder(int f)
{
	return f == F_NEW ? F_CUR : f;
}

static FILE *open_result(struct ctl *c, int f, const char *job)
{
	char res[NAME_MAX + 1];
	int fd = folder(c, f);

	if (fd < 0)
		return NULL;
	snprintf(res, sizeof res, "%s%s", job, PL_SPOOL_RESULT_SUFFIX);
	return open_in(fd, res);
}

/* ---- submit ----------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int columns(void)
{
	struct winsize ws;

	return ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

/*
 * Until the job is in done/ or failed/: a bar on a terminal, else a line
 * whenever the count moved (at most one a second).  The exit status of
 * pipelined --once: 0 all ok, 1 any failed.
 */
static int wait_job(struct ctl *c, const char *name, unsigned long total)
{
	bool tty = isatty(STDERR_FILENO);
	double start = now_s(), said = 0;
	unsigned long shown = ULONG_MAX;
	struct tally t = { 0 };
	FILE *res = NULL;
	int where;
	char text[256];

	for (;;) {
		const struct timespec pause = { 0, POLL_NS };
		unsigned long seen;

		where = find_job(c, name);
		if (where < 0) {
			if (tty)
				pl_log_bar_end();
			if (where == -ENOENT)
				say("job %s is gone from the spool", name);
			if (res)
				fclose(res);
			return EX_SOFTWARE;
		}
		if (!res)
			res = open_result(c, result_folder(where), name);
		if (res)
			read_records(res, &t);
		if (where == F_DONE || where == F_FAILED)
			break;
		seen = t.ok + t.failed;
		if (tty) {
			struct pl_status st = { .done = t.ok, .failed = t.failed, .total = total };
			double secs = now_s() - start;

			st.rate = secs >= 1 ? (double)seen / secs : 0;
			pl_status_progress_bar(&st, text, sizeof text, columns());
			pl_log_bar(text);
		} else if (seen != shown && now_s() - said >= 1) {
			fprintf(stderr, "job %s: %s, %lu/%lu, %lu failed\n", name, state_names[where],
				seen, total, t.failed);
			shown = seen;
			said = now_s();
		}
		nanosleep(&pause, NULL);
	}
	if (res)
		fclose(res);
	if (tty) {
		struct pl_status st = { .done = t.ok, .failed = t.failed, .total = total };
		double secs = now_s() - start;

		st.rate = secs > 0 ? (double)(t.ok + t.failed) / secs : 0;
		pl_status_progress_bar(&st, text, sizeof text, columns());
		pl_log_bar(text);
		pl_log_bar_end();
	}
	fprintf(stderr, "job %s finished: %lu ok, %lu failed; in %s/\n", name, t.ok, t.failed,
		pl_spool_folder_names[where]);
	return where == F_FAILED || t.failed ? EXIT_FAILED_ITEMS : 0;
}

/* The next name to try: base, then base2, base3, … (numbered only). */
static bool next_name(const char *base, unsigned k, char out[PL_JOBLINE_NAME_MAX + 1])
{
	char num[16] = "";

	if (k > 1)
		snprintf(num, sizeof num, "%u", k);
	snprintf(out, PL_JOBLINE_NAME_MAX + 1, "%.*s%s",
		 (int)(PL_JOBLINE_NAME_MAX - strlen(num)), base, num);
	return k < 1000;
}

/* The job being written in tmp/, for a signal to take away: a producer
 * who interrupts a long submit leaves nothing behind. */
static volatile sig_atomic_t pending_fd = -1;
static char pending_name[NAME_MAX + 1];

static void drop_pending(int sig)
{
	if (pending_fd >= 0)
		unlinkat(pending_fd, pending_name, 0);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void set_pending(int dfd, const char *name)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };
	struct sigaction sa = { .sa_handler = drop_pending };

	pending_fd = -1;
	if (dfd < 0)
		return;
	snprintf(pending_name, sizeof pending_name, "%s", name);
	pending_fd = dfd;
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaction(sigs[i], &sa, NULL);
}

/*
 * Check the job in `in` and deliver it as `base` (or, with numbered, the
 * first of base, base2, … not taken), whose final name goes to name.
 * Returns an exit status; *items gets the job's item count.
 */
static int deliver(struct ctl *c, FILE *in, const char *where, const char *base, bool numbered,
		   char name[PL_JOBLINE_NAME_MAX + 1], unsigned long *items)
{
	int tmp = folder(c, F_TMP), new = folder(c, F_NEW), fd, r, taken = 0, status = 0;
	char tname[NAME_MAX + 1];
	struct tally t = { 0 };
	struct stat st;
	unsigned k = 1;
	FILE *out;

	if (tmp < 0 || new < 0)
		return exit_for(tmp < 0 ? tmp : new);
	snprintf(tname, sizeof tname, ".%s.%ld", base, (long)getpid());
	set_pending(tmp, tname);	/* armed before the file exists: no signal finds it unguarded */
	fd = openat(tmp, tname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0) {
		r = -errno;
		set_pending(-1, NULL);
		say("cannot write in %s/tmp: %s", c->cfg->spool, strerror(-r));
		return exit_for(r);
	}
	if (!(out = fdopen(fd, "w"))) {
		r = -errno;
		close(fd);
		goto fail;
	}
	r = scan_job(in, out, where, &t);
	if (r < 0) {
		say("%s: %s", where, strerror(-r));
		fclose(out);
		status = r == -ENOMEM ? EX_SOFTWARE : EX_IOERR;
		goto drop;
	}
	if (t.bad || !t.items) {
		if (t.bad)
			say("%s: %lu bad line%s: nothing submitted", where, t.bad, t.bad == 1 ? "" : "s");
		else
			say("%s: no items (only blank and comment lines): nothing submitted", where);
		fclose(out);
		status = EX_DATAERR;
		goto drop;
	}
	/* Readable by the daemon through the spool's group, whatever the
	 * producer's umask and primary group.  Not being allowed to give it
	 * that group (a producer outside it) is left to the daemon to judge. */
	if (fstat(new, &st) == 0 && fchown(fd, (uid_t)-1, st.st_gid) < 0 && errno != EPERM)
		r = -errno;
	if (r == 0 && fchmod(fd, 0640) < 0)
		r = -errno;
	if (r == 0 && (fflush(out) != 0 || fsync(fd) < 0))
		r = -errno;
	if (fclose(out) != 0 && r == 0)
		r = -errno;
	if (r < 0)
		goto fail;

	if (flock(tmp, LOCK_EX) < 0) {
		r = -errno;
		goto fail;
	}
	do {
		next_name(base, k, name);
		r = name_taken(c, name, &taken);
		if (r == 0) {
			r = renameat2(tmp, tname, new, name, RENAME_NOREPLACE) < 0 ? -errno : 0;
			/* a file system without it: the look above, under the
			 * lock, is all there is (a hard link would make the
			 * daemon refuse the job) */
			if (r == -EINVAL || r == -ENOSYS)
				r = renameat(tmp, tname, new, name) < 0 ? -errno : 0;
			if (r == -EEXIST)
				taken = F_NEW;
		}
	} while ((r == 1 || r == -EEXIST) && numbered && next_name(base, ++k, name));
	flock(tmp, LOCK_UN);
	if (r == 1 || r == -EEXIST) {
		say("job %s exists (in %s/): choose another name with -n", name,
		    pl_spool_folder_names[taken]);
		status = EX_CANTCREAT;
		goto drop;
	}
	if (r < 0)
		goto fail;
	set_pending(-1, NULL);
	if (fsync(new) < 0)
		say("fsync of %s/new: %s", c->cfg->spool, strerror(errno));
	*items = t.items;
	return 0;
fail:
	say("cannot submit %s: %s", where, strerror(-r));
	status = exit_for(r);
drop:
	set_pending(-1, NULL);
	unlinkat(tmp, tname, 0);
	return status;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pipelinectl [-c FILE] submit [-n NAME] [-w] [FILE|-]\n"
		"       pipelinectl [-c FILE] list [waiting|running|done|failed]...\n"
		"       pipelinectl [-c FILE] show [-t] JOB\n"
		"       pipelinectl [-c FILE] resubmit [-n NAME] [-w] JOB\n"
		"       pipelinectl [-c FILE] status [-j]\n"
		"       pipelinectl -h | -V\n");
}

/* A default name: the file's stem (or "stdin"), the UTC time and the pid,
 * unique enough that only a clash with a hand-made name is refused. */
static void default_name(const char *path, char out[PL_JOBLINE_NAME_MAX + 1])
{
	const char *base = path ? strrchr(path, '/') : NULL;
	char stem[41], when[32];
	time_t now = time(NULL);
	struct tm tm;
	size_t n = 0;

	base = path ? (base ? base + 1 : path) : "stdin";
	for (; *base && n < sizeof stem - 1; base++) {
		if (*base == '.' && n > 0)
			break;
		if (*base == '.')
			continue;
		stem[n++] = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
				   *base) ? *base : '_';
	}
	stem[n] = '\0';
	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(out, PL_JOBLINE_NAME_MAX + 1, "%s-%s-%ld", n ? stem : "job", when,
		 (long)getpid());
}

static int cmd_submit(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "wait", no_argument, NULL, 'w' },
		{ 0 }
	};
	char name[PL_JOBLINE_NAME_MAX + 1], base[PL_JOBLINE_NAME_MAX + 1];
	const char *given = NULL, *path = NULL, *where;
	unsigned long items = 0;
	bool wait = false;
	FILE *in;
	int o, status;

	while ((o = getopt_long(argc, argv, "+n:w", opts, NULL)) != -1) {
		if (o == 'n')
			given = optarg;
		else if (o == 'w')
			wait = true;
		else
			return usage(stderr), EXIT_USAGE;
	}
	if (argc - optind > 1)
		return usage(stderr), EXIT_USAGE;
	if (optind < argc && strcmp(argv[optind], "-") != 0)
		path = argv[optind];
	if (given && !job_name_ok(given)) {
		say("invalid job name \"%s\": 1 to 100 of A-Z a-z 0-9 . _ -, not starting with "
		    "'.', not ending in \"%s\"", given, PL_SPOOL_RESULT_SUFFIX);
		return EXIT_USAGE;
	}
	if (given)
		snprintf(base, sizeof base, "%s", given);
	else
		default_name(path, base);
	where = path ? path : "(stdin)";
	if (!path) {
		in = stdin;
	} else if (!(in = fopen(path, "r"))) {
		int r = -errno;

		say("%s: %s", path, strerror(-r));
		return r == -ENOENT ? EX_NOINPUT : exit_for(r);
	}
	status = deliver(c, in, where, base, false, name, &items);
	if (in != stdin)
		fclose(in);
	if (status)
		return status;
	printf("%s\n", name);
	fflush(stdout);
	return wait ? wait_job(c, name, items) : 0;
}

/* ---- resubmit --------------------------------------------------------- */

static int cmd_resubmit(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "wait", no_argument, NULL, 'w' },
		{ 0 }
	};
	char name[PL_JOBLINE_NAME_MAX + 1], base[PL_JOBLINE_NAME_MAX + 1], where[PATH_MAX];
	struct pl_strbuf job = { 0 };
	unsigned long items = 0, again = 0, unnamed = 0;
	const char *given = NULL, *old;
	bool wait = false;
	char *line = NULL, *text;
	size_t cap = 0;
	FILE *res, *in;
	int o, f, status;

	while ((o = getopt_long(argc, argv, "+n:w", opts, NULL)) != -1) {
		if (o == 'n')
			given = optarg;
		else if (o == 'w')
			wait = true;
		else
			return usage(stderr), EXIT_USAGE;
	}
	if (argc - optind != 1)
		return usage(stderr), EXIT_USAGE;
	old = argv[optind];
	if (given && !job_name_ok(given)) {
		say("invalid job name \"%s\"", given);
		return EXIT_USAGE;
	}
	if ((f = find_job(c, old)) < 0) {
		if (f == -ENOENT)
			say("no job %s in %s", old, c->cfg->spool);
		return exit_for(f);
	}
	if (f != F_FAILED) {
		say("job %s is %s, not failed: nothing to resubmit", old, state_names[f]);
		return EX_DATAERR;
	}
	if (!(res = open_result(c, F_FAILED, old))) {
		int r = -errno;

		say("failed/%s%s: %s", old, PL_SPOOL_RESULT_SUFFIX, strerror(-r));
		return exit_for(r);
	}
	/* The name each item got, so that its outputs keep their names. */
	while (getline(&line, &cap, res) > 0) {
		json_t *rec = json_loads(line, 0, NULL);
		const char *st = json_string_value(json_object_get(rec, "status"));
		const char *src = json_string_value(json_object_get(rec, "source"));
		const char *nm = json_string_value(json_object_get(rec, "name"));

		if (st && strcmp(st, "failed") == 0) {
			if (src && nm) {
				pl_strbuf_printf(&job, "%s %s\n", src, nm);
				again++;
			} else {
				unnamed++;	/* a bad line: it would fail again */
			}
		}
		json_decref(rec);
	}
	free(line);
	fclose(res);
	if (unnamed)
		say("job %s: %lu failed line%s did not parse and %s left out", old, unnamed,
		    unnamed == 1 ? "" : "s", unnamed == 1 ? "is" : "are");
	if (!again) {
		say("job %s has no failed item to run again", old);
		pl_strbuf_free(&job);
		return EX_DATAERR;
	}
	if (!(text = pl_strbuf_take(&job)) || !(in = fmemopen(text, strlen(text), "r"))) {
		free(text);
		say("out of memory");
		return EX_SOFTWARE;
	}
	if (given)
		snprintf(base, sizeof base, "%s", given);
	else
		snprintf(base, sizeof base, "%.*s-retry", PL_JOBLINE_NAME_MAX - 9, old);
	snprintf(where, sizeof where, "failed/%s%s", old, PL_SPOOL_RESULT_SUFFIX);
	status = deliver(c, in, where, base, !given, name, &items);
	fclose(in);
	free(text);
	if (status)
		return status;
	printf("%s\n", name);
	fflush(stdout);
	return wait ? wait_job(c, name, items) : 0;
}

/* ---- list ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The jobs of one folder (no dot-files, no results), sorted. */
static int list_jobs(int dfd, char ***out, size_t *count)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;
	size_t n = 0, cap = 0, k = strlen(PL_SPOOL_RESULT_SUFFIX);
	char **v = NULL;
	struct dirent *e;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((errno = 0, e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (e->d_name[0] == '.' ||
		    (len >= k && strcmp(e->d_name + len - k, PL_SPOOL_RESULT_SUFFIX) == 0))
			continue;
		if (n == cap) {
			char **w = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof *v);

			if (!w) {
				r = -ENOMEM;
				break;
			}
			v = w;
		}
		if (!(v[n] = strdup(e->d_name))) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	if (r < 0) {
		while (n)
			free(v[--n]);
		free(v);
		return r;
	}
	if (n)
		qsort(v, n, sizeof *v, cmp_str);
	*out = v;
	*count = n;
	return 0;
}

/* Items of a waiting or running job (from its file), its records so far
 * (from its result); *readable false when the job file could not be read. */
static void job_tally(struct ctl *c, int f, const char *name, struct tally *t, bool *readable)
{
	FILE *in;

	*readable = true;
	if (f == F_NEW || f == F_CUR) {
		if ((in = open_in(c->dfd[f], name))) {
			if (scan_job(in, NULL, NULL, t) < 0)
				*readable = false;
			t->items += t->bad;	/* a bad line is an item that fails */
			fclose(in);
		} else {
			*readable = false;
		}
	}
	if ((in = open_result(c, result_folder(f), name))) {
		read_records(in, t);
		fclose(in);
	}
	if (f == F_DONE || f == F_FAILED)
		t->items = t->ok + t->failed;
}

static int cmd_list(struct ctl *c, int argc, char **argv)
{
	bool want[F_COUNT] = { false };
	unsigned long count[F_COUNT] = { 0 };
	bool any = false, header = false;

	for (int i = 1; i < argc; i++) {
		int f;

		for (f = F_NEW; f < F_COUNT && strcmp(argv[i], state_names[f]) != 0; f++)
			;
		if (f == F_COUNT)
			return usage(stderr), EXIT_USAGE;
		want[f] = any = true;
	}
	for (int f = F_NEW; f < F_COUNT; f++) {
		char **names = NULL;
		size_t n = 0;
		int fd, r;

		if (any && !want[f])
			continue;
		if ((fd = folder(c, f)) < 0)
			return exit_for(fd);
		if ((r = list_jobs(fd, &names, &n)) < 0) {
			say("%s/%s: %s", c->cfg->spool, pl_spool_folder_names[f], strerror(-r));
			return exit_for(r);
		}
		for (size_t i = 0; i < n; i++) {
			struct tally t = { 0 };
			bool readable;

			job_tally(c, f, names[i], &t, &readable);
			if (!header) {
				printf("%-8s %7s %7s %7s  %s\n", "STATE", "ITEMS", "OK", "FAILED", "JOB");
				header = true;
			}
			if (readable)
				printf("%-8s %7lu %7lu %7lu  ", state_names[f], t.items, t.ok, t.failed);
			else
				printf("%-8s %7s %7lu %7lu  ", state_names[f], "?", t.ok, t.failed);
			put_safe(stdout, names[i]);
			putchar('\n');
			free(names[i]);
		}
		free(names);
		count[f] = n;
	}
	for (int f = F_NEW, first = 1; f < F_COUNT; f++) {
		if (any && !want[f])
			continue;
		printf("%s%lu %s", first ? "" : ", ", count[f], state_names[f]);
		first = 0;
	}
	putchar('\n');
	return 0;
}

/* ---- show ------------------------------------------------------------- */

static void show_row(json_t *rec)
{
	json_t *outs = json_object_get(rec, "outputs"), *v;
	const char *name = json_string_value(json_object_get(rec, "name"));
	const char *st = json_string_value(json_object_get(rec, "status"));
	const char *err = json_string_value(json_object_get(rec, "error"));
	const char *src = json_string_value(json_object_get(rec, "source"));
	size_t i;

	printf("%6lld  %-6s  %7lld  ", (long long)json_integer_value(json_object_get(rec, "line")),
	       st ? st : "?", (long long)json_integer_value(json_object_get(rec, "milliseconds")));
	put_safe(stdout, name ? name : "-");
	fputs("  ", stdout);
	if (st && strcmp(st, "ok") == 0) {
		json_array_foreach(outs, i, v) {
			if (i)
				putchar(' ');
			put_safe(stdout, json_string_value(v) ? json_string_value(v) : "?");
		}
	} else {
		put_safe(stdout, err ? err : "?");
		fputs(" (", stdout);
		put_safe(stdout, src ? src : "-");
		putchar(')');
	}
	putchar('\n');
}

static int cmd_show(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "table", no_argument, NULL, 't' }, { 0 } };
	struct tally t = { 0 };
	bool table = false;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *res;
	int o, f;

	while ((o = getopt_long(argc, argv, "+t", opts, NULL)) != -1) {
		if (o != 't')
			return usage(stderr), EXIT_USAGE;
		table = true;
	}
	if (argc - optind != 1)
		return usage(stderr), EXIT_USAGE;
	if ((f = find_job(c, argv[optind])) < 0) {
		if (f == -ENOENT)
			say("no job %s in %s", argv[optind], c->cfg->spool);
		return exit_for(f);
	}
	if (!(res = open_result(c, result_folder(f), argv[optind]))) {
		int r = -errno;

		if (r != -ENOENT) {
			say("%s/%s%s: %s", pl_spool_folder_names[result_folder(f)], argv[optind],
			    PL_SPOOL_RESULT_SUFFIX, strerror(-r));
			return exit_for(r);
		}
		say("job %s is %s: no results yet", argv[optind], state_names[f]);
		return 0;
	}
	if (table)
		printf("%6s  %-6s  %7s  %s  %s\n", "LINE", "STATUS", "MS", "NAME", "OUTPUTS or ERROR (SOURCE)");
	while ((n = getline(&line, &cap, res)) > 0) {
		unsigned long lineno;
		bool ok;

		if (pl_record_parse(line, (size_t)n, &lineno, &ok) < 0)
			continue;	/* a torn last line of a running job */
		ok ? t.ok++ : t.failed++;
		if (!table) {
			fwrite(line, 1, (size_t)n, stdout);
			continue;
		}
		json_t *rec = json_loadb(line, (size_t)n, 0, NULL);

		if (rec)
			show_row(rec);
		json_decref(rec);
	}
	free(line);
	fclose(res);
	if (table)
		printf("%lu ok, %lu failed; job in %s/\n", t.ok, t.failed, pl_spool_folder_names[f]);
	return 0;
}

/* ---- status ----------------------------------------------------------- */

/* The pid in the spool's lock file, and whether it lives (a process of
 * another user counts: EPERM). */
static long daemon_pid(struct ctl *c, bool *alive)
{
	char path[PATH_MAX], buf[32];
	long pid = 0;
	FILE *f;

	*alive = false;
	snprintf(path, sizeof path, "%s/%s", c->cfg->spool, PL_SPOOL_LOCK_NAME);
	if (!(f = fopen(path, "re")))
		return 0;
	if (fgets(buf, sizeof buf, f))
		pid = strtol(buf, NULL, 10);
	fclose(f);
	if (pid > 0)
		*alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
	return pid;
}

static unsigned long long num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (unsigned long long)json_integer_value(v) : 0;
}

static double real(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static void show_status(json_t *s, long pid, bool alive, double age)
{
	json_t *stages = json_object_get(s, "stages"), *st, *str = json_object_get(s, "stream");
	const char *state = json_string_value(json_object_get(s, "state"));
	double up = real(s, "uptime_s");
	size_t i;

	if (alive)
		printf("pipelined: %s, pid %ld, up %.0f s (status written %.1f s ago)\n",
		       state ? state : "?", pid, up + age, age);
	else
		printf("pipelined: not running (status written %.0f s ago, then %s; pid in %s: %ld)\n",
		       age, state ? state : "?", PL_SPOOL_LOCK_NAME, pid);
	printf("items: %llu done, %llu failed, %.1f items/s\n", num(s, "done"), num(s, "failed"),
	       real(s, "rate"));
	printf("%-10s %5s %7s %4s %6s %8s %8s %8s %8s %8s %8s\n", "STAGE", "WIDTH", "RUNNING",
	       "BUSY", "QUEUED", "RETRYING", "IN", "DONE", "FAILED", "P50_MS", "P95_MS");
	json_array_foreach(stages, i, st) {
		const char *name = json_string_value(json_object_get(st, "name"));

		printf("%-10s %5llu %7llu %4llu %6llu %8llu %8llu %8llu %8llu %8.1f %8.1f\n",
		       name ? name : "?", num(st, "width"), num(st, "running"), num(st, "busy"),
		       num(st, "queued"), num(st, "retrying"), num(st, "in"), num(st, "done"),
		       num(st, "failed"), real(st, "p50_ms"), real(st, "p95_ms"));
	}
	if (json_is_object(str)) {
		const char *server = json_string_value(json_object_get(str, "server"));

		fputs("stream: ", stdout);
		if (json_is_true(json_object_get(str, "connected")) && server) {
			fputs("connected to ", stdout);
			put_safe(stdout, server);
		} else {
			fputs("no server", stdout);
		}
		printf(", pulled %llu, in flight %llu, acked %llu, redelivered %llu, "
		       "dead-lettered %llu; our items published %llu, results back %llu ok, "
		       "%llu failed, %llu rejected\n", num(str, "pulled"), num(str, "in_flight"),
		       num(str, "acked"), num(str, "redelivered"), num(str, "dead_lettered"),
		       num(str, "published"), num(str, "results_ok"), num(str, "results_failed"),
		       num(str, "results_rejected"));
	}
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { 0 } };
	char path[PATH_MAX];
	json_error_t jerr;
	bool raw = false, alive;
	struct stat st;
	json_t *s;
	long pid;
	int o;

	while ((o = getopt_long(argc, argv, "+j", opts, NULL)) != -1) {
		if (o != 'j')
			return usage(stderr), EXIT_USAGE;
		raw = true;
	}
	if (optind != argc)
		return usage(stderr), EXIT_USAGE;
	snprintf(path, sizeof path, "%s/status.json", c->cfg->runtime);
	pid = daemon_pid(c, &alive);
	if (!(s = json_load_file(path, 0, &jerr)) || stat(path, &st) < 0) {
		int r = errno;

		json_decref(s);
		if (access(path, F_OK) < 0 && errno == ENOENT) {
			say("%s: no status%s", path, alive ? " yet (the daemon writes it within a "
			    "second of starting)" : ": the daemon is not running");
			return EX_UNAVAILABLE;
		}
		if (access(path, R_OK) < 0) {
			r = errno;
			say("%s: %s", path, strerror(r));
			return exit_for(-r);
		}
		say("%s: %s", path, jerr.text[0] ? jerr.text : strerror(r));
		return EX_DATAERR;
	}
	if (raw) {
		char *text = json_dumps(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (text)
			puts(text);
		free(text);
	} else {
		struct timespec now;
		double age;

		clock_gettime(CLOCK_REALTIME, &now);
		age = (double)(now.tv_sec - st.st_mtim.tv_sec) +
		      (double)(now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
		show_status(s, pid, alive, age > 0 ? age : 0);
	}
	json_decref(s);
	return alive ? 0 : EX_UNAVAILABLE;
}

/* ---- main ------------------------------------------------------------- */

static void report_config(void *ud, const char *msg)
{
	(void)ud;
	say("%s", msg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	static const struct {
		const char *name;
		int (*run)(struct ctl *, int, char **);
	} cmds[] = {
		{ "submit", cmd_submit }, { "list", cmd_list }, { "show", cmd_show },
		{ "resubmit", cmd_resubmit }, { "status", cmd_status },
	};
	struct ctl c = { .dfd = { -1, -1, -1, -1, -1 } };
	const char *config = PL_CTL_CONFIG;
	int o, status;
	size_t i;

	while ((o = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("pipelinectl %s\n", PL_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 0; i < sizeof cmds / sizeof *cmds && strcmp(argv[optind], cmds[i].name) != 0; i++)
		;
	if (i == sizeof cmds / sizeof *cmds) {
		say("unknown command \"%s\"", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	/* Only the spool and runtime settings matter here: warnings about the
	 * rest are the daemon's to give. */
	pl_log_set_level(LOG_ERR);
	if (!getenv("CREDENTIALS_DIRECTORY") && setenv("CREDENTIALS_DIRECTORY", UNIT_CREDENTIALS, 0) < 0)
		return EX_SOFTWARE;
	if (pl_config_load(config, report_config, NULL, &c.cfg) < 0)
		return EX_CONFIG;
	argc -= optind;
	argv += optind;
	optind = 0;	/* glibc: start getopt afresh on the command's arguments */
	status = cmds[i].run(&c, argc, argv);
	for (int f = 0; f < F_COUNT; f++)
		if (c.dfd[f] >= 0)
			close(c.dfd[f]);
	pl_config_free(c.cfg);
	if (fflush(stdout) != 0 && status == 0)
		status = EX_IOERR;
	return status;
}

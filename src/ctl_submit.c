/*
 * ctl_submit.c — pipelinectl(1)'s submit and resubmit: a job checked
 * line by line, then delivered to the spool atomically under a name that
 * was never used.
 *
 * How it fits: ctl.c dispatches here; the job is judged by ctl_scan_job
 * (ctl_jobs.c), which applies the daemon's own rule (jobline.c), so a line
 * the daemon would fail is refused before anything is submitted, and
 * --wait hands over to ctl_wait_job.  resubmit builds its job from the
 * failed records of an earlier one and delivers it the same way.
 *
 * Why it is built this way:
 *  - Submission is the Maildir protocol: the job is written to tmp/ under
 *    a dot-name of its own, synced, and renamed into new/ without
 *    replacing (RENAME_NOREPLACE), so the daemon never sees half a job.
 *    A signal while it is written takes the file in tmp/ away with it.
 *  - A job name is never reused: a second JOB would overwrite the first
 *    one's done/JOB.result.  Submitters serialise on an flock of tmp/ and
 *    look for the name, and for its result, in every folder a job passes.
 *    Any producer can take that lock, so a submit waits for it only so
 *    long (lock_tmp) and then gives up rather than hang.
 *  - Access is the file system's: the unit gives the spool's group to
 *    producers (pipelinectl(1), PERMISSIONS).  The job file is made 0640
 *    and given the group of new/, so the daemon can read it whoever wrote
 *    it, without a set-group-ID folder (the unit forbids setting one).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "jobline.h"
#include "spool.h"
#include "strbuf.h"

static bool job_name_ok(const char *n)
{
	size_t len = strlen(n), k = strlen(PL_SPOOL_RESULT_SUFFIX);

	return pl_jobline_name_valid(n) &&
	       !(len >= k && strcmp(n + len - k, PL_SPOOL_RESULT_SUFFIX) == 0);
}

/* Is name used by a job, or by a result (a rejected entry leaves one)? */
static int name_taken(struct ctl *c, const char *name, int *where)
{
	char res[NAME_MAX + 1];

	snprintf(res, sizeof res, "%s%s", name, PL_SPOOL_RESULT_SUFFIX);
	for (int f = F_NEW; f < F_COUNT; f++) {
		int fd = ctl_folder(c, f);

		if (fd < 0)
			return fd;
		if (ctl_exists_at(fd, name) || ctl_exists_at(fd, res)) {
			*where = f;
			return 1;
		}
	}
	return 0;
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

#define LOCK_WAIT_S 10	/* the most a submit waits for tmp/'s lock */

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

static void on_alarm(int sig)
{
	(void)sig;	/* only to interrupt the flock */
}

/* The submitters' lock on tmp/: 0, -ETIMEDOUT after LOCK_WAIT_S, or
 * -errno.  A submitter holds it for a look and a rename; one held longer
 * is held on purpose (any producer can open tmp/ and take it) or by a
 * stopped process, and waiting for ever would hang every submit. */
static int lock_tmp(int tmp)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;	/* no SA_RESTART */
	int r;

	if (sigaction(SIGALRM, &sa, &old) < 0)
		return -errno;
	alarm(LOCK_WAIT_S);
	r = flock(tmp, LOCK_EX) < 0 ? -errno : 0;
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	return r == -EINTR ? -ETIMEDOUT : r;
}

/*
 * Check the job in `in` and deliver it as `base` (or, with numbered, the
 * first of base, base2, … not taken), whose final name goes to name.
 * Returns an exit status; *items gets the job's item count.
 */
static int deliver(struct ctl *c, FILE *in, const char *where, const char *base, bool numbered,
		   char name[PL_JOBLINE_NAME_MAX + 1], unsigned long *items)
{
	int tmp = ctl_folder(c, F_TMP), new = ctl_folder(c, F_NEW), fd, r, taken = 0, status = 0;
	char tname[NAME_MAX + 1];
	struct ctl_tally t = { 0 };
	struct stat st;
	unsigned k = 1;
	FILE *out;

	if (tmp < 0 || new < 0)
		return ctl_exit_for(tmp < 0 ? tmp : new);
	/* A name nobody can guess: any producer may create files in tmp/, and
	 * one made in advance under the name we open (or one a killed submit
	 * left) would refuse the job. */
	for (int tries = 0; tries < 8; tries++) {
		uint64_t nonce;

		if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != (ssize_t)sizeof nonce)
			nonce = (uint64_t)clock() ^ ((uint64_t)time(NULL) << 20) ^ (uint64_t)tries;
		snprintf(tname, sizeof tname, ".%s.%ld.%016llx", base, (long)getpid(),
			 (unsigned long long)nonce);
		set_pending(tmp, tname);	/* armed before the file exists: no signal finds it unguarded */
		fd = openat(tmp, tname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		r = -errno;
		set_pending(-1, NULL);
		ctl_say("cannot write in %s/tmp: %s", c->cfg->spool, strerror(-r));
		return ctl_exit_for(r);
	}
	if (!(out = fdopen(fd, "w"))) {
		r = -errno;
		close(fd);
		goto fail;
	}
	r = ctl_scan_job(in, out, where, &t);
	if (r < 0) {
		ctl_say("%s: %s", where, strerror(-r));
		fclose(out);
		status = r == -ENOMEM ? EX_SOFTWARE : EX_IOERR;
		goto drop;
	}
	if (t.bad || !t.items) {
		if (t.bad)
			ctl_say("%s: %lu bad line%s: nothing submitted", where, t.bad, t.bad == 1 ? "" : "s");
		else
			ctl_say("%s: no items (only blank and comment lines): nothing submitted", where);
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

	if ((r = lock_tmp(tmp)) < 0) {
		if (r != -ETIMEDOUT)
			goto fail;
		ctl_say("%s/tmp has been locked for %d s by another process: nothing submitted",
		    c->cfg->spool, LOCK_WAIT_S);
		status = EX_TEMPFAIL;
		goto drop;
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
		ctl_say("job %s exists (in %s/): choose another name with -n", name,
		    pl_spool_folder_names[taken]);
		status = EX_CANTCREAT;
		goto drop;
	}
	if (r < 0)
		goto fail;
	set_pending(-1, NULL);
	if (fsync(new) < 0)
		ctl_say("fsync of %s/new: %s", c->cfg->spool, strerror(errno));
	*items = t.items;
	return 0;
fail:
	ctl_say("cannot submit %s: %s", where, strerror(-r));
	status = ctl_exit_for(r);
drop:
	set_pending(-1, NULL);
	unlinkat(tmp, tname, 0);
	return status;
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

/* The name a job was delivered as goes to stdout, at once: a producer
 * reading it learns the name before a --wait ends. */
static int delivered(struct ctl *c, const char *name, unsigned long items, bool wait)
{
	printf("%s\n", name);
	fflush(stdout);
	return wait ? ctl_wait_job(c, name, items) : 0;
}

/* -n NAME and -w, which submit and resubmit share: 0, or -1 for a bad
 * option (getopt said which). */
static int submit_options(int argc, char **argv, const char **given, bool *wait)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "wait", no_argument, NULL, 'w' },
		{ 0 }
	};
	int o;

	while ((o = getopt_long(argc, argv, "+n:w", opts, NULL)) != -1) {
		if (o == 'n')
			*given = optarg;
		else if (o == 'w')
			*wait = true;
		else
			return -1;
	}
	return 0;
}

int ctl_submit(struct ctl *c, int argc, char **argv)
{
	char name[PL_JOBLINE_NAME_MAX + 1], base[PL_JOBLINE_NAME_MAX + 1];
	const char *given = NULL, *path = NULL, *where;
	unsigned long items = 0;
	bool wait = false;
	FILE *in;
	int status;

	if (submit_options(argc, argv, &given, &wait) < 0)
		return ctl_usage(stderr), CTL_EXIT_USAGE;
	if (argc - optind > 1)
		return ctl_usage(stderr), CTL_EXIT_USAGE;
	if (optind < argc && strcmp(argv[optind], "-") != 0)
		path = argv[optind];
	if (given && !job_name_ok(given)) {
		ctl_say("invalid job name \"%s\": 1 to 100 of A-Z a-z 0-9 . _ -, not starting with "
		    "'.', not ending in \"%s\"", given, PL_SPOOL_RESULT_SUFFIX);
		return CTL_EXIT_USAGE;
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

		ctl_say("%s: %s", path, strerror(-r));
		return r == -ENOENT ? EX_NOINPUT : ctl_exit_for(r);
	}
	status = deliver(c, in, where, base, false, name, &items);
	if (in != stdin)
		fclose(in);
	return status ? status : delivered(c, name, items, wait);
}

/* ---- resubmit --------------------------------------------------------- */

int ctl_resubmit(struct ctl *c, int argc, char **argv)
{
	char name[PL_JOBLINE_NAME_MAX + 1], base[PL_JOBLINE_NAME_MAX + 1], where[PATH_MAX];
	struct pl_strbuf job = { 0 };
	unsigned long items = 0, again = 0, unnamed = 0;
	const char *given = NULL, *old;
	bool wait = false;
	char *line = NULL, *text;
	size_t cap = 0;
	FILE *res, *in;
	int f, status;

	if (submit_options(argc, argv, &given, &wait) < 0)
		return ctl_usage(stderr), CTL_EXIT_USAGE;
	if (argc - optind != 1)
		return ctl_usage(stderr), CTL_EXIT_USAGE;
	old = argv[optind];
	if (given && !job_name_ok(given)) {
		ctl_say("invalid job name \"%s\"", given);
		return CTL_EXIT_USAGE;
	}
	if ((f = ctl_find_job(c, old)) < 0) {
		if (f == -ENOENT)
			ctl_say("no job %s in %s", old, c->cfg->spool);
		return ctl_exit_for(f);
	}
	if (f != F_FAILED) {
		ctl_say("job %s is %s, not failed: nothing to resubmit", old, ctl_state_names[f]);
		return EX_DATAERR;
	}
	if (!(res = ctl_open_result(c, F_FAILED, old))) {
		int r = -errno;

		ctl_say("failed/%s%s: %s", old, PL_SPOOL_RESULT_SUFFIX, strerror(-r));
		return ctl_exit_for(r);
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
		ctl_say("job %s: %lu failed line%s did not parse and %s left out", old, unnamed,
		    unnamed == 1 ? "" : "s", unnamed == 1 ? "is" : "are");
	if (!again) {
		ctl_say("job %s has no failed item to run again", old);
		pl_strbuf_free(&job);
		return EX_DATAERR;
	}
	if (!(text = pl_strbuf_take(&job)) || !(in = fmemopen(text, strlen(text), "r"))) {
		free(text);
		ctl_say("out of memory");
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
	return status ? status : delivered(c, name, items, wait);
}


/*
 * ctl_jobs.c — pipelinectl(1)'s reading of the spool: finding a job by
 * its name, judging a job file line by line, counting a result file's
 * records, and the commands that only read (list, show) or watch (what
 * submit --wait and resubmit --wait do after delivering).
 *
 * How it fits: the spool on disk is the interface to the daemon
 * (pipelined(8)), so these functions are the whole of pipelinectl's view
 * of it; ctl_submit.c writes through the same folders.  The rules the two
 * must agree on come from the daemon's own modules: a job line is judged
 * by jobline.c, a record parsed by record.c, a folder listed and a file
 * opened by spool.c, the progress bar drawn by status.c.
 *
 * Why it is built this way:
 *  - A job is looked for in new/, cur/, done/ and failed/ in that order,
 *    the order a job moves in, so a job moving while we look is still seen.
 *  - --wait polls the folders a few times a second and reads the growing
 *    cur/JOB.result from where it left off; the file keeps its inode when
 *    the daemon renames it into done/ or failed/, so the stream opened
 *    once follows it.  A torn last record is left for the next look.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "ctl.h"
#include "jobline.h"
#include "log.h"
#include "nameset.h"
#include "record.h"
#include "spool.h"
#include "spooldir.h"
#include "status.h"

#define POLL_NS 100000000L	/* --wait looks ten times a second */

const char *const ctl_state_names[F_COUNT] = { "", "waiting", "running", "done", "failed" };

/* A folder of the spool: its fd, or a negative errno after saying why. */
int ctl_folder(struct ctl *c, int f)
{
	char path[PATH_MAX];
	int fd;

	if (c->dfd[f] >= 0)
		return c->dfd[f];
	snprintf(path, sizeof path, "%s/%s", c->cfg->spool, pl_spool_folder_names[f]);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		ctl_say("%s: %s%s", path, strerror(-r),
		    r == -EACCES ? " (producers need the spool's group; see PERMISSIONS in pipelinectl(1))" :
		    r == -ENOENT ? " (the daemon makes the spool when it first starts)" : "");
		return r;
	}
	return c->dfd[f] = fd;
}

bool ctl_exists_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The folder a job is in, looked for in the order jobs move; -ENOENT.
 * A name the daemon never takes as a job is in none.  One move goes the
 * other way: a daemon that stops puts its running jobs back from cur/ to
 * new/, and one pass can miss a job moving so; a second pass cannot (it
 * is in new/ then, or claimed again into cur/), so a job is said to be
 * gone only when two passes did not find it. */
int ctl_find_job(struct ctl *c, const char *name)
{
	if (!*name || name[0] == '.' || strchr(name, '/'))
		return -ENOENT;
	for (int pass = 0; pass < 2; pass++)
		for (int f = F_NEW; f < F_COUNT; f++) {
			int fd = ctl_folder(c, f);

			if (fd < 0)
				return fd;
			if (ctl_exists_at(fd, name))
				return f;
		}
	return -ENOENT;
}

/* ---- reading jobs and results ----------------------------------------- */

/*
 * Read a job from in, judging every line as the daemon will; each bad one
 * is said as WHERE:LINE (where non-NULL).  With copy, the lines go there
 * as read, each ending in a newline, until the job is known to be bad
 * (then it is never delivered, and a careless `submit /dev/zero` must not
 * fill the spool's disk).  A line is kept only as far as the judge looks
 * (PL_JOBLINE_MAX + 1 bytes, as the spool's reader keeps it), so one
 * endless line costs no more memory than a short one.  0 or -errno.
 */
int ctl_scan_job(FILE *in, FILE *copy, const char *where, struct ctl_tally *t)
{
	struct pl_nameset names = { 0 };
	char name[PL_JOBLINE_NAME_MAX + 1], quote[PL_JOBLINE_QUOTE_MAX + 1], *line, *src;
	unsigned long lineno = 0;
	int r = 0, c = 0;

	if (!(line = malloc(PL_JOBLINE_MAX + 2)))
		return -ENOMEM;
	while (c != EOF) {
		FILE *to = t->bad ? NULL : copy;
		size_t len = 0;
		bool cut = false, any = false;
		const char *why;

		errno = 0;	/* a failed read says why (EISDIR: a folder given) */
		while ((c = getc_unlocked(in)) != EOF) {
			any = true;
			if (to && putc_unlocked(c, to) == EOF) {
				r = -errno;
				break;
			}
			if (c == '\n')
				break;
			if (len <= PL_JOBLINE_MAX) {
				line[len++] = (char)c;
			} else if (!cut) {
				cut = true;
				line[len] = '\0';
				if (!pl_jobline_blank(line))
					to = NULL;	/* too long: the job is bad */
			}
		}
		if (r == 0 && c == EOF && ferror(in))
			r = errno ? -errno : -EIO;	/* before judging and saying sets it */
		if (r < 0 || !any)
			break;
		if (c == EOF && to && putc_unlocked('\n', to) == EOF) {
			r = -errno;
			break;
		}
		lineno++;
		r = pl_jobline_judge(line, len, cut, &names, &src, name, quote, &why);
		if (r < 0)
			break;
		if (r == 1 && why) {
			t->bad++;
			if (where) {
				fprintf(stderr, "%s:%lu: %s: ", where, lineno, why);
				ctl_put_safe(stderr, quote);
				fputc('\n', stderr);
			}
		} else if (r == 1) {
			t->items++;
		}
		r = 0;
	}
	free(line);
	pl_nameset_free(&names);
	return r;
}

/* Count the complete records from f's position on; a torn last line is
 * left for the next call. */
static void read_records(FILE *f, struct ctl_tally *t)
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

FILE *ctl_open_result(struct ctl *c, int f, const char *job)
{
	char res[NAME_MAX + 1];
	int fd = ctl_folder(c, f);

	if (fd < 0)
		return NULL;
	snprintf(res, sizeof res, "%s%s", job, PL_SPOOL_RESULT_SUFFIX);
	return pl_spooldir_open_regular(fd, res);
}

/* ---- waiting ---------------------------------------------------------- */

/* Seconds on the daemon's monotonic clock. */
static double now_s(void)
{
	return (double)pl_now_us() / 1e6;
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
int ctl_wait_job(struct ctl *c, const char *name, unsigned long total)
{
	bool tty = isatty(STDERR_FILENO);
	double start = now_s(), said = 0;
	unsigned long shown = ULONG_MAX;
	struct ctl_tally t = { 0 };
	FILE *res = NULL;
	int where;
	char text[256];

	for (;;) {
		const struct timespec pause = { 0, POLL_NS };
		unsigned long seen;

		where = ctl_find_job(c, name);
		if (where < 0) {
			if (tty)
				pl_log_bar_end();
			if (where == -ENOENT)
				ctl_say("job %s is gone from the spool", name);
			if (res)
				fclose(res);
			return EX_SOFTWARE;
		}
		if (!res)
			res = ctl_open_result(c, result_folder(where), name);
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
			fprintf(stderr, "job %s: %s, %lu/%lu, %lu failed\n", name, ctl_state_names[where],
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
	return where == F_FAILED || t.failed ? CTL_EXIT_FAILED_ITEMS : 0;
}

/* ---- list ------------------------------------------------------------- */

/* The jobs of one folder (no dot-files, no results), sorted. */
static int list_jobs(int dfd, char ***out, size_t *count)
{
	size_t n = 0, k = 0;
	char **v = NULL;
	int r = pl_spooldir_list_at(dfd, &v, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i]), s = strlen(PL_SPOOL_RESULT_SUFFIX);

		if (v[i][0] == '.' || (len >= s && strcmp(v[i] + len - s, PL_SPOOL_RESULT_SUFFIX) == 0))
			free(v[i]);
		else
			v[k++] = v[i];
	}
	*out = v;
	*count = k;
	return 0;
}

/* Items of a waiting or running job (from its file), its records so far
 * (from its result); *readable false when the job file could not be read. */
static void job_tally(struct ctl *c, int f, const char *name, struct ctl_tally *t, bool *readable)
{
	FILE *in;

	*readable = true;
	if (f == F_NEW || f == F_CUR) {
		if ((in = pl_spooldir_open_regular(c->dfd[f], name))) {
			if (ctl_scan_job(in, NULL, NULL, t) < 0)
				*readable = false;
			t->items += t->bad;	/* a bad line is an item that fails */
			fclose(in);
		} else {
			*readable = false;
		}
	}
	if ((in = ctl_open_result(c, result_folder(f), name))) {
		read_records(in, t);
		fclose(in);
	}
	if (f == F_DONE || f == F_FAILED)
		t->items = t->ok + t->failed;
}

int ctl_list(struct ctl *c, int argc, char **argv)
{
	bool want[F_COUNT] = { false };
	unsigned long count[F_COUNT] = { 0 };
	bool any = false, header = false;

	for (int i = 1; i < argc; i++) {
		int f;

		for (f = F_NEW; f < F_COUNT && strcmp(argv[i], ctl_state_names[f]) != 0; f++)
			;
		if (f == F_COUNT)
			return ctl_usage(stderr), CTL_EXIT_USAGE;
		want[f] = any = true;
	}
	for (int f = F_NEW; f < F_COUNT; f++) {
		char **names = NULL;
		size_t n = 0;
		int fd, r;

		if (any && !want[f])
			continue;
		if ((fd = ctl_folder(c, f)) < 0)
			return ctl_exit_for(fd);
		if ((r = list_jobs(fd, &names, &n)) < 0) {
			ctl_say("%s/%s: %s", c->cfg->spool, pl_spool_folder_names[f], strerror(-r));
			return ctl_exit_for(r);
		}
		for (size_t i = 0; i < n; i++) {
			struct ctl_tally t = { 0 };
			bool readable;

			job_tally(c, f, names[i], &t, &readable);
			if (!header) {
				printf("%-8s %7s %7s %7s  %s\n", "STATE", "ITEMS", "OK", "FAILED", "JOB");
				header = true;
			}
			if (readable)
				printf("%-8s %7lu %7lu %7lu  ", ctl_state_names[f], t.items, t.ok, t.failed);
			else
				printf("%-8s %7s %7lu %7lu  ", ctl_state_names[f], "?", t.ok, t.failed);
			ctl_put_safe(stdout, names[i]);
			putchar('\n');
			free(names[i]);
		}
		free(names);
		count[f] = n;
	}
	for (int f = F_NEW, first = 1; f < F_COUNT; f++) {
		if (any && !want[f])
			continue;
		printf("%s%lu %s", first ? "" : ", ", count[f], ctl_state_names[f]);
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
	ctl_put_safe(stdout, name ? name : "-");
	fputs("  ", stdout);
	if (st && strcmp(st, "ok") == 0) {
		json_array_foreach(outs, i, v) {
			if (i)
				putchar(' ');
			ctl_put_safe(stdout, json_string_value(v) ? json_string_value(v) : "?");
		}
	} else {
		ctl_put_safe(stdout, err ? err : "?");
		fputs(" (", stdout);
		ctl_put_safe(stdout, src ? src : "-");
		putchar(')');
	}
	putchar('\n');
}

int ctl_show(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "table", no_argument, NULL, 't' }, { 0 } };
	struct ctl_tally t = { 0 };
	bool table = false;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *res;
	int o, f;

	while ((o = getopt_long(argc, argv, "+t", opts, NULL)) != -1) {
		if (o != 't')
			return ctl_usage(stderr), CTL_EXIT_USAGE;
		table = true;
	}
	if (argc - optind != 1)
		return ctl_usage(stderr), CTL_EXIT_USAGE;
	if ((f = ctl_find_job(c, argv[optind])) < 0) {
		if (f == -ENOENT)
			ctl_say("no job %s in %s", argv[optind], c->cfg->spool);
		return ctl_exit_for(f);
	}
	if (!(res = ctl_open_result(c, result_folder(f), argv[optind]))) {
		int r = -errno;

		if (r != -ENOENT) {
			ctl_say("%s/%s%s: %s", pl_spool_folder_names[result_folder(f)], argv[optind],
			    PL_SPOOL_RESULT_SUFFIX, strerror(-r));
			return ctl_exit_for(r);
		}
		ctl_say("job %s is %s: no results yet", argv[optind], ctl_state_names[f]);
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
			ctl_put_record(stdout, line, (size_t)n);
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


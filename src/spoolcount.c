/*
 * spoolcount.c — see spoolcount.h.  How much work waits in new/, for the
 * metrics' backlog and --once's progress.  It only reads: job files for
 * their item lines, and the result a stopped run left in cur/ for what a
 * resumed job will skip.  Kept out of spool.c because it shares nothing
 * with a job's life there (no lock, no reference, no open job), and may be
 * slow: it reads every waiting job whole, giving up at a stop.
 *
 * Why it is built this way: the figures are estimates and are allowed to
 * be: a record line counts as an item done without being parsed, and a job
 * claimed or submitted during the count may be missed or counted.  Exact
 * numbers would need the claim's locking for a figure that is only shown.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobline.h"
#include "spoolcount.h"
#include "spooldir.h"

/* Item lines (not blank, not comment) of one job file. */
static unsigned long count_items(atomic_bool *stop, FILE *f)
{
	unsigned long n = 0, unread = 0;
	bool start = true;
	int c;

	while ((c = getc_unlocked(f)) != EOF) {
		if (++unread % PL_SPOOLDIR_STOP_EVERY == 0 && atomic_load(stop))
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

static unsigned long count_lines_at(int dfd, const char *name)
{
	FILE *f = pl_spooldir_open_regular(dfd, name);
	unsigned long n = 0;
	int c;

	if (!f)
		return 0;
	while ((c = getc_unlocked(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

int pl_spoolcount_waiting(const struct pl_spooldir *d, atomic_bool *stop, unsigned long *jobs,
			  unsigned long *items)
{
	char resname[NAME_MAX + 1], **names;
	size_t n;
	int r = pl_spooldir_list(d, PL_SPOOL_NEW, &names, &n);

	*jobs = *items = 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && !atomic_load(stop); i++) {
		unsigned long lines, done = 0;
		FILE *f;

		if (names[i][0] == '.' || pl_spooldir_is_result(names[i]) ||
		    !(f = pl_spooldir_open_regular(d->dfd[PL_SPOOL_NEW], names[i])))
			continue;
		lines = count_items(stop, f);
		fclose(f);
		++*jobs;
		/* A job resumed later skips what it already recorded. */
		if (snprintf(resname, sizeof resname, "%s%s", names[i], PL_SPOOL_RESULT_SUFFIX) <
		    (int)sizeof resname)
			done = count_lines_at(d->dfd[PL_SPOOL_CUR], resname);
		*items += lines > done ? lines - done : 0;
	}
	pl_spooldir_free_names(names, n);
	return 0;
}

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
 * The metrics recount every few seconds while scraped, and a backlog can be
 * large (a gigabyte of job files took a second of CPU a count), so a job's
 * item lines are remembered with what identifies its file's content
 * (device, inode, size, mtime, ctime: an edit in place changes the ctime
 * even when the mtime is set back) and read again only when one differs.
 * Results left in cur/ by a stopped run are counted afresh each time:
 * they are few, and short.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* One job file as last counted. */
struct entry {
	char *name;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	unsigned long items;
};

struct pl_spoolcount {
	pthread_mutex_t lock;	/* one count at a time: the metrics thread, --once */
	struct entry *e;	/* sorted by name */
	size_t n;
	unsigned long reads;
};

int pl_spoolcount_new(struct pl_spoolcount **out)
{
	struct pl_spoolcount *c = calloc(1, sizeof *c);
	int r;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	if ((r = pthread_mutex_init(&c->lock, NULL))) {
		free(c);
		return -r;
	}
	*out = c;
	return 0;
}

static void free_entries(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

void pl_spoolcount_free(struct pl_spoolcount *c)
{
	if (!c)
		return;
	free_entries(c->e, c->n);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

unsigned long pl_spoolcount_reads(struct pl_spoolcount *c)
{
	unsigned long n;

	pthread_mutex_lock(&c->lock);
	n = c->reads;
	pthread_mutex_unlock(&c->lock);
	return n;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static bool same_file(const struct entry *e, const struct stat *st)
{
	return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtim.tv_sec == st->st_mtim.tv_sec && e->mtim.tv_nsec == st->st_mtim.tv_nsec &&
	       e->ctim.tv_sec == st->st_ctim.tv_sec && e->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/*
 * The item lines of the open job file f, named name: from the cache when
 * the file is the one counted before, else read; remembered in
 * fresh[*nfresh] when fresh is not NULL and the read was not cut short by
 * a stop.  The old entries stay whole until the count ends: bsearch
 * compares names with any of them.
 */
static unsigned long job_items(struct pl_spoolcount *c, struct entry *fresh, size_t *nfresh,
			       atomic_bool *stop, const char *name, FILE *f)
{
	struct entry key = { .name = (char *)name }, *old = NULL;
	unsigned long items;
	struct stat st;
	bool known = fstat(fileno(f), &st) == 0;

	if (c && known && c->n)
		old = bsearch(&key, c->e, c->n, sizeof *c->e, by_name);
	if (old && same_file(old, &st)) {
		items = old->items;
	} else {
		items = count_items(stop, f);
		if (c)
			c->reads++;
		if (atomic_load(stop))
			return items;
	}
	if (!fresh || !known || !(key.name = strdup(name)))
		return items;	/* only not remembered */
	fresh[(*nfresh)++] = (struct entry){ .name = key.name, .dev = st.st_dev, .ino = st.st_ino,
		.size = st.st_size, .mtim = st.st_mtim, .ctim = st.st_ctim, .items = items };
	return items;
}

int pl_spoolcount_waiting(const struct pl_spooldir *d, struct pl_spoolcount *c, atomic_bool *stop,
			  unsigned long *jobs, unsigned long *items)
{
	char resname[NAME_MAX + 1], **names;
	struct entry *fresh = NULL;
	size_t n, nfresh = 0;
	int r = pl_spooldir_list(d, PL_SPOOL_NEW, &names, &n);

	*jobs = *items = 0;
	if (r < 0)
		return r;
	if (c) {
		pthread_mutex_lock(&c->lock);
		fresh = calloc(n ? n : 1, sizeof *fresh);	/* without it: counted, not remembered */
	}
	for (size_t i = 0; i < n && !atomic_load(stop); i++) {
		unsigned long lines, done = 0;
		FILE *f;

		if (names[i][0] == '.' || pl_spooldir_is_result(names[i]) ||
		    !(f = pl_spooldir_open_regular(d->dfd[PL_SPOOL_NEW], names[i])))
			continue;
		lines = job_items(c, fresh, &nfresh, stop, names[i], f);
		fclose(f);
		++*jobs;
		/* A job resumed later skips what it already recorded. */
		if (snprintf(resname, sizeof resname, "%s%s", names[i], PL_SPOOL_RESULT_SUFFIX) <
		    (int)sizeof resname)
			done = count_lines_at(d->dfd[PL_SPOOL_CUR], resname);
		*items += lines > done ? lines - done : 0;
	}
	pl_spooldir_free_names(names, n);
	if (c) {
		/* jobs gone from new/ (claimed, withdrawn) are forgotten; a count
		 * cut short by a stop keeps only what it saw */
		if (fresh) {
			qsort(fresh, nfresh, sizeof *fresh, by_name);
			free_entries(c->e, c->n);
			c->e = fresh;
			c->n = nfresh;
		}
		pthread_mutex_unlock(&c->lock);
	}
	return 0;
}

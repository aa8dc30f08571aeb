/*
 * spoolcount.h — how many jobs and items wait in a spool's new/ (see
 * spool.h: pl_spool_count_waiting, which calls this with the spool's own
 * folders and stop flag).
 */
#ifndef PL_SPOOLCOUNT_H
#define PL_SPOOLCOUNT_H

#include <stdatomic.h>

struct pl_spooldir;
/* What earlier counts learned: the item lines of each job file, kept by
 * name with the file's identity and times, so that a job unchanged since
 * is not read again (job files are written whole in tmp/ and renamed into
 * new/, so they almost never change there).  One per spool; calls on one
 * cache are serialised. */
struct pl_spoolcount;

int  pl_spoolcount_new(struct pl_spoolcount **out);	/* 0 or -ENOMEM etc. */
void pl_spoolcount_free(struct pl_spoolcount *c);
/* Job files read whole so far, for the tests. */
unsigned long pl_spoolcount_reads(struct pl_spoolcount *c);

/* Jobs of new/ and their item lines not yet recorded; gives up early when
 * *stop is set.  c may be NULL (every job is read).  0 or -errno (the
 * folder could not be listed). */
int pl_spoolcount_waiting(const struct pl_spooldir *d, struct pl_spoolcount *c, atomic_bool *stop,
			  unsigned long *jobs, unsigned long *items);

#endif

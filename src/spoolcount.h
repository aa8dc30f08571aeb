/*
 * spoolcount.h — how many jobs and items wait in a spool's new/ (see
 * spool.h: pl_spool_count_waiting, which calls this with the spool's own
 * folders and stop flag).
 */
#ifndef PL_SPOOLCOUNT_H
#define PL_SPOOLCOUNT_H

#include <stdatomic.h>

struct pl_spooldir;

/* Jobs of new/ and their item lines not yet recorded; gives up early when
 * *stop is set.  0 or -errno (the folder could not be listed). */
int pl_spoolcount_waiting(const struct pl_spooldir *d, atomic_bool *stop, unsigned long *jobs,
			  unsigned long *items);

#endif

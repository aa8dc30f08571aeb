/*
 * spoolscan.h — which names of a spool's new/ to try next: inotify says
 * that new/ changed, a sorted listing says what is in it.  The claim
 * (spool.c) takes the names one by one and decides what each one is.
 */
#ifndef PL_SPOOLSCAN_H
#define PL_SPOOLSCAN_H

#include <stdatomic.h>
#include <stddef.h>

struct pl_spooldir;

struct pl_spoolscan {
	int ifd;		/* inotify on new/ */
	atomic_bool rescan;	/* new/ may hold names the list lacks */
	char **names;		/* sorted names of the last scan of new/ */
	size_t nnames, next;
};

/* Before anything that can fail: nothing watched, a scan due. */
void pl_spoolscan_init(struct pl_spoolscan *sc);
/* Start watching new/.  0 or -errno (logged). */
int  pl_spoolscan_watch(struct pl_spoolscan *sc, const struct pl_spooldir *d);
/* Consume pending inotify events; any, an overflow included, makes a scan due. */
void pl_spoolscan_handle_events(struct pl_spoolscan *sc, const struct pl_spooldir *d);
void pl_spoolscan_again(struct pl_spoolscan *sc);	/* a scan is due. Any thread. */
/* The next name, NULL when none waits (*err set if new/ could not be
 * read).  Not thread-safe: the caller serialises. */
char *pl_spoolscan_next(struct pl_spoolscan *sc, const struct pl_spooldir *d, int *err);
void pl_spoolscan_stop(struct pl_spoolscan *sc);	/* stop watching */
void pl_spoolscan_free(struct pl_spoolscan *sc);

#endif

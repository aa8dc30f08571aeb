/*
 * spoolscan.c — see spoolscan.h.  Discovery of jobs in new/, kept apart
 * from spool.c because it knows nothing of jobs: it hands out names, and
 * the claim decides what each one is.
 *
 * Why it is built this way: inotify only says "new/ changed"; the names
 * themselves come from a sorted readdir that is redone only when the list
 * of the last scan is used up and something changed since (or inotify
 * overflowed).  A spool with a million waiting jobs therefore costs one
 * scan, not one per claim; names come in sorted order.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"
#include "spooldir.h"
#include "spoolscan.h"

void pl_spoolscan_init(struct pl_spoolscan *sc)
{
	sc->ifd = -1;
	atomic_init(&sc->rescan, true);
	sc->names = NULL;
	sc->nnames = sc->next = 0;
}

int pl_spoolscan_watch(struct pl_spoolscan *sc, const struct pl_spooldir *d)
{
	char path[4096];
	int r;

	sc->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	snprintf(path, sizeof path, "%s/new", d->path);
	if (sc->ifd < 0 || inotify_add_watch(sc->ifd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		r = -errno;
		pl_log_errno(LOG_ERR, -r, "spool: cannot watch %s: %s", path, strerror(-r));
		return r;
	}
	return 0;
}

void pl_spoolscan_handle_events(struct pl_spoolscan *sc, const struct pl_spooldir *d)
{
	/* Which event it was does not matter (overflow included): the names
	 * come from the next scan anyway. */
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(sc->ifd, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			pl_log_errno(LOG_WARNING, errno, "spool %s: reading inotify: %s",
				     d->path, strerror(errno));
		if (n != 0)
			atomic_store(&sc->rescan, true);
		if (n <= 0)
			return;
	}
}

void pl_spoolscan_again(struct pl_spoolscan *sc)
{
	atomic_store(&sc->rescan, true);
}

/* Next name from the list, rescanning new/ only when the list is used up
 * and new/ changed since.  NULL when nothing waits. */
char *pl_spoolscan_next(struct pl_spoolscan *sc, const struct pl_spooldir *d, int *err)
{
	*err = 0;
	if (sc->next == sc->nnames) {
		pl_spooldir_free_names(sc->names, sc->nnames);
		sc->names = NULL;
		sc->nnames = sc->next = 0;
		if (!atomic_exchange(&sc->rescan, false))
			return NULL;
		*err = pl_spooldir_list(d, PL_SPOOL_NEW, &sc->names, &sc->nnames);
		if (*err < 0) {
			atomic_store(&sc->rescan, true);
			pl_log_errno(LOG_ERR, -*err, "spool %s: cannot read new/: %s",
				     d->path, strerror(-*err));
			return NULL;
		}
		if (sc->nnames == 0)
			return NULL;
	}
	return sc->names[sc->next++];
}

void pl_spoolscan_stop(struct pl_spoolscan *sc)
{
	if (sc->ifd >= 0)
		close(sc->ifd);
	sc->ifd = -1;
}

void pl_spoolscan_free(struct pl_spoolscan *sc)
{
	pl_spoolscan_stop(sc);
	pl_spooldir_free_names(sc->names, sc->nnames);
	sc->names = NULL;
	sc->nnames = sc->next = 0;
}

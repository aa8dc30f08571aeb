/*
 * crashguard.h — a small durable record of the work that could have crashed
 * the daemon, so that an item that crashes it is found and failed alone
 * instead of crashing every restart for ever.
 *
 * An intake numbers its items (a job's line numbers; later, a stream's
 * sequence numbers) and keeps one guard per unit of intake.  The guard holds:
 *   mark     every item numbered at or below it may have been inside the
 *            pipeline; the intake raises it, ahead, before it hands out an
 *            item above it;
 *   suspect  the one item running alone right now (0: none), and how many
 *            crashes were already put down to it;
 *   id       what the record is about, so that a record left behind is
 *            never applied to a different unit that reuses its name.
 * Both are written with one pwrite of a fixed-size line and fdatasync, so
 * the record is on disk before the item it names can run.  A record that
 * does not parse (a torn write) reads as "nothing known", never as a reason
 * to fail an item.
 */
#ifndef PL_CRASHGUARD_H
#define PL_CRASHGUARD_H

#include <stdint.h>

/* After this many crashes while it ran alone, an item is failed. */
#define PL_CRASHGUARD_LIMIT 2

struct pl_crashguard_state {
	uint64_t id;		/* what the record is about (a job file's inode) */
	uint64_t mark;
	uint64_t suspect;
	unsigned crashes;
};

struct pl_crashguard;

/* Open (creating it 0640, never following a symlink) NAME below DIRFD and
 * read what it holds into *st (zeros for a new or unreadable record). */
int  pl_crashguard_open(int dirfd, const char *name, struct pl_crashguard **out,
			struct pl_crashguard_state *st);
/* Replace the record and wait until it is on disk. */
int  pl_crashguard_write(struct pl_crashguard *g, const struct pl_crashguard_state *st);
/* Close; with unlink_it, remove the file as well (nothing is suspect).
 * DIRFD must still be open: the guard keeps it, not a copy. */
void pl_crashguard_close(struct pl_crashguard *g, int unlink_it);

/* Pure: parse one record (exposed for the unit tests). 0 or -EINVAL. */
int  pl_crashguard_parse(const char *buf, size_t len, struct pl_crashguard_state *st);

#endif

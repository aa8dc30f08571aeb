/*
 * jobguard.c — see jobguard.h.  The crash guard's policy for a spool job:
 * crashguard.c keeps the record on disk, this decides what it means for
 * the job's lines, and spool.c only asks at the claim, before each item
 * leaves the reader, and at a stop.  Kept apart from spool.c because none
 * of it touches a job's reference count: the feeder calls it as it reads,
 * and pl_spool_close at a stop.
 *
 * Why it is built this way: the mark is raised in steps ahead of the
 * reader, not per item, so that a guard costs one fdatasync per MARK_STEP
 * lines; the price is that after a crash up to MARK_STEP lines that never
 * started run alone.  Only an item that crashed the daemon while it ran
 * alone is blamed, so a crash never fails its batch-mates.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "jobguard.h"
#include "linemap.h"
#include "log.h"
#include "spooldir.h"

/* How far ahead of the item being handed out the crash guard's mark is
 * raised: one fdatasync per this many lines, and at most this many
 * never-started lines run alone after a crash. */
#define MARK_STEP 32

/*
 * What the guard says about this run.  A mark means the daemon died with
 * this job claimed: unrecorded lines up to it were maybe inside the
 * pipeline, so they run alone (the daemon's feeder waits for an empty
 * pipeline around each), and whichever crashes it again is caught as the
 * suspect.  A suspect still unrecorded was running alone when the daemon
 * died: one more crash to its name, and at PL_CRASHGUARD_LIMIT it fails
 * without running.  Its batch-mates are never blamed.
 */
static void judge(struct pl_jobguard *jg, const uint64_t *recorded, unsigned long nbits)
{
	struct pl_crashguard_state *g = &jg->gs;

	if (g->suspect && !pl_linemap_test(recorded, nbits, g->suspect)) {
		g->crashes++;
		pl_log(LOG_WARNING, "job %s: line %llu was running alone when the daemon died "
		       "(%u time%s)", jg->job, (unsigned long long)g->suspect, g->crashes,
		       g->crashes == 1 ? "" : "s");
		if (g->crashes >= PL_CRASHGUARD_LIMIT) {
			jg->condemned = g->suspect;
			snprintf(jg->condemned_why, sizeof jg->condemned_why,
				 "crashed the daemon %u times", g->crashes);
		}
	} else {
		g->suspect = 0;
		g->crashes = 0;
	}
	if (g->mark) {
		jg->alone_end = g->mark;
		pl_log(LOG_NOTICE, "job %s: the daemon died while running it; its unrecorded lines "
		       "up to %llu run one at a time, to find any that crashes it", jg->job,
		       (unsigned long long)g->mark);
	}
}

int pl_jobguard_open(struct pl_jobguard *g, int curfd, const char *job, uint64_t id,
		     const uint64_t *recorded, unsigned long nbits)
{
	char gname[NAME_MAX + 1];
	int r;

	g->job = job;
	snprintf(gname, sizeof gname, ".%s%s", job, PL_SPOOLDIR_GUARD_SUFFIX);
	if ((r = pl_crashguard_open(curfd, gname, &g->cg, &g->gs)) < 0)
		return r;
	if (g->gs.id != id)
		g->gs = (struct pl_crashguard_state){ .id = id };
	judge(g, recorded, nbits);
	return 0;
}

/* Before an item leaves the feeder: it runs alone if the guard says it may
 * have crashed the daemon; otherwise the mark is raised ahead of it, on
 * disk, so that a crash from here on knows where to look. */
bool pl_jobguard_item(struct pl_jobguard *g, unsigned long line)
{
	int r;

	if (line <= g->alone_end)
		return true;
	if (!g->cg || line <= g->gs.mark)
		return false;
	g->gs.mark = line + MARK_STEP;
	if ((r = pl_crashguard_write(g->cg, &g->gs)) < 0) {
		pl_log_errno(LOG_ERR, -r, "job %s: cannot write its crash guard (a crashing item "
			     "will not be found): %s", g->job, strerror(-r));
		pl_crashguard_close(g->cg, 0);
		g->cg = NULL;
	}
	return false;
}

int pl_jobguard_suspect(struct pl_jobguard *g, unsigned long line)
{
	int r;

	if (!g->cg)
		return 0;
	if (g->gs.suspect != line)
		g->gs.crashes = 0;	/* counts belong to the one suspect */
	g->gs.suspect = line;
	if ((r = pl_crashguard_write(g->cg, &g->gs)) < 0)
		pl_log_errno(LOG_ERR, -r, "job %s: cannot write its crash guard: %s", g->job,
			     strerror(-r));
	return r;
}

/*
 * A stop that drained: every item that entered the pipeline was recorded,
 * so nothing of this job can have crashed the daemon, except the lines of
 * a window left from an earlier crash that have not run yet.
 */
void pl_jobguard_settle(struct pl_jobguard *g, unsigned long from, const uint64_t *recorded,
			unsigned long nbits)
{
	bool window_left = false;

	if (!g->cg)
		return;
	for (unsigned long l = from; l <= g->alone_end && !window_left; l++)
		window_left = !pl_linemap_test(recorded, nbits, l);
	g->gs.suspect = 0;
	g->gs.crashes = 0;
	g->gs.mark = window_left ? g->alone_end : 0;
	if (!window_left) {
		pl_crashguard_close(g->cg, 1);
		g->cg = NULL;
	} else if (pl_crashguard_write(g->cg, &g->gs) < 0) {
		pl_log(LOG_WARNING, "job %s: cannot update its crash guard", g->job);
	}
}

const char *pl_jobguard_condemned(const struct pl_jobguard *g, unsigned long line)
{
	return line == g->condemned ? g->condemned_why : NULL;
}

void pl_jobguard_close(struct pl_jobguard *g, bool finished)
{
	pl_crashguard_close(g->cg, finished);
	g->cg = NULL;
}

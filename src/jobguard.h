/*
 * jobguard.h — a spool job's crash guard: crashguard.h's record, applied
 * to one job's lines.  At the claim it says which lines run alone and which
 * one fails unrun; while the job is read it keeps the record's mark ahead
 * of the reader; at a drained stop it says what is left to suspect.
 */
#ifndef PL_JOBGUARD_H
#define PL_JOBGUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "crashguard.h"

struct pl_jobguard {
	const char *job;		/* the job's name, for the log (not a copy) */
	struct pl_crashguard *cg;	/* NULL when there is none (any more) */
	struct pl_crashguard_state gs;
	/* Lines up to alone_end were maybe inside the pipeline when the daemon
	 * last died, so they run alone; condemned crashed it
	 * PL_CRASHGUARD_LIMIT times and fails unrun. */
	unsigned long alone_end, condemned;
	char condemned_why[64];
};

/* Open cur/.JOB.guard (CURFD) for the job file with inode ID, and judge
 * what the last run left in it.  RECORDED (NBITS long, NULL if none) marks
 * the lines earlier runs recorded.  0 or -errno. */
int  pl_jobguard_open(struct pl_jobguard *g, int curfd, const char *job, uint64_t id,
		      const uint64_t *recorded, unsigned long nbits);
/* Before the item of LINE leaves the reader: true if it must run alone;
 * otherwise the mark is raised ahead of it, on disk. */
bool pl_jobguard_item(struct pl_jobguard *g, unsigned long line);
/* Why LINE must fail without running, or NULL. */
const char *pl_jobguard_condemned(const struct pl_jobguard *g, unsigned long line);
/* LINE runs alone now: on disk as the suspect.  0 or -errno. */
int  pl_jobguard_suspect(struct pl_jobguard *g, unsigned long line);
/* A stop that drained, with the reader at line FROM: keep only what an
 * earlier crash left unrun. */
void pl_jobguard_settle(struct pl_jobguard *g, unsigned long from, const uint64_t *recorded,
			unsigned long nbits);
/* Close the record; with finished (the job is done), remove it too. */
void pl_jobguard_close(struct pl_jobguard *g, bool finished);

#endif

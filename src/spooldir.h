/*
 * spooldir.h — the spool as folders on disk: making them with their modes,
 * the lock that keeps a spool to one daemon, listing and moving names, and
 * the two moves that are not a job's own (recovery at start, a name of new/
 * refused as a job), and the sweep of what killed producers left in tmp/.
 * The life of a job is spool.c's; the layout is here.
 */
#ifndef PL_SPOOLDIR_H
#define PL_SPOOLDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "spool.h"

#define PL_SPOOLDIR_GUARD_SUFFIX ".guard"	/* cur/.JOB.guard: see crashguard.h */
#define PL_SPOOLDIR_STOP_EVERY 65536	/* bytes read from a file between looks at a stop */
/* A file of tmp/ neither written nor changed for this long (Maildir's
 * 36 hours) was left by a producer that died: pipelined(8), The spool. */
#define PL_SPOOLDIR_TMP_MAX_AGE (36 * 3600)

struct pl_spooldir {
	char *path;			/* as given */
	int dfd[PL_SPOOL_FOLDERS];	/* PL_SPOOL_TMP, … */
	int lockfd;			/* PL_SPOOL_LOCK_NAME, flock'ed while open */
};

/* Create the spool and its folders if needed, lock it (-EBUSY, logged with
 * the holder's pid, when another daemon holds it) and set the modes.  On
 * failure too, pl_spooldir_close must follow. */
int  pl_spooldir_open(struct pl_spooldir *d, const char *dir);
void pl_spooldir_close(struct pl_spooldir *d);	/* releases the lock */
/* Every name of one folder but "." and "..", sorted. */
int  pl_spooldir_list(const struct pl_spooldir *d, int which, char ***names, size_t *count);
/* The same for any open folder (pipelinectl reads the spool without
 * opening it as the daemon does). */
int  pl_spooldir_list_at(int dfd, char ***names, size_t *count);
/* A stream on a regular file of a spool folder, never following a link,
 * waiting on a FIFO or reading a hard-linked file; NULL (errno set) for
 * anything else. */
FILE *pl_spooldir_open_regular(int dfd, const char *name);
void pl_spooldir_free_names(char **names, size_t n);
/* Move NAME between folders, never over a same-named file (-EEXIST). */
int  pl_spooldir_move(const struct pl_spooldir *d, int from, int to, const char *name);
bool pl_spooldir_is_result(const char *name);	/* ends in PL_SPOOL_RESULT_SUFFIX */
/* Why the file behind st cannot be a job; NULL if it can (buf for the text). */
const char *pl_spooldir_not_a_job(const struct stat *st, char *buf, size_t len);
/* NAME of folder FROM can never be a job: into failed/, with the reason
 * logged and in failed/NAME.result. */
void pl_spooldir_reject(const struct pl_spooldir *d, int from, const char *name, const char *why);
/* At start: every job left in cur/ back to new/.  How many, or -errno. */
int  pl_spooldir_recover(const struct pl_spooldir *d);
/* Is the file behind st (an lstat of a name in tmp/) abandoned at `now`:
 * a regular file with one link whose mtime and ctime are both older than
 * PL_SPOOLDIR_TMP_MAX_AGE? */
bool pl_spooldir_tmp_abandoned(const struct stat *st, time_t now);
/* Remove every abandoned file of tmp/, each named in the log; never
 * follows a link.  How many went, or -errno (tmp/ unreadable, logged). */
int  pl_spooldir_sweep_tmp(const struct pl_spooldir *d, time_t now);

#endif

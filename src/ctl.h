/*
 * ctl.h — what the files of pipelinectl(1) share, and nothing the daemon
 * sees: ctl.c reads the command line and dispatches, ctl_submit.c puts
 * jobs in the spool, ctl_jobs.c finds, lists, shows and waits on them,
 * ctl_status.c reads the daemon's status.json.  Private to the command
 * (CMakeLists.txt keeps src/ctl*.c out of the daemon's library), so its
 * names are ctl_ rather than a module's pl_.
 */
#ifndef PL_CTL_H
#define PL_CTL_H

#include <stdbool.h>
#include <stdio.h>

#include "spool.h"

struct pl_config;

#define CTL_EXIT_FAILED_ITEMS 1	/* as pipelined --once */
#define CTL_EXIT_USAGE 2

/* The spool's folders by their short names; a job's state is its folder. */
enum { F_TMP = PL_SPOOL_TMP, F_NEW = PL_SPOOL_NEW, F_CUR = PL_SPOOL_CUR,
       F_DONE = PL_SPOOL_DONE, F_FAILED = PL_SPOOL_FAILED, F_COUNT = PL_SPOOL_FOLDERS };
extern const char *const ctl_state_names[F_COUNT];	/* "waiting", "running", … */

struct ctl {
	struct pl_config *cfg;
	int dfd[F_COUNT];	/* opened on first use; -1 not yet */
};

/* What a job file holds, and what its result file says so far. */
struct ctl_tally {
	unsigned long items, bad;	/* of a job file */
	unsigned long ok, failed;	/* of a result file */
};

/* ctl.c: messages, exit statuses, the usage text. */
void ctl_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int  ctl_exit_for(int err);		/* -errno -> sysexits status */
void ctl_put_safe(FILE *f, const char *s);	/* no control characters */
void ctl_put_record(FILE *f, const char *rec, size_t len);	/* nor raw in JSON */
void ctl_usage(FILE *f);

/* ctl_jobs.c: the spool as pipelinectl sees it. */
int   ctl_folder(struct ctl *c, int f);	/* fd, or -errno after saying why */
bool  ctl_exists_at(int dfd, const char *name);
int   ctl_find_job(struct ctl *c, const char *name);	/* F_*, or -errno */
int   ctl_scan_job(FILE *in, FILE *copy, const char *where, struct ctl_tally *t);
FILE *ctl_open_result(struct ctl *c, int f, const char *job);
int   ctl_wait_job(struct ctl *c, const char *name, unsigned long total);

/* The commands: each returns pipelinectl's exit status. */
int ctl_submit(struct ctl *c, int argc, char **argv);
int ctl_resubmit(struct ctl *c, int argc, char **argv);
int ctl_list(struct ctl *c, int argc, char **argv);
int ctl_show(struct ctl *c, int argc, char **argv);
int ctl_status(struct ctl *c, int argc, char **argv);

#endif

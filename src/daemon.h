/*
 * daemon.h — the control plane: configuration, spool intake, the pipeline,
 * signals and sd_notify, run from main().
 */
#ifndef PL_DAEMON_H
#define PL_DAEMON_H

#include <stdbool.h>

/* Exit statuses, as pipelined(8) EXIT STATUS lists them. */
enum {
	PL_EXIT_OK = 0,
	PL_EXIT_FAILED_ITEMS = 1,
	PL_EXIT_USAGE = 2,
	PL_EXIT_INTERNAL = 70,
	PL_EXIT_LOCKED = 75,	/* EX_TEMPFAIL: another daemon holds the spool */
	PL_EXIT_CONFIG = 78,
};

struct pl_daemon_opts {
	const char *config;	/* path of pipeline.conf */
	const char *argv0;
	bool once;		/* drain the spool, then exit */
};

/* -t: load and validate everything a start would; print "configuration OK"
 * or every error as FILE:LINE: message.  Returns an exit status. */
int pl_daemon_check(const struct pl_daemon_opts *o);
/* Run until stopped (or, with once, until the spool is drained).  Returns
 * an exit status. */
int pl_daemon_run(const struct pl_daemon_opts *o);

#endif

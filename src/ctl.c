/*
 * ctl.c — pipelinectl(1), the producer's command: submit a job to the
 * spool (and wait for it), list the jobs, show a job's results, resubmit
 * a failed job's failed items, and read the daemon's status.  This file
 * is its command line: the options, the configuration, the dispatch to a
 * command, and the messages and exit statuses every command shares.
 *
 * How it fits: it is a second client of the spool on disk, beside the
 * daemon, and takes from the daemon's own modules everything the two must
 * agree on: where the spool and the runtime folder are (config.c, with the
 * same precedence of settings and environment), what a job line means
 * (jobline.c), what a result record is (record.c), the spool's names and
 * folders (spool.c) and the progress bar (status.c).  It never talks to
 * the daemon: the spool and status.json are the interface (pipelined(8)),
 * so it needs no socket and no privilege of its own, and works whether
 * the daemon runs or not.  The commands live in ctl_submit.c (submit,
 * resubmit), ctl_jobs.c (list, show, waiting) and ctl_status.c (status),
 * sharing ctl.h.
 *
 * Why it is built this way: the configuration is the daemon's own file,
 * loaded by the daemon's loader, so the two can never disagree on where
 * the spool is; only its spool and runtime settings are used, and its
 * warnings are left to the daemon to give.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "log.h"
#include "strbuf.h"

#ifndef PL_CTL_CONFIG
#define PL_CTL_CONFIG "/etc/pipelined/pipeline.conf"
#endif
/* Where systemd passes a system unit's credentials: a configuration that
 * names credentials bare loads outside the unit too (they are not read). */
#define UNIT_CREDENTIALS "/run/credentials/pipelined.service"

/* Messages quote names the user typed or found in the spool (a job name
 * given as an argument may hold any byte): they reach the terminal through
 * ctl_put_safe like everything else read from outside. */
void ctl_say(const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	fputs("pipelinectl: ", stderr);
	if (n < 0) {
		fputs("out of memory", stderr);
	} else {
		ctl_put_safe(stderr, msg);
		free(msg);
	}
	fputc('\n', stderr);
}

/* The exit status for a failed system call (pipelinectl(1), EXIT STATUS). */
int ctl_exit_for(int err)
{
	switch (err) {
	case -EACCES:
	case -EPERM:
		return EX_NOPERM;
	case -ENOENT:
		return EX_NOINPUT;
	case -EEXIST:
		return EX_CANTCREAT;
	default:
		return EX_SOFTWARE;
	}
}

/* A C1 control written as UTF-8 (U+0080 to U+009F): a terminal that
 * honours them takes U+009B as CSI, as one in Latin-1 takes the byte. */
static bool utf8_c1(const char *s, size_t n)
{
	return n == 2 && (unsigned char)s[0] == 0xC2 && (unsigned char)s[1] < 0xA0;
}

/* Text from a job file, a file name or a record may hold any byte: a
 * terminal gets no control character from it, C0, DEL or C1, and no byte
 * that is not UTF-8 (0x9B alone is CSI to a terminal in Latin-1). */
void ctl_put_safe(FILE *f, const char *s)
{
	const char *run = s;	/* what is written as it is, in one go */
	size_t left = strlen(s);

	while (left) {
		size_t n = pl_strbuf_utf8_len(s, left);

		if (n == 0 || (unsigned char)*s < 0x20 || *s == 0x7f || utf8_c1(s, n)) {
			fwrite(run, 1, (size_t)(s - run), f);
			fputc('?', f);
			n = n ? n : 1;
			run = s + n;
		}
		s += n;
		left -= n;
	}
	fwrite(run, 1, (size_t)(s - run), f);
}

/* A result record as it is, but for DEL and the C1 controls, which JSON
 * lets a string hold raw: written \u00XX, the same string to a parser and
 * nothing a terminal acts on.  The record passed pl_record_parse, so it is
 * UTF-8 with no raw C0 control. */
void ctl_put_record(FILE *f, const char *rec, size_t len)
{
	const char *run = rec;	/* what is written as it is, in one go */

	while (len) {
		size_t n = pl_strbuf_utf8_len(rec, len);

		n = n ? n : 1;
		if (*rec == 0x7f || utf8_c1(rec, n)) {
			fwrite(run, 1, (size_t)(rec - run), f);
			fprintf(f, "\\u%04x", *rec == 0x7f ? 0x7f : (unsigned char)rec[1]);
			run = rec + n;
		}
		rec += n;
		len -= n;
	}
	fwrite(run, 1, (size_t)(rec - run), f);
}

void ctl_usage(FILE *f)
{
	fprintf(f,
		"usage: pipelinectl [-c FILE] submit [-n NAME] [-w] [FILE|-]\n"
		"       pipelinectl [-c FILE] list [waiting|running|done|failed]...\n"
		"       pipelinectl [-c FILE] show [-t] JOB\n"
		"       pipelinectl [-c FILE] resubmit [-n NAME] [-w] JOB\n"
		"       pipelinectl [-c FILE] status [-j]\n"
		"       pipelinectl -h | -V\n");
}

static void report_config(void *ud, const char *msg)
{
	(void)ud;
	ctl_say("%s", msg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	static const struct {
		const char *name;
		int (*run)(struct ctl *, int, char **);
	} cmds[] = {
		{ "submit", ctl_submit }, { "list", ctl_list }, { "show", ctl_show },
		{ "resubmit", ctl_resubmit }, { "status", ctl_status },
	};
	struct ctl c = { .dfd = { -1, -1, -1, -1, -1 } };
	const char *config = PL_CTL_CONFIG;
	int o, status;
	size_t i;

	while ((o = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			ctl_usage(stdout);
			return 0;
		case 'V':
			printf("pipelinectl %s\n", PL_VERSION);
			return 0;
		default:
			ctl_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	for (i = 0; i < sizeof cmds / sizeof *cmds && strcmp(argv[optind], cmds[i].name) != 0; i++)
		;
	if (i == sizeof cmds / sizeof *cmds) {
		ctl_say("unknown command \"%s\"", argv[optind]);
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	/* Only the spool and runtime settings matter here: warnings about the
	 * rest are the daemon's to give. */
	pl_log_set_level(LOG_ERR);
	if (!getenv("CREDENTIALS_DIRECTORY") && setenv("CREDENTIALS_DIRECTORY", UNIT_CREDENTIALS, 0) < 0)
		return EX_SOFTWARE;
	if (pl_config_load(config, report_config, NULL, &c.cfg) < 0)
		return EX_CONFIG;
	argc -= optind;
	argv += optind;
	optind = 0;	/* glibc: start getopt afresh on the command's arguments */
	status = cmds[i].run(&c, argc, argv);
	for (int f = 0; f < F_COUNT; f++)
		if (c.dfd[f] >= 0)
			close(c.dfd[f]);
	pl_config_free(c.cfg);
	if (fflush(stdout) != 0 && status == 0)
		status = EX_IOERR;
	return status;
}

/*
 * main.c — the command line (see pipelined(8)).  Everything else lives in
 * daemon.c; this file only turns argv into options and an exit status.
 * There is no daemonizing fork: systemd supervises the process.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pipelined -c FILE            run until stopped\n"
		"       pipelined -c FILE --once     process every job in the spool, then exit\n"
		"       pipelined -c FILE -t         check the configuration and exit\n"
		"       pipelined -h | -V\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, 'o' },
		{ "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	struct pl_daemon_opts o = { .argv0 = argv[0] };
	int c, check = 0;

	while ((c = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o.config = optarg;
			break;
		case 'o':
			o.once = 1;
			break;
		case 't':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return PL_EXIT_OK;
		case 'V':
			printf("pipelined %s\n", PL_VERSION);
			return PL_EXIT_OK;
		default:
			usage(stderr);
			return PL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pipelined: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return PL_EXIT_USAGE;
	}
	if (!o.config) {
		fprintf(stderr, "pipelined: -c FILE is required\n");
		usage(stderr);
		return PL_EXIT_USAGE;
	}
	if (check && o.once) {
		fprintf(stderr, "pipelined: -t and --once do not go together\n");
		return PL_EXIT_USAGE;
	}
	return check ? pl_daemon_check(&o) : pl_daemon_run(&o);
}

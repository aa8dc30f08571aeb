/*
 * ctl_status.c — pipelinectl(1) status: the daemon's status.json, as it
 * is (-j) or as a table, and whether the daemon that wrote it still runs.
 *
 * How it fits: the daemon writes RUNTIME/status.json each second
 * (status.c) and holds the spool's lock file with its pid in it
 * (spool.c); both are readable by the spool's group, so a producer needs
 * no socket and no privilege to ask.  ctl.c dispatches here.
 *
 * Why it is built this way: a status file outlives its writer.  A daemon
 * that stops leaves one that says "stopped", which decides; one that died
 * (SIGKILL, a crash) leaves its last state, so the pid in the lock file is
 * checked as well.  Either way the status is shown as that of a daemon
 * that does not run, with the exit status for one (69).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "spool.h"
#include "spooldir.h"

/* status.json is a few kilobytes: a file far bigger is not one. */
#define STATUS_MAX (1024 * 1024)

/* The pid in the spool's lock file, and whether it lives (a process of
 * another user counts: EPERM). */
static long daemon_pid(struct ctl *c, bool *alive)
{
	char path[PATH_MAX], buf[32];
	long pid = 0;
	FILE *f;

	*alive = false;
	snprintf(path, sizeof path, "%s/%s", c->cfg->spool, PL_SPOOL_LOCK_NAME);
	if (!(f = fopen(path, "re")))
		return 0;
	if (fgets(buf, sizeof buf, f))
		pid = strtol(buf, NULL, 10);
	fclose(f);
	if (pid > 0)
		*alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
	return pid;
}

static unsigned long long num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (unsigned long long)json_integer_value(v) : 0;
}

static double real(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* Did the daemon that wrote s leave it as it stopped? */
static bool stopped(json_t *s)
{
	const char *state = json_string_value(json_object_get(s, "state"));

	return state && strcmp(state, "stopped") == 0;
}

static void show_status(json_t *s, long pid, bool running, double age)
{
	json_t *stages = json_object_get(s, "stages"), *st, *str = json_object_get(s, "stream");
	const char *state = json_string_value(json_object_get(s, "state"));
	double up = real(s, "uptime_s");
	size_t i;

	/* the file's strings are shown through ctl_put_safe: whoever could
	 * write it must not reach the terminal's control sequences */
	if (running) {
		fputs("pipelined: ", stdout);
		ctl_put_safe(stdout, state ? state : "?");
		printf(", pid %ld, up %.0f s (status written %.1f s ago)\n", pid, up + age, age);
	} else if (stopped(s)) {
		printf("pipelined: not running: stopped %.0f s ago, after %.0f s up (pid %ld)\n",
		       age, up, pid);
	} else {
		printf("pipelined: not running, and did not stop cleanly (status written %.0f s "
		       "ago, then ", age);
		ctl_put_safe(stdout, state ? state : "?");
		printf("; pid in %s: %ld)\n", PL_SPOOL_LOCK_NAME, pid);
	}
	printf("items: %llu done, %llu failed, %.1f items/s\n", num(s, "done"), num(s, "failed"),
	       real(s, "rate"));
	printf("%-10s %5s %7s %4s %6s %8s %8s %8s %8s %8s %8s\n", "STAGE", "WIDTH", "RUNNING",
	       "BUSY", "QUEUED", "RETRYING", "IN", "DONE", "FAILED", "P50_MS", "P95_MS");
	json_array_foreach(stages, i, st) {
		const char *name = json_string_value(json_object_get(st, "name"));
		int pad;

		name = name ? name : "?";
		pad = strlen(name) < 10 ? (int)(10 - strlen(name)) : 0;	/* as %-10s */
		ctl_put_safe(stdout, name);
		printf("%*s %5llu %7llu %4llu %6llu %8llu %8llu %8llu %8llu %8.1f %8.1f\n", pad, "",
		       num(st, "width"), num(st, "running"), num(st, "busy"), num(st, "queued"),
		       num(st, "retrying"), num(st, "in"), num(st, "done"), num(st, "failed"),
		       real(st, "p50_ms"), real(st, "p95_ms"));
	}
	if (json_is_object(str)) {
		const char *server = json_string_value(json_object_get(str, "server"));

		fputs("stream: ", stdout);
		if (json_is_true(json_object_get(str, "connected")) && server) {
			fputs("connected to ", stdout);
			ctl_put_safe(stdout, server);
		} else {
			fputs("no server", stdout);
		}
		printf(", pulled %llu, in flight %llu, acked %llu, redelivered %llu, "
		       "dead-lettered %llu; our items published %llu, results back %llu ok, "
		       "%llu failed, %llu rejected\n", num(str, "pulled"), num(str, "in_flight"),
		       num(str, "acked"), num(str, "redelivered"), num(str, "dead_lettered"),
		       num(str, "published"), num(str, "results_ok"), num(str, "results_failed"),
		       num(str, "results_rejected"));
	}
}

/*
 * The status file, parsed: 0, -ENOENT (not said), or another -errno after
 * saying why (-EINVAL: not a status).  The daemon renames a small regular
 * file into place, so anything else is refused before it is read: a FIFO
 * would block the open or the read for ever, a symlink may lead anywhere,
 * and a huge file would be read whole.
 */
static int load_status(const char *path, json_t **out, struct stat *st)
{
	FILE *f = pl_spooldir_open_regular(AT_FDCWD, path);
	json_error_t jerr;
	char *buf;
	size_t n;
	int r;

	*out = NULL;
	if (!f) {
		r = -errno;
		if (r == -EINVAL || r == -ELOOP) {
			ctl_say("%s: not a regular file", path);
			return -EINVAL;
		}
		if (r != -ENOENT)
			ctl_say("%s: %s", path, strerror(-r));
		return r;
	}
	if (!(buf = malloc(STATUS_MAX + 1))) {
		fclose(f);
		ctl_say("out of memory");
		return -ENOMEM;
	}
	n = fread(buf, 1, STATUS_MAX + 1, f);
	r = ferror(f) ? -EIO : fstat(fileno(f), st) < 0 ? -errno : 0;
	fclose(f);
	if (r < 0) {
		ctl_say("%s: %s", path, strerror(-r));
	} else if (n > STATUS_MAX) {
		ctl_say("%s: more than %d bytes: not a status", path, STATUS_MAX);
		r = -EINVAL;
	} else if (!(*out = json_loadb(buf, n, 0, &jerr))) {
		ctl_say("%s: %s", path, jerr.text);
		r = -EINVAL;
	}
	free(buf);
	return r;
}

int ctl_status(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { 0 } };
	char path[PATH_MAX];
	bool raw = false, alive, running;
	struct stat st;
	json_t *s;
	long pid;
	int o, r;

	while ((o = getopt_long(argc, argv, "+j", opts, NULL)) != -1) {
		if (o != 'j')
			return ctl_usage(stderr), CTL_EXIT_USAGE;
		raw = true;
	}
	if (optind != argc)
		return ctl_usage(stderr), CTL_EXIT_USAGE;
	snprintf(path, sizeof path, "%s/status.json", c->cfg->runtime);
	pid = daemon_pid(c, &alive);
	if ((r = load_status(path, &s, &st)) < 0) {
		if (r == -ENOENT) {
			ctl_say("%s: no status%s", path, alive ? " yet (the daemon writes it as soon "
			    "as the spool is its own)" : ": the daemon is not running");
			return EX_UNAVAILABLE;
		}
		return r == -EINVAL ? EX_DATAERR : ctl_exit_for(r);
	}
	/* the state decides over the pid, which a new process may have taken */
	running = alive && !stopped(s);
	if (raw) {
		char *text = json_dumps(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (text)
			puts(text);
		free(text);
	} else {
		struct timespec now;
		double age;

		clock_gettime(CLOCK_REALTIME, &now);
		age = (double)(now.tv_sec - st.st_mtim.tv_sec) +
		      (double)(now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
		show_status(s, pid, running, age > 0 ? age : 0);
	}
	json_decref(s);
	return running ? 0 : EX_UNAVAILABLE;
}


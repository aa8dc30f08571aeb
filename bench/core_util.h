/*
 * core_util.h — the clock and argument parsing shared by the C drivers of
 * bench/core (core_pl.c, core_queue.c).
 *
 * Each driver is one file compiled straight from src/ by bench/core, with no
 * library of its own, so what they share lives here as static functions.
 * Both print "items=N seconds=S rate=R" and must time and parse alike for
 * their rows to be comparable.
 */
#ifndef PL_BENCH_CORE_UTIL_H
#define PL_BENCH_CORE_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A positive decimal argument, or exit 2 naming it (prog: the driver). */
static unsigned long arg(const char *prog, const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0) {
		fprintf(stderr, "%s: %s must be a positive integer, got '%s'\n", prog, what, s);
		exit(2);
	}
	return v;
}

#endif

/*
 * clock.c — see clock.h.  Kept in the core library, which has no other
 * dependency than threads, so the core and everything above it share it.
 */
#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"

uint64_t pl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int pl_clock_deadline(struct timespec *ts, long ms)
{
	if (clock_gettime(CLOCK_MONOTONIC, ts) < 0)
		return -errno;
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
	return 0;
}

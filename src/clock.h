/*
 * clock.h — the one monotonic clock of pipelined, and deadlines on it.
 *
 * Part of the core library (with queue, pool, pipeline), so the stages, the
 * shell and the core all read time the same way.  Everything that measures
 * or waits uses CLOCK_MONOTONIC: a wall-clock step (NTP, a manual date)
 * must neither stretch nor cut a timeout, a retry delay or a latency.
 * Functions here return 0 or a negative errno value.
 */
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in µs (the name predates this file; the whole daemon
 * uses it). */
uint64_t pl_now_us(void);
/* *ts = now + ms on CLOCK_MONOTONIC, for pthread_cond_timedwait on a
 * condition variable set to that clock (pthread_condattr_setclock). */
int pl_clock_deadline(struct timespec *ts, long ms);

#endif

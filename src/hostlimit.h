/*
 * hostlimit.h — how many transfers may go to one host at once, learned per
 * host: each host has its own adaptive limit (limit.h) between 1 and a
 * ceiling, fed with every transfer's outcome.  Thread-safe; the download
 * workers share one.  The algorithm and its constants are in hostlimit.c.
 */
#ifndef PL_HOSTLIMIT_H
#define PL_HOSTLIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct pl_hostlimit;

/* ceiling >= 1: no host ever gets more at once. */
int  pl_hostlimit_new(unsigned ceiling, struct pl_hostlimit **out);
void pl_hostlimit_free(struct pl_hostlimit *h);
/* Take a slot for host: 0, -EBUSY when the host is at its limit, or
 * -ENOMEM.  now_us: the caller's monotonic clock (tests pass their own). */
int  pl_hostlimit_acquire(struct pl_hostlimit *h, const char *host, uint64_t now_us);
/* Give the slot back with what the transfer told: its latency (time to the
 * first byte of the answer) and whether the far side pushed back (timeout,
 * 429/5xx, connection failure). */
void pl_hostlimit_release(struct pl_hostlimit *h, const char *host, uint64_t now_us,
			  uint64_t latency_us, bool dropped);
/* The host's current limit (the starting one for a host never seen). */
unsigned pl_hostlimit_get(struct pl_hostlimit *h, const char *host);

#endif

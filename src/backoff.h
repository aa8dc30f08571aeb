/*
 * backoff.h — retry delays for the stages that talk to servers (download,
 * upload): one rule, so both stages back off the same way.
 *
 * A retry is due after full jitter over an exponential window, base·2^(n-1)
 * for the n-th retry, capped at a minute: clients that failed together do
 * not come back together.  A server's Retry-After wins, capped the same way.
 * The random state is per worker (no lock on the hot path).
 */
#ifndef PL_BACKOFF_H
#define PL_BACKOFF_H

#include <stdint.h>

#define PL_BACKOFF_MAX_MS 60000L	/* no delay, computed or asked for, is longer */

void     pl_backoff_seed(uint64_t *rng);
uint64_t pl_backoff_random(uint64_t *rng);
/* Milliseconds before retry number n (1 = the first retry); retry_after_s
 * is the server's Retry-After in seconds, 0 if none.  Never 0: the pool
 * reads 0 as success. */
long     pl_backoff_ms(double base_s, int n, long retry_after_s, uint64_t *rng);

#endif

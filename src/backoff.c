/*
 * backoff.c — see backoff.h.
 */
#include <stdint.h>
#include <sys/random.h>
#include <time.h>

#include "backoff.h"

void pl_backoff_seed(uint64_t *rng)
{
	struct timespec ts;

	if (getrandom(rng, sizeof *rng, GRND_NONBLOCK) == sizeof *rng)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	*rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)rng;
}

uint64_t pl_backoff_random(uint64_t *rng)
{
	/* splitmix64: jitter only needs to spread workers apart */
	uint64_t z = (*rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

long pl_backoff_ms(double base_s, int n, long retry_after_s, uint64_t *rng)
{
	double window = base_s * 1000.0;
	long ms;

	if (retry_after_s > 0)
		return retry_after_s >= PL_BACKOFF_MAX_MS / 1000 ? PL_BACKOFF_MAX_MS
								 : retry_after_s * 1000;
	for (int i = 1; i < n && window < PL_BACKOFF_MAX_MS; i++)
		window *= 2;
	if (window > PL_BACKOFF_MAX_MS)
		window = PL_BACKOFF_MAX_MS;
	ms = (long)((double)(pl_backoff_random(rng) >> 11) / 9007199254740992.0 * window);
	return ms < 1 ? 1 : ms;
}

/*
 * hostlimit.c — per-host adaptive limits (see hostlimit.h).
 *
 * Why adaptive: a fixed per-host semaphore has to be tuned twice over.  Too
 * low, and a healthy origin 250 ms away is throttled far below what
 * Little's law asks for (in flight = latency × rate: 40 images/s at 250 ms
 * need 10 transfers at once, not 4); too high, and an origin that is already
 * struggling gets everything the workers have.  So each host gets a limit of
 * its own (limit.c: Vegas-style latency floor, a cut to 0.7× on a drop,
 * growth only while the limit is actually used) between 1 and the ceiling
 * download.per_host.
 *
 * What the limit is fed, per finished transfer:
 *   - latency: the time to the first byte of the answer after the request
 *     went out (download.c measures it without connect and TLS set-up, so a
 *     new connection does not look like queueing at the server); a body's
 *     length says how big the image is, not how busy the host is;
 *   - a drop: what download.c retries — a timeout, 429, 5xx, a refused or
 *     broken connection.  Other failures (404, a refused redirect) are
 *     ordinary samples: the host answered promptly.
 *
 * Start at 4, the fixed value this replaces, so a host that coped before
 * sees no burst at start; slow start (limit.c: one more per success while
 * the host is at its limit, so doubling per round trip) gives a source
 * 250 ms away the 16 that 60 images/s need in half a second, and after
 * the first cut growth by a quarter per window finds the level again
 * without overshooting it by much.
 *
 * The table: a fixed array of HOSTS_MAX entries kept after their last
 * transfer, so what was learned about a host survives between its bursts.
 * A new host takes a free entry or the least recently used idle one.  No
 * more hosts can be busy at once than there are download workers (at most
 * 256, the range of download.workers), so with HOSTS_MAX entries an idle one
 * is always found; if not, the caller defers the item as for a busy host.
 * A linear scan under one mutex is nothing next to a transfer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hostlimit.h"
#include "limit.h"

#define HOSTS_MAX 256
#define START 4

struct host {
	char *name;		/* NULL: a free entry */
	unsigned n;		/* transfers in flight */
	uint64_t used_us;	/* last acquire, for eviction */
	struct pl_limit lim;
};

struct pl_hostlimit {
	pthread_mutex_t lock;
	unsigned ceiling;
	struct host hosts[HOSTS_MAX];
};

int pl_hostlimit_new(unsigned ceiling, struct pl_hostlimit **out)
{
	struct pl_hostlimit *h = calloc(1, sizeof *h);
	int r;

	if (!h)
		return -ENOMEM;
	if ((r = pthread_mutex_init(&h->lock, NULL)) != 0) {
		free(h);
		return -r;
	}
	h->ceiling = ceiling < 1 ? 1 : ceiling;
	*out = h;
	return 0;
}

void pl_hostlimit_free(struct pl_hostlimit *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < HOSTS_MAX; i++)
		free(h->hosts[i].name);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static struct host *find(struct pl_hostlimit *h, const char *host)
{
	for (size_t i = 0; i < HOSTS_MAX; i++)
		if (h->hosts[i].name && strcmp(h->hosts[i].name, host) == 0)
			return &h->hosts[i];
	return NULL;
}

/* A free entry, else the least recently used idle one; NULL if all busy. */
static struct host *victim(struct pl_hostlimit *h)
{
	struct host *v = NULL;

	for (size_t i = 0; i < HOSTS_MAX; i++) {
		struct host *e = &h->hosts[i];

		if (!e->name)
			return e;
		if (e->n == 0 && (!v || e->used_us < v->used_us))
			v = e;
	}
	return v;
}

int pl_hostlimit_acquire(struct pl_hostlimit *h, const char *host, uint64_t now_us)
{
	struct host *e;
	int r = 0;

	pthread_mutex_lock(&h->lock);
	e = find(h, host);
	if (!e) {
		char *name;

		if (!(e = victim(h))) {
			r = -EBUSY;
			goto out;
		}
		if (!(name = strdup(host))) {
			r = -ENOMEM;
			goto out;
		}
		free(e->name);
		e->name = name;
		e->n = 0;
		pl_limit_init(&e->lim, 1, h->ceiling, START, now_us);
	}
	if (e->n >= pl_limit_get(&e->lim)) {
		r = -EBUSY;
		goto out;
	}
	e->n++;
	e->used_us = now_us;
out:
	pthread_mutex_unlock(&h->lock);
	return r;
}

void pl_hostlimit_release(struct pl_hostlimit *h, const char *host, uint64_t now_us,
			  uint64_t latency_us, bool dropped)
{
	struct host *e;

	pthread_mutex_lock(&h->lock);
	e = find(h, host);
	if (e && e->n > 0) {	/* always, for a slot that was acquired */
		pl_limit_sample(&e->lim, now_us, latency_us, dropped, e->n);
		e->n--;
	}
	pthread_mutex_unlock(&h->lock);
}

unsigned pl_hostlimit_get(struct pl_hostlimit *h, const char *host)
{
	struct host *e;
	unsigned v;

	pthread_mutex_lock(&h->lock);
	e = find(h, host);
	v = e ? pl_limit_get(&e->lim) : (START < h->ceiling ? START : h->ceiling);
	pthread_mutex_unlock(&h->lock);
	return v;
}

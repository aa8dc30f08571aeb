/*
 * core_queue.c — the no-op 3-stage pipeline of bench/core written directly
 * on src/queue.h, one item at a time.
 *
 * Part of bench/core (run by hand, not a test).  core_pl.c measures the
 * core as the daemon uses it (pools with adaptive batching); this measures
 * the queue's own per-item hand-off, the pattern any code written on
 * queue.h by hand uses and the one the Python baseline (core_py.py) uses:
 * every worker loops get → work → put → task_done.  The last stage puts
 * into an unbounded done queue, as the book's done_queue.  The drain is
 * the book's stop_threads with close instead of one sentinel per worker:
 * close stage i's queue, join it, join its threads, then stage i+1.
 *
 * Usage: core_queue ITEMS W1 W2 W3 CAPACITY
 * Prints one line: "items=N seconds=S rate=R" (R in items/s), exit 0 only
 * when every fed item reached the done queue exactly once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_util.h"
#include "queue.h"

struct stage_arg {
	struct pl_queue *in, *out;
};

static void die(const char *what, int err)
{
	fprintf(stderr, "core_queue: %s: %s\n", what, strerror(err));
	exit(1);
}

static void *worker(void *arg)
{
	struct stage_arg *a = arg;
	void *item;
	int r;

	while ((r = pl_queue_get(a->in, &item, -1)) == 0) {
		/* the work: nothing */
		if ((r = pl_queue_put(a->out, item, -1)))
			die("pl_queue_put", r);
		if ((r = pl_queue_task_done(a->in)))
			die("pl_queue_task_done", r);
	}
	if (r != EPIPE)
		die("pl_queue_get", r);
	return NULL;
}

int main(int argc, char **argv)
{
	struct pl_queue *q[4];
	struct stage_arg sa[3];
	unsigned width[3];
	pthread_t *tids[3];
	unsigned long n;
	double t0, t1;
	size_t cap;
	int r;

	if (argc != 6) {
		fprintf(stderr, "usage: core_queue ITEMS W1 W2 W3 CAPACITY\n");
		return 2;
	}
	n = arg("core_queue", argv[1], "ITEMS");
	cap = arg("core_queue", argv[5], "CAPACITY");
	for (int i = 0; i < 4; i++)
		if (!(q[i] = pl_queue_create(i < 3 ? cap : 0)))
			die("pl_queue_create", errno);
	t0 = now_s();
	for (int s = 0; s < 3; s++) {
		width[s] = (unsigned)arg("core_queue", argv[2 + s], "width");
		sa[s] = (struct stage_arg){ q[s], q[s + 1] };
		if (!(tids[s] = calloc(width[s], sizeof *tids[s])))
			die("calloc", errno);
		for (unsigned w = 0; w < width[s]; w++)
			if ((r = pthread_create(&tids[s][w], NULL, worker, &sa[s])))
				die("pthread_create", r);
	}
	/* items are opaque: the counter itself is fed, nothing is allocated */
	for (unsigned long i = 0; i < n; i++)
		if ((r = pl_queue_put(q[0], (void *)(uintptr_t)(i + 1), -1)))
			die("pl_queue_put", r);
	for (int s = 0; s < 3; s++) {
		pl_queue_close(q[s]);
		if ((r = pl_queue_join(q[s], -1)))
			die("pl_queue_join", r);
		for (unsigned w = 0; w < width[s]; w++)
			pthread_join(tids[s][w], NULL);
		free(tids[s]);
	}
	t1 = now_s();
	size_t got = pl_queue_size(q[3]);
	for (int i = 0; i < 4; i++)
		pl_queue_destroy(q[i]);
	if (got != n) {
		fprintf(stderr, "core_queue: %lu items fed, %zu done\n", n, got);
		return 1;
	}
	printf("items=%lu seconds=%.3f rate=%.0f\n", n, t1 - t0, n / (t1 - t0));
	return 0;
}

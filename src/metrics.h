/*
 * metrics.h — the optional Prometheus endpoint: GET /metrics in the text
 * exposition format, on an HTTP server thread of its own (libmicrohttpd),
 * fed once a second by the daemon's status tick.  See metrics.c for why it
 * is built this way and pipelined(8), METRICS, for what each metric means.
 */
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "status.h"
#include "strbuf.h"

/* Everything one scrape shows. */
struct pl_metrics_sample {
	struct pl_status status;	/* stages, items, stream: what status shows */
	uint64_t bytes_downloaded, bytes_uploaded;
	unsigned long jobs_done, jobs_failed;	/* moved to done/, failed/ */
	unsigned long tmp_removed;	/* abandoned files of tmp/ removed */
	/* Filled in by metrics.c itself: */
	bool has_backlog;		/* the last count of new/ worked */
	unsigned long backlog_jobs, backlog_items;
	double start_time;		/* Unix time the daemon started */
	const char *version, *libvips, *libcurl;
};

/* The exposition (format 0.0.4) of s, appended to b. */
void pl_metrics_render(const struct pl_metrics_sample *s, struct pl_strbuf *b);

/* "127.0.0.1:9464" or "[::1]:9464" (a numeric address, a port 1..65535):
 * 0 with the address, or -EINVAL. */
int  pl_metrics_parse_listen(const char *v, struct sockaddr_storage *ss, socklen_t *len);

/* Counts the jobs and items waiting in new/: slow, called from the HTTP
 * thread at most every few seconds, never from a worker. */
typedef int pl_metrics_backlog_fn(void *ud, unsigned long *jobs, unsigned long *items);

/* How many of connections clients the endpoint serves: at most a quarter
 * of the open-file limit (RLIMIT_NOFILE), at least 1, so that clients
 * never take the descriptors the daemon works with. */
unsigned pl_metrics_connection_limit(unsigned connections);

struct pl_metrics;

/* Listen on addr (pl_metrics_parse_listen) with at most connections
 * clients (lowered to pl_metrics_connection_limit, with a warning), each
 * closed when it has not finished a request within timeout seconds, and
 * serve.  0, or -errno (logged). */
int  pl_metrics_start(const char *addr, unsigned connections, double timeout,
		      pl_metrics_backlog_fn *backlog, void *ud, struct pl_metrics **out);
/* The daemon's tick: the sample later scrapes show; also closes clients
 * past their time. */
void pl_metrics_publish(struct pl_metrics *m, const struct pl_metrics_sample *s);
/* Stop serving and free; NULL is fine. */
void pl_metrics_stop(struct pl_metrics *m);

#endif

/*
 * stream.h — the second intake: many daemons on one NATS JetStream stream.
 *
 * Every daemon with a `stream` group plays two parts (pipelined(8),
 * MANY MACHINES):
 *   worker  it pulls items from the shared consumer, as many as its
 *           pipeline has room for, runs them, publishes each result to the
 *           item's owner and only then acks the item;
 *   owner   its spool's jobs are published item by item instead of being
 *           fed to its own pipeline, and the results that come back for its
 *           jobs are written to their JOB.result as before.
 * Messages (JSON, documented in pipelined(8)):
 *   SUBJECT.items           {"job","owner","line","source","name"}
 *   SUBJECT.results.OWNER   one result record, header Pipelined-Job: JOB
 *   SUBJECT.dead            the item as it came, headers Pipelined-Reason
 *                           and Pipelined-Stream-Seq
 */
#ifndef PL_STREAM_H
#define PL_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pl_item;
struct pl_stream;
struct pl_stream_conf;

/* Connect (or keep trying in the background: the daemon starts without a
 * server) and set up the stream and consumers when the server is there.
 * guard_dir: where the worker's crash guard lives (the spool). */
int  pl_stream_open(const struct pl_stream_conf *c, const char *guard_dir, struct pl_stream **out);
/* A stop: publishing items gives up (pulling is the caller's to stop); with
 * fast, publishing results too (their items come back after AckWait). */
void pl_stream_stop(struct pl_stream *s, bool fast);
/* Wait until every finished item's result is stored and the item acked
 * (or given back): while the server is away, until a fast stop.  The
 * daemon's drain calls it once the pipeline is empty. */
void pl_stream_flush(struct pl_stream *s);
/* Give back (nak) what is still out, disconnect, free. */
void pl_stream_close(struct pl_stream *s);

/*
 * Worker: up to max items, waiting at most timeout_ms.  0 and *n set (maybe
 * 0), or -ENOTCONN while there is no server (after waiting).  Each item's
 * outcome goes back through it->intake.  A redelivered item may have crashed
 * a daemon: it comes with it->alone set, after the new items of its batch;
 * after a start and after a redelivered item, items come one at a time
 * until the redeliveries are through (stream.c says why).  Messages that are not items are
 * handled here (failed to their owner, or dead-lettered) and never returned.
 */
int  pl_stream_pull(struct pl_stream *s, size_t max, int timeout_ms,
		    struct pl_item **items, size_t *n);

/* Owner: publish one item of one of our jobs; 0 once the server stored it.
 * While the server is away it keeps trying until a stop (then -ENOTCONN or
 * the like).  -EREMOTEIO: the stream refused it (a JetStream error: a
 * limit reached, for one), and why says what the server said; trying again
 * at once would meet the same answer.  -EILSEQ: not UTF-8, no JSON can
 * carry it. */
int  pl_stream_publish_item(struct pl_stream *s, const char *job, uint64_t job_id,
			    unsigned long line, const char *source, const char *name,
			    char *why, size_t whylen);

/*
 * Owner: results for our jobs.  For each, record() returns 0 (recorded, or
 * a duplicate: acked), -EAGAIN (the job is not open yet: asked again
 * later), -EINVAL (a line the job does not have: dropped; record() logs
 * why) or another -errno (a job we do not have: dropped, logged).  The
 * dropped ones are counted (pl_stream_stats rejected).
 */
typedef int pl_stream_record_fn(void *ud, const char *job, unsigned long line, bool ok,
				const char *record, size_t len);
int  pl_stream_take_results(struct pl_stream *s, size_t max, int timeout_ms,
			    pl_stream_record_fn *record, void *ud);

/* From the main loop once a second: keep long items' leases (InProgress). */
void pl_stream_tick(struct pl_stream *s);

struct pl_stream_stats {
	bool connected;
	char server[128];	/* URL of the connected server, "" if none */
	uint64_t pulled, in_flight, acked, redelivered, dead, published, results;
	uint64_t rejected;	/* results dropped: no such job or line here */
};
void pl_stream_stats(struct pl_stream *s, struct pl_stream_stats *st);

#endif

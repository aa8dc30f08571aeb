/*
 * item.h — one line of a job: the unit that walks
 * spool → download → resize → upload → result.
 *
 * Each stage reads the fields the previous one filled and fills its own:
 *   intake:   intake, origin (or job), job_name, line, source, name
 *   download: data, len
 *   resize:   outputs[] (and frees data as soon as the last variant exists)
 *   upload:   outputs[i].location (and frees outputs[i].buf)
 * Stages keep per-stage retry state in attempts and reset it to 0 when they
 * return success or failure.
 */
#ifndef PL_ITEM_H
#define PL_ITEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"	/* pl_now_us() for fed_us */

struct pl_job;
struct pl_item;

/*
 * Where an item came from, and where its outcome goes: the spool
 * (spool.c) or the stream (stream.c).  The daemon's sinks and its feeder
 * only ever call these, so a pipeline serves either intake the same way.
 * Each of done/failed/requeue takes the item and frees it.
 */
struct pl_intake {
	void (*done)(struct pl_item *it);
	void (*failed)(struct pl_item *it, int err, const char *why);
	void (*requeue)(struct pl_item *it);	/* never entered a stage (a stop) */
	int  (*alone)(struct pl_item *it);	/* about to run alone: the suspect */
};

struct pl_output {
	char variant[64];
	const char *ext;	/* static: "jpg", "webp", "png", "avif" */
	const char *mime;	/* static: "image/jpeg", … */
	void *buf;		/* encoded image, g_malloc'd by libvips: g_free() */
	size_t len;
	char *location;		/* malloc'd: final path or URL once uploaded */
};

struct pl_item {
	const struct pl_intake *intake;
	struct pl_job *job;	/* spool items: owned by the spool */
	void *origin;		/* stream items: the message, owned by the stream */
	const char *job_name;	/* points into job or origin; for logs and {job} */
	unsigned long line;	/* 1-based line in the job file */
	bool alone;		/* run with nothing else in the pipeline (it may
				 * have crashed the daemon: see crashguard.h) */
	char *source;		/* malloc'd source URL */
	char *name;		/* malloc'd output base name */

	void *data;		/* malloc'd downloaded bytes */
	size_t len;

	struct pl_output *outputs;	/* malloc'd array */
	size_t noutputs;

	uint64_t fed_us;	/* monotonic time it entered the pipeline */
	int attempts;		/* retries so far in the current stage */
	unsigned done_mask;	/* stage-private progress (upload: outputs stored) */
};

struct pl_item *pl_item_new(void);		/* zeroed, NULL + errno */
void pl_item_free_data(struct pl_item *it);	/* drop the source bytes */
void pl_item_free_outputs(struct pl_item *it);	/* drop outputs[] and their buffers */
void pl_item_free(struct pl_item *it);		/* everything; NULL is fine */

#endif

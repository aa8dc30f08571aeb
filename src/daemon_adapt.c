/*
 * daemon_adapt.c — the glue between the daemon and the adaptive widths
 * (adapt.c): which stages adapt and within what bounds, from the
 * configuration at start and on every reload, and eight times a second the
 * new widths set on the pipeline and logged.
 *
 * How it fits: adapt.c decides from the stages' statistics and knows
 * nothing of the pipeline or the log; this file reads the statistics,
 * applies the decisions and says so.  daemon.c calls daemon_adapt_init()
 * at start and daemon_adapt_configure() on SIGHUP; its own timer
 * (daemon_on_adapt, set up with the others in daemon.c) ticks adapt.c,
 * whose ticks between the whole seconds only let slow start grow.  The
 * ticks go on through the ordered drain: under --once it begins when the
 * last item is fed, which with items deferred for a busy host can be long
 * before the download stage is through, and a width frozen there (3 -> 12
 * of a possible 16 at 250 ms) cost a sixth of the rate.
 *
 * Why apart: it is the one part of the main loop that changes the
 * pipeline rather than reporting on it, and all of it runs on the main
 * thread, which owns `struct pl_adapt`.
 */
#include <errno.h>
#include <string.h>

#include "adapt.h"
#include "clock.h"
#include "config.h"
#include "daemon_int.h"
#include "log.h"
#include "pipeline.h"

/* A stage whose pool is stopping (the ordered drain reached it) keeps no
 * workers: -ESHUTDOWN is no error. */
bool daemon_set_width(struct daemon *d, size_t i, unsigned w)
{
	int r = pl_pipeline_set_width(d->pipe, i, w);

	if (r < 0 && r != -ESHUTDOWN)
		pl_log_errno(LOG_ERR, -r, "stage %s: cannot set width %u: %s",
			     daemon_stage_names[i], w, strerror(-r));
	return r == 0;
}

/*
 * Which stages adapt, within what, from the configuration c (at start and
 * on every reload).  An adaptive stage keeps its current width, clamped
 * into the new bounds; a fixed number pins the stage (reload() in daemon.c
 * sets it).  Download's retries are not a push-back signal (adapt.c says
 * why).
 */
void daemon_adapt_configure(struct daemon *d, const struct pl_config *c)
{
	const struct pl_stage_conf *sc[ST_COUNT] = {
		&c->download.stage, &c->resize.stage, &c->upload.stage
	};

	for (size_t i = 0; i < ST_COUNT; i++) {
		struct pl_stage_stats st;

		pl_pipeline_stats(d->pipe, i, &st);
		/* workers_max below the starting width wins */
		pl_adapt_set(&d->adapt, i, sc[i]->workers_adaptive, i == ST_UPLOAD,
			     sc[i]->workers < sc[i]->workers_max ? sc[i]->workers : sc[i]->workers_max,
			     sc[i]->workers_max, st.width);
		if (sc[i]->workers_adaptive && d->adapt.st[i].width != st.width)
			daemon_set_width(d, i, d->adapt.st[i].width);
		d->adapt_noted[i] = d->adapt.st[i].width;
	}
}

void daemon_adapt_init(struct daemon *d)
{
	const size_t cap[ST_COUNT] = {
		d->cfg->download.stage.queue, d->cfg->resize.stage.queue, d->cfg->upload.stage.queue
	};

	pl_adapt_init(&d->adapt, ST_COUNT, cap, pl_now_us());
	daemon_adapt_configure(d, d->cfg);
}

/* Eight times a second: the new widths.  A move by half or more since the
 * width last logged is a notice, smaller steps are debug lines. */
static void adapt_tick(struct daemon *d)
{
	struct pl_stage_stats st[ST_COUNT];
	unsigned width[ST_COUNT];
	enum pl_adapt_why why[ST_COUNT];

	/* on through the ordered drain: --once drains from the moment the
	 * last item is fed, with most of them still ahead of the download
	 * stage (deferred for their host, or queued); a stopped stage refuses
	 * a new width itself (daemon_set_width) */
	for (size_t i = 0; i < ST_COUNT; i++)
		pl_pipeline_stats(d->pipe, i, &st[i]);
	pl_adapt_tick(&d->adapt, pl_now_us(), st, width, why);
	for (size_t i = 0; i < ST_COUNT; i++) {
		unsigned noted = d->adapt_noted[i];
		bool big = 2 * width[i] >= 3 * noted || 3 * width[i] <= 2 * noted;

		if (why[i] == PL_ADAPT_SAME || width[i] == st[i].width ||
		    !daemon_set_width(d, i, width[i]))
			continue;
		pl_log(big ? LOG_NOTICE : LOG_DEBUG, "stage %s: width %u -> %u (adaptive, %u..%u): %s",
		       daemon_stage_names[i], st[i].width, width[i], d->adapt.st[i].min,
		       d->adapt.st[i].max, pl_adapt_why_name(why[i]));
		if (big)
			d->adapt_noted[i] = width[i];
	}
}

int daemon_on_adapt(sd_event_source *src, uint64_t usec, void *ud)
{
	adapt_tick(ud);
	return daemon_rearm(src, usec + PL_ADAPT_QUICK_US);
}

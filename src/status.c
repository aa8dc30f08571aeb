/*
 * status.c — renderings of one struct pl_status (see status.h).
 *
 * The snapshot is taken by the daemon from the pipeline's lock-free stats;
 * this file only formats, so each rendering is easy to check on its own and
 * none of them can pause a worker.  status.json is built with the same
 * string buffer and JSON quoting as the result records (strbuf.c), so what
 * a reader parses there follows one set of rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "status.h"
#include "strbuf.h"

#define SEP " \u00b7 "	/* middle dot, as systemctl status shows it */

void pl_status_line(const struct pl_status *s, char *buf, size_t len)
{
	size_t n;

	n = (size_t)snprintf(buf, len, "%llu done, %llu failed, %.1f items/s",
			     (unsigned long long)s->done, (unsigned long long)s->failed, s->rate);
	for (size_t i = 0; i < s->nstages && n < len; i++) {
		const struct pl_stage_stats *t = &s->st[i];
		n += (size_t)snprintf(buf + n, len - n, SEP "%s %u/%u busy q%zu", s->names[i],
				      t->busy, t->width, t->queued + t->delayed);
	}
	if (s->has_stream && n < len) {
		const struct pl_stream_stats *t = &s->stream;

		if (t->connected)
			n += (size_t)snprintf(buf + n, len - n, SEP "stream %s: %llu in flight, "
					      "%llu pulled", t->server,
					      (unsigned long long)t->in_flight,
					      (unsigned long long)t->pulled);
		else
			n += (size_t)snprintf(buf + n, len - n, SEP "stream: no server, retrying");
	}
	if (s->state && strcmp(s->state, "running") != 0 && n < len)
		snprintf(buf + n, len - n, SEP "%s", s->state);
}

void pl_status_log_report(const struct pl_status *s)
{
	for (size_t i = 0; i < s->nstages; i++) {
		const struct pl_stage_stats *t = &s->st[i];
		pl_log(LOG_INFO, "stage %s: width %u (%u running), %u busy, queue %zu, retrying %zu, "
		       "in %llu, done %llu, failed %llu, latency p50 %.1f ms p95 %.1f ms",
		       s->names[i], t->width, t->alive, t->busy, t->queued, t->delayed,
		       (unsigned long long)t->in, (unsigned long long)t->done,
		       (unsigned long long)t->failed, t->p50_ms, t->p95_ms);
	}
	pl_log(LOG_INFO, "total: %llu done, %llu failed, %.1f items/s, up %.0f s, %s",
	       (unsigned long long)s->done, (unsigned long long)s->failed, s->rate, s->uptime_s,
	       s->state ? s->state : "running");
	if (s->has_stream) {
		const struct pl_stream_stats *t = &s->stream;

		pl_log(LOG_INFO, "stream: %s%s, pulled %llu, in flight %llu, acked %llu, "
		       "redelivered %llu, dead-lettered %llu; our items published %llu, results "
		       "back %llu ok, %llu failed, %llu rejected",
		       t->connected ? "connected to " : "no server",
		       t->connected ? t->server : "", (unsigned long long)t->pulled,
		       (unsigned long long)t->in_flight, (unsigned long long)t->acked,
		       (unsigned long long)t->redelivered, (unsigned long long)t->dead,
		       (unsigned long long)t->published, (unsigned long long)s->remote_ok,
		       (unsigned long long)s->remote_failed, (unsigned long long)t->rejected);
	}
}

/* The file's text: names and state go through the JSON quoting that the
 * result records use, so no stage name or state can break a reader. */
static char *status_json(const struct pl_status *s)
{
	struct pl_strbuf b = { 0 };

	pl_strbuf_str(&b, "{\n  \"state\": ");
	pl_strbuf_json(&b, s->state ? s->state : "running");
	pl_strbuf_printf(&b, ",\n  \"uptime_s\": %.1f,\n  \"done\": %llu,\n"
			 "  \"failed\": %llu,\n  \"rate\": %.2f,\n  \"stages\": [",
			 s->uptime_s, (unsigned long long)s->done, (unsigned long long)s->failed,
			 s->rate);
	for (size_t i = 0; i < s->nstages; i++) {
		const struct pl_stage_stats *t = &s->st[i];

		pl_strbuf_str(&b, i ? ",\n    {\"name\": " : "\n    {\"name\": ");
		pl_strbuf_json(&b, s->names[i]);
		pl_strbuf_printf(&b, ", \"width\": %u, \"running\": %u, \"busy\": %u, "
				 "\"queued\": %zu, \"retrying\": %zu, \"in\": %llu, \"done\": %llu, "
				 "\"failed\": %llu, \"p50_ms\": %.2f, \"p95_ms\": %.2f}",
				 t->width, t->alive, t->busy, t->queued, t->delayed,
				 (unsigned long long)t->in, (unsigned long long)t->done,
				 (unsigned long long)t->failed, t->p50_ms, t->p95_ms);
	}
	pl_strbuf_str(&b, "\n  ]");
	if (s->has_stream) {
		const struct pl_stream_stats *t = &s->stream;

		pl_strbuf_printf(&b, ",\n  \"stream\": {\"connected\": %s, \"server\": ",
				 t->connected ? "true" : "false");
		pl_strbuf_json(&b, t->connected ? t->server : NULL);
		pl_strbuf_printf(&b, ", \"pulled\": %llu, \"in_flight\": %llu, \"acked\": %llu, "
				 "\"redelivered\": %llu, \"dead_lettered\": %llu, "
				 "\"published\": %llu, \"results_ok\": %llu, \"results_failed\": %llu, "
				 "\"results_rejected\": %llu}",
				 (unsigned long long)t->pulled, (unsigned long long)t->in_flight,
				 (unsigned long long)t->acked, (unsigned long long)t->redelivered,
				 (unsigned long long)t->dead, (unsigned long long)t->published,
				 (unsigned long long)s->remote_ok, (unsigned long long)s->remote_failed,
				 (unsigned long long)t->rejected);
	}
	pl_strbuf_str(&b, "\n}\n");
	return pl_strbuf_take(&b);
}

int pl_status_write_json(const struct pl_status *s, const char *dir)
{
	char tmp[4096], path[4096], *text;
	FILE *f;
	int fd, r = 0;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(path, sizeof path, "%s/status.json", dir) >= sizeof path ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s/.status.json.XXXXXX", dir) >= sizeof tmp)
		return -ENAMETOOLONG;
	if (!(text = status_json(s)))
		return -ENOMEM;
	fd = mkstemp(tmp);
	if (fd < 0) {
		r = -errno;
		free(text);
		return r;
	}
	fchmod(fd, 0644);
	f = fdopen(fd, "w");
	if (!f) {
		r = -errno;
		close(fd);
		unlink(tmp);
		free(text);
		return r;
	}
	if (fputs(text, f) == EOF || fflush(f) != 0 || fsync(fileno(f)) < 0)
		r = -errno;
	free(text);
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

void pl_status_progress_bar(const struct pl_status *s, char *buf, size_t len, int columns)
{
	uint64_t seen = s->done + s->failed;
	char eta[32] = "--:--", bar[64];
	int width = columns > 100 ? 40 : columns > 60 ? 20 : 10, fill = 0;

	if (!len)
		return;
	if (s->total) {
		fill = seen >= s->total ? width : (int)(seen * (uint64_t)width / s->total);
		if (s->rate > 0.05 && seen < s->total) {
			unsigned long left = (unsigned long)((double)(s->total - seen) / s->rate);
			snprintf(eta, sizeof eta, "%lu:%02lu", left / 60, left % 60);
		} else if (seen >= s->total) {
			snprintf(eta, sizeof eta, "0:00");
		}
	}
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(width - fill));
	bar[width] = '\0';
	if (s->total)
		snprintf(buf, len, "[%s] %llu/%llu, %llu failed, %.1f/s, ETA %s", bar,
			 (unsigned long long)seen, (unsigned long long)s->total,
			 (unsigned long long)s->failed, s->rate, eta);
	else
		snprintf(buf, len, "%llu done, %llu failed, %.1f/s", (unsigned long long)s->done,
			 (unsigned long long)s->failed, s->rate);
	/* a line longer than the terminal wraps, and "\r" would then redraw
	 * only its last part: cut it to fit (the text is ASCII) */
	if (columns > 1 && strlen(buf) >= (size_t)columns)
		buf[columns - 1] = '\0';
}

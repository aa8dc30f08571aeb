/*
 * test_status.c — the renderings of one status snapshot (status.c): the
 * STATUS= line, status.json read back by Debian's python3 json module (an
 * independent parser, with stage names and a state that need escaping) and
 * the --once progress bar at 0, partway, at and past the total, unknown
 * total, on narrow and wide terminals (cut to fit one line); the SIGUSR1
 * report as the log lines it writes, with and without the stream, each
 * whole, and none below the info level.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "status.h"
#include "testutil.h"

static struct pl_status snap(void)
{
	struct pl_status s = {
		.nstages = 3,
		.names = { "download", "resize", "upload" },
		.st = {
			{ .width = 4, .alive = 4, .busy = 3, .queued = 10, .delayed = 2, .in = 50,
			  .done = 40, .failed = 1, .p50_ms = 12.5, .p95_ms = 80.25 },
			{ .width = 2, .alive = 2, .busy = 2, .queued = 5, .in = 40, .done = 35 },
			{ .width = 3, .alive = 3, .busy = 0, .in = 35, .done = 35 },
		},
		.done = 35, .failed = 1, .total = 0, .rate = 41.25, .uptime_s = 12.34,
		.state = "running",
	};
	return s;
}

START_TEST(status_line)
{
	struct pl_status s = snap();
	char buf[512], small[20];

	pl_status_line(&s, buf, sizeof buf);
	ck_assert_str_eq(buf, "35 done, 1 failed, 41.2 items/s"
			      " \u00b7 download 3/4 busy q12"
			      " \u00b7 resize 2/2 busy q5"
			      " \u00b7 upload 0/3 busy q0");
	s.state = "stopping fast";
	pl_status_line(&s, buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, "upload 0/3 busy q0 \u00b7 stopping fast"));
	s.state = NULL;
	s.nstages = 0;
	pl_status_line(&s, buf, sizeof buf);
	ck_assert_str_eq(buf, "35 done, 1 failed, 41.2 items/s");
	/* cut short, never past the buffer */
	s = snap();
	memset(small, 'x', sizeof small);
	pl_status_line(&s, small, sizeof small);
	ck_assert_str_eq(small, "35 done, 1 failed, ");
}
END_TEST

/* Prints every value python reads from the file, strings as UTF-8 hex. */
static const char *const read_status =
	"import json,sys\n"
	"s=json.load(open(sys.argv[1]+'/status.json',encoding='utf-8'))\n"
	"h=lambda v:v.encode('utf-8').hex()\n"
	"print(h(s['state']),s['uptime_s'],s['done'],s['failed'],s['rate'])\n"
	"for t in s['stages']:\n"
	"  print(h(t['name']),t['width'],t['running'],t['busy'],t['queued'],t['retrying'],"
	"t['in'],t['done'],t['failed'],t['p50_ms'],t['p95_ms'])\n";

START_TEST(status_json)
{
	struct pl_status s = snap();
	char *dir = pl_test_tmpdir("status"), sub[4096], out[4096];
	int entries = 0;
	struct dirent *e;
	DIR *d;

	ck_assert_ptr_nonnull(dir);
	snprintf(sub, sizeof sub, "%s/run", dir);	/* created on the way */
	ck_assert_int_eq(pl_status_write_json(&s, sub), 0);
	ck_assert_int_eq(pl_test_run_python(read_status, sub, out, sizeof out), 0);
	ck_assert_str_eq(out, "72756e6e696e67 12.3 35 1 41.25\n"
			      "646f776e6c6f6164 4 4 3 10 2 50 40 1 12.5 80.25\n"
			      "726573697a65 2 2 2 5 0 40 35 0 0.0 0.0\n"
			      "75706c6f6164 3 3 0 0 0 35 35 0 0.0 0.0\n");

	/* names and state are quoted: quotes, backslashes, control bytes and
	 * invalid UTF-8 (which becomes U+FFFD) cannot break the file */
	s.names[0] = "a\"b\\c\n\x01\xff";
	s.state = "stop\"ping";
	s.nstages = 1;
	ck_assert_int_eq(pl_status_write_json(&s, sub), 0);
	ck_assert_int_eq(pl_test_run_python(read_status, sub, out, sizeof out), 0);
	ck_assert_str_eq(out, "73746f702270696e67 12.3 35 1 41.25\n"
			      "6122625c630a01efbfbd 4 4 3 10 2 50 40 1 12.5 80.25\n");

	/* no temporary file is left beside it */
	d = opendir(sub);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		ck_assert_str_eq(e->d_name, "status.json");
		entries++;
	}
	closedir(d);
	ck_assert_int_eq(entries, 1);
	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

static char *bar(const struct pl_status *s, int columns)
{
	static char text[512];

	memset(text, 'x', sizeof text);
	pl_status_progress_bar(s, text, sizeof text, columns);
	return text;
}

static struct pl_status report_snap;

static void write_report(void)
{
	pl_status_log_report(&report_snap);
}

START_TEST(status_log_report)
{
	char *text;

	report_snap = snap();
	pl_log_set_level(LOG_INFO);
	text = pl_test_stderr_of(write_report);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text,
		"<6>stage download: width 4 (4 running), 3 busy, queue 10, retrying 2, in 50, done 40, "
		"failed 1, latency p50 12.5 ms p95 80.2 ms\n"
		"<6>stage resize: width 2 (2 running), 2 busy, queue 5, retrying 0, in 40, done 35, "
		"failed 0, latency p50 0.0 ms p95 0.0 ms\n"
		"<6>stage upload: width 3 (3 running), 0 busy, queue 0, retrying 0, in 35, done 35, "
		"failed 0, latency p50 0.0 ms p95 0.0 ms\n"
		"<6>total: 35 done, 1 failed, 41.2 items/s, up 12 s, running\n");
	free(text);

	/* the stream's line; a stage name and a state that would break the
	 * line are escaped by the log; no state reads "running" */
	report_snap.nstages = 1;
	report_snap.names[0] = "down\nload";
	report_snap.state = NULL;
	report_snap.has_stream = true;
	report_snap.stream = (struct pl_stream_stats){
		.connected = true, .server = "nats://127.0.0.1:4222", .pulled = 9, .in_flight = 2,
		.acked = 7, .redelivered = 1, .dead = 1, .published = 12, .rejected = 3 };
	report_snap.remote_ok = 10;
	report_snap.remote_failed = 2;
	text = pl_test_stderr_of(write_report);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text,
		"<6>stage down\\x0aload: width 4 (4 running), 3 busy, queue 10, retrying 2, in 50, "
		"done 40, failed 1, latency p50 12.5 ms p95 80.2 ms\n"
		"<6>total: 35 done, 1 failed, 41.2 items/s, up 12 s, running\n"
		"<6>stream: connected to nats://127.0.0.1:4222, pulled 9, in flight 2, acked 7, "
		"redelivered 1, dead-lettered 1; our items published 12, results back 10 ok, "
		"2 failed, 3 rejected\n");
	free(text);
	report_snap.stream.connected = false;
	report_snap.nstages = 0;
	text = pl_test_stderr_of(write_report);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "<6>stream: no server, pulled 9,"));
	free(text);

	/* info lines: nothing at the notice level */
	pl_log_set_level(LOG_NOTICE);
	text = pl_test_stderr_of(write_report);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "");
	free(text);
	pl_log_set_level(LOG_INFO);
}
END_TEST

START_TEST(progress_bar)
{
	struct pl_status s = snap();

	/* total unknown: counts only */
	ck_assert_str_eq(bar(&s, 80), "35 done, 1 failed, 41.2/s");

	s.total = 100;
	s.done = s.failed = 0;
	s.rate = 0;
	ck_assert_str_eq(bar(&s, 80), "[....................] 0/100, 0 failed, 0.0/s, ETA --:--");

	s.done = 30;		/* 40 of 100 seen, 60 left at 2/s */
	s.failed = 10;
	s.rate = 2;
	ck_assert_str_eq(bar(&s, 80), "[########............] 40/100, 10 failed, 2.0/s, ETA 0:30");
	ck_assert_str_eq(bar(&s, 101),
			 "[################........................] 40/100, 10 failed, 2.0/s, ETA 0:30");
	ck_assert_str_eq(bar(&s, 60), "[####......] 40/100, 10 failed, 2.0/s, ETA 0:30");
	s.rate = 0.01;		/* too slow to guess */
	ck_assert_str_eq(bar(&s, 50), "[####......] 40/100, 10 failed, 0.0/s, ETA --:--");
	s.rate = 0.05 + 1e-9;	/* 60 / 0.05 s: over an hour, in minutes */
	ck_assert_str_eq(bar(&s, 50), "[####......] 40/100, 10 failed, 0.1/s, ETA 19:59");
	/* narrower than the text: cut to leave the cursor on the same line */
	ck_assert_str_eq(bar(&s, 30), "[####......] 40/100, 10 faile");
	ck_assert_str_eq(bar(&s, 2), "[");

	s.done = 90;		/* all seen */
	ck_assert_str_eq(bar(&s, 80), "[####################] 100/100, 10 failed, 0.1/s, ETA 0:00");
	s.done = 150;		/* more than counted at start (jobs added since) */
	ck_assert_str_eq(bar(&s, 80), "[####################] 160/100, 10 failed, 0.1/s, ETA 0:00");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("render");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, status_line);
	tcase_add_test(tc, status_json);
	tcase_add_test(tc, progress_bar);
	tcase_add_test(tc, status_log_report);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

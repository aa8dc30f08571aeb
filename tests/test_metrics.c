/*
 * test_metrics.c — the Prometheus endpoint (metrics.c): the exposition of
 * one sample line by line (cumulative buckets, label escaping, the parts
 * shown only with a backlog or a stream), read back by Debian's promtool
 * when it is there (an independent linter of the format), the listen
 * address rule, and the server itself on a loopback port: 404/405, a
 * scrape before and after the first publish, and a client that never
 * finishes its request being cut at its deadline while others still get
 * answers.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "item.h"
#include "metrics.h"
#include "testutil.h"

static struct pl_metrics_sample sample(void)
{
	struct pl_metrics_sample m = {
		.status = {
			.nstages = 3,
			.names = { "download", "re\"size\\", "upload" },
			.st = {
				{ .width = 4, .busy = 3, .queued = 10, .delayed = 2, .done = 40,
				  .failed = 1, .retried = 7, .hist = { 1, 2, [PL_POOL_HIST_N] = 3 },
				  .hist_sum_us = 1500000 },
				{ .width = 2, .busy = 2, .queued = 5, .done = 35 },
				{ .width = 3, .done = 35 },
			},
			.done = 35, .failed = 1,
		},
		.bytes_downloaded = 123456789012ULL, .bytes_uploaded = 42,
		.jobs_done = 5, .jobs_failed = 1, .tmp_removed = 2,
		.start_time = 1700000000.25,
		.version = "0.1.0", .libvips = "8.14.1", .libcurl = "7.88\n1",
	};
	return m;
}

static char *render(const struct pl_metrics_sample *m)
{
	struct pl_strbuf b = { 0 };
	char *t;

	pl_metrics_render(m, &b);
	t = pl_strbuf_take(&b);
	ck_assert_ptr_nonnull(t);
	return t;
}

static void has(const char *text, const char *line)
{
	char want[512];

	snprintf(want, sizeof want, "\n%s\n", line);
	if (!strstr(text, want))
		ck_abort_msg("no line \"%s\" in:\n%s", line, text);
}

START_TEST(render_lines)
{
	struct pl_metrics_sample m = sample();
	char *t = render(&m);

	has(t, "pipelined_build_info{version=\"0.1.0\",libvips=\"8.14.1\",libcurl=\"7.88\\n1\"} 1");
	has(t, "pipelined_start_time_seconds 1700000000.250");
	has(t, "# TYPE pipelined_items_total counter");
	has(t, "pipelined_items_total{outcome=\"ok\"} 35");
	has(t, "pipelined_items_total{outcome=\"failed\"} 1");
	has(t, "pipelined_stage_items_total{stage=\"download\",outcome=\"failed\"} 1");
	has(t, "pipelined_stage_items_total{stage=\"re\\\"size\\\\\",outcome=\"ok\"} 35");
	has(t, "pipelined_stage_retries_total{stage=\"download\"} 7");
	has(t, "pipelined_downloaded_bytes_total 123456789012");
	has(t, "pipelined_uploaded_bytes_total 42");
	has(t, "pipelined_stage_queue_items{stage=\"download\"} 10");
	has(t, "pipelined_stage_delayed_items{stage=\"download\"} 2");
	has(t, "pipelined_stage_workers{stage=\"upload\"} 3");
	has(t, "pipelined_stage_workers_busy{stage=\"download\"} 3");
	/* buckets add up; the ones past the last bound only reach +Inf */
	has(t, "pipelined_stage_duration_seconds_bucket{stage=\"download\",le=\"0.001\"} 1");
	has(t, "pipelined_stage_duration_seconds_bucket{stage=\"download\",le=\"0.0025\"} 3");
	has(t, "pipelined_stage_duration_seconds_bucket{stage=\"download\",le=\"60\"} 3");
	has(t, "pipelined_stage_duration_seconds_bucket{stage=\"download\",le=\"+Inf\"} 6");
	has(t, "pipelined_stage_duration_seconds_sum{stage=\"download\"} 1.500000");
	has(t, "pipelined_stage_duration_seconds_count{stage=\"download\"} 6");
	has(t, "pipelined_stage_duration_seconds_count{stage=\"upload\"} 0");
	has(t, "pipelined_jobs_total{outcome=\"done\"} 5");
	has(t, "pipelined_jobs_total{outcome=\"failed\"} 1");
	has(t, "pipelined_tmp_files_removed_total 2");
	ck_assert_ptr_null(strstr(t, "pipelined_spool_"));
	ck_assert_ptr_null(strstr(t, "pipelined_stream_"));
	free(t);

	m.has_backlog = true;
	m.backlog_jobs = 3;
	m.backlog_items = 1000;
	m.status.has_stream = true;
	m.status.stream = (struct pl_stream_stats){ .connected = true, .pulled = 9, .in_flight = 2,
						    .acked = 7, .redelivered = 1, .dead = 1,
						    .published = 11, .rejected = 4 };
	m.status.remote_ok = 10;
	m.status.remote_failed = 1;
	t = render(&m);
	has(t, "pipelined_spool_jobs_waiting 3");
	has(t, "pipelined_spool_items_waiting 1000");
	has(t, "pipelined_stream_connected 1");
	has(t, "pipelined_stream_items_pulled_total 9");
	has(t, "pipelined_stream_items_in_flight 2");
	has(t, "pipelined_stream_items_redelivered_total 1");
	has(t, "pipelined_stream_items_dead_lettered_total 1");
	has(t, "pipelined_stream_results_total{outcome=\"rejected\"} 4");
	free(t);
}
END_TEST

/* promtool's linter: a format error or a naming warning prints a line. */
START_TEST(render_promtool)
{
	struct pl_metrics_sample m = sample();
	char *dir, path[4096], cmd[4200], out[4096] = "";
	size_t n;
	FILE *p;
	char *t;
	int st;

	if (access("/usr/bin/promtool", X_OK) != 0) {
		printf("promtool not installed: lint not run\n");
		return;
	}
	m.has_backlog = true;
	m.status.has_stream = true;
	t = render(&m);
	dir = pl_test_tmpdir("metrics");
	snprintf(path, sizeof path, "%s/scrape.txt", dir);
	ck_assert_int_eq(pl_test_write_file(path, t, strlen(t)), 0);
	snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics < '%s' 2>&1", path);
	ck_assert_ptr_nonnull(p = popen(cmd, "r"));
	n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	st = pclose(p);
	ck_assert_msg(st == 0 && n == 0, "promtool (status %d): %s", st, out);
	pl_test_rmtree(dir);
	free(dir);
	free(t);
}
END_TEST

START_TEST(listen_rule)
{
	static const char *const good[] = { "127.0.0.1:9464", "0.0.0.0:1", "[::1]:65535",
					    "[::]:9464" };
	static const char *const bad[] = { "", "9464", ":9464", "localhost:9464", "127.0.0.1:",
					   "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1",
					   "127.0.0.1:94x", "::1:9464", "[::1]", "[127.0.0.1]:80",
					   "1.2.3.4.5:80", "[::1:80" };
	struct sockaddr_storage ss;
	socklen_t len;

	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		ck_assert_msg(pl_metrics_parse_listen(good[i], &ss, &len) == 0, "%s", good[i]);
	ck_assert_int_eq(pl_metrics_parse_listen("[::1]:9464", &ss, &len), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_int_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 9464);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		ck_assert_msg(pl_metrics_parse_listen(bad[i], &ss, &len) == -EINVAL, "%s", bad[i]);
}
END_TEST

static int connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	return fd;
}

/* One request, the whole answer (the server closes: Connection: close). */
static void get(int port, const char *req, char *out, size_t outlen)
{
	int fd = connect_to(port);
	size_t n = 0;
	ssize_t r;

	ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	while (n < outlen - 1 && (r = recv(fd, out + n, outlen - 1 - n, 0)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fd);
}

static int backlog_calls;

static int backlog(void *ud, unsigned long *jobs, unsigned long *items)
{
	(void)ud;
	backlog_calls++;
	*jobs = 2;
	*items = 17;
	return 0;
}

START_TEST(server)
{
	struct pl_metrics_sample m = sample();
	struct pl_metrics *srv;
	char addr[64], buf[65536];
	int port = pl_test_free_port(), slow, r = 0;
	uint64_t deadline;

	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	ck_assert_int_eq(pl_metrics_start(addr, 2, 0.3, backlog, NULL, &srv), 0);
	/* the port is taken now: a second server says so */
	{
		struct pl_metrics *again;

		ck_assert_int_eq(pl_metrics_start(addr, 2, 0.3, NULL, NULL, &again), -EADDRINUSE);
		ck_assert_ptr_null(again);
	}
	get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "# no sample yet"));
	pl_metrics_publish(srv, &m);
	get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	ck_assert_ptr_nonnull(strstr(buf, "Content-Type: text/plain; version=0.0.4"));
	ck_assert_ptr_nonnull(strstr(buf, "\npipelined_items_total{outcome=\"ok\"} 35\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\npipelined_spool_items_waiting 17\n"));
	ck_assert_ptr_nonnull(strstr(buf, "\npipelined_build_info{version=\"" PL_VERSION "\""));
	get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	ck_assert_int_eq(backlog_calls, 1);	/* counted again only when stale */
	get(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 404", 12) == 0, "%s", buf);
	get(port, "DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 405", 12) == 0, "%s", buf);

	/* a request that never ends is cut by a publish after its deadline */
	slow = connect_to(port);
	ck_assert_int_eq(send(slow, "GET /met", 8, MSG_NOSIGNAL), 8);
	deadline = pl_now_us() + 20000000;
	for (;;) {
		struct pollfd p = { .fd = slow, .events = POLLIN };

		pl_metrics_publish(srv, &m);
		if (poll(&p, 1, 50) == 1 && (r = (int)recv(slow, buf, sizeof buf, 0)) <= 0)
			break;
		ck_assert_msg(pl_now_us() < deadline, "the unfinished request was never cut");
		if (send(slow, "r", 1, MSG_NOSIGNAL) < 0)	/* never idle */
			break;
	}
	close(slow);
	get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
	ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);

	/* a client beyond the limit waits to be accepted (libmicrohttpd stops
	 * accepting at it; the kernel queues), and is answered once the
	 * unfinished requests holding every slot are cut */
	{
		const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
		int held[2] = { connect_to(port), connect_to(port) }, late;
		size_t n = 0;

		for (int i = 0; i < 2; i++)
			ck_assert_int_eq(send(held[i], "GET /met", 8, MSG_NOSIGNAL), 8);
		late = connect_to(port);
		ck_assert_int_eq(send(late, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
		deadline = pl_now_us() + 20000000;
		for (;;) {
			struct pollfd p = { .fd = late, .events = POLLIN };

			pl_metrics_publish(srv, &m);
			if (poll(&p, 1, 50) == 1) {
				while ((r = (int)recv(late, buf + n, sizeof buf - 1 - n, 0)) > 0)
					n += (size_t)r;
				break;
			}
			ck_assert_msg(pl_now_us() < deadline, "the client beyond the limit was never served");
		}
		buf[n] = '\0';
		ck_assert_msg(strncmp(buf, "HTTP/1.1 200", 12) == 0, "beyond the limit: \"%s\"", buf);
		for (int i = 0; i < 3; i++)
			close(i < 2 ? held[i] : late);
	}
	pl_metrics_stop(srv);
}
END_TEST

/* Clients never hold more than a quarter of the open-file limit: a flood
 * up to the limit would leave the daemon none to claim a job with. */
START_TEST(connection_limit)
{
	struct rlimit old, rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	rl = old;
	rl.rlim_cur = 1024;	/* systemd's default for a service */
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 1024)
		rl.rlim_cur = rl.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_eq(pl_metrics_connection_limit(1024), (unsigned)(rl.rlim_cur / 4));
	ck_assert_uint_eq(pl_metrics_connection_limit(16), rl.rlim_cur / 4 < 16 ? rl.rlim_cur / 4 : 16);
	rl.rlim_cur = 3;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_eq(pl_metrics_connection_limit(16), 1);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, render_lines);
	tcase_add_test(tc, render_promtool);
	tcase_add_test(tc, listen_rule);
	tcase_add_test(tc, server);
	tcase_add_test(tc, connection_limit);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

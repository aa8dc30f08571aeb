/*
 * test_download.c — the download stage driven directly, the test playing
 * the pool: worker_start, process() (again after the returned delay when it
 * asks for a retry), worker_stop.
 *
 * Peers are real: nginx for what it can do (files, redirects, status codes,
 * $connection for keep-alive), and the scripted HTTP server thread of
 * testutil.c for what nginx cannot (500 then 200, Retry-After, silence, a
 * trickle, a flood that counts what it managed to send).  The SSRF redirect
 * test runs in a forked child inside its own network namespace so that it
 * can give lo a "public" address without touching the host.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "download.h"
#include "http.h"
#include "item.h"
#include "log.h"
#include "pipeline.h"
#include "testutil.h"

/* snprintf that fails the test instead of truncating */
static void __attribute__((format(printf, 3, 4))) fmt(char *buf, size_t n, const char *f, ...)
{
	va_list ap;
	int k;

	va_start(ap, f);
	k = vsnprintf(buf, n, f, ap);
	va_end(ap);
	ck_assert_msg(k >= 0 && (size_t)k < n, "path too long");
}

/* ---- the stage, driven by hand ---------------------------------------- */

static struct pl_config base_cfg(void)
{
	struct pl_config c;

	memset(&c, 0, sizeof c);
	c.download.connect_timeout = 5;
	c.download.timeout = 20;
	c.download.max_bytes = 1 << 20;
	c.download.retries = 0;
	c.download.backoff = 0.05;
	c.download.per_host = 4;
	c.download.protocols = PL_PROTO_HTTP | PL_PROTO_HTTPS;
	c.download.file_root = "";
	c.download.allow_private = true;	/* every peer here is on loopback */
	return c;
}

static void stage_open(struct pl_test_stage *s, const struct pl_config *c)
{
	ck_assert_int_eq(pl_test_stage_open(s, &pl_download_ops, pl_download_new, pl_download_free, c), 0);
}

static struct pl_item *item(const char *url)
{
	struct pl_item *it = pl_item_new();

	ck_assert_ptr_nonnull(it);
	it->source = strdup(url);
	it->job_name = "test";
	it->line = 1;
	return it;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* As the pool would: retry after each returned delay until done. */
static int until_done(struct pl_test_stage *s, struct pl_item *it, char *why, int *retries)
{
	int r;

	*retries = 0;
	while ((r = pl_test_stage_run(s, it, why)) > 0) {
		(*retries)++;
		sleep_ms(r);
	}
	return r;
}

static double secs_since(uint64_t t0)
{
	return (double)(pl_now_us() - t0) / 1e6;
}

/* ---- the stage in a pool: many workers, one host --------------------- */

/* How often each item left, by its line number. */
struct tally {
	pthread_mutex_t mu;
	int done[256], failed[256];
};

static void tally_done(void *ud, void *item)
{
	struct tally *t = ud;
	struct pl_item *it = item;

	pthread_mutex_lock(&t->mu);
	t->done[it->line]++;
	pthread_mutex_unlock(&t->mu);
	pl_item_free(it);
}

static void tally_failed(void *ud, void *item, int err, const char *why, const char *stage)
{
	struct tally *t = ud;
	struct pl_item *it = item;

	(void)err;
	(void)stage;
	fprintf(stderr, "item %lu failed: %s\n", (unsigned long)it->line, why);
	pthread_mutex_lock(&t->mu);
	t->failed[it->line]++;
	pthread_mutex_unlock(&t->mu);
	pl_item_free(it);
}

/* n items from srv through a download stage of `workers` workers; every
 * item must leave exactly once.  Returns how many failed. */
static int through_pool(const struct pl_config *c, struct pl_test_srv *srv, unsigned workers,
			int n)
{
	struct tally t = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct pl_pipeline_sinks sinks = { tally_done, tally_failed, &t };
	struct pl_stage_def def = { "download", workers, 16, &pl_download_ops, NULL };
	struct pl_pipeline *p;
	char path[32];
	int failed = 0;

	ck_assert_int_le(n, 256);
	ck_assert_int_eq(pl_download_new(c, &def.ctx), 0);
	ck_assert_int_eq(pl_pipeline_create(&def, 1, &sinks, &p), 0);
	ck_assert_int_eq(pl_pipeline_start(p), 0);
	for (int i = 0; i < n; i++) {
		struct pl_item *it;

		snprintf(path, sizeof path, "/i%d", i);
		it = item(pl_test_srv_url(srv, path));
		it->line = (unsigned long)i;
		ck_assert_int_eq(pl_pipeline_feed(p, it, -1), 0);
	}
	ck_assert_int_eq(pl_pipeline_stop(p), 0);
	pl_pipeline_destroy(p);
	pl_download_free(def.ctx);
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(t.done[i] + t.failed[i], 1);
		failed += t.failed[i];
	}
	return failed;
}

static const char ok_reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* A healthy host 50 ms away: its limit grows past the start of 4 to use
 * the latency, and the host never sees more than per_host at once. */
START_TEST(test_per_host_grows_to_its_ceiling)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_PACED, .latency_ms = 50,
				   .nscript = 1, .script = { ok_reply } };

	c.download.per_host = 10;
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	ck_assert_int_eq(through_pool(&c, &srv, 24, 200), 0);
	pthread_mutex_lock(&srv.mu);
	ck_assert_int_gt(srv.peak, 4);
	ck_assert_int_le(srv.peak, 10);
	ck_assert_int_eq(srv.requests, 200);	/* each fetched once: no drops */
	pthread_mutex_unlock(&srv.mu);
	pl_test_srv_stop(&srv);
}
END_TEST

/* A host that answers 503 past 6 at once: the limit backs off below that
 * instead of hammering it with all 24 workers, and every item still
 * arrives, once. */
START_TEST(test_per_host_backs_off_on_503)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_PACED, .latency_ms = 50, .ceiling = 6,
				   .nscript = 1, .script = { ok_reply } };
	int refused;

	c.download.per_host = 32;
	c.download.retries = 20;
	c.download.backoff = 0.01;
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	ck_assert_int_eq(through_pool(&c, &srv, 24, 200), 0);
	pthread_mutex_lock(&srv.mu);
	refused = srv.refused;
	pthread_mutex_unlock(&srv.mu);
	fprintf(stderr, "503 answers: %d for 200 items\n", refused);
	/* 24 workers at a fixed 24 in flight would get three 503s for
	 * every item served */
	ck_assert_int_lt(refused, 100);
	pl_test_srv_stop(&srv);
}
END_TEST

/* ---- nginx ------------------------------------------------------------ */

static const char nginx_extra[] =
	"location = /redir { return 302 http://$host:$server_port/a.jpg; }\n"
	"location = /loop { return 302 http://$host:$server_port/loop; }\n"
	"location = /tofile { return 302 file:///etc/passwd; }\n"
	"location = /e500 { return 500; }\n"
	"location = /conn { return 200 \"$connection\"; }\n"
	"location = /ua { return 200 \"$http_user_agent\"; }\n";

static const char jpeg_bytes[] = "\xff\xd8\xff\xe0 not really a jpeg \xff\xd9";

static void nginx_up(struct pl_test_nginx *n)
{
	char path[4096];

	ck_assert_int_eq(pl_test_nginx_start(n, nginx_extra), 0);
	snprintf(path, sizeof path, "%s/www/a.jpg", n->dir);
	ck_assert_int_eq(pl_test_write_file(path, jpeg_bytes, sizeof jpeg_bytes - 1), 0);
	snprintf(path, sizeof path, "%s/www/empty.jpg", n->dir);
	ck_assert_int_eq(pl_test_write_file(path, "", 0), 0);
}

static char *nginx_url(const struct pl_test_nginx *n, const char *path)
{
	static char url[256];

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", n->port, path);
	return url;
}

/* ---- tests: nginx ----------------------------------------------------- */

START_TEST(test_fetch_and_redirect)
{
	struct pl_config c = base_cfg();
	struct pl_test_nginx n;
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	nginx_up(&n);
	stage_open(&s, &c);

	it = item(nginx_url(&n, "/a.jpg"));
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	ck_assert_uint_eq(it->len, sizeof jpeg_bytes - 1);
	ck_assert_mem_eq(it->data, jpeg_bytes, it->len);
	pl_item_free(it);

	it = item(nginx_url(&n, "/redir"));
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	ck_assert_uint_eq(it->len, sizeof jpeg_bytes - 1);
	ck_assert_mem_eq(it->data, jpeg_bytes, it->len);
	pl_item_free(it);

	it = item(nginx_url(&n, "/ua"));
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	ck_assert_uint_eq(it->len, strlen("pipelined/" PL_VERSION));
	ck_assert_mem_eq(it->data, "pipelined/" PL_VERSION, it->len);
	pl_item_free(it);

	pl_test_stage_close(&s);
	pl_test_nginx_stop(&n);
}
END_TEST

START_TEST(test_redirect_limits)
{
	struct pl_config c = base_cfg();
	struct pl_test_nginx n;
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	c.download.retries = 3;
	nginx_up(&n);
	stage_open(&s, &c);

	it = item(nginx_url(&n, "/loop"));
	ck_assert_int_lt(pl_test_stage_run(&s, it, why), 0);
	ck_assert_msg(strstr(why, "more than 5 redirects"), "reason: %s", why);
	pl_item_free(it);

	it = item(nginx_url(&n, "/tofile"));
	ck_assert_int_lt(pl_test_stage_run(&s, it, why), 0);
	ck_assert_msg(strstr(why, "redirected to a scheme not in download.protocols"),
		      "reason: %s", why);
	ck_assert_ptr_null(it->data);
	pl_item_free(it);

	pl_test_stage_close(&s);
	pl_test_nginx_stop(&n);
}
END_TEST

START_TEST(test_404_fails_at_once)
{
	struct pl_config c = base_cfg();
	struct pl_test_nginx n;
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	c.download.retries = 3;
	nginx_up(&n);
	stage_open(&s, &c);
	it = item(nginx_url(&n, "/missing.jpg"));
	ck_assert_int_lt(pl_test_stage_run(&s, it, why), 0);
	ck_assert_str_eq(why, "HTTP 404 Not Found");
	ck_assert_int_eq(it->attempts, 0);
	ck_assert_ptr_null(it->data);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_nginx_stop(&n);
}
END_TEST

START_TEST(test_500_retries_then_fails)
{
	struct pl_config c = base_cfg();
	struct pl_test_nginx n;
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;
	int r, window = 50;

	c.download.retries = 3;
	nginx_up(&n);
	stage_open(&s, &c);
	it = item(nginx_url(&n, "/e500"));
	for (int i = 1; i <= 3; i++, window *= 2) {
		r = pl_test_stage_run(&s, it, why);
		/* full jitter over a doubling window starting at backoff */
		ck_assert_int_gt(r, 0);
		ck_assert_int_le(r, window);
		ck_assert_int_eq(it->attempts, i);
	}
	ck_assert_int_lt(pl_test_stage_run(&s, it, why), 0);
	ck_assert_str_eq(why, "HTTP 500 Internal Server Error after 4 attempts");
	ck_assert_int_eq(it->attempts, 0);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_nginx_stop(&n);
}
END_TEST

START_TEST(test_zero_length)
{
	struct pl_config c = base_cfg();
	struct pl_test_nginx n;
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	nginx_up(&n);
	stage_open(&s, &c);
	it = item(nginx_url(&n, "/empty.jpg"));
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	ck_assert_uint_eq(it->len, 0);
	ck_assert_ptr_nonnull(it->data);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_nginx_stop(&n);
}
END_TEST

static char *fetch_body(struct pl_test_stage *s, const char *url)
{
	char why[PL_REASON_MAX], *body;
	struct pl_item *it = item(url);

	ck_assert_msg(pl_test_stage_run(s, it, why) == 0, "%s: %s", url, why);
	body = strndup(it->data, it->len);
	pl_item_free(it);
	return body;
}

START_TEST(test_keepalive)
{
	struct pl_config c = base_cfg();
	struct pl_test_nginx n;
	struct pl_test_stage a, b;
	char *c1, *c2, *c3;

	nginx_up(&n);
	stage_open(&a, &c);
	stage_open(&b, &c);
	/* nginx's $connection is the serial number of the connection */
	c1 = fetch_body(&a, nginx_url(&n, "/conn"));
	c2 = fetch_body(&a, nginx_url(&n, "/conn"));
	c3 = fetch_body(&b, nginx_url(&n, "/conn"));
	ck_assert_str_eq(c1, c2);
	ck_assert_str_ne(c1, c3);	/* and a second worker has its own */
	free(c1);
	free(c2);
	free(c3);
	pl_test_stage_close(&a);
	pl_test_stage_close(&b);
	pl_test_nginx_stop(&n);
}
END_TEST

/* ---- tests: the scripted server --------------------------------------- */

START_TEST(test_500_then_200)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_SCRIPT, .nscript = 2, .script = {
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" } };
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;
	int r;

	c.download.retries = 3;
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	stage_open(&s, &c);
	it = item(pl_test_srv_url(&srv, "/x"));
	r = pl_test_stage_run(&s, it, why);
	ck_assert_int_gt(r, 0);
	ck_assert_int_le(r, 50);
	ck_assert_int_eq(it->attempts, 1);
	ck_assert_ptr_null(it->data);
	sleep_ms(r);	/* the pool's part */
	ck_assert_msg(pl_test_stage_run(&s, it, why) == 0, "%s", why);
	ck_assert_uint_eq(it->len, 5);
	ck_assert_mem_eq(it->data, "hello", 5);
	ck_assert_int_eq(it->attempts, 0);
	/* the 500's body was read to its end, so the connection was kept */
	ck_assert_int_eq(srv.accepts, 1);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
}
END_TEST

START_TEST(test_retry_after)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_SCRIPT, .nscript = 2, .script = {
		"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3600\r\nContent-Length: 0\r\n\r\n" } };
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	c.download.retries = 2;
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	stage_open(&s, &c);
	it = item(pl_test_srv_url(&srv, "/x"));
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 1000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 60000);	/* capped at 60 s */
	ck_assert_int_lt(pl_test_stage_run(&s, it, why), 0);
	ck_assert_str_eq(why, "HTTP 503 Service Unavailable after 3 attempts");
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
}
END_TEST

START_TEST(test_timeout)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_SILENT };
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;
	uint64_t t0;
	double t;

	c.download.timeout = 1.0;
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	stage_open(&s, &c);
	it = item(pl_test_srv_url(&srv, "/x"));
	t0 = pl_now_us();
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -ETIMEDOUT);
	t = secs_since(t0);
	ck_assert_str_eq(why, "timed out after 1.0 s");
	ck_assert_msg(t >= 0.9 && t < 5, "took %.2f s", t);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
}
END_TEST

START_TEST(test_connect_timeout)
{
	struct pl_config c = base_cfg();
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fill[4];
	struct pl_test_stage s;
	char why[PL_REASON_MAX], url[64];
	struct pl_item *it;
	uint64_t t0;
	double t;

	/* A listener whose accept queue is full: Linux drops further SYNs,
	 * so a connect hangs as it would to a black-holed host. */
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof a);
	}
	snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));

	c.download.connect_timeout = 1.0;
	stage_open(&s, &c);
	it = item(url);
	t0 = pl_now_us();
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -ETIMEDOUT);
	t = secs_since(t0);
	ck_assert_str_eq(why, "connect timed out after 1.0 s");
	ck_assert_msg(t >= 0.9 && t < 5, "took %.2f s", t);
	pl_item_free(it);
	pl_test_stage_close(&s);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}
END_TEST

START_TEST(test_low_speed)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_SLOW };
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;
	uint64_t t0;
	double t;

	c.download.low_speed_limit = 100;
	c.download.low_speed_time = 2;
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	stage_open(&s, &c);
	it = item(pl_test_srv_url(&srv, "/x"));
	t0 = pl_now_us();
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -ETIMEDOUT);
	t = secs_since(t0);
	ck_assert_msg(strstr(why, "too slow"), "reason: %s", why);
	/* caught by the low-speed limit, long before the 20 s timeout or the
	 * 100 s the trickle would take */
	ck_assert_msg(t < 8, "took %.2f s", t);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
}
END_TEST

static void flood(bool with_cl)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_FLOOD, .flood_total = 256ll << 20, .flood_cl = with_cl };
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	c.download.retries = 3;	/* not retried all the same */
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	stage_open(&s, &c);
	it = item(pl_test_srv_url(&srv, "/big"));
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EFBIG);
	if (with_cl)
		ck_assert_str_eq(why, "Content-Length 268435456 exceeds max_bytes (1048576)");
	else
		ck_assert_str_eq(why, "body exceeds max_bytes (1048576)");
	ck_assert_ptr_null(it->data);
	ck_assert(pl_test_srv_await(&srv, &srv.handled));
	/* aborted early: the server got nowhere near the end; with a
	 * Content-Length the body was not even read up to max_bytes */
	ck_assert_msg(srv.sent < srv.flood_total / 8, "server sent %lld", srv.sent);
	if (with_cl)
		ck_assert_msg(srv.sent < c.download.max_bytes, "server sent %lld", srv.sent);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
}

START_TEST(test_max_bytes_streaming)
{
	flood(false);
}
END_TEST

START_TEST(test_max_bytes_content_length)
{
	flood(true);
}
END_TEST

/* Exactly max_bytes passes, one more fails, with and without Content-Length. */
START_TEST(test_max_bytes_boundary)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_SCRIPT, .nscript = 1, .script = {
		"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789" } };
	struct pl_test_nginx n;
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	nginx_up(&n);
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	for (long max = 9; max <= 10; max++) {
		c.download.max_bytes = max;
		stage_open(&s, &c);
		it = item(pl_test_srv_url(&srv, "/ten"));
		if (max == 10) {
			ck_assert_msg(pl_test_stage_run(&s, it, why) == 0, "%s", why);
			ck_assert_mem_eq(it->data, "0123456789", 10);
		} else {
			ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EFBIG);
			ck_assert_str_eq(why, "body exceeds max_bytes (9)");
		}
		pl_item_free(it);
		pl_test_stage_close(&s);
	}
	for (long max = sizeof jpeg_bytes - 2; max <= (long)sizeof jpeg_bytes - 1; max++) {
		c.download.max_bytes = max;
		stage_open(&s, &c);
		it = item(nginx_url(&n, "/a.jpg"));
		if (max == sizeof jpeg_bytes - 1) {
			ck_assert_msg(pl_test_stage_run(&s, it, why) == 0, "%s", why);
			ck_assert_uint_eq(it->len, max);
		} else {
			ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EFBIG);
			ck_assert_str_eq(why, "Content-Length 25 exceeds max_bytes (24)");
		}
		pl_item_free(it);
		pl_test_stage_close(&s);
	}
	pl_test_srv_stop(&srv);
	pl_test_nginx_stop(&n);
}
END_TEST

START_TEST(test_connection_refused)
{
	struct pl_config c = base_cfg();
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;
	struct pl_test_stage s;
	char why[PL_REASON_MAX], url[64];
	struct pl_item *it;

	/* a port that was free a moment ago and has no listener */
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
	close(fd);

	c.download.retries = 1;
	stage_open(&s, &c);
	it = item(url);
	ck_assert_int_eq(until_done(&s, it, why, &n), -ECONNREFUSED);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(why, "connection refused after 2 attempts");
	pl_item_free(it);
	pl_test_stage_close(&s);
}
END_TEST

struct bg {
	struct pl_test_stage *s;
	struct pl_item *it;
	char why[PL_REASON_MAX];
	int r;
};

static void *bg_fetch(void *arg)
{
	struct bg *b = arg;

	b->r = pl_test_stage_run(b->s, b->it, b->why);
	return NULL;
}

START_TEST(test_per_host)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_HOLD, .addr = "127.0.0.2", .nscript = 1, .script = {
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" } };
	struct pl_test_nginx n;
	struct pl_test_stage a, b;
	struct bg bga;
	pthread_t th;
	char why[PL_REASON_MAX];
	struct pl_item *it;
	int r;

	c.download.per_host = 1;
	nginx_up(&n);
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	stage_open(&a, &c);
	b = a;	/* a second worker of the same stage */
	ck_assert_int_eq(pl_download_ops.worker_start(b.ctx, &b.ws), 0);

	bga = (struct bg){ .s = &a, .it = item(pl_test_srv_url(&srv, "/held")) };
	ck_assert_int_eq(pthread_create(&th, NULL, bg_fetch, &bga), 0);
	ck_assert(pl_test_srv_await(&srv, &srv.holding));

	/* 127.0.0.2 is at its limit: deferred, not failed, not an attempt */
	it = item(pl_test_srv_url(&srv, "/second"));
	r = pl_test_stage_run(&b, it, why);
	ck_assert_int_gt(r, 0);
	ck_assert_int_lt(r, 200);
	ck_assert_int_eq(it->attempts, 0);
	ck_assert_int_eq(srv.requests, 1);

	/* another host is not held up meanwhile */
	{
		struct pl_item *other = item(nginx_url(&n, "/a.jpg"));
		ck_assert_int_eq(pl_test_stage_run(&b, other, why), 0);
		pl_item_free(other);
	}

	pl_test_srv_release(&srv);
	pthread_join(th, NULL);
	ck_assert_int_eq(bga.r, 0);
	ck_assert_int_eq(pl_test_stage_run(&b, it, why), 0);	/* the slot is free again */
	ck_assert_mem_eq(it->data, "ok", 2);

	pl_item_free(it);
	pl_item_free(bga.it);
	pl_download_ops.worker_stop(b.ctx, b.ws);
	pl_test_stage_close(&a);
	pl_test_srv_stop(&srv);
	pl_test_nginx_stop(&n);
}
END_TEST

/* ---- tests: hostile replies ------------------------------------------- */

/* Fetch once from a server that answers request i with script[i] and hangs
 * up; return process()'s result, the reason in why, the body in *body. */
static int hostile(const char *const *script, size_t n, int retries, char *why, char **body)
{
	struct pl_config c = base_cfg();
	struct pl_test_srv srv = { .mode = PL_TEST_SRV_SCRIPT, .nscript = n, .close = true };
	struct pl_test_stage s;
	struct pl_item *it;
	int r;

	for (size_t i = 0; i < n; i++)
		srv.script[i] = script[i];
	c.download.retries = retries;
	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	stage_open(&s, &c);
	it = item(pl_test_srv_url(&srv, "/img.jpg"));
	r = pl_test_stage_run(&s, it, why);
	*body = r == 0 ? strndup(it->data, it->len) : NULL;
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
	return r;
}

static void expect_body(const char *resp, const char *want)
{
	char why[PL_REASON_MAX], *body;
	int r = hostile(&resp, 1, 0, why, &body);

	ck_assert_msg(r == 0, "%s\n-> %d %s", resp, r, why);
	ck_assert_msg(strcmp(body, want) == 0, "%s\n-> body \"%s\"", resp, body);
	free(body);
}

static void expect_reason(const char *resp, int want_r, const char *want_why)
{
	char why[PL_REASON_MAX], *body;
	int r = hostile(&resp, 1, 0, why, &body);

	ck_assert_msg(r == want_r, "%.200s\n-> %d (want %d) %s", resp, r, want_r, why);
	ck_assert_msg(strcmp(why, want_why) == 0, "%.200s\n-> reason \"%s\"\n  want \"%s\"",
		      resp, why, want_why);
	free(body);
}

/* A header line that starts with HTTP/ in the middle of the headers is an
 * ordinary header: it neither resets the response (which threw the body
 * away as an error page, or overflowed on a long number) nor is parsed. */
START_TEST(test_stray_status_line)
{
	expect_body("HTTP/1.1 200 OK\r\nHTTP/1.1 99999999999999999999 X: y\r\n"
		    "Content-Length: 5\r\n\r\nhello", "hello");
	expect_body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nHTTP/1.1 404 Not: Found\r\n"
		    "\r\nhello", "hello");
	expect_body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		    "HTTP/1.1 500 Oops: x\r\n\r\n5\r\nhello\r\n0\r\n"
		    "HTTP/1.1 404 Trailer: x\r\nContent-Length: 999999999\r\n\r\n", "hello");
	/* curl itself refuses one without a colon */
	expect_reason("HTTP/1.1 200 OK\r\nHTTP/1.1 99999999999999999999 X\r\n"
		      "Content-Length: 5\r\n\r\nhello", -EPROTO,
		      "malformed HTTP response: Header without colon");
}
END_TEST

/* Where a status line can stand, a new response does start there. */
START_TEST(test_interim_responses)
{
	static const char *const redirect[] = {
		"HTTP/1.1 301 Moved Permanently\r\nLocation: /final.jpg\r\n"
		"HTTP/1.1 200 OK: x\r\nContent-Length: 4\r\n\r\nmove",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal" };
	char why[PL_REASON_MAX], *body;

	expect_body("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
		    "\r\nhello", "hello");
	expect_body("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
		    "HTTP/1.1 100 Continue\r\n\r\n"
		    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello");
	ck_assert_msg(hostile(redirect, 2, 0, why, &body) == 0, "%s", why);
	ck_assert_str_eq(body, "final");
	free(body);
	/* a 1xx status is the response's, not a stray header's */
	expect_reason("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n"
		      "Content-Length: 0\r\n\r\n", -EPROTO, "HTTP 404 Not Found");
}
END_TEST

START_TEST(test_not_http)
{
	expect_reason("SSH-2.0-OpenSSH_9.2\r\n\r\n", -EPROTO,
		      "not an HTTP response (no status line)");
	expect_reason("hello world", -EPROTO, "not an HTTP response (no status line)");
	expect_reason("HTTP/1.1 100 Continue\r\n\r\nhello world\r\n", -EPROTO,
		      "not an HTTP response (no status line)");
}
END_TEST

/* A status code is exactly three digits, 100 to 999; what curl refuses
 * and what curl would take (a lower-case http/ becomes 200 there) both
 * fail with the reason, never as a redirect or an empty body. */
START_TEST(test_bad_status)
{
	expect_reason("HTTP/1.1 1000 X\r\nContent-Length: 2\r\n\r\nok", -EPROTO,
		      "invalid HTTP status line (Unsupported response code in HTTP response)");
	expect_reason("HTTP/1.1 99 X\r\nContent-Length: 2\r\n\r\nok", -EPROTO,
		      "invalid HTTP status line (Unsupported response code in HTTP response)");
	expect_reason("HTTP/1.1 abc X\r\nContent-Length: 2\r\n\r\nok", -EPROTO,
		      "invalid HTTP status line (Unsupported HTTP version in response)");
	expect_reason("HTTP/2 1000 X\r\nContent-Length: 2\r\n\r\nok", -EPROTO,
		      "invalid HTTP status line \"HTTP/2 1000 X\"");
	expect_reason("http/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nok", -EPROTO,
		      "invalid HTTP status line \"http/1.1 404 Not Found\"");
	expect_reason("HTTP/x 200 OK\r\nContent-Length: 2\r\n\r\nok", -EPROTO,
		      "invalid HTTP status line \"HTTP/x 200 OK\"");
	/* curl takes any number after HTTP/2, here 2; the line is quoted
	 * printable */
	expect_reason("HTTP/2 2\x01" "00 \x7f\r\nContent-Length: 2\r\n\r\nok", -EPROTO,
		      "invalid HTTP status line \"HTTP/2 2?00 ?\"");
	/* three digits, but not a code this program knows: its own reason */
	expect_reason("HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok", -EPROTO, "HTTP 999 Odd");
}
END_TEST

/* A response whose head is PREFIX, a MB of 'a', then "\r\n\r\nok". */
static char *with_huge_line(const char *prefix)
{
	size_t n = strlen(prefix), big = 1 << 20;
	char *resp = malloc(n + big + 7);

	ck_assert_ptr_nonnull(resp);
	memcpy(resp, prefix, n);
	memset(resp + n, 'a', big);
	strcpy(resp + n + big, "\r\n\r\nok");
	return resp;
}

/* curl keeps a header line in a buffer of CURL_MAX_HTTP_HEADER and gives
 * CURLE_OUT_OF_MEMORY when a line outgrows it: that is not memory. */
START_TEST(test_huge_header)
{
	char *resp = with_huge_line("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: ");

	expect_reason(resp, -EMSGSIZE, "response header line longer than 100 KiB");
	free(resp);
	resp = with_huge_line("HTTP/1.1 200 ");	/* the status line itself */
	expect_reason(resp, -EMSGSIZE, "response header line longer than 100 KiB");
	free(resp);
}
END_TEST

/* A body cut short, broken or followed by a runaway trailer. */
START_TEST(test_broken_body)
{
	expect_reason("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nok",
		      -ECONNRESET, "connection failed: body truncated, transfer closed with 8 bytes remaining to read");
	expect_reason("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
		      "\r\n5\r\nhel", -ECONNRESET,
		      "connection failed: body truncated, transfer closed with outstanding read "
		      "data remaining");
	expect_reason("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
		      -EPROTO, "malformed chunked body: Illegal or missing hexadecimal "
		      "sequence in chunked-encoding");
	expect_reason("", -ECONNRESET, "connection failed: empty reply from server");
	{
		/* curl caps a trailer line too, and says "Out of memory" */
		char *resp = with_huge_line("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
					    "5\r\nhello\r\n0\r\nX-Trailer: ");

		expect_reason(resp, -EMSGSIZE, "chunked trailer line too long");
		free(resp);
	}
}
END_TEST

/* ---- tests: file:// --------------------------------------------------- */

struct files {
	char *dir;
	char root[4096], outside[4096];
};

static void files_up(struct files *f)
{
	char p[4096], q[4096];

	f->dir = pl_test_tmpdir("dlfile");
	ck_assert_ptr_nonnull(f->dir);
	fmt(f->root, sizeof f->root, "%s/root", f->dir);
	fmt(f->outside, sizeof f->outside, "%s/outside.jpg", f->dir);
	fmt(p, sizeof p, "%s/sub/in.jpg", f->root);
	ck_assert_int_eq(pl_test_write_file(p, jpeg_bytes, sizeof jpeg_bytes - 1), 0);
	ck_assert_int_eq(pl_test_write_file(f->outside, "secret", 6), 0);
	/* a sibling whose name starts with the root's */
	fmt(p, sizeof p, "%s/rootx/f.jpg", f->dir);
	ck_assert_int_eq(pl_test_write_file(p, "secret", 6), 0);
	fmt(p, sizeof p, "%s/link.jpg", f->root);
	ck_assert_int_eq(symlink(f->outside, p), 0);
	fmt(p, sizeof p, "%s/dirlink", f->root);
	ck_assert_int_eq(symlink(f->dir, p), 0);
	fmt(p, sizeof p, "%s/inlink.jpg", f->root);
	fmt(q, sizeof q, "%s/sub/in.jpg", f->root);
	ck_assert_int_eq(symlink(q, p), 0);
	fmt(p, sizeof p, "%s/big.jpg", f->root);
	ck_assert_int_eq(pl_test_write_file(p, "", 0), 0);
	ck_assert_int_eq(truncate(p, (2 << 20)), 0);
}

static int file_fetch(struct pl_test_stage *s, const char *pattern, const char *arg, char *why,
		      struct pl_item **out)
{
	char url[8192];
	int r;

	snprintf(url, sizeof url, pattern, arg);
	*out = item(url);
	r = pl_test_stage_run(s, *out, why);
	return r;
}

START_TEST(test_file_root)
{
	struct pl_config c = base_cfg();
	struct files f;
	struct pl_test_stage s;
	char why[PL_REASON_MAX], want[8192];
	struct pl_item *it;

	files_up(&f);
	c.download.protocols |= PL_PROTO_FILE;
	c.download.file_root = f.root;
	stage_open(&s, &c);

	ck_assert_int_eq(file_fetch(&s, "file://%s/sub/in.jpg", f.root, why, &it), 0);
	ck_assert_uint_eq(it->len, sizeof jpeg_bytes - 1);
	ck_assert_mem_eq(it->data, jpeg_bytes, it->len);
	pl_item_free(it);

	/* a symlink that stays inside is fine */
	ck_assert_int_eq(file_fetch(&s, "file://%s/inlink.jpg", f.root, why, &it), 0);
	ck_assert_uint_eq(it->len, sizeof jpeg_bytes - 1);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%s", f.outside, why, &it), -EPERM);
	fmt(want, sizeof want, "file:// path %s is outside file_root %s", f.outside, f.root);
	ck_assert_str_eq(why, want);
	ck_assert_ptr_null(it->data);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%s/link.jpg", f.root, why, &it), -EPERM);
	ck_assert_msg(strstr(why, "is outside file_root"), "%s", why);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%s/dirlink/outside.jpg", f.root, why, &it), -EPERM);
	ck_assert_msg(strstr(why, "is outside file_root"), "%s", why);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%s/../outside.jpg", f.root, why, &it), -EPERM);
	ck_assert_msg(strstr(why, "/../outside.jpg is outside file_root"), "%s", why);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%s/sub/%%2e%%2e/../outside.jpg", f.root, why, &it),
			 -EPERM);
	ck_assert_msg(strstr(why, "is outside file_root"), "%s", why);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%sx/f.jpg", f.root, why, &it), -EPERM);
	ck_assert_msg(strstr(why, "is outside file_root"), "%s", why);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%s/sub", f.root, why, &it), -EINVAL);
	ck_assert_msg(strstr(why, "is not a regular file"), "%s", why);
	pl_item_free(it);

	/* a FIFO with no writer would block open() forever and hang the worker */
	fmt(want, sizeof want, "%s/fifo.jpg", f.root);
	ck_assert_int_eq(mkfifo(want, 0600), 0);
	ck_assert_int_eq(file_fetch(&s, "file://%s/fifo.jpg", f.root, why, &it), -EINVAL);
	ck_assert_msg(strstr(why, "is not a regular file"), "%s", why);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%s/nope.jpg", f.root, why, &it), -ENOENT);
	ck_assert_msg(strstr(why, "nope.jpg: No such file"), "%s", why);
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "file://%s/big.jpg", f.root, why, &it), -EFBIG);
	ck_assert_msg(strstr(why, "exceeds max_bytes (1048576)"), "%s", why);
	pl_item_free(it);

	pl_test_stage_close(&s);
	pl_test_rmtree(f.dir);
	free(f.dir);
}
END_TEST

START_TEST(test_file_not_allowed)
{
	struct pl_config c = base_cfg();
	struct files f;
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	files_up(&f);
	c.download.file_root = f.root;	/* a root, but "file" not in protocols */
	stage_open(&s, &c);
	ck_assert_int_eq(file_fetch(&s, "file://%s/sub/in.jpg", f.root, why, &it), -EPERM);
	ck_assert_str_eq(why, "file:// is not in download.protocols");
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "%s", "ftp://127.0.0.1/x.jpg", why, &it), -EPROTONOSUPPORT);
	ck_assert_str_eq(why, "scheme ftp:// is not in download.protocols");
	pl_item_free(it);

	ck_assert_int_eq(file_fetch(&s, "%s", "not a url", why, &it), -EINVAL);
	ck_assert_msg(strstr(why, "bad URL"), "%s", why);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_rmtree(f.dir);
	free(f.dir);
}
END_TEST

/* ---- tests: SSRF ------------------------------------------------------ */

START_TEST(test_ssrf_direct)
{
	struct pl_config c = base_cfg();
	struct pl_test_nginx n;
	struct pl_test_stage s;
	char why[PL_REASON_MAX];
	struct pl_item *it;

	c.download.allow_private = false;
	c.download.retries = 3;	/* a refusal is final all the same */
	nginx_up(&n);
	stage_open(&s, &c);

	it = item(nginx_url(&n, "/a.jpg"));
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EPERM);
	ck_assert_str_eq(why, "refused to connect to 127.0.0.1 (loopback)");
	ck_assert_int_eq(it->attempts, 0);
	pl_item_free(it);

	it = item("http://[::1]:9/x.jpg");
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EPERM);
	ck_assert_str_eq(why, "refused to connect to ::1 (loopback)");
	pl_item_free(it);

	it = item("http://169.254.169.254/latest/meta-data/");
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EPERM);
	ck_assert_str_eq(why, "refused to connect to 169.254.169.254 (link-local)");
	pl_item_free(it);

	pl_test_stage_close(&s);
	pl_test_nginx_stop(&n);
}
END_TEST

#define CHILD_CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, __VA_ARGS__); \
	fputc('\n', stderr); _exit(1); } } while (0)

/* In the child, in a new network namespace: 198.51.100.7 redirects to
 * 127.0.0.1.  Exit 0 if the guard refused it, and allowed it when told. */
static void ssrf_child(void)
{
	char why[PL_REASON_MAX], loc[256], redirect[400];
	struct pl_test_srv target = { .mode = PL_TEST_SRV_SCRIPT, .nscript = 1, .script = {
		"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret" } };
	struct pl_test_srv front = { .mode = PL_TEST_SRV_SCRIPT, .nscript = 1, .addr = "198.51.100.7" };
	struct pl_config c = base_cfg();
	struct pl_test_stage s;
	struct pl_item *it;
	int r;

	CHILD_CHECK(system("ip link set lo up && ip addr add 198.51.100.7/32 dev lo") == 0,
		    "cannot set up lo in the namespace");
	ck_assert_int_eq(pl_test_srv_start(&target), 0);
	snprintf(loc, sizeof loc, "http://127.0.0.1:%d/secret.jpg", target.port);
	snprintf(redirect, sizeof redirect,
		 "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n", loc);
	front.script[0] = redirect;
	ck_assert_int_eq(pl_test_srv_start(&front), 0);

	c.download.allow_private = false;
	c.download.retries = 3;
	stage_open(&s, &c);
	it = item(pl_test_srv_url(&front, "/img.jpg"));
	r = pl_test_stage_run(&s, it, why);
	CHILD_CHECK(r == -EPERM, "redirect to loopback: want -EPERM, got %d (%s)", r, why);
	CHILD_CHECK(strcmp(why, "refused to connect to 127.0.0.1 (loopback)") == 0,
		    "reason: %s", why);
	CHILD_CHECK(front.requests == 1 && target.accepts == 0,
		    "front saw %d requests, target %d connections", front.requests, target.accepts);
	pl_item_free(it);
	it = item(loc);
	r = pl_test_stage_run(&s, it, why);
	CHILD_CHECK(r == -EPERM && strstr(why, "(loopback)"), "direct: %d %s", r, why);
	pl_item_free(it);
	pl_test_stage_close(&s);

	c.download.allow_private = true;
	stage_open(&s, &c);
	it = item(pl_test_srv_url(&front, "/img.jpg"));
	r = pl_test_stage_run(&s, it, why);
	CHILD_CHECK(r == 0 && it->len == 6 && memcmp(it->data, "secret", 6) == 0,
		    "allow_private: %d %s", r, why);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&front);
	pl_test_srv_stop(&target);
	_exit(0);
}

START_TEST(test_ssrf_redirect_netns)
{
	pid_t pid;
	int status;

	if (geteuid() != 0) {
		fprintf(stderr, "test_ssrf_redirect_netns: skipped, needs root for a network namespace\n");
		return;
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0) {
			fprintf(stderr, "test_ssrf_redirect_netns: skipped, unshare: %s\n",
				strerror(errno));
			_exit(77);
		}
		ssrf_child();
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 77),
		      "child failed (status %#x), see its message above", status);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("download");
	TCase *tc = tcase_create("download");
	SRunner *sr;
	int failed;

	if (getenv("PL_TEST_DEBUG"))	/* the stage's per-attempt lines */
		pl_log_set_level(LOG_DEBUG);
	if (pl_http_global_init() < 0)
		return 1;
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_fetch_and_redirect);
	tcase_add_test(tc, test_redirect_limits);
	tcase_add_test(tc, test_404_fails_at_once);
	tcase_add_test(tc, test_500_retries_then_fails);
	tcase_add_test(tc, test_zero_length);
	tcase_add_test(tc, test_keepalive);
	tcase_add_test(tc, test_500_then_200);
	tcase_add_test(tc, test_retry_after);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_connect_timeout);
	tcase_add_test(tc, test_low_speed);
	tcase_add_test(tc, test_max_bytes_streaming);
	tcase_add_test(tc, test_max_bytes_content_length);
	tcase_add_test(tc, test_max_bytes_boundary);
	tcase_add_test(tc, test_connection_refused);
	tcase_add_test(tc, test_per_host);
	tcase_add_test(tc, test_per_host_grows_to_its_ceiling);
	tcase_add_test(tc, test_per_host_backs_off_on_503);
	tcase_add_test(tc, test_stray_status_line);
	tcase_add_test(tc, test_interim_responses);
	tcase_add_test(tc, test_not_http);
	tcase_add_test(tc, test_bad_status);
	tcase_add_test(tc, test_huge_header);
	tcase_add_test(tc, test_broken_body);
	tcase_add_test(tc, test_file_root);
	tcase_add_test(tc, test_file_not_allowed);
	tcase_add_test(tc, test_ssrf_direct);
	tcase_add_test(tc, test_ssrf_redirect_netns);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	pl_http_global_cleanup();
	return failed ? 1 : 0;
}

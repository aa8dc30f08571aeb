/*
 * test_upload.c — the upload stage driven directly, as a pool worker would:
 * pl_upload_new, worker_start, process (again when it asks for a retry),
 * worker_stop.  Every target is real: files on disk (and a 64 KiB tmpfs for
 * a full disk), nginx's WebDAV PUT, testutil.c's scripted HTTP server for the
 * statuses nginx cannot produce in order (503 then 201), and
 * tests/s3_endpoint.py, which checks SigV4 signatures with botocore.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <glib.h>

#include "config.h"
#include "http.h"
#include "item.h"
#include "testutil.h"
#include "upload.h"

/* ---- fixtures ---------------------------------------------------------- */

static struct pl_config make_cfg(const char *url, int retries)
{
	struct pl_config c;

	memset(&c, 0, sizeof c);
	c.upload.url = (char *)url;
	c.upload.retries = retries;
	c.upload.backoff = 0.01;
	c.upload.connect_timeout = 5;
	c.upload.timeout = 30;
	return c;
}

/* An item with n outputs named by variants[], each holding its own bytes. */
static struct pl_item *make_item(const char *name, const char *const *variants, size_t n,
				 size_t len)
{
	struct pl_item *it = pl_item_new();

	ck_assert_ptr_nonnull(it);
	it->name = strdup(name);
	it->job_name = "job1";
	it->line = 1;
	it->outputs = calloc(n, sizeof *it->outputs);
	ck_assert_ptr_nonnull(it->outputs);
	it->noutputs = n;
	for (size_t i = 0; i < n; i++) {
		struct pl_output *o = &it->outputs[i];
		unsigned char *b = g_malloc(len ? len : 1);

		snprintf(o->variant, sizeof o->variant, "%s", variants[i]);
		o->ext = "jpg";
		o->mime = "image/jpeg";
		for (size_t k = 0; k < len; k++)
			b[k] = (unsigned char)(k * 7 + i * 13 + 1);
		o->buf = b;
		o->len = len;
	}
	return it;
}

static int expected_byte(size_t k, size_t i)
{
	return (unsigned char)(k * 7 + i * 13 + 1);
}

/* Does p hold exactly output i's len bytes?  -1 if so, else the first
 * differing offset. */
static long first_wrong(const unsigned char *p, size_t i, size_t len)
{
	for (size_t k = 0; k < len; k++)
		if (p[k] != expected_byte(k, i))
			return (long)k;
	return -1;
}

/* The file holds exactly output i's bytes of length len. */
static void assert_file_bytes(const char *path, size_t i, size_t len)
{
	gchar *data = NULL;
	gsize got = 0;

	ck_assert_msg(g_file_get_contents(path, &data, &got, NULL), "%s not readable", path);
	ck_assert_uint_eq(got, len);
	ck_assert_msg(first_wrong((unsigned char *)data, i, len) < 0, "%s: byte %ld differs", path,
		      first_wrong((unsigned char *)data, i, len));
	g_free(data);
}

/* Entries in dir (recursively) whose name starts with '.'. */
static int count_dot_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char sub[4096];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_name[0] == '.')
			n++;
		snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR)
			n += count_dot_files(sub);
	}
	closedir(d);
	return n;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void nginx_start(struct pl_test_nginx *ng, const char *extra)
{
	ck_assert_int_eq(pl_test_nginx_start(ng, extra), 0);
}

static void stage_open(struct pl_test_stage *s, const struct pl_config *cfg)
{
	ck_assert_int_eq(pl_test_stage_open(s, &pl_upload_ops, pl_upload_new, pl_upload_free, cfg), 0);
}

/* ---- file:// ------------------------------------------------------------ */

START_TEST(file_writes_exact_bytes_atomically)
{
	static const char *const v[] = { "thumb", "large" };
	char *dir = pl_test_tmpdir("upfile"), url[4096], path[4096], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;

	snprintf(url, sizeof url, "file://%s/out/deep/{job}/{name}-{variant}.{ext}", dir);
	cfg = make_cfg(url, 2);
	stage_open(&s, &cfg);

	it = make_item("cat", v, 2, 100000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/out/deep/job1/cat-%s.jpg", dir, v[i]);
		assert_file_bytes(path, i, 100000);
		ck_assert_str_eq(it->outputs[i].location, path);
		ck_assert_ptr_null(it->outputs[i].buf);
	}
	ck_assert_uint_eq(it->done_mask, 3);
	ck_assert_int_eq(it->attempts, 0);
	snprintf(path, sizeof path, "%s/out/deep/job1", dir);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0755 & ~(unsigned)umask(umask(0)));
	pl_item_free(it);

	/* again, other bytes: overwritten in place, still no temp left */
	static const char *const v2[] = { "large", "thumb" };
	it = make_item("cat", v2, 2, 5000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	snprintf(path, sizeof path, "%s/out/deep/job1/cat-large.jpg", dir);
	assert_file_bytes(path, 0, 5000);
	snprintf(path, sizeof path, "%s/out/deep/job1", dir);
	ck_assert_int_eq(count_entries(path), 2);
	ck_assert_int_eq(count_dot_files(dir), 0);
	pl_item_free(it);

	pl_test_stage_close(&s);
	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

/*
 * An output is replaced, never written in place: a reader of the old file
 * never sees a torn new one, and a crash mid-write leaves the old one
 * whole.  Deterministic proof without timing: an existing output that is a
 * second hard link to another file, or a symbolic link to one, must be
 * swapped for a new inode, leaving the other file untouched.  A write in
 * place (open O_TRUNC) changes the other file and keeps the inode.
 */
START_TEST(file_replaces_never_writes_in_place)
{
	static const char *const v[] = { "thumb" };
	char *dir = pl_test_tmpdir("upinplace"), url[4096], path[4096], other[4096],
	     why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;
	struct stat before, after, ost;

	snprintf(url, sizeof url, "file://%s/out/{name}-{variant}.{ext}", dir);
	snprintf(path, sizeof path, "%s/out/cat-thumb.jpg", dir);
	snprintf(other, sizeof other, "%s/other", dir);
	ck_assert_int_eq(pl_test_write_file(other, "precious", 8), 0);
	ck_assert_int_eq(pl_test_write_file(path, "x", 1), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(link(other, path), 0);
	ck_assert_int_eq(stat(path, &before), 0);
	cfg = make_cfg(url, 1);
	stage_open(&s, &cfg);

	it = make_item("cat", v, 1, 3000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	pl_item_free(it);
	assert_file_bytes(path, 0, 3000);
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_msg(after.st_ino != before.st_ino, "the output was written in place");
	ck_assert_int_eq(stat(other, &ost), 0);
	ck_assert_int_eq(ost.st_size, 8);
	ck_assert_uint_eq(ost.st_nlink, 1);

	/* a symbolic link is replaced as well, not followed */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink(other, path), 0);
	it = make_item("cat", v, 1, 2000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	pl_item_free(it);
	ck_assert_int_eq(lstat(path, &after), 0);
	ck_assert(S_ISREG(after.st_mode));
	assert_file_bytes(path, 0, 2000);
	ck_assert_int_eq(stat(other, &ost), 0);
	ck_assert_int_eq(ost.st_size, 8);

	pl_test_stage_close(&s);
	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

/* Every inotify event in the queue of fd naming base, OR-ed together. */
static uint32_t events_for(int fd, const char *base)
{
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	uint32_t mask = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof buf)) > 0)
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)p;

			ck_assert_msg(!(e->mask & IN_Q_OVERFLOW), "inotify queue overflowed");
			if (e->len && !strcmp(e->name, base))
				mask |= e->mask;
			p += sizeof *e + e->len;
		}
	ck_assert_msg(n < 0 && errno == EAGAIN, "inotify read: %s", strerror(errno));
	return mask;
}

/*
 * The final name of an output appears only complete: linked from a whole
 * unnamed inode (IN_CREATE) or renamed over (IN_MOVED_TO), and is never
 * opened or written under that name.  The inode and byte checks above
 * cannot tell a write in place to a freshly created file (unlink, then
 * open O_CREAT and write) from a rename; the directory's own event stream
 * can, without root and without racing a reader against the writer.
 */
START_TEST(file_final_name_appears_only_whole)
{
	static const char *const v[] = { "thumb" };
	const uint32_t written = IN_OPEN | IN_MODIFY | IN_CLOSE_WRITE;
	char *dir = pl_test_tmpdir("upnotify"), url[4096], out[4096], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;
	uint32_t m;
	int fd;

	snprintf(url, sizeof url, "file://%s/out/{name}-{variant}.{ext}", dir);
	snprintf(out, sizeof out, "%s/out", dir);
	ck_assert_int_eq(mkdir(out, 0755), 0);
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(inotify_add_watch(fd, out, IN_ALL_EVENTS), 0);
	cfg = make_cfg(url, 1);
	stage_open(&s, &cfg);

	/* a new output */
	it = make_item("cat", v, 1, 200000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	pl_item_free(it);
	m = events_for(fd, "cat-thumb.jpg");
	ck_assert_msg(m & (IN_CREATE | IN_MOVED_TO), "the output never appeared (0x%x)", m);
	ck_assert_msg(!(m & written), "a new output was written under its final name (0x%x)", m);

	/* an output replacing an existing one: only a rename can do that whole */
	it = make_item("cat", v, 1, 100000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	pl_item_free(it);
	m = events_for(fd, "cat-thumb.jpg");
	ck_assert_msg(m & IN_MOVED_TO, "the replacement was not renamed into place (0x%x)", m);
	ck_assert_msg(!(m & (written | IN_CREATE | IN_DELETE)),
		      "a replacement was written under its final name (0x%x)", m);
	snprintf(out, sizeof out, "%s/out/cat-thumb.jpg", dir);
	assert_file_bytes(out, 0, 100000);
	ck_assert_int_eq(count_dot_files(dir), 0);

	close(fd);
	pl_test_stage_close(&s);
	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(file_escaping_name_writes_nothing)
{
	static const char *const v[] = { "thumb" };
	char *dir = pl_test_tmpdir("upesc"), url[4096], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;

	snprintf(url, sizeof url, "file://%s/out/{name}-{variant}.{ext}", dir);
	cfg = make_cfg(url, 3);
	stage_open(&s, &cfg);
	it = make_item("../x", v, 1, 10);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EINVAL);
	ck_assert_msg(strstr(why, "../x") && strstr(why, "'.'"), "reason: %s", why);
	ck_assert_ptr_nonnull(it->outputs[0].buf);
	ck_assert_ptr_null(it->outputs[0].location);
	ck_assert_int_eq(it->attempts, 0);
	ck_assert_int_eq(count_entries(dir), 0);
	pl_item_free(it);

	/* a {job} value is checked the same way */
	snprintf(url, sizeof url, "file://%s/{job}/{name}.{ext}", dir);
	pl_test_stage_close(&s);
	cfg = make_cfg(url, 3);
	stage_open(&s, &cfg);
	it = make_item("ok", v, 1, 10);
	it->job_name = "a/../../etc";
	ck_assert_int_lt(pl_test_stage_run(&s, it, why), 0);
	ck_assert_msg(strstr(why, "'/'"), "reason: %s", why);
	ck_assert_int_eq(count_entries(dir), 0);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

/* In a child with its own mount namespace: a 64 KiB tmpfs, a 256 KiB output.
 * Writes what went wrong to fd out; exits 0 when all held. */
static void enospc_child(const char *mnt, int out)
{
	static const char *const v[] = { "big" };
	char why[PL_REASON_MAX], *url, *want, *outdir, *msg = NULL;
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;
	int r1, r2;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", mnt, "tmpfs", 0, "size=64k") < 0) {
		dprintf(out, "SKIP mount tmpfs: %s", strerror(errno));
		_exit(0);
	}
	url = g_strdup_printf("file://%s/out/{name}-{variant}.{ext}", mnt);
	want = g_strdup_printf("write %s/out/x-big.jpg: No space left on device", mnt);
	outdir = g_strdup_printf("%s/out", mnt);
	cfg = make_cfg(url, 1);
	if (pl_test_stage_open(&s, &pl_upload_ops, pl_upload_new, pl_upload_free, &cfg) < 0)
		_exit(3);
	it = make_item("x", v, 1, 256 * 1024);

	r1 = pl_test_stage_run(&s, it, why);	/* full disk: retried while retries remain */
	if (r1 <= 0 || !strstr(why, want))
		msg = g_strdup_printf("first try: %d '%s'", r1, why);
	r2 = pl_test_stage_run(&s, it, why);	/* retries spent: fails */
	if (!msg && (r2 != -ENOSPC || !strstr(why, want)))
		msg = g_strdup_printf("second try: %d '%s'", r2, why);
	if (!msg && count_entries(outdir) != 0)
		msg = g_strdup_printf("%d files left in %s", count_entries(outdir), outdir);
	if (!msg && (it->attempts != 0 || !it->outputs[0].buf))
		msg = g_strdup_printf("attempts %d after failure", it->attempts);
	dprintf(out, "%s", msg ? msg : "");
	pl_item_free(it);
	pl_test_stage_close(&s);
	_exit(msg ? 1 : 0);
}

START_TEST(file_full_disk_fails_cleanly)
{
	char *dir, mnt[4096], msg[8192] = "";
	int p[2], status;
	ssize_t n;
	pid_t pid;

	if (geteuid() != 0) {
		fprintf(stderr, "file_full_disk_fails_cleanly: skipped, needs root for a tmpfs\n");
		return;
	}
	dir = pl_test_tmpdir("upfull");
	snprintf(mnt, sizeof mnt, "%s/mnt", dir);
	ck_assert_int_eq(mkdir(mnt, 0755), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		enospc_child(mnt, p[1]);
	}
	close(p[1]);
	n = read(p[0], msg, sizeof msg - 1);
	msg[n > 0 ? n : 0] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (strncmp(msg, "SKIP", 4) == 0)
		fprintf(stderr, "file_full_disk_fails_cleanly: %s\n", msg);
	else
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %s", msg);
	ck_assert_int_eq(count_entries(mnt), 0);	/* the tmpfs was the child's */
	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

/* The scripted server's answers to a PUT (testutil.c). */
#define REPLY(status_and_headers) "HTTP/1.1 " status_and_headers "\r\nContent-Length: 0\r\n\r\n"

/* ---- http(s):// ---------------------------------------------------------- */

START_TEST(http_put_to_nginx_dav)
{
	static const char *const v[] = { "thumb", "large" };
	struct pl_test_nginx ng;
	char url[512], path[4096], loc[512], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;

	nginx_start(&ng, NULL);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/dav/img/{name}-{variant}.{ext}", ng.port);
	cfg = make_cfg(url, 2);
	stage_open(&s, &cfg);
	it = make_item("a b", v, 2, 300000);	/* the space is percent-encoded */
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/dav/img/a b-%s.jpg", ng.dir, v[i]);
		assert_file_bytes(path, i, 300000);
		snprintf(loc, sizeof loc, "http://127.0.0.1:%d/dav/img/a%%20b-%s.jpg", ng.port, v[i]);
		ck_assert_str_eq(it->outputs[i].location, loc);
		ck_assert_ptr_null(it->outputs[i].buf);
	}
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_nginx_stop(&ng);
}
END_TEST

START_TEST(http_headers_and_keepalive)
{
	static const char *const v[] = { "a", "b" };
	struct pl_test_srv srv = { .nscript = 2,
				   .script = { REPLY("201 Created"), REPLY("204 No Content") } };
	char url[512], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;
	size_t len = 1536 * 1024;	/* over curl's 1 MiB Expect threshold */

	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/up/{variant}/{name}.{ext}", srv.port);
	cfg = make_cfg(url, 2);
	stage_open(&s, &cfg);
	it = make_item("pic", v, 2, len);
	it->outputs[1].mime = "image/webp";
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	ck_assert_int_eq(pl_test_srv_requests(&srv), 2);
	ck_assert_int_eq(srv.accepts, 1);	/* one kept-alive connection */
	for (int i = 0; i < 2; i++) {
		struct pl_test_req *r = &srv.reqs[i];
		ck_assert_str_eq(r->method, "PUT");
		ck_assert_str_eq(r->path, i ? "/up/b/pic.jpg" : "/up/a/pic.jpg");
		ck_assert_str_eq(r->ctype, i ? "image/webp" : "image/jpeg");
		ck_assert_int_eq(r->clen, (long)len);
		ck_assert_int_eq(r->expect, 0);
		ck_assert_int_eq(first_wrong(r->body, (size_t)i, len), -1);
	}
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
}
END_TEST

START_TEST(http_4xx_fails_at_once)
{
	static const char *const v[] = { "thumb" };
	struct pl_test_nginx ng;
	char url[512], why[PL_REASON_MAX], want[512];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;

	nginx_start(&ng, "location /dav/ro/ { return 403; }");
	snprintf(url, sizeof url, "http://127.0.0.1:%d/dav/ro/{name}.{ext}", ng.port);
	cfg = make_cfg(url, 3);
	stage_open(&s, &cfg);
	it = make_item("x", v, 1, 1000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EACCES);
	snprintf(want, sizeof want, "HTTP 403 Forbidden from http://127.0.0.1:%d/dav/ro/x.jpg", ng.port);
	ck_assert_str_eq(why, want);
	ck_assert_int_eq(it->attempts, 0);
	ck_assert_ptr_null(it->outputs[0].location);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_nginx_stop(&ng);
}
END_TEST

START_TEST(http_507_retried_then_fails)
{
	static const char *const v[] = { "thumb" };
	struct pl_test_nginx ng;
	char url[512], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;
	int r;

	nginx_start(&ng, "location /dav/full/ { return 507; }");
	snprintf(url, sizeof url, "http://127.0.0.1:%d/dav/full/{name}.{ext}", ng.port);
	cfg = make_cfg(url, 2);
	cfg.upload.backoff = 0.05;
	stage_open(&s, &cfg);
	it = make_item("x", v, 1, 1000);
	/* full jitter over 50 ms, then over 100 ms */
	r = pl_test_stage_run(&s, it, why);
	ck_assert_msg(r >= 1 && r <= 50, "first delay %d", r);
	ck_assert_ptr_nonnull(strstr(why, "HTTP 507"));
	ck_assert_int_eq(it->attempts, 1);
	r = pl_test_stage_run(&s, it, why);
	ck_assert_msg(r >= 1 && r <= 100, "second delay %d", r);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -ENOSPC);
	ck_assert_msg(strstr(why, "507"), "reason: %s", why);
	ck_assert_int_eq(it->attempts, 0);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_nginx_stop(&ng);
}
END_TEST

START_TEST(http_503_then_201_with_retry_after)
{
	static const char *const v[] = { "thumb" };
	struct pl_test_srv srv = { .nscript = 3, .script = {
		REPLY("503 Scripted\r\nRetry-After: 2"), REPLY("429 Scripted\r\nRetry-After: 600"),
		REPLY("201 Created") } };
	char url[512], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;

	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/{name}.{ext}", srv.port);
	cfg = make_cfg(url, 3);
	stage_open(&s, &cfg);
	it = make_item("x", v, 1, 4000);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 2000);		/* Retry-After wins */
	ck_assert_msg(strstr(why, "HTTP 503"), "reason: %s", why);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 60000);	/* capped at 60 s */
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	ck_assert_int_eq(it->attempts, 0);
	ck_assert_ptr_nonnull(it->outputs[0].location);
	ck_assert_int_eq(pl_test_srv_requests(&srv), 3);
	ck_assert_uint_eq(srv.reqs[2].bodylen, 4000);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
}
END_TEST

START_TEST(retry_keeps_stored_outputs)
{
	static const char *const v[] = { "a", "b" };
	struct pl_test_srv srv = { .nscript = 3, .script = {
		REPLY("201 Created"), REPLY("503 Service Unavailable"), REPLY("201 Created") } };
	char url[512], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;
	int r;

	ck_assert_int_eq(pl_test_srv_start(&srv), 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/{variant}/{name}.{ext}", srv.port);
	cfg = make_cfg(url, 3);
	stage_open(&s, &cfg);
	it = make_item("x", v, 2, 100);
	r = pl_test_stage_run(&s, it, why);
	ck_assert_msg(r > 0, "asked %d: %s", r, why);
	ck_assert_int_eq(pl_test_srv_requests(&srv), 2);
	ck_assert_uint_eq(it->done_mask, 1);
	ck_assert_ptr_null(it->outputs[0].buf);
	ck_assert_ptr_nonnull(it->outputs[0].location);
	ck_assert_ptr_nonnull(it->outputs[1].buf);
	ck_assert_ptr_null(it->outputs[1].location);

	ck_assert_int_eq(pl_test_stage_run(&s, it, why), 0);
	ck_assert_int_eq(pl_test_srv_requests(&srv), 3);	/* "a" was not sent again */
	ck_assert_str_eq(srv.reqs[2].path, "/b/x.jpg");
	ck_assert_uint_eq(it->done_mask, 3);
	ck_assert_int_eq(it->attempts, 0);
	pl_item_free(it);
	pl_test_stage_close(&s);
	pl_test_srv_stop(&srv);
}
END_TEST

START_TEST(http_connection_refused_is_retried)
{
	static const char *const v[] = { "thumb" };
	char url[512], why[PL_REASON_MAX];
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/{name}.{ext}", pl_test_free_port());
	cfg = make_cfg(url, 1);
	stage_open(&s, &cfg);
	it = make_item("x", v, 1, 10);
	ck_assert_int_gt(pl_test_stage_run(&s, it, why), 0);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -ECONNREFUSED);
	ck_assert_msg(strstr(why, "PUT http://127.0.0.1:"), "reason: %s", why);
	pl_item_free(it);
	pl_test_stage_close(&s);
}
END_TEST

/* ---- s3:// ---------------------------------------------------------------- */

struct s3peer {
	pid_t pid;
	int port, out;	/* out: its stdout, open until it stops */
	char *dir;
};

static void s3_start(struct s3peer *p, const char *secret)
{
	const char *src = getenv("PL_SRCDIR");
	char script[4096], buf[32] = "";
	size_t len = 0;
	int fd[2];

	snprintf(script, sizeof script, "%s/tests/s3_endpoint.py", src ? src : ".");
	p->dir = pl_test_tmpdir("s3peer");
	ck_assert_ptr_nonnull(p->dir);
	ck_assert_int_eq(pipe2(fd, O_CLOEXEC), 0);
	p->pid = fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		dup2(fd[1], 1);
		execl("/usr/bin/python3", "python3", script, p->dir, "AKTEST", secret,
		      "eu-test-1", (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	p->out = fd[0];
	/* the port line, written once it listens */
	while (len < sizeof buf - 1 && !memchr(buf, '\n', len)) {
		ssize_t n = read(p->out, buf + len, sizeof buf - 1 - len);
		ck_assert_msg(n > 0, "s3_endpoint.py did not start (%s)", script);
		len += (size_t)n;
	}
	p->port = atoi(buf);
	ck_assert_int_gt(p->port, 0);
}

static void s3_stop(struct s3peer *p)
{
	kill(p->pid, SIGTERM);
	waitpid(p->pid, NULL, 0);
	close(p->out);
	pl_test_rmtree(p->dir);
	free(p->dir);
}

static char *write_creds(const char *dir, const char *text, mode_t mode)
{
	char *path = g_strdup_printf("%s/s3.cred", dir);

	ck_assert_int_eq(pl_test_write_file(path, text, strlen(text)), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

static struct pl_config s3_cfg(const char *url, char *endpoint, char *cred)
{
	struct pl_config c = make_cfg(url, 2);

	c.upload.s3.endpoint = endpoint;
	c.upload.s3.region = "eu-test-1";
	c.upload.s3.credentials = cred;
	return c;
}

START_TEST(s3_signed_put_is_stored)
{
	static const char *const v[] = { "thumb", "big" };
	struct s3peer p;
	char ep[128], why[PL_REASON_MAX], path[4096];
	char *dir = pl_test_tmpdir("s3cred"), *cred;
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;

	s3_start(&p, "s3cr3t/with+chars");
	cred = write_creds(dir, "# test keys\n\naccess_key_id = AKTEST\n"
			   "  secret_access_key=s3cr3t/with+chars  \n", 0600);
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d/", p.port);
	cfg = s3_cfg("s3://bucket/thumbs/{job}/{name}-{variant}.{ext}", ep, cred);
	stage_open(&s, &cfg);
	it = make_item("a b", v, 2, 1200000);	/* over 1 MiB: Expect */
	ck_assert_msg(pl_test_stage_run(&s, it, why) == 0, "reason: %s", why);
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/bucket/thumbs/job1/a b-%s.jpg", p.dir, v[i]);
		assert_file_bytes(path, i, 1200000);
	}
	ck_assert_str_eq(it->outputs[0].location, "s3://bucket/thumbs/job1/a%20b-thumb.jpg");
	pl_item_free(it);
	pl_test_stage_close(&s);
	s3_stop(&p);
	g_free(cred);
	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(s3_wrong_secret_is_refused)
{
	static const char *const v[] = { "thumb" };
	struct s3peer p;
	char ep[128], why[PL_REASON_MAX];
	char *dir = pl_test_tmpdir("s3cred"), *cred;
	struct pl_test_stage s;
	struct pl_config cfg;
	struct pl_item *it;

	s3_start(&p, "right");
	cred = write_creds(dir, "access_key_id = AKTEST\nsecret_access_key = wrong\n", 0600);
	snprintf(ep, sizeof ep, "http://127.0.0.1:%d", p.port);
	cfg = s3_cfg("s3://bucket/{name}.{ext}", ep, cred);
	stage_open(&s, &cfg);
	it = make_item("x", v, 1, 100);
	ck_assert_int_eq(pl_test_stage_run(&s, it, why), -EACCES);
	ck_assert_msg(strstr(why, "403") && strstr(why, "SignatureDoesNotMatch") &&
		      strstr(why, "s3://bucket/x.jpg"), "reason: %s", why);
	ck_assert_int_eq(count_entries(p.dir), 0);
	pl_item_free(it);
	pl_test_stage_close(&s);
	s3_stop(&p);
	g_free(cred);
	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

/* pl_upload_new with this credentials text: its result, and the log in *log. */
static int new_with_creds(const char *dir, const char *text, mode_t mode, char **log)
{
	char *cred = text ? write_creds(dir, text, mode) : g_strdup_printf("%s/missing", dir);
	char *logpath = g_strdup_printf("%s/stderr", dir);
	struct pl_config cfg = s3_cfg("s3://b/{name}", "https://s3.example", cred);
	void *ctx = NULL;
	int saved = dup(2), fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600), r;

	ck_assert_int_ge(fd, 0);
	dup2(fd, 2);
	r = pl_upload_new(&cfg, &ctx);
	dup2(saved, 2);
	close(saved);
	close(fd);
	ck_assert(g_file_get_contents(logpath, log, NULL, NULL));
	if (r == 0)
		pl_upload_free(ctx);
	g_free(cred);
	g_free(logpath);
	return r;
}

START_TEST(s3_credentials_file_checked)
{
	char *dir = pl_test_tmpdir("s3new"), *log, want[4200];

	ck_assert_int_eq(new_with_creds(dir, NULL, 0, &log), -ENOENT);
	snprintf(want, sizeof want, "%s/missing: No such file or directory", dir);
	ck_assert_msg(strstr(log, want), "log: %s", log);
	g_free(log);

	ck_assert_int_eq(new_with_creds(dir, "access_key_id = A\n# c\nregion = x\nnonsense\n"
					"secret_access_key = S\n", 0600, &log), -EINVAL);
	snprintf(want, sizeof want, "%s/s3.cred:3: unknown key 'region'", dir);
	ck_assert_msg(strstr(log, want), "log: %s", log);
	snprintf(want, sizeof want, "%s/s3.cred:4: expected", dir);
	ck_assert_msg(strstr(log, want), "log: %s", log);
	ck_assert_msg(!strstr(log, "= S"), "the secret leaked into the log: %s", log);
	g_free(log);

	ck_assert_int_eq(new_with_creds(dir, "access_key_id = A\n", 0600, &log), -EINVAL);
	snprintf(want, sizeof want, "%s/s3.cred: no secret_access_key", dir);
	ck_assert_msg(strstr(log, want), "log: %s", log);
	g_free(log);

	/* complete but readable by others: accepted, with a warning */
	ck_assert_int_eq(new_with_creds(dir, "access_key_id=A\nsecret_access_key=S\n", 0644, &log), 0);
	ck_assert_msg(strstr(log, "readable by group or others"), "log: %s", log);
	g_free(log);

	pl_test_rmtree(dir);
	free(dir);
}
END_TEST

START_TEST(bad_url_refused_at_new)
{
	struct pl_config cfg = make_cfg("ftp://x/{name}", 1);
	void *ctx = NULL;

	ck_assert_int_eq(pl_upload_new(&cfg, &ctx), -EINVAL);
	cfg = make_cfg("s3://b/{name}", 1);
	cfg.upload.s3.endpoint = "";
	cfg.upload.s3.region = "r";
	cfg.upload.s3.credentials = "/nonexistent";
	ck_assert_int_eq(pl_upload_new(&cfg, &ctx), -EINVAL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("upload");
	TCase *f = tcase_create("file"), *h = tcase_create("http"), *s3 = tcase_create("s3");

	tcase_add_test(f, file_writes_exact_bytes_atomically);
	tcase_add_test(f, file_replaces_never_writes_in_place);
	tcase_add_test(f, file_final_name_appears_only_whole);
	tcase_add_test(f, file_escaping_name_writes_nothing);
	tcase_add_test(f, file_full_disk_fails_cleanly);
	tcase_add_test(f, bad_url_refused_at_new);
	tcase_add_test(h, http_put_to_nginx_dav);
	tcase_add_test(h, http_headers_and_keepalive);
	tcase_add_test(h, http_4xx_fails_at_once);
	tcase_add_test(h, http_507_retried_then_fails);
	tcase_add_test(h, http_503_then_201_with_retry_after);
	tcase_add_test(h, retry_keeps_stored_outputs);
	tcase_add_test(h, http_connection_refused_is_retried);
	tcase_add_test(s3, s3_signed_put_is_stored);
	tcase_add_test(s3, s3_wrong_secret_is_refused);
	tcase_add_test(s3, s3_credentials_file_checked);
	tcase_set_timeout(h, 60);
	tcase_set_timeout(s3, 60);
	suite_add_tcase(s, f);
	suite_add_tcase(s, h);
	suite_add_tcase(s, s3);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	if (pl_http_global_init() < 0)
		return EXIT_FAILURE;
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	pl_http_global_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * upload.c — stage 3 (see upload.h): store every encoded output where
 * upload.url says and record where it went in outputs[i].location.
 *
 * Three targets, one retry discipline:
 *  - file://    an unnamed O_TMPFILE inode in the target's directory (or,
 *               where the filesystem lacks it, a temp file ".NAME.XXXXXX.tmp"
 *               that a reader globbing for outputs never takes for one),
 *               written whole, fsync'd, then linked or renamed into place,
 *               then the directory fsync'd: a reader sees the old file or the
 *               whole new one, never a part, a crash cannot leave a short
 *               file under the final name, and a crash mid-write leaves no
 *               temp file behind either.
 *  - http(s)://  PUT with the buffer as CURLOPT_POSTFIELDS and the method set
 *               to PUT.  Chosen over CURLOPT_UPLOAD + read callback because
 *               curl then sends Content-Length itself, the SigV4 signer can
 *               hash the body in memory, and there is nothing to rewind on a
 *               re-sent request; "Expect:" is removed (S3: its wait set to
 *               0) so bodies over 1 MiB do not wait for a 100-continue.
 *  - s3://BUCKET/KEY  the same PUT, path style on upload.s3.endpoint, signed
 *               by libcurl (CURLOPT_AWS_SIGV4) with the keys of the
 *               credentials file, never with anything from the configuration.
 *
 * Retries never sleep in a worker: process() returns the delay and the pool
 * re-offers the item when due.  item->done_mask remembers the outputs already
 * stored, so a retry redoes only what is missing.  Each worker keeps one CURL
 * handle (reset, not recreated, per request) so connections stay alive.
 * libcurl must be initialised first, by the daemon (pl_http_global_init).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <glib.h>

#include "backoff.h"
#include "config.h"
#include "fdio.h"
#include "httphead.h"
#include "item.h"
#include "log.h"
#include "template.h"
#include "upload.h"

#define TARGET_MAX	 4096		/* expanded url or path */
#define ERRBODY_MAX	 1024		/* start of an error response kept for S3's <Code> */

enum target { T_FILE, T_HTTP, T_S3 };

struct upload {
	enum target kind;
	char *url;		/* the template */
	int retries;
	double backoff;		/* seconds */
	long connect_ms, timeout_ms;	/* 0 = curl's default */
	char *endpoint;		/* s3: without a trailing '/' */
	char *sigv4;		/* s3: "aws:amz:REGION:s3" */
	char *access, *secret;	/* s3: from the credentials file */
	atomic_uint_fast64_t bytes;	/* outputs stored, for the metrics */
};

struct worker {
	CURL *curl;		/* NULL for file:// */
	uint64_t rng;		/* jitter and temp names; per worker, no lock */
	char errbuf[CURL_ERROR_SIZE];
	struct pl_httphead head;	/* the response's status line, for reasons */
	char body[ERRBODY_MAX];
	size_t bodylen;
};

/* What storing one output came to. */
struct outcome {
	int err;		/* 0 or -errno */
	bool transient;		/* worth a retry */
	long retry_after_s;	/* from the server; 0 = none */
};

/* ---- small helpers ---------------------------------------------------- */

/* Enough for unguessable-enough temp names (O_EXCL makes a collision
 * harmless anyway). */
static uint64_t next_random(struct worker *w)
{
	return pl_backoff_random(&w->rng);
}

static void fail_why(struct outcome *o, int err, bool transient, char *why, size_t whylen,
		     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void fail_why(struct outcome *o, int err, bool transient, char *why, size_t whylen,
		     const char *fmt, ...)
{
	va_list ap;

	o->err = err;
	o->transient = transient;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* ---- file:// ----------------------------------------------------------- */

/*
 * Full disk and quota are retried with backoff while retries remain: space
 * can come back (a cleaner, log rotation, an operator) and the item is
 * already resized, which is the expensive part.  A disk that stays full
 * fails the item once upload.retries is spent.  EIO is not retried: it
 * reports a device error, and writing the same bytes again will not cure it.
 */
static bool file_err_transient(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* mkdir -p with mode 0755.  On failure dir is left cut to the directory
 * that could not be made (or synced), for the reason. */
static int make_dirs(char *dir)
{
	char *slash = strrchr(dir, '/');
	int r;

	if (mkdir(dir, 0755) < 0) {
		if (errno == EEXIST)
			return 0;
		if (errno != ENOENT || !slash || slash == dir)
			return -errno;
		*slash = '\0';
		r = make_dirs(dir);
		if (r < 0)
			return r;
		*slash = '/';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
	}
	if (!slash || slash == dir)
		return 0;
	/* A new directory is only durable once its parent is synced. */
	*slash = '\0';
	r = fsync_dir(dir);
	if (r == 0)
		*slash = '/';
	return r;
}

/* A fresh ".BASE.XXXXXX.tmp" name in dir into tmp. */
static int temp_name(struct worker *w, const char *dir, const char *base, char *tmp, size_t tmplen)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	char rnd[7];

	for (int i = 0; i < 6; i++)
		rnd[i] = chars[next_random(w) % (sizeof chars - 1)];
	rnd[6] = '\0';
	/* base cut at 200 bytes so the temp name stays under NAME_MAX */
	if (snprintf(tmp, tmplen, "%s/.%.200s.%s.tmp", strcmp(dir, "/") ? dir : "",
		     base, rnd) >= (int)tmplen)
		return -ENAMETOOLONG;
	return 0;
}

/* Open a new ".BASE.XXXXXX.tmp" in dir; the name goes to tmp. */
static int open_temp(struct worker *w, const char *dir, const char *base, char *tmp, size_t tmplen)
{
	for (int tries = 0; tries < 100; tries++) {
		int fd, r = temp_name(w, dir, base, tmp, tmplen);

		if (r < 0)
			return r;
		/* 0644 through the umask, like any file the daemon creates */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

/*
 * An unnamed O_TMPFILE inode in dir, or -EOPNOTSUPP where that cannot work
 * (a filesystem without it, or no /proc to name the inode through later).
 * Why unnamed: a crash (SIGKILL, power cut) mid-write then leaves nothing
 * behind, where a named temp file would stay as litter in the output tree.
 */
static int open_unnamed(const char *dir)
{
	int fd;

	if (access("/proc/self/fd", X_OK) < 0)
		return -EOPNOTSUPP;
	fd = open(dir, O_WRONLY | O_TMPFILE | O_CLOEXEC, 0644);
	if (fd >= 0)
		return fd;
	return errno == EISDIR || errno == EINVAL ? -EOPNOTSUPP : -errno;
}

/* Name a whole, synced unnamed inode path.  A new target is linked straight
 * to its name; an existing one is replaced by linking a temp name and
 * renaming it over (link cannot replace): only that instant, with no I/O
 * in it, can leave a (whole) temp file behind at a crash. */
static int link_unnamed(struct worker *w, int fd, const char *dir, const char *base,
			const char *path)
{
	char proc[64], tmp[TARGET_MAX + 32];
	int r = -EEXIST;

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	for (int tries = 0; tries < 100 && r == -EEXIST; tries++) {
		if ((r = temp_name(w, dir, base, tmp, sizeof tmp)) < 0)
			return r;
		r = linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	}
	if (r == 0 && rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
	}
	return r;
}

static void store_file(struct worker *w, const char *path, const struct pl_output *out,
		       struct outcome *o, char *why, size_t whylen)
{
	char dir[TARGET_MAX], tmp[TARGET_MAX + 32];
	const char *slash = strrchr(path, '/'), *base = slash + 1, *op;
	bool unnamed;
	int fd, r;

	if (!*base)
		return fail_why(o, -EISDIR, false, why, whylen, "%s names a directory", path);
	snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	r = make_dirs(dir);
	if (r < 0)
		return fail_why(o, r, file_err_transient(-r), why, whylen, "mkdir %s: %s",
				dir, strerror(-r));
	fd = open_unnamed(dir);
	unnamed = fd >= 0;
	if (fd == -EOPNOTSUPP)
		fd = open_temp(w, dir, base, tmp, sizeof tmp);
	if (fd < 0)
		return fail_why(o, fd, file_err_transient(-fd), why, whylen,
				"create temp file in %s: %s", dir, strerror(-fd));

	op = "write";
	r = pl_fdio_write_all(fd, out->buf ? out->buf : "", out->len);
	if (r == 0 && (op = "fsync", fsync(fd) < 0))
		r = -errno;
	if (r == 0 && unnamed) {
		op = "link into";
		r = link_unnamed(w, fd, dir, base, path);
	}
	if (close(fd) < 0 && r == 0) {	/* NFS reports ENOSPC/EDQUOT here */
		op = "close";
		r = -errno;
	}
	if (r == 0 && !unnamed && (op = "rename into", rename(tmp, path) < 0))
		r = -errno;
	if (r < 0) {
		if (!unnamed)
			unlink(tmp);
		return fail_why(o, r, file_err_transient(-r), why, whylen, "%s %s: %s",
				op, path, strerror(-r));
	}
	/* The file is complete under its name; the rename is durable only once
	 * the directory is synced.  Failing here redoes an idempotent write. */
	r = fsync_dir(dir);
	if (r < 0)
		return fail_why(o, r, file_err_transient(-r), why, whylen,
				"fsync directory %s: %s", dir, strerror(-r));
	o->err = 0;
}

/* ---- http(s):// and s3:// ---------------------------------------------- */

/* The reader of response headers (httphead.h): it keeps the reason
 * phrase (printable; HTTP/2 has none) and knows where a new response
 * begins (after 100 Continue), whose body is kept afresh. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct worker *w = ud;
	size_t len = size * n;

	if (pl_httphead_line(&w->head, p, len) == PL_HTTPHEAD_STATUS)
		w->bodylen = 0;
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct worker *w = ud;
	size_t len = size * n, room = sizeof w->body - 1 - w->bodylen;

	if (len < room)
		room = len;
	memcpy(w->body + w->bodylen, p, room);
	w->bodylen += room;
	w->body[w->bodylen] = '\0';
	return len;	/* the rest of a long error page is not needed */
}

/* S3's error <Code> from the kept body, or "". */
static void s3_error_code(const struct worker *w, char *out, size_t outlen)
{
	const char *s = strstr(w->body, "<Code>"), *e;

	out[0] = '\0';
	if (s && (e = strstr(s + 6, "</Code>")))
		snprintf(out, outlen, "%.*s", (int)(e - s - 6), s + 6);
}

static bool curl_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:	  return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:	  return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY:	  return -ENOMEM;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:	  return -ECONNRESET;
	default:			  return -EIO;
	}
}

static int http_errno(long status)
{
	switch (status) {
	case 401: case 403: return -EACCES;
	case 404:	    return -ENOENT;
	case 413:	    return -EFBIG;
	case 507:	    return -ENOSPC;
	default:	    return -EIO;
	}
}

static int add_header(struct curl_slist **h, const char *fmt, const char *val)
{
	char line[256];
	struct curl_slist *n;

	snprintf(line, sizeof line, fmt, val);
	n = curl_slist_append(*h, line);
	if (!n)
		return -ENOMEM;
	*h = n;
	return 0;
}

static int build_headers(const struct upload *u, const struct pl_output *out,
			 struct curl_slist **h)
{
	int r = add_header(h, "Content-Type: %s", out->mime ? out->mime : "application/octet-stream");

	/* libcurl 7.88's SigV4 signer lists a removed header ("Expect:") as
	 * signed with an empty value, which no server can verify; for S3 the
	 * 100-continue wait is cut by CURLOPT_EXPECT_100_TIMEOUT_MS instead. */
	if (r == 0 && u->kind != T_S3)
		r = add_header(h, "%s", "Expect:");
	if (r == 0 && u->kind == T_S3) {
		gchar *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256,
							 out->buf ? out->buf : (void *)"", out->len);
		if (!sum)
			return -ENOMEM;
		r = add_header(h, "x-amz-content-sha256: %s", sum);
		g_free(sum);
	}
	return r;
}

static void set_options(const struct upload *u, struct worker *w, const char *url,
			const struct pl_output *out, struct curl_slist *h)
{
	CURL *c = w->curl;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)out->len);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, out->buf ? out->buf : (void *)"");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "pipelined/" PL_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, w->errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, w);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
	if (u->connect_ms > 0)
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, u->connect_ms);
	if (u->timeout_ms > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, u->timeout_ms);
	if (u->kind == T_S3) {
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, u->sigv4);
		curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
		/* USERNAME/PASSWORD rather than USERPWD: a ':' in a key cannot
		 * split it wrongly. */
		curl_easy_setopt(c, CURLOPT_USERNAME, u->access);
		curl_easy_setopt(c, CURLOPT_PASSWORD, u->secret);
	}
}

/* PUT out to url; shown is how the target appears in reasons. */
static void store_http(const struct upload *u, struct worker *w, const char *url,
		       const char *shown, const struct pl_output *out,
		       struct outcome *o, char *why, size_t whylen)
{
	struct curl_slist *h = NULL;
	long status = 0;
	curl_off_t ra = 0;
	CURLcode rc;
	int r;

	curl_easy_reset(w->curl);	/* keeps the connection cache */
	w->errbuf[0] = w->body[0] = '\0';
	w->bodylen = 0;
	pl_httphead_init(&w->head);
	r = build_headers(u, out, &h);
	if (r < 0) {
		curl_slist_free_all(h);
		return fail_why(o, r, false, why, whylen, "PUT %s: out of memory", shown);
	}
	set_options(u, w, url, out, h);
	rc = curl_easy_perform(w->curl);
	curl_slist_free_all(h);
	if (rc != CURLE_OK)
		return fail_why(o, curl_errno(rc), curl_transient(rc), why, whylen, "PUT %s: %s",
				shown, w->errbuf[0] ? w->errbuf : curl_easy_strerror(rc));

	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300) {
		o->err = 0;
		return;
	}
	if (curl_easy_getinfo(w->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		o->retry_after_s = ra > PL_BACKOFF_MAX_MS ? PL_BACKOFF_MAX_MS : (long)ra;

	char code[128] = "";
	if (u->kind == T_S3)
		s3_error_code(w, code, sizeof code);
	fail_why(o, http_errno(status), status == 429 || status >= 500, why, whylen,
		 "HTTP %ld%s%s from %s%s%s", status, w->head.phrase[0] ? " " : "",
		 w->head.phrase,
		 shown, code[0] ? ": " : "", code);
}

/* ---- the stage --------------------------------------------------------- */

/* Expand the key, store, and on success record the location. */
static void store_output(const struct upload *u, struct worker *w, struct pl_item *it,
			 struct pl_output *out, struct outcome *o, char *why, size_t whylen)
{
	struct pl_template_vars v = { it->name, out->variant, out->ext, it->job_name };
	char target[TARGET_MAX], shown[TARGET_MAX], *req = NULL, *loc;
	const char *what;
	int r = pl_template_expand(u->url, &v, target, sizeof target, &what);

	if (r < 0)
		return fail_why(o, r, false, why, whylen,
				"no output key from name '%s', variant '%s', job '%s': %s",
				it->name ? it->name : "", out->variant,
				it->job_name ? it->job_name : "", what);
	pl_log_redact_url(target, shown, sizeof shown);
	/* the location is allocated first: a stored object is never lost for
	 * want of a few bytes to record it */
	loc = strdup(u->kind == T_FILE ? target + strlen("file://") : shown);
	if (u->kind == T_S3 && asprintf(&req, "%s/%s", u->endpoint, target + strlen("s3://")) < 0)
		req = NULL;
	if (!loc || (u->kind == T_S3 && !req)) {
		free(loc);
		free(req);
		return fail_why(o, -ENOMEM, false, why, whylen, "out of memory");
	}

	if (u->kind == T_FILE)
		store_file(w, loc, out, o, why, whylen);
	else
		store_http(u, w, req ? req : target, shown, out, o, why, whylen);
	free(req);
	if (o->err < 0) {
		free(loc);
		return;
	}
	free(out->location);
	out->location = loc;
	g_free(out->buf);
	out->buf = NULL;	/* len stays: the size that was stored */
}

static int retry_or_fail(const struct upload *u, struct worker *w, struct pl_item *it,
			 const struct outcome *o, const char *why)
{
	long ms;

	if (!o->transient || it->attempts >= u->retries) {
		it->attempts = 0;
		return o->err;
	}
	it->attempts++;
	ms = pl_backoff_ms(u->backoff, it->attempts, o->retry_after_s, &w->rng);
	pl_log_item(LOG_INFO, it, "upload", -o->err, "retry %d/%d in %ld ms: %s",
		    it->attempts, u->retries, ms, why);
	return (int)ms;
}

static int up_process(void *ctx, void *wstate, void *item, char *why, size_t whylen)
{
	struct upload *u = ctx;
	struct worker *w = wstate;
	struct pl_item *it = item;

	if (it->noutputs > sizeof it->done_mask * CHAR_BIT) {
		it->attempts = 0;
		snprintf(why, whylen, "%zu outputs, the upload stage handles at most %zu",
			 it->noutputs, sizeof it->done_mask * CHAR_BIT);
		return -E2BIG;
	}
	for (size_t i = 0; i < it->noutputs; i++) {
		struct outcome o = { 0 };
		unsigned bit = 1u << i;

		if (it->done_mask & bit)
			continue;
		store_output(u, w, it, &it->outputs[i], &o, why, whylen);
		if (o.err < 0)
			return retry_or_fail(u, w, it, &o, why);
		it->done_mask |= bit;
		atomic_fetch_add_explicit(&u->bytes, it->outputs[i].len, memory_order_relaxed);
	}
	it->attempts = 0;
	return 0;
}

static int up_worker_start(void *ctx, void **wstate)
{
	const struct upload *u = ctx;
	struct worker *w = calloc(1, sizeof *w);

	if (!w)
		return -ENOMEM;
	pl_backoff_seed(&w->rng);
	if (u->kind != T_FILE && !(w->curl = curl_easy_init())) {
		free(w);
		return -ENOMEM;
	}
	*wstate = w;
	return 0;
}

static void up_worker_stop(void *ctx, void *wstate)
{
	struct worker *w = wstate;

	(void)ctx;
	if (!w)
		return;
	if (w->curl)
		curl_easy_cleanup(w->curl);
	free(w);
}

const struct pl_stage_ops pl_upload_ops = {
	.worker_start = up_worker_start,
	.worker_stop = up_worker_stop,
	.process = up_process,
};

/* ---- setup: the credentials file --------------------------------------- */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* One "key = value" line into the matching slot; 0 or -EINVAL (reported). */
static int credentials_line(const char *path, unsigned long lineno, char *s,
			    char **access, char **secret)
{
	char *eq = strchr(s, '='), *key, *val, **slot;

	if (!eq) {
		pl_log(LOG_ERR, "%s:%lu: expected 'access_key_id = …' or 'secret_access_key = …'",
		       path, lineno);
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(s);
	val = trim(eq + 1);
	if (strcmp(key, "access_key_id") == 0)
		slot = access;
	else if (strcmp(key, "secret_access_key") == 0)
		slot = secret;
	else {
		pl_log(LOG_ERR, "%s:%lu: unknown key '%.40s' (use access_key_id, secret_access_key)",
		       path, lineno, key);
		return -EINVAL;
	}
	if (*slot || !*val) {
		pl_log(LOG_ERR, "%s:%lu: %s %s", path, lineno, key, *slot ? "given twice" : "is empty");
		return -EINVAL;
	}
	*slot = strdup(val);
	return *slot ? 0 : -ENOMEM;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static int read_credentials(const char *path, char **access, char **secret)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	struct stat st;
	int r = 0;

	if (!f) {
		r = -errno;
		pl_log(LOG_ERR, "upload.s3.credentials %s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		pl_log(LOG_WARNING, "%s: credentials readable by group or others (mode %04o): chmod 600 it",
		       path, (unsigned)(st.st_mode & 07777));
	errno = 0;
	while (getline(&line, &cap, f) >= 0) {
		char *s = trim(line);
		int k;

		lineno++;
		if (!*s || *s == '#')
			continue;
		k = credentials_line(path, lineno, s, access, secret);
		if (k < 0 && r == 0)
			r = k;	/* keep reading: report every bad line */
	}
	if (ferror(f) && r == 0) {
		r = errno ? -errno : -EIO;
		pl_log(LOG_ERR, "%s: %s", path, strerror(-r));
	}
	if (line)
		explicit_bzero(line, cap);
	free(line);
	fclose(f);
	if (r == 0 && (!*access || !*secret)) {
		pl_log(LOG_ERR, "%s: no %s", path, !*access ? "access_key_id" : "secret_access_key");
		r = -EINVAL;
	}
	return r;
}

/* ---- setup -------------------------------------------------------------- */

uint64_t pl_upload_bytes(void *ctx)
{
	struct upload *u = ctx;

	return atomic_load_explicit(&u->bytes, memory_order_relaxed);
}

void pl_upload_free(void *ctx)
{
	struct upload *u = ctx;

	if (!u)
		return;
	free(u->url);
	free(u->endpoint);
	free(u->sigv4);
	free_secret(u->access);
	free_secret(u->secret);
	free(u);
}

static int setup_s3(struct upload *u, const struct pl_config *cfg)
{
	const char *ep = cfg->upload.s3.endpoint, *region = cfg->upload.s3.region;
	const char *cred = cfg->upload.s3.credentials, *bad;
	size_t n;

	/* pipeline.conf's rules (config.c), for a configuration made by hand */
	if ((bad = pl_config_s3_endpoint_invalid(ep))) {
		pl_log(LOG_ERR, "upload.s3.endpoint: \"%s\" %s", ep ? ep : "", bad);
		return -EINVAL;
	}
	if ((bad = pl_config_s3_region_invalid(region))) {
		pl_log(LOG_ERR, "upload.s3.region: \"%s\" %s", region ? region : "", bad);
		return -EINVAL;
	}
	if (!cred || !*cred) {
		pl_log(LOG_ERR, "upload.s3.credentials: an s3:// url needs a credentials file");
		return -EINVAL;
	}
	u->endpoint = strdup(ep);
	if (!u->endpoint || asprintf(&u->sigv4, "aws:amz:%s:s3", region) < 0)
		return -ENOMEM;
	n = strlen(u->endpoint);
	while (n > 0 && u->endpoint[n - 1] == '/')
		u->endpoint[--n] = '\0';
	return read_credentials(cred, &u->access, &u->secret);
}

int pl_upload_new(const struct pl_config *cfg, void **ctx)
{
	const char *url = cfg->upload.url, *why;
	struct upload *u;
	int r;

	if (!url || pl_template_check(url, &why) < 0) {
		pl_log(LOG_ERR, "upload.url '%s': %s", url ? url : "", url ? why : "missing");
		return -EINVAL;
	}
	u = calloc(1, sizeof *u);
	if (!u || !(u->url = strdup(url))) {
		free(u);
		return -ENOMEM;
	}
	u->kind = strncmp(url, "file://", 7) == 0 ? T_FILE :
		  strncmp(url, "s3://", 5) == 0 ? T_S3 : T_HTTP;
	u->retries = cfg->upload.retries > 0 ? cfg->upload.retries : 0;
	u->backoff = cfg->upload.backoff > 0 ? cfg->upload.backoff : 0.5;
	u->connect_ms = (long)(cfg->upload.connect_timeout * 1000.0);
	u->timeout_ms = (long)(cfg->upload.timeout * 1000.0);
	if (u->kind == T_S3 && (r = setup_s3(u, cfg)) < 0) {
		pl_upload_free(u);
		return r;
	}
	*ctx = u;
	return 0;
}

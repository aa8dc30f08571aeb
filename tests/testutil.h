/*
 * testutil.h — shared fixtures for the check units: temporary folders and a
 * real nginx on 127.0.0.1 that serves files and accepts WebDAV PUT.
 */
#ifndef PL_TESTUTIL_H
#define PL_TESTUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pool.h"

struct pl_config;

/* mkdtemp under $TMPDIR (or /tmp); returns a malloc'd path. */
char *pl_test_tmpdir(const char *tag);
/* rm -rf */
void pl_test_rmtree(const char *path);
/* Write a file (creating parents); 0 or -errno. */
int pl_test_write_file(const char *path, const void *data, size_t len);

/* stderr onto fd, the log's sink chosen anew for it: the saved stderr
 * (for pl_test_stderr_restore) or -errno. */
int  pl_test_stderr_to(int fd);
void pl_test_stderr_restore(int saved);
/* Everything written to stderr while fn runs (stderr a file, so the log
 * writes "<N>" lines); malloc'd, NULL on failure. */
char *pl_test_stderr_of(void (*fn)(void));

/* python3 -c SCRIPT ARG (Debian's python3: an independent reader of what
 * the daemon writes); its stdout into out, NUL-terminated and cut at
 * outlen - 1.  Returns its exit status, -1 if it could not run or died. */
int pl_test_run_python(const char *script, const char *arg, char *out, size_t outlen);

struct pl_test_nginx {
	char *dir;	/* the test folder: www/ is served at /, dav/ takes PUT at /dav/ */
	int port;
	pid_t pid;
};
/*
 * Start nginx with www/ and dav/ under a new test folder.  extra_server is
 * pasted into the server block (locations of your own), may be NULL.
 * Returns 0 when it accepts connections.
 */
int  pl_test_nginx_start(struct pl_test_nginx *n, const char *extra_server);
void pl_test_nginx_stop(struct pl_test_nginx *n);

/* A loopback TCP port that was free a moment ago (nobody listens). */
int pl_test_free_port(void);

/*
 * A scripted HTTP/1.1 server thread, for what nginx cannot do: answers in
 * a given order (500 then 200, 503 then 201), Retry-After, silence, a
 * trickle, a flood that counts what got out, a request held until the test
 * releases it, raw bytes that are no valid HTTP.  It serves up to
 * PL_TEST_SRV_MAXCONN connections at once, one request at a time on each,
 * reads each request's body (Content-Length) and keeps the first
 * PL_TEST_SRV_KEEP requests for the test to inspect.
 *
 * Fill in the settings, pl_test_srv_start, run the test, pl_test_srv_stop.
 * The counters and flags are written under mu by the server thread; a
 * request is counted and kept before it is answered, so once a client has
 * its answer they are up to date.
 */
enum pl_test_srv_mode {
	PL_TEST_SRV_SCRIPT,	/* request i gets script[min(i, n-1)] */
	PL_TEST_SRV_SILENT,	/* accept, read, never answer */
	PL_TEST_SRV_SLOW,	/* 200 with 100 bytes announced, one byte a second */
	PL_TEST_SRV_FLOOD,	/* 200 and flood_total bytes, counting what got out */
	PL_TEST_SRV_HOLD,	/* the first request waits for pl_test_srv_release */
	PL_TEST_SRV_PACED,	/* script[0] after latency_ms, many at once; with
				   ceiling > 0, a request that finds that many
				   already waiting gets "503" at once instead */
};
#define PL_TEST_SRV_MAXCONN 32
#define PL_TEST_SRV_KEEP 16

struct pl_test_req {
	char method[16], path[512], ctype[128];
	long clen;		/* Content-Length, -1 without */
	bool expect;		/* an Expect header came */
	size_t bodylen;
	unsigned char *body;
};

struct pl_test_srv {
	/* settings */
	enum pl_test_srv_mode mode;
	const char *script[8];	/* whole raw responses */
	size_t nscript;
	long long flood_total;
	bool flood_cl;		/* the flood announces its Content-Length */
	bool close;		/* hang up after every answer */
	const char *addr;	/* default 127.0.0.1 */
	int latency_ms;		/* PACED: how long each answer takes */
	int ceiling;		/* PACED: 503 past this many at once, 0 = never */

	/* state */
	int lfd, port, stop[2];
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int accepts, requests;
	long long sent;		/* what the flood got out */
	int waiting, peak, refused;	/* PACED: answers pending, their most
					   at once, 503s given */
	bool handled, holding, release;
	struct pl_test_req reqs[PL_TEST_SRV_KEEP];
};
/* 0 when it listens (port is set), or -errno. */
int  pl_test_srv_start(struct pl_test_srv *s);
/* Stops the thread, closes every connection, frees the kept requests. */
void pl_test_srv_stop(struct pl_test_srv *s);
/* Wait (up to 20 s) until the server thread sets *flag. */
bool pl_test_srv_await(struct pl_test_srv *s, bool *flag);
/* Let a held request (PL_TEST_SRV_HOLD) be answered. */
void pl_test_srv_release(struct pl_test_srv *s);
/* requests, read under the lock */
int  pl_test_srv_requests(struct pl_test_srv *s);
/* "http://ADDR:PORT" PATH, in a static buffer */
const char *pl_test_srv_url(const struct pl_test_srv *s, const char *path);

/*
 * A stage as one pool worker holds it (the stage tests play the pool):
 * its context from make(), one worker's state from worker_start.
 */
struct pl_test_stage {
	const struct pl_stage_ops *ops;
	void (*free)(void *ctx);
	void *ctx, *ws;
};
int  pl_test_stage_open(struct pl_test_stage *s, const struct pl_stage_ops *ops,
			int (*make)(const struct pl_config *, void **), void (*free_ctx)(void *),
			const struct pl_config *cfg);
/* process() once; why holds PL_REASON_MAX bytes */
int  pl_test_stage_run(struct pl_test_stage *s, void *item, char *why);
void pl_test_stage_close(struct pl_test_stage *s);

/*
 * Image containers crafted byte by byte (the resize pre-check's tests):
 * a growing buffer, PNG and RIFF chunks, and whole small files.  Out of
 * memory aborts the test.
 */
struct pl_test_buf {
	unsigned char *b;
	size_t len, cap;
};
void pl_test_buf_add(struct pl_test_buf *t, const void *data, size_t n);
void pl_test_buf_free(struct pl_test_buf *t);
/* A PNG chunk with its CRC. */
void pl_test_png_chunk(struct pl_test_buf *t, const char *type, const void *data, size_t n);
/* Signature and IHDR of a w×h 8-bit RGB PNG; then pl_test_png_end() adds
 * its pixels (mid grey, one IDAT) and IEND.  Chunks go in between. */
void pl_test_png_start(struct pl_test_buf *t, int w, int h);
void pl_test_png_end(struct pl_test_buf *t, int w, int h);
/* A zTXt/iCCP body: keyword, NUL, method 0, then n bytes of `fill`
 * deflated (inflating to n). */
void pl_test_png_deflated(struct pl_test_buf *t, const char *keyword, int fill, size_t n);
/* The hardening issue's PNG: 144 bytes, a zTXt chunk claiming 2147483632
 * (libpng allocated and zeroed 2 GB for it before finding the file short). */
void pl_test_png_ztxt_bomb(struct pl_test_buf *t);
/* A RIFF chunk (little-endian length, odd lengths padded). */
void pl_test_riff_chunk(struct pl_test_buf *t, const char *type, const void *data, size_t n);

/* A TIFF: pages directories of w×h 8-bit RGB, uncompressed, mid grey, each
 * with the extra tags too.  A tag with data NULL points at one shared blob
 * of blob_len bytes, written once, and has blob_len values of its type. */
struct pl_test_tiff_tag {
	unsigned tag, type;	/* field type: 1 BYTE, 2 ASCII, 7 UNDEFINED, … */
	size_t count;
	const void *data;
};
#define PL_TEST_TIFF_BE  1	/* "MM" */
#define PL_TEST_TIFF_BIG 2	/* BigTIFF */
void pl_test_tiff(struct pl_test_buf *t, int flags, int w, int h, int pages,
		  const struct pl_test_tiff_tag *tags, size_t ntags, size_t blob_len);

#endif

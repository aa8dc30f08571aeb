/*
 * testutil.h — shared fixtures for the check units: temporary folders and a
 * real nginx on 127.0.0.1 that serves files and accepts WebDAV PUT.
 */
#ifndef PL_TESTUTIL_H
#define PL_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mkdtemp under $TMPDIR (or /tmp); returns a malloc'd path. */
char *pl_test_tmpdir(const char *tag);
/* rm -rf */
void pl_test_rmtree(const char *path);
/* Write a file (creating parents); 0 or -errno. */
int pl_test_write_file(const char *path, const void *data, size_t len);

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

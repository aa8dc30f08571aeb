/*
 * testutil.h — shared fixtures for the check units: temporary folders and a
 * real nginx on 127.0.0.1 that serves files and accepts WebDAV PUT.
 */
#ifndef PL_TESTUTIL_H
#define PL_TESTUTIL_H

#include <stddef.h>
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

#endif

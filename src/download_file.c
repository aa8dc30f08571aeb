/*
 * download_file.c — the download stage's file:// sources.  See
 * download_file.h.
 *
 * Apart from download.c because it shares nothing with the http(s) path:
 * no curl (its file:// would follow symlinks anywhere), no retries, no
 * per-host limit.  The path is resolved with realpath() and must stay below
 * download.file_root; the file is then opened without following a last
 * symlink, checked to be a regular file within max_bytes, and read whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "download_file.h"
#include "item.h"

static bool below(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (strcmp(root, "/") == 0)
		return true;
	return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int read_fd(int fd, size_t size, struct pl_item *it, char *why, size_t whylen)
{
	char *buf = malloc(size ? size : 1);
	size_t got = 0;

	if (!buf)
		return snprintf(why, whylen, "out of memory for a %zu-byte file", size), -ENOMEM;
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return snprintf(why, whylen, "read: %s", strerror(e)), -e;
		}
		if (r == 0)
			break;	/* truncated meanwhile: take what is there */
		got += (size_t)r;
	}
	it->data = buf;
	it->len = got;
	return 0;
}

int pl_download_file_fetch(const char *path, unsigned protocols, const char *file_root,
			   long max_bytes, struct pl_item *it, char *why, size_t whylen)
{
	char *real = NULL, *root = NULL;
	struct stat st;
	int fd = -1, r;

	if (!(protocols & PL_PROTO_FILE))
		return snprintf(why, whylen, "file:// is not in download.protocols"), -EPERM;
	if (!file_root[0])
		return snprintf(why, whylen, "file:// needs download.file_root"), -EPERM;
	root = realpath(file_root, NULL);
	if (!root) {
		r = -errno;
		snprintf(why, whylen, "file_root %s: %s", file_root, strerror(-r));
		goto out;
	}
	real = realpath(path, NULL);
	if (!real) {
		r = -errno;
		snprintf(why, whylen, "file:// path %s: %s", path, strerror(-r));
		goto out;
	}
	if (!below(real, root)) {
		r = -EPERM;
		snprintf(why, whylen, "file:// path %s is outside file_root %s", path, file_root);
		goto out;
	}
	/* O_NOFOLLOW: the last component cannot have become a symlink since
	 * realpath() looked at it. */
	fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		snprintf(why, whylen, "file:// path %s: %s", path, strerror(-r));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(why, whylen, "file:// path %s: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		snprintf(why, whylen, "file:// path %s is not a regular file", path);
		goto out;
	}
	if (st.st_size > max_bytes) {
		r = -EFBIG;
		snprintf(why, whylen, "file %s exceeds max_bytes (%ld)", path, max_bytes);
		goto out;
	}
	pl_item_free_data(it);
	r = read_fd(fd, (size_t)st.st_size, it, why, whylen);
out:
	if (fd >= 0)
		close(fd);
	free(real);
	free(root);
	return r;
}

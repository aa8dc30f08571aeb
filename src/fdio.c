/*
 * fdio.c — see fdio.h.  write() may write less than asked (a signal, a
 * pipe, a filesystem near full) and may be interrupted before writing
 * anything (EINTR): both are carried on.  A write() that returns 0 for a
 * non-zero count reports no error and no progress; looping on it would
 * spin for ever, so it is an I/O error.  One helper, so the spool and the
 * upload stage cannot come to treat these cases differently again.
 */
#include <errno.h>
#include <unistd.h>

#include "fdio.h"

int pl_fdio_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

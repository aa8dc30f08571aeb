/*
 * fdio.h — whole writes to a file descriptor, for the spool's result files
 * and the upload stage's output files.
 */
#ifndef PL_FDIO_H
#define PL_FDIO_H

#include <stddef.h>

/* Write all len bytes of p: 0, or -errno (-EIO when write() makes no
 * progress). */
int pl_fdio_write_all(int fd, const void *p, size_t len);

#endif

/*
 * record.h — the result record: one JSON object per line of JOB.result,
 *
 *   {"line":N,"source":S,"name":S,"status":"ok"|"failed","outputs":[S,…],
 *    "error":S,"milliseconds":N}
 *
 * (on one line, keys in this order, no spaces; S a string or null).  This
 * is an interface: producers parse it.  The writer and the reader used to
 * resume a job are both here, so they cannot drift apart.
 */
#ifndef PL_RECORD_H
#define PL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct pl_item;

/* Room for pl_record_format_oom's record. */
#define PL_RECORD_OOM_SIZE 192

/* The record of an item, '\n' included, in a malloc'd string; NULL with
 * errno ENOMEM.  The error is written only when !ok. */
char *pl_record_format(const struct pl_item *it, bool ok, const char *error,
		       unsigned long long ms);
/* The record of an item whose own record could not be built for want of
 * memory: failed, "out of memory", no source or name.  Needs no memory. */
void pl_record_format_oom(char buf[PL_RECORD_OOM_SIZE], unsigned long line,
			  unsigned long long ms);
/* One line of a result file (its '\n' may be there or not; rec[len] must be
 * readable, as getline leaves it): 0 with *line and *ok set, or -EINVAL if
 * it is not exactly a record as written above. */
int pl_record_parse(const char *rec, size_t len, unsigned long *line, bool *ok);
/* Every record of the result file open at FD, from its start (through a
 * dup, so FD's offset moves too): EACH is called with the line number and
 * status of each complete line that is a record.  *good is where the last
 * complete line ends: a torn last line (a crash mid-write) lies beyond.
 * 0 or -errno. */
int pl_record_read_file(int fd, void (*each)(void *arg, unsigned long line, bool ok), void *arg,
			off_t *good);

#endif

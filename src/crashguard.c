/*
 * crashguard.c — see crashguard.h.
 *
 * Why a file of its own and not a field in the result: the result file is
 * the user's record, one line per item, and it is written without fsync
 * (a crash can lose its tail, which only means re-running work).  The guard
 * must be on disk before the item it names runs, so it is the one place
 * that pays for fdatasync, and it does so rarely: the mark is raised in
 * steps (the intake chooses them), and a suspect is only written while the
 * daemon runs items alone after a crash.
 *
 * The record is one line padded to a fixed size, written with one pwrite at
 * offset 0: it never grows or shrinks, so no truncate is needed and a torn
 * write is caught by the parser (the line must end in "\n" at its place).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crashguard.h"

#define RECORD_SIZE 160
#define MAGIC "pipelined-crashguard 1"

struct pl_crashguard {
	int fd, dirfd;
	char *name;
};

int pl_crashguard_parse(const char *buf, size_t len, struct pl_crashguard_state *st)
{
	char line[RECORD_SIZE + 1], tail;
	unsigned long long id, mark, suspect;
	unsigned crashes;

	memset(st, 0, sizeof *st);
	if (len != RECORD_SIZE || buf[RECORD_SIZE - 1] != '\n' || memchr(buf, '\0', len))
		return -EINVAL;
	memcpy(line, buf, len);
	line[len] = '\0';
	if (sscanf(line, MAGIC " id=%llu mark=%llu suspect=%llu crashes=%u%c", &id, &mark,
		   &suspect, &crashes, &tail) != 5 || (tail != ' ' && tail != '\n'))
		return -EINVAL;
	st->id = id;
	st->mark = mark;
	st->suspect = suspect;
	st->crashes = crashes;
	return 0;
}

int pl_crashguard_open(int dirfd, const char *name, struct pl_crashguard **out,
		       struct pl_crashguard_state *st)
{
	struct pl_crashguard *g = calloc(1, sizeof *g);
	char buf[RECORD_SIZE];
	struct stat sb;
	ssize_t n;
	int r;

	memset(st, 0, sizeof *st);
	*out = NULL;
	if (!g || !(g->name = strdup(name))) {
		free(g);
		return -ENOMEM;
	}
	g->dirfd = dirfd;
	g->fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
	if (g->fd < 0 || fstat(g->fd, &sb) < 0) {
		r = -errno;
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = -EBADF;
		goto fail;
	}
	do
		n = pread(g->fd, buf, sizeof buf, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		r = -errno;
		goto fail;
	}
	if (n > 0)
		pl_crashguard_parse(buf, (size_t)n, st);	/* torn: nothing known */
	*out = g;
	return 0;
fail:
	if (g->fd >= 0)
		close(g->fd);
	free(g->name);
	free(g);
	return r;
}

int pl_crashguard_write(struct pl_crashguard *g, const struct pl_crashguard_state *st)
{
	char buf[RECORD_SIZE + 1];
	int k = snprintf(buf, sizeof buf,
			 MAGIC " id=%" PRIu64 " mark=%" PRIu64 " suspect=%" PRIu64 " crashes=%u",
			 st->id, st->mark, st->suspect, st->crashes);
	ssize_t n;

	if (k < 0 || k >= RECORD_SIZE)
		return -EOVERFLOW;
	memset(buf + k, ' ', RECORD_SIZE - 1 - (size_t)k);
	buf[RECORD_SIZE - 1] = '\n';
	do
		n = pwrite(g->fd, buf, RECORD_SIZE, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n != RECORD_SIZE)
		return -EIO;
	return fdatasync(g->fd) < 0 ? -errno : 0;
}

void pl_crashguard_close(struct pl_crashguard *g, int unlink_it)
{
	if (!g)
		return;
	if (unlink_it)
		unlinkat(g->dirfd, g->name, 0);		/* a leftover only costs a careful rerun */
	close(g->fd);
	free(g->name);
	free(g);
}

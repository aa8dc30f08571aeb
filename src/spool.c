/*
 * spool.c — see spool.h.  Jobs come in through a Maildir-like folder and
 * their results go out beside them; this file is the only one that touches
 * the spool on disk.
 *
 * Why it is built this way:
 *  - Discovery: inotify only says "new/ changed"; the names themselves come
 *    from a sorted readdir that is redone only when the list of the last
 *    scan is used up and something changed since (or inotify overflowed).
 *    A spool with a million waiting jobs therefore costs one scan, not one
 *    per claim.
 *  - A job is read one line at a time, as the pipeline takes items.  What
 *    a job remembers is small: a bitmap of line numbers already recorded
 *    (from a previous run) and a set of 64-bit hashes of the names handed
 *    out, to keep derived names unique.
 *  - Results are appended to cur/JOB.result with one write() per record
 *    (O_APPEND), under the job's mutex, so records from concurrent workers
 *    never interleave, and a crash leaves at most one torn last line, which
 *    the next claim cuts off.  Because recorded lines are skipped on resume
 *    but still parsed, derived names come out the same in every run.
 *  - Finishing renames the result first and the job second: a crash in
 *    between leaves the job in cur/ without its result, and it is simply
 *    run again (outputs are idempotent).
 *  - Locking: the spool mutex guards the scan list and the list of open
 *    jobs; a job mutex guards its counters, flags and result fd.  The only
 *    nesting is spool → job (in pl_spool_close).  An object is freed by
 *    whoever drops its last reference: a job when the feeder released it
 *    and no item is outstanding, the spool when it was closed and no job
 *    is left.
 *  - The parsing and formatting helpers are pure (no I/O, no globals) so
 *    that they can be fuzzed on their own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "item.h"
#include "log.h"
#include "spool.h"

#define LINE_MAX_BYTES 8192	/* longest accepted job line, without "\r\n" */
#define NAME_MAX_CHARS 100	/* longest output base name */
#define BAD_SOURCE_MAX 200	/* how much of a bad line its record quotes */
#define RESULT_SUFFIX ".result"

enum { D_TMP, D_NEW, D_CUR, D_DONE, D_FAILED, D_COUNT };
static const char *const subdir_names[D_COUNT] = { "tmp", "new", "cur", "done", "failed" };

struct pl_spool {
	char *dir;
	int dfd[D_COUNT];
	int ifd;		/* inotify on new/ */
	atomic_bool rescan;	/* new/ may hold names the list lacks */

	pthread_mutex_t lock;	/* everything below */
	char **names;		/* sorted names of the last scan of new/ */
	size_t nnames, next;
	struct pl_job *jobs;	/* claimed and not yet freed */
	bool closed;
};

struct name_set {		/* open addressing; 0 marks a free slot */
	uint64_t *slot;
	size_t cap, count;
};

struct pl_job {
	struct pl_spool *spool;
	struct pl_job *next;
	char *name;

	/* Used by the feeder only (next_item is not called concurrently). */
	FILE *in;
	char *buf;		/* LINE_MAX_BYTES + 2 */
	unsigned long lineno;
	uint64_t *recorded;	/* bitmap by line number, NULL if none */
	unsigned long nbits;
	struct name_set names;

	pthread_mutex_t lock;	/* everything below */
	int resfd;
	unsigned long outstanding, ok, failed;
	bool eof;		/* next_item reached the end */
	bool released;		/* the feeder is done with it */
	bool incomplete;	/* an item was requeued or not recorded */
	bool closed;		/* pl_spool_close moved it back to new/ */
	bool leaving;		/* someone is finishing or freeing it */
};

/* ---- pure helpers --------------------------------------------------- */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool name_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '-';
}

bool pl_spool_name_valid(const char *name)
{
	size_t len;

	if (!name || name[0] == '.')
		return false;
	for (len = 0; name[len]; len++)
		if (len >= NAME_MAX_CHARS || !name_char((unsigned char)name[len]))
			return false;
	return len > 0;
}

/* scheme "://" as in RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
static bool has_scheme(const char *s)
{
	if (!is_alpha((unsigned char)*s))
		return false;
	while (is_alpha((unsigned char)*s) || is_digit((unsigned char)*s) ||
	       *s == '+' || *s == '-' || *s == '.')
		s++;
	return strncmp(s, "://", 3) == 0;
}

/* Next whitespace-separated field of *p, NUL-terminated in place. */
static char *next_field(char **p)
{
	char *start;

	while (is_ws(**p))
		(*p)++;
	if (!**p)
		return NULL;
	start = *p;
	while (**p && !is_ws(**p))
		(*p)++;
	if (**p)
		*(*p)++ = '\0';
	return start;
}

int pl_spool_parse_line(char *buf, char **source, char **name, const char **why)
{
	char *p = buf, *src, *nm;

	*source = *name = NULL;
	*why = NULL;
	if (strlen(buf) > LINE_MAX_BYTES)
		return *why = "line too long", -EINVAL;
	while (is_ws(*p))
		p++;
	if (!*p || *p == '#')
		return 0;
	src = next_field(&p);
	nm = next_field(&p);
	if (next_field(&p))
		return *why = "trailing text after NAME", -EINVAL;
	if (!has_scheme(src))
		return *why = "not a URL", -EINVAL;
	if (nm && !pl_spool_name_valid(nm))
		return *why = "invalid NAME (1 to 100 of A-Z a-z 0-9 . _ -, not starting with '.')",
		       -EINVAL;
	*source = src;
	*name = nm;
	return 1;
}

static int hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One percent-decoded byte of [*p, end); a '%' without two hex digits is
 * taken literally. */
static unsigned char decode_next(const char **p, const char *end)
{
	const unsigned char *s = (const unsigned char *)*p;

	if (s[0] == '%' && end - *p >= 3 && hex_value(s[1]) >= 0 && hex_value(s[2]) >= 0) {
		*p += 3;
		return (unsigned char)(hex_value(s[1]) << 4 | hex_value(s[2]));
	}
	*p += 1;
	return s[0];
}

/*
 * Two passes over the last path segment, decoding on the fly, instead of a
 * decoded copy: the first finds where the extension starts, the second
 * writes the name.  No allocation, bounded output, any input length.
 */
int pl_spool_derive_name(const char *url, char *out, size_t outlen)
{
	const char *s, *path, *end, *seg, *p;
	size_t max, n, stop, o = 0;
	bool leading = true;

	if (outlen < sizeof "item")
		return -ENOBUFS;
	max = outlen - 1 < NAME_MAX_CHARS ? outlen - 1 : NAME_MAX_CHARS;
	s = strstr(url, "://");
	s = s ? s + 3 : url;
	path = s + strcspn(s, "/?#");		/* skip the authority */
	end = path + strcspn(path, "?#");	/* drop query and fragment */
	for (seg = end; seg > path && seg[-1] != '/'; seg--)
		;

	/* The extension starts at the last dot after the stem's first
	 * character; leading dots are not extensions ("..hidden"). */
	stop = SIZE_MAX;
	for (p = seg, n = 0; p < end; n++) {
		unsigned char c = decode_next(&p, end);

		if (c == '.' && !leading)
			stop = n;
		leading = leading && c == '.';
	}
	leading = true;
	for (p = seg, n = 0; p < end && n < stop && o < max; n++) {
		unsigned char c = decode_next(&p, end);

		if (leading && c == '.')
			continue;
		leading = false;
		out[o++] = name_char(c) ? (char)c : '_';
	}
	if (o == 0)
		memcpy(out, "item", sizeof "item");
	else
		out[o] = '\0';
	return 0;
}

struct strbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_put(struct strbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct strbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s (1–4), 0 if ill-formed.
 * Rejects overlong forms, surrogates and code points above U+10FFFF.  Each
 * byte is checked before the next is read, so the NUL terminator stops it. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (c == 0xE0)
			lo = 0xA0;
		if (c == 0xED)
			hi = 0x9F;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
		       (s[3] & 0xC0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/* A JSON string (or null): whatever the bytes, the output is valid JSON. */
static void sb_json(struct strbuf *b, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;

	if (!s) {
		sb_str(b, "null");
		return;
	}
	sb_put(b, "\"", 1);
	while (*s) {
		size_t n = utf8_seq(s);

		if (n == 0) {
			sb_str(b, "\\ufffd");
			s++;
		} else if (*s == '"' || *s == '\\') {
			char esc[2] = { '\\', (char)*s };
			sb_put(b, esc, 2);
			s++;
		} else if (*s < 0x20) {
			char esc[6] = { '\\', 'u', '0', '0', hex[*s >> 4], hex[*s & 15] };
			sb_put(b, esc, 6);
			s++;
		} else {
			sb_put(b, (const char *)s, n);
			s += n;
		}
	}
	sb_put(b, "\"", 1);
}

char *pl_spool_result_json(const struct pl_item *it, bool ok, const char *error,
			   unsigned long long ms)
{
	struct strbuf b = { 0 };
	char num[64];
	bool first = true;

	snprintf(num, sizeof num, "{\"line\":%lu,\"source\":", it->line);
	sb_str(&b, num);
	sb_json(&b, it->source);
	sb_str(&b, ",\"name\":");
	sb_json(&b, it->name);
	sb_str(&b, ok ? ",\"status\":\"ok\",\"outputs\":[" : ",\"status\":\"failed\",\"outputs\":[");
	for (size_t i = 0; it->outputs && i < it->noutputs; i++) {
		if (!it->outputs[i].location)
			continue;
		if (!first)
			sb_put(&b, ",", 1);
		first = false;
		sb_json(&b, it->outputs[i].location);
	}
	sb_str(&b, "],\"error\":");
	sb_json(&b, ok ? NULL : error);
	snprintf(num, sizeof num, ",\"milliseconds\":%llu}\n", ms);
	sb_str(&b, num);
	if (b.oom) {
		free(b.p);
		errno = ENOMEM;
		return NULL;
	}
	return b.p;
}

/* ---- per-job memory: name hashes and recorded lines ----------------- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a, then a mixer for the table */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

static bool set_has(const struct name_set *set, uint64_t h)
{
	if (!set->cap)
		return false;
	for (size_t i = h & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		if (set->slot[i] == h)
			return true;
		if (set->slot[i] == 0)
			return false;
	}
}

static void set_put(struct name_set *set, uint64_t h)
{
	size_t i = h & (set->cap - 1);

	while (set->slot[i] && set->slot[i] != h)
		i = (i + 1) & (set->cap - 1);
	if (!set->slot[i])
		set->count++;
	set->slot[i] = h;
}

/* 1 added, 0 already there, -ENOMEM */
static int set_add(struct name_set *set, uint64_t h)
{
	if (set_has(set, h))
		return 0;
	if ((set->count + 1) * 2 > set->cap) {
		struct name_set bigger = { calloc(set->cap ? set->cap * 2 : 64, sizeof(uint64_t)),
					   set->cap ? set->cap * 2 : 64, 0 };

		if (!bigger.slot)
			return -ENOMEM;
		for (size_t i = 0; i < set->cap; i++)
			if (set->slot[i])
				set_put(&bigger, set->slot[i]);
		free(set->slot);
		*set = bigger;
	}
	set_put(set, h);
	return 1;
}

static bool line_recorded(const struct pl_job *j, unsigned long line)
{
	return j->recorded && line < j->nbits && (j->recorded[line / 64] >> (line % 64) & 1);
}

/* ---- small file helpers --------------------------------------------- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Move without overwriting: a same-named job already there must not be
 * lost.  Falls back to a check + rename where renameat2 is unsupported. */
static int move_noreplace(int from, int to, const char *name)
{
	if (renameat2(from, name, to, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (faccessat(to, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return -EEXIST;
	return renameat(from, name, to, name) < 0 ? -errno : 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Regular, non-dot files of one spool folder, sorted (oldest first). */
static int list_dir(struct pl_spool *s, int which, char ***out, size_t *count)
{
	int fd = openat(s->dfd[which], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	int r = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((errno = 0, e = readdir(d))) {
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (e->d_type == DT_UNKNOWN) {
			if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
				continue;
		} else if (e->d_type != DT_REG) {
			continue;
		}
		if (n == cap) {
			char **bigger = realloc(names, (cap ? cap * 2 : 16) * sizeof *names);
			if (!bigger) {
				r = -ENOMEM;
				break;
			}
			names = bigger;
			cap = cap ? cap * 2 : 16;
		}
		if (!(names[n] = strdup(e->d_name))) {
			r = -ENOMEM;
			break;
		}
		n++;
	}
	if (r == 0 && errno)
		r = -errno;
	closedir(d);
	if (r < 0) {
		free_names(names, n);
		return r;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_names);
	*out = names;
	*count = n;
	return 0;
}

/* ---- open, recover, watch ------------------------------------------- */

static void spool_free(struct pl_spool *s)
{
	for (int i = 0; i < D_COUNT; i++)
		if (s->dfd[i] >= 0)
			close(s->dfd[i]);
	if (s->ifd >= 0)
		close(s->ifd);
	free_names(s->names, s->nnames);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

static int open_subdirs(struct pl_spool *s)
{
	char path[4096];

	if (mkdir(s->dir, 0750) < 0 && errno != EEXIST) {
		int r = -errno;
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot create it: %s", s->dir, strerror(-r));
		return r;
	}
	for (int i = 0; i < D_COUNT; i++) {
		if (snprintf(path, sizeof path, "%s/%s", s->dir, subdir_names[i]) >= (int)sizeof path)
			return -ENAMETOOLONG;
		if (mkdir(path, 0750) < 0 && errno != EEXIST) {
			int r = -errno;
			pl_log_errno(LOG_ERR, -r, "spool: cannot create %s: %s", path, strerror(-r));
			return r;
		}
		s->dfd[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->dfd[i] < 0) {
			int r = -errno;
			pl_log_errno(LOG_ERR, -r, "spool: cannot open %s: %s", path, strerror(-r));
			return r;
		}
	}
	return 0;
}

int pl_spool_open(const char *dir, struct pl_spool **out)
{
	struct pl_spool *s = calloc(1, sizeof *s);
	char path[4096];
	int r;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	for (int i = 0; i < D_COUNT; i++)
		s->dfd[i] = -1;
	s->ifd = -1;
	atomic_init(&s->rescan, true);
	if ((r = -pthread_mutex_init(&s->lock, NULL)) < 0) {
		free(s);
		return r;
	}
	if (!(s->dir = strdup(dir))) {
		spool_free(s);
		return -ENOMEM;
	}
	if ((r = open_subdirs(s)) < 0) {
		spool_free(s);
		return r;
	}
	s->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	snprintf(path, sizeof path, "%s/new", dir);
	if (s->ifd < 0 || inotify_add_watch(s->ifd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		r = -errno;
		pl_log_errno(LOG_ERR, -r, "spool: cannot watch %s: %s", path, strerror(-r));
		spool_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int pl_spool_recover(struct pl_spool *s)
{
	char **names;
	size_t n;
	int r = list_dir(s, D_CUR, &names, &n), moved = 0;

	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot read cur/: %s", s->dir, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (has_suffix(names[i], RESULT_SUFFIX))
			continue;
		r = move_noreplace(s->dfd[D_CUR], s->dfd[D_NEW], names[i]);
		if (r < 0)
			pl_log_errno(LOG_ERR, -r, "spool %s: cannot move cur/%s back to new/: %s",
				     s->dir, names[i], strerror(-r));
		else
			moved++;
	}
	free_names(names, n);
	if (moved)
		fsync(s->dfd[D_NEW]);
	atomic_store(&s->rescan, true);
	pl_log(moved ? LOG_NOTICE : LOG_INFO, "spool %s: %d interrupted job%s moved from cur/ back to new/",
	       s->dir, moved, moved == 1 ? "" : "s");
	return moved;
}

int pl_spool_fd(const struct pl_spool *s)
{
	return s->ifd;
}

void pl_spool_handle_events(struct pl_spool *s)
{
	/* Which event it was does not matter (overflow included): the names
	 * come from the next scan anyway. */
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(s->ifd, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			pl_log_errno(LOG_WARNING, errno, "spool %s: reading inotify: %s",
				     s->dir, strerror(errno));
		if (n != 0)
			atomic_store(&s->rescan, true);
		if (n <= 0)
			return;
	}
}

/* ---- claim ---------------------------------------------------------- */

static void job_free(struct pl_job *j)
{
	if (j->in)
		fclose(j->in);
	if (j->resfd >= 0)
		close(j->resfd);
	pthread_mutex_destroy(&j->lock);
	free(j->recorded);
	free(j->names.slot);
	free(j->buf);
	free(j->name);
	free(j);
}

/* One line of an existing result: mark its line number and count it. */
static void resume_record(struct pl_job *j, const char *rec)
{
	const char *p = rec + strlen("{\"line\":");
	unsigned long line = 0;

	if (strncmp(rec, "{\"line\":", strlen("{\"line\":")) != 0 || !is_digit((unsigned char)*p))
		return;
	for (; is_digit((unsigned char)*p) && line < j->nbits; p++)
		line = line * 10 + (unsigned long)(*p - '0');
	if (*p != ',' || line == 0 || line >= j->nbits || line_recorded(j, line))
		return;
	j->recorded[line / 64] |= 1ull << (line % 64);
	/* Strings in a record are escaped, so this cannot match inside one. */
	if (strstr(rec, "\"status\":\"ok\""))
		j->ok++;
	else
		j->failed++;
}

/*
 * Read what a previous run recorded.  Line numbers cannot exceed the job
 * file's size, which bounds the bitmap whatever the result file says.  A
 * torn last line (crash mid-write) is cut off so that appends stay valid.
 */
static int resume_read(struct pl_job *j, off_t jobsize)
{
	struct stat st;
	char *rec = NULL;
	size_t cap = 0;
	ssize_t n;
	off_t good = 0;
	FILE *f;
	int fd, r = 0;

	if (fstat(j->resfd, &st) < 0)
		return -errno;
	if (st.st_size == 0)
		return 0;
	j->nbits = (unsigned long)jobsize + 2;
	j->recorded = calloc(j->nbits / 64 + 1, sizeof(uint64_t));
	if (!j->recorded)
		return -ENOMEM;
	if ((fd = dup(j->resfd)) < 0)
		return -errno;
	if (!(f = fdopen(fd, "r"))) {
		r = -errno;
		close(fd);
		return r;
	}
	if (fseeko(f, 0, SEEK_SET) < 0)
		r = -errno;
	while (r == 0 && (n = getline(&rec, &cap, f)) > 0 && rec[n - 1] == '\n') {
		good += n;
		resume_record(j, rec);
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	free(rec);
	fclose(f);
	if (r == 0 && good < st.st_size) {
		pl_log(LOG_WARNING, "job %s: cutting a torn last record off cur/%s%s",
		       j->name, j->name, RESULT_SUFFIX);
		if (ftruncate(j->resfd, good) < 0)
			r = -errno;
	}
	return r;
}

static int job_open(struct pl_spool *s, const char *name, struct pl_job **out)
{
	struct pl_job *j = calloc(1, sizeof *j);
	char resname[NAME_MAX + 1];
	struct stat st;
	int fd, r;

	if (!j)
		return -ENOMEM;
	j->resfd = -1;
	j->spool = s;
	if ((r = -pthread_mutex_init(&j->lock, NULL)) < 0) {
		free(j);
		return r;
	}
	if (!(j->name = strdup(name)) || !(j->buf = malloc(LINE_MAX_BYTES + 2))) {
		job_free(j);
		return -ENOMEM;
	}
	fd = openat(s->dfd[D_CUR], name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !(j->in = fdopen(fd, "r"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		job_free(j);
		return r;
	}
	snprintf(resname, sizeof resname, "%s%s", name, RESULT_SUFFIX);
	j->resfd = openat(s->dfd[D_CUR], resname, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (j->resfd < 0 || (r = resume_read(j, st.st_size)) < 0) {
		r = j->resfd < 0 ? -errno : r;
		job_free(j);
		return r;
	}
	*out = j;
	return 0;
}

/* A name in new/ that can never be a job: out of the way, with a reason. */
static void reject_to_failed(struct pl_spool *s, const char *name, const char *why)
{
	pl_log(LOG_WARNING, "spool %s: new/%s %s; moved to failed/", s->dir, name, why);
	if (renameat(s->dfd[D_NEW], name, s->dfd[D_FAILED], name) < 0 && errno != ENOENT)
		pl_log_errno(LOG_ERR, errno, "spool %s: cannot move new/%s to failed/: %s",
			     s->dir, name, strerror(errno));
}

/* Next name from the list, rescanning new/ only when the list is used up
 * and new/ changed since.  NULL when nothing waits.  Under s->lock. */
static char *next_name(struct pl_spool *s, int *err)
{
	*err = 0;
	if (s->next == s->nnames) {
		free_names(s->names, s->nnames);
		s->names = NULL;
		s->nnames = s->next = 0;
		if (!atomic_exchange(&s->rescan, false))
			return NULL;
		*err = list_dir(s, D_NEW, &s->names, &s->nnames);
		if (*err < 0) {
			atomic_store(&s->rescan, true);
			pl_log_errno(LOG_ERR, -*err, "spool %s: cannot read new/: %s",
				     s->dir, strerror(-*err));
			return NULL;
		}
		if (s->nnames == 0)
			return NULL;
	}
	return s->names[s->next++];
}

static int claim_one(struct pl_spool *s, const char *name, struct pl_job **job)
{
	int r;

	if (has_suffix(name, RESULT_SUFFIX)) {
		reject_to_failed(s, name, "ends in \"" RESULT_SUFFIX "\" and would collide with a result file");
		return -EAGAIN;
	}
	if (strlen(name) + strlen(RESULT_SUFFIX) > NAME_MAX) {
		reject_to_failed(s, name, "has a name too long for its result file");
		return -EAGAIN;
	}
	r = move_noreplace(s->dfd[D_NEW], s->dfd[D_CUR], name);
	if (r == -ENOENT)
		return -EAGAIN;		/* someone else took it */
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot claim new/%s: %s", s->dir, name, strerror(-r));
		return r == -ENOMEM ? r : -EAGAIN;
	}
	r = job_open(s, name, job);
	if (r < 0) {
		pl_log_errno(LOG_ERR, -r, "spool %s: cannot open job cur/%s (left in cur/): %s",
			     s->dir, name, strerror(-r));
		return r == -ENOMEM ? r : -EAGAIN;
	}
	(*job)->next = s->jobs;
	s->jobs = *job;
	pl_log(LOG_INFO, "job %s claimed", name);
	return 0;
}

int pl_spool_claim(struct pl_spool *s, struct pl_job **job)
{
	int r = -EAGAIN, err = 0;
	char *name;

	*job = NULL;
	pthread_mutex_lock(&s->lock);
	while (r == -EAGAIN && !s->closed && (name = next_name(s, &err)))
		r = claim_one(s, name, job);
	if (r == -EAGAIN && err == -ENOMEM)
		r = -ENOMEM;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- reading items -------------------------------------------------- */

/* One line into j->buf without its "\n" (or "\r\n").  Keeps one byte more
 * than allowed so that "too long" is known; the rest is skipped. */
static int read_line(struct pl_job *j, size_t *len, bool *toolong)
{
	size_t n = 0;
	bool any = false;
	int c;

	*toolong = false;
	while ((c = getc_unlocked(j->in)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (n <= LINE_MAX_BYTES)
			j->buf[n++] = (char)c;
		else
			*toolong = true;
	}
	if (ferror(j->in))
		return -EIO;
	if (!any)
		return -ENODATA;
	if (!*toolong && n > 0 && j->buf[n - 1] == '\r')
		n--;
	if (n > LINE_MAX_BYTES)
		*toolong = true;
	j->buf[n] = '\0';
	*len = n;
	return 0;
}

/* The trimmed start of a line, for the record of a bad one. */
static void quote_line(const char *line, size_t len, char out[BAD_SOURCE_MAX + 1])
{
	size_t start = 0, n;

	while (start < len && is_ws(line[start]))
		start++;
	n = len - start < BAD_SOURCE_MAX ? len - start : BAD_SOURCE_MAX;
	memcpy(out, line + start, n);
	while (n > 0 && is_ws(out[n - 1]))
		n--;
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)	/* a NUL would end the string early */
		if (out[i] == '\0')
			out[i] = ' ';
}

/* The name an item gets: explicit (must be new in this job) or derived and
 * made unique with -2, -3, …  Every name handed out is remembered. */
static int pick_name(struct pl_job *j, const char *src, const char *explicit,
		     char out[NAME_MAX_CHARS + 1], const char **why)
{
	char base[NAME_MAX_CHARS + 1], suffix[24];
	int r;

	if (explicit) {
		r = set_add(&j->names, name_hash(explicit));
		if (r == 0)
			*why = "duplicate NAME";
		snprintf(out, NAME_MAX_CHARS + 1, "%s", explicit);
		return r < 0 ? r : 0;
	}
	pl_spool_derive_name(src, base, sizeof base);
	snprintf(out, NAME_MAX_CHARS + 1, "%s", base);
	for (unsigned long k = 2; (r = set_add(&j->names, name_hash(out))) == 0; k++) {
		int slen = snprintf(suffix, sizeof suffix, "-%lu", k);
		int keep = (int)strlen(base);

		if (keep > NAME_MAX_CHARS - slen)
			keep = NAME_MAX_CHARS - slen;
		snprintf(out, NAME_MAX_CHARS + 1, "%.*s%s", keep, base, suffix);
	}
	return r < 0 ? r : 0;
}

static int make_item(struct pl_job *j, const char *source, const char *name,
		     struct pl_item **out)
{
	struct pl_item *it = pl_item_new();

	if (!it)
		return -ENOMEM;
	it->job = j;
	it->job_name = j->name;
	it->line = j->lineno;
	it->source = strdup(source);
	it->name = name ? strdup(name) : NULL;
	if (!it->source || (name && !it->name)) {
		pl_item_free(it);
		return -ENOMEM;
	}
	it->fed_us = pl_now_us();
	pthread_mutex_lock(&j->lock);
	j->outstanding++;
	pthread_mutex_unlock(&j->lock);
	*out = it;
	return 0;
}

/* Blank or comment, judged on what was kept of a too-long line. */
static bool skippable(const char *line)
{
	while (is_ws(*line))
		line++;
	return *line == '\0' || *line == '#';
}

int pl_spool_next_item(struct pl_job *j, struct pl_item **item, const char **bad)
{
	char quoted[BAD_SOURCE_MAX + 1], name[NAME_MAX_CHARS + 1];

	*item = NULL;
	*bad = NULL;
	for (;;) {
		char *src = NULL, *explicit = NULL;
		const char *why = NULL;
		bool toolong;
		size_t len;
		int r = read_line(j, &len, &toolong);

		if (r == -ENODATA) {
			pthread_mutex_lock(&j->lock);
			j->eof = true;
			pthread_mutex_unlock(&j->lock);
			return r;
		}
		if (r < 0) {
			pl_log_errno(LOG_ERR, -r, "job %s: reading line %lu: %s", j->name,
				     j->lineno + 1, strerror(-r));
			return r;
		}
		j->lineno++;
		quote_line(j->buf, len, quoted);
		if (toolong) {
			if (skippable(j->buf))
				continue;
			why = "line too long";
		} else if (memchr(j->buf, '\0', len)) {
			why = "NUL byte in line";
		} else {
			r = pl_spool_parse_line(j->buf, &src, &explicit, &why);
			if (r == 0)
				continue;
			if (r > 0 && (r = pick_name(j, src, explicit, name, &why)) < 0)
				return r;
		}
		if (line_recorded(j, j->lineno))
			continue;
		if ((r = make_item(j, why ? quoted : src, why ? NULL : name, item)) < 0)
			return r;
		*bad = why;
		return 0;
	}
}

/* ---- outcomes and the end of a job ---------------------------------- */

enum settle { KEEP, FINISH, DROP };

/* What happens to a job now; under j->lock.  Only one caller ever gets
 * FINISH or DROP (leaving). */
static enum settle settle_locked(struct pl_job *j)
{
	if (j->leaving || !j->released || j->outstanding > 0)
		return KEEP;
	if (j->closed) {
		j->leaving = true;
		return DROP;
	}
	if (j->eof && !j->incomplete) {
		j->leaving = true;
		return FINISH;
	}
	return KEEP;		/* stays in cur/ until pl_spool_close */
}

static void finish_files(struct pl_job *j)
{
	struct pl_spool *s = j->spool;
	bool failed = j->failed > 0;
	int dest = s->dfd[failed ? D_FAILED : D_DONE];
	char resname[NAME_MAX + 1];

	snprintf(resname, sizeof resname, "%s%s", j->name, RESULT_SUFFIX);
	if (fsync(j->resfd) < 0)
		pl_log_errno(LOG_WARNING, errno, "job %s: fsync of its result: %s", j->name,
			     strerror(errno));
	/* Result first: a crash after it leaves the job in cur/ to run again. */
	if (renameat(s->dfd[D_CUR], resname, dest, resname) < 0 ||
	    renameat(s->dfd[D_CUR], j->name, dest, j->name) < 0) {
		pl_log_errno(LOG_ERR, errno, "job %s: cannot move it to %s/: %s", j->name,
			     failed ? "failed" : "done", strerror(errno));
		return;
	}
	fsync(s->dfd[D_CUR]);
	fsync(dest);
	pl_log(LOG_INFO, "job %s finished: %lu ok, %lu failed; moved to %s/", j->name, j->ok,
	       j->failed, failed ? "failed" : "done");
}

/* The job leaves the spool's list and memory; the last one out after
 * pl_spool_close frees the spool. */
static void job_leave(struct pl_job *j, enum settle how)
{
	struct pl_spool *s = j->spool;
	bool free_spool;

	if (how == KEEP)
		return;
	if (how == FINISH)
		finish_files(j);
	pthread_mutex_lock(&s->lock);
	for (struct pl_job **p = &s->jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	free_spool = s->closed && !s->jobs;
	pthread_mutex_unlock(&s->lock);
	job_free(j);
	if (free_spool)
		spool_free(s);
}

static void record(struct pl_item *it, bool ok, const char *error)
{
	struct pl_job *j = it->job;
	uint64_t now = pl_now_us();
	unsigned long long ms = now > it->fed_us ? (now - it->fed_us) / 1000 : 0;
	char *rec = pl_spool_result_json(it, ok, error, ms), fallback[192];
	enum settle how;
	int r;

	if (!rec) {	/* still record the line, so that it is not lost */
		snprintf(fallback, sizeof fallback,
			 "{\"line\":%lu,\"source\":null,\"name\":null,\"status\":\"failed\","
			 "\"outputs\":[],\"error\":\"out of memory\",\"milliseconds\":%llu}\n",
			 it->line, ms);
		ok = false;
	}
	pthread_mutex_lock(&j->lock);
	r = write_all(j->resfd, rec ? rec : fallback, strlen(rec ? rec : fallback));
	if (r < 0) {
		j->incomplete = true;	/* unrecorded: the job must run again */
		/* logged under the lock: once it is dropped, another worker may
		 * finish the job and free it */
		pl_log_item(LOG_ERR, it, NULL, -r, "cannot record the result in cur/%s%s: %s",
			    j->name, RESULT_SUFFIX, strerror(-r));
	}
	else if (ok)
		j->ok++;
	else
		j->failed++;
	j->outstanding--;
	how = settle_locked(j);
	pthread_mutex_unlock(&j->lock);

	free(rec);
	pl_item_free(it);
	job_leave(j, how);
}

void pl_spool_item_done(struct pl_item *it)
{
	if (!it || !it->job) {
		pl_item_free(it);
		return;
	}
	record(it, true, NULL);
}

void pl_spool_item_failed(struct pl_item *it, int err, const char *why)
{
	const char *desc = err ? strerrordesc_np(err > 0 ? err : -err) : NULL;

	if (!it || !it->job) {
		pl_item_free(it);
		return;
	}
	record(it, false, why ? why : desc ? desc : "failed");
}

void pl_spool_item_requeue(struct pl_item *it)
{
	struct pl_job *j;
	enum settle how;

	if (!it || !it->job) {
		pl_item_free(it);
		return;
	}
	j = it->job;
	pl_item_free(it);
	pthread_mutex_lock(&j->lock);
	j->incomplete = true;
	j->outstanding--;
	how = settle_locked(j);
	pthread_mutex_unlock(&j->lock);
	job_leave(j, how);
}

void pl_spool_job_release(struct pl_job *j)
{
	enum settle how;

	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->released = true;
	how = settle_locked(j);
	pthread_mutex_unlock(&j->lock);
	job_leave(j, how);
}

/* ---- counting and closing ------------------------------------------- */

/* Item lines (not blank, not comment) of one job file. */
static unsigned long count_items(FILE *f)
{
	unsigned long n = 0;
	bool start = true;
	int c;

	while ((c = getc_unlocked(f)) != EOF) {
		if (c == '\n') {
			start = true;
		} else if (start && !is_ws((char)c)) {
			start = false;
			n += c != '#';
		}
	}
	return n;
}

static unsigned long count_lines_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	unsigned long n = 0;
	FILE *f;
	int c;

	if (fd < 0)
		return 0;
	if (!(f = fdopen(fd, "r"))) {
		close(fd);
		return 0;
	}
	while ((c = getc_unlocked(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

int pl_spool_count_pending(struct pl_spool *s, unsigned long *items)
{
	char resname[NAME_MAX + 1], **names;
	size_t n;
	int r = list_dir(s, D_NEW, &names, &n);

	*items = 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		int fd = openat(s->dfd[D_NEW], names[i], O_RDONLY | O_CLOEXEC);
		unsigned long lines, done = 0;
		FILE *f;

		if (has_suffix(names[i], RESULT_SUFFIX) || fd < 0)
			goto next;
		if (!(f = fdopen(fd, "r"))) {
			close(fd);
			goto next;
		}
		lines = count_items(f);
		fclose(f);
		/* A job resumed later skips what it already recorded. */
		if (snprintf(resname, sizeof resname, "%s%s", names[i], RESULT_SUFFIX) <
		    (int)sizeof resname)
			done = count_lines_at(s->dfd[D_CUR], resname);
		*items += lines > done ? lines - done : 0;
		continue;
next:
		if (fd >= 0)
			close(fd);
	}
	free_names(names, n);
	return 0;
}

void pl_spool_close(struct pl_spool *s)
{
	struct pl_job *drop = NULL, **p;
	bool free_now;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	for (p = &s->jobs; *p;) {
		struct pl_job *j = *p;
		enum settle how = KEEP;

		pthread_mutex_lock(&j->lock);
		if (!j->leaving && !j->closed) {
			int r;

			j->closed = true;
			fdatasync(j->resfd);
			r = move_noreplace(s->dfd[D_CUR], s->dfd[D_NEW], j->name);
			if (r < 0)
				pl_log_errno(LOG_ERR, -r, "job %s: cannot move it back to new/ "
					     "(recovered at the next start): %s", j->name, strerror(-r));
			else
				pl_log(LOG_INFO, "job %s: unfinished, back to new/", j->name);
			how = settle_locked(j);
		}
		pthread_mutex_unlock(&j->lock);
		if (how == DROP) {
			*p = j->next;
			j->next = drop;
			drop = j;
		} else {
			p = &j->next;
		}
	}
	s->closed = true;
	free_now = !s->jobs;
	if (s->ifd >= 0)
		close(s->ifd);
	s->ifd = -1;
	pthread_mutex_unlock(&s->lock);

	while (drop) {
		struct pl_job *j = drop;
		drop = j->next;
		job_free(j);
	}
	if (free_now)
		spool_free(s);
}

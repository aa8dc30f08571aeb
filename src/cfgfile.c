/*
 * cfgfile.c — see cfgfile.h.  Everything config.c would otherwise have to
 * know about libconfig 1.5 itself, each workaround with the reason it exists:
 *
 * - The file is opened here first (readable): libconfig reports a missing
 *   file without errno, and fopen() "opens" a directory.
 * - Every file is read whole once before libconfig runs (check_file), for:
 *   - the size limits of cfgfile.h: libconfig's scanner takes time
 *     quadratic in the length of a line;
 *   - the @include targets: libconfig fopen()s them, and its scanner
 *     exit(2)s on a directory and blocks on a FIFO;
 *   - integer literals beyond 32 bits: libconfig silently keeps only their
 *     low 32 bits unless they carry an L, so the text is lexed for them in
 *     the same pass and each is hung on its setting once parsed.
 * - An included file is named by libconfig with its @include text, relative
 *   to the include directory: file_name() gives the path an operator can
 *   open, for every FILE:LINE.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgfile.h"

#define MSG_MAX 1024

struct pl_cfgfile {
	const char *path;		/* the main file, as given */
	char *dir;			/* its directory: the include directory */
	pl_config_report_fn *report;
	void *ud;
	unsigned errors;		/* found before libconfig runs */
	struct big_file *big;		/* files with integer literals beyond 32 bits */
	config_t lc;
};

/* The file a setting or parse error came from, as a path an operator can
 * open: libconfig names included files by their @include text. */
static void file_name(const struct pl_cfgfile *f, const char *file, char *buf, size_t n)
{
	if (!file || strcmp(file, f->path) == 0 || file[0] == '/')
		snprintf(buf, n, "%s", file ? file : f->path);
	else
		snprintf(buf, n, "%s/%s", f->dir, file);
}

/* ---- 32-bit truncation of integer literals ------------------------------ */

/*
 * Each file is lexed once, as it is read for the @include pre-scan, the way
 * libconfig's scanner splits it (comments, strings, numbers, names): every
 * "NAME =" or "NAME :" outside comments and strings is a setting, the n-th
 * of its file, and a plain integer after it (no L) that does not fit 32 bits
 * is kept as a big_literal.  Once libconfig has parsed, the tree is walked
 * in source order, counting each file's named settings: the n-th one is the
 * n-th "NAME =", and when its name, line and value agree with the literal
 * (the value being what libconfig keeps of it), the literal is hung on the
 * setting as its hook.  Reading the source line again for each setting
 * instead found the first "NAME =" of the line, another setting's when two
 * of one name share it, and re-read the file for every integer.
 *
 * Only a literal that itself does not fit 32 bits is ever reported, so a
 * valid file is never refused; when anything disagrees (a lexing the
 * scanner would not do) the setting is simply not marked.
 */
struct big_literal {
	unsigned nth;			/* its file's nth setting, from 0 */
	unsigned line;
	char *name;
	int kept;			/* what libconfig keeps of it */
	char text[64];			/* as written (cut), for the message */
};

struct big_file {
	struct big_file *next;
	char *name;			/* as libconfig names it */
	unsigned settings;		/* "NAME =" in the file */
	unsigned seen;			/* of its settings met in the tree */
	size_t at;			/* the next literal to match */
	size_t n, cap;
	struct big_literal *lits;
};

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_hex(char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* libconfig's name: [A-Za-z*][-A-Za-z0-9_*]* */
static bool name_start(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '*';
}

static bool name_char(char ch)
{
	return name_start(ch) || is_digit(ch) || ch == '_' || ch == '-';
}

/* Past blanks and comments (#, // and / * * /), counting lines. */
static const char *skip_blank(const char *p, const char *end, unsigned *line)
{
	while (p < end) {
		if (*p == '\n') {
			(*line)++;
			p++;
		} else if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f') {
			p++;
		} else if (*p == '#' || (*p == '/' && p[1] == '/')) {
			while (p < end && *p != '\n')
				p++;
		} else if (*p == '/' && p[1] == '*') {
			for (p += 2; p < end && !(*p == '*' && p[1] == '/'); p++)
				*line += *p == '\n';
			p = p < end ? p + 2 : end;
		} else {
			break;
		}
	}
	return p;
}

/* Past a string (or an @include name) opened at p. */
static const char *skip_string(const char *p, const char *end, unsigned *line)
{
	for (p++; p < end && *p != '"'; p++) {
		if (*p == '\\' && p + 1 < end)
			p++;
		*line += *p == '\n';
	}
	return p < end ? p + 1 : end;
}

static bool number_start(const char *p)
{
	return is_digit(*p) || *p == '.' ||
	       ((*p == '-' || *p == '+') && (is_digit(p[1]) || p[1] == '.'));
}

enum number { NUM_OTHER, NUM_DEC, NUM_HEX };	/* other: float or with L */

/* Past the number at p, as libconfig's scanner takes it (the longest of
 * integer, integer64, hex, hex64 and float); *kind says which. */
static const char *skip_number(const char *p, enum number *kind)
{
	const char *q = p, *digits;

	*kind = NUM_OTHER;
	if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X') && is_hex(q[2])) {
		for (q += 2; is_hex(*q); q++)
			;
		if (*q == 'L')
			return q + 1 + (q[1] == 'L');
		*kind = NUM_HEX;
		return q;
	}
	if (*q == '-' || *q == '+')
		q++;
	for (digits = q; is_digit(*q); q++)
		;
	if (*q == '.' || ((*q == 'e' || *q == 'E') &&
			  (is_digit(q[1]) || ((q[1] == '-' || q[1] == '+') && is_digit(q[2]))))) {
		if (*q == '.')
			for (q++; is_digit(*q); q++)
				;
		if ((*q == 'e' || *q == 'E') &&
		    (is_digit(q[1]) || ((q[1] == '-' || q[1] == '+') && is_digit(q[2]))))
			for (q += 2; is_digit(*q); q++)
				;
		return q;
	}
	if (q == digits)
		return p + 1;
	if (*q == 'L')
		return q + 1 + (q[1] == 'L');
	*kind = NUM_DEC;
	return q;
}

/* The value at v, if it is a plain integer that does not fit 32 bits:
 * libconfig 1.5 keeps (int)strtol() of a decimal one, (int)strtoul() of a
 * hex one. */
static bool big_value(const char *v, int *kept)
{
	enum number kind;
	bool big;

	if (!number_start(v))
		return false;
	skip_number(v, &kind);
	errno = 0;
	if (kind == NUM_DEC) {
		long long w = strtoll(v, NULL, 10);

		big = errno == ERANGE || w < INT_MIN || w > INT_MAX;
		*kept = (int)strtol(v, NULL, 10);
	} else if (kind == NUM_HEX) {
		unsigned long long w = strtoull(v, NULL, 16);

		big = errno == ERANGE || w > INT_MAX;
		*kept = (int)strtoul(v, NULL, 16);
	} else {
		big = false;
	}
	return big;
}

static int add_literal(struct big_file *bf, unsigned nth, unsigned line, const char *name,
		       size_t namelen, const char *v, int kept)
{
	struct big_literal *l;
	enum number kind;
	size_t n = (size_t)(skip_number(v, &kind) - v);

	if (bf->n == bf->cap) {
		size_t cap = bf->cap ? bf->cap * 2 : 4;

		if (!(l = reallocarray(bf->lits, cap, sizeof *l)))
			return -ENOMEM;
		bf->lits = l;
		bf->cap = cap;
	}
	l = &bf->lits[bf->n];
	if (!(l->name = strndup(name, namelen)))
		return -ENOMEM;
	l->nth = nth;
	l->line = line;
	l->kept = kept;
	if (n >= sizeof l->text)
		n = sizeof l->text - 1;
	memcpy(l->text, v, n);
	l->text[n] = '\0';
	bf->n++;
	return 0;
}

static void big_files_free(struct big_file *bf)
{
	while (bf) {
		struct big_file *next = bf->next;

		for (size_t i = 0; i < bf->n; i++)
			free(bf->lits[i].name);
		free(bf->lits);
		free(bf->name);
		free(bf);
		bf = next;
	}
}

static struct big_file *big_file_find(struct big_file *bf, const char *name)
{
	for (; bf; bf = bf->next)
		if (strcmp(bf->name, name) == 0)
			return bf;
	return NULL;
}

/* Lex text (NUL-terminated at len) as libconfig will; a file with big
 * literals goes on the list *head under the name libconfig gives it.
 * 0 or -ENOMEM. */
static int scan_literals(struct big_file **head, const char *file, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	unsigned line = 1, nth = 0;
	struct big_file *bf = NULL;

	if (big_file_find(*head, file))
		return 0;	/* included again: the same text */
	while ((p = skip_blank(p, end, &line)) < end) {
		const char *name = p, *v;
		unsigned at = line, l = line;
		enum number kind;
		int kept;

		if (*p == '"') {
			p = skip_string(p, end, &line);
			continue;
		}
		if (number_start(p)) {
			p = skip_number(p, &kind);
			continue;
		}
		if (!name_start(*p)) {
			p++;
			continue;
		}
		while (p < end && name_char(*p))
			p++;
		/* true and false are values, not names */
		if ((p - name == 4 && strncasecmp(name, "true", 4) == 0) ||
		    (p - name == 5 && strncasecmp(name, "false", 5) == 0))
			continue;
		v = skip_blank(p, end, &l);
		if (v == end || (*v != '=' && *v != ':'))
			continue;
		v = skip_blank(v + 1, end, &l);
		if (v < end && big_value(v, &kept)) {
			if (!bf) {
				if (!(bf = calloc(1, sizeof *bf)) || !(bf->name = strdup(file))) {
					free(bf);
					return -ENOMEM;
				}
				bf->next = *head;
				*head = bf;
			}
			if (add_literal(bf, nth, at, name, (size_t)(p - name), v, kept) < 0)
				return -ENOMEM;
		}
		nth++;
	}
	if (bf)
		bf->settings = nth;
	return 0;
}

/* Hang each big literal on its setting: s and everything below it, in
 * source order. */
static void mark_literals(struct big_file *head, config_setting_t *s)
{
	const char *name = config_setting_name(s), *file = config_setting_source_file(s);
	struct big_file *bf = name && file ? big_file_find(head, file) : NULL;

	if (bf) {
		/* a file included twice holds its settings twice */
		unsigned nth = bf->seen++ % bf->settings;
		struct big_literal *l;

		if (nth == 0)
			bf->at = 0;
		while (bf->at < bf->n && bf->lits[bf->at].nth < nth)
			bf->at++;
		l = bf->at < bf->n ? &bf->lits[bf->at] : NULL;
		if (l && l->nth == nth && l->line == config_setting_source_line(s) &&
		    strcmp(l->name, name) == 0 && config_setting_type(s) == CONFIG_TYPE_INT &&
		    config_setting_get_int(s) == l->kept)
			config_setting_set_hook(s, l);
	}
	if (config_setting_is_aggregate(s))
		for (int i = 0; i < config_setting_length(s); i++)
			mark_literals(head, config_setting_get_elem(s, (unsigned)i));
}

bool pl_cfgfile_int_fits(const config_setting_t *s, char *lit, size_t litlen)
{
	const struct big_literal *l = config_setting_get_hook(s);

	if (!l)
		return true;
	snprintf(lit, litlen, "%s", l->text);
	return false;
}

/* ---- before libconfig reads a byte ------------------------------------- */

/* Open it ourselves first: libconfig reports a missing file without errno,
 * and fopen() happily "opens" a directory. */
static int readable(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (S_ISDIR(st.st_mode))
		r = -EISDIR;
	close(fd);
	return r;
}

/*
 * libconfig 1.5 fopen()s an @include target, which "opens" a directory too;
 * its flex scanner then fails to read it and calls exit(2) ("input in flex
 * scanner failed"), so `@include "conf.d"` would end the daemon on SIGHUP
 * instead of keeping the old settings (found by tests/fuzz/fuzz_config).
 * A FIFO or a device would block or never end.  So before libconfig runs,
 * every file an @include names is found the way its scanner finds it (a
 * line `[ \t]*@include[ \t]+"NAME"`, NAME up to the next quote, joined to
 * the include directory) and must be a regular file; included files are
 * scanned too, to libconfig's nesting limit.  Includes inside comments are
 * checked as well: stricter than libconfig, never looser.
 *
 * This first read of each file is also where the size limits of cfgfile.h
 * are enforced, so that libconfig's scanner never meets an absurd line.
 */
#define INCLUDE_DEPTH_MAX 10	/* libconfig's MAX_INCLUDE_DEPTH: the main file
				   and ten levels of includes below it */

/* The whole file, NULs and all (flex reads past a NUL inside a comment), or
 * its first PL_CFGFILE_FILE_MAX + 1 bytes: enough to know it is too large
 * without reading all of a huge one.  A NUL follows the last byte, so that
 * the literal scan may look one byte ahead and call strtoll(). */
static int read_whole(const char *path, char **out, size_t *len)
{
	FILE *fp = fopen(path, "re");
	char *buf = NULL, *p;
	size_t cap = 0, n = 0, got;

	*out = NULL;
	if (!fp)
		return -errno;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			if (cap > PL_CFGFILE_FILE_MAX + 1)
				cap = PL_CFGFILE_FILE_MAX + 1;
			if (!(p = realloc(buf, cap + 1))) {
				free(buf);
				fclose(fp);
				return -ENOMEM;
			}
			buf = p;
		}
		got = fread(buf + n, 1, cap - n, fp);
		n += got;
	} while (got > 0 && n < PL_CFGFILE_FILE_MAX + 1);
	fclose(fp);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* The NAME of an `@include "NAME"` line starting at p, or NULL. */
static const char *include_name(const char *p, const char *end, size_t *namelen)
{
	static const char kw[] = "@include";
	const char *q;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if ((size_t)(end - p) <= sizeof kw || memcmp(p, kw, sizeof kw - 1) != 0)
		return NULL;
	p += sizeof kw - 1;
	if (*p != ' ' && *p != '\t')
		return NULL;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p != '"' || !(q = memchr(p + 1, '"', (size_t)(end - p - 1))))
		return NULL;
	*namelen = (size_t)(q - p - 1);
	return p + 1;
}

static void file_error(struct pl_cfgfile *f, const char *shown, unsigned line,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void file_error(struct pl_cfgfile *f, const char *shown, unsigned line,
		       const char *fmt, ...)
{
	char what[PATH_MAX + MSG_MAX], msg[2 * PATH_MAX + MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (line)
		snprintf(msg, sizeof msg, "%s:%u: %s", shown, line, what);
	else
		snprintf(msg, sizeof msg, "%s: %s", shown, what);
	f->report(f->ud, msg);
	f->errors++;
}

/* Report a file over the size limits (its first line too long, not every
 * one) and each include of it that is not a regular file, and note its big
 * literals; shown is how path is named in messages, name how libconfig
 * names it, depth 1 the main file.  At the deepest level
 * libconfig opens (depth INCLUDE_DEPTH_MAX + 1) only the limits are
 * checked: libconfig reports any include there as nested too deep without
 * opening it.  0, -ELOOP from that level (libconfig says so), -ENOMEM. */
static int check_file(struct pl_cfgfile *f, const char *path, const char *shown, const char *name,
		      int depth)
{
	char *text, inc[PATH_MAX], child[PATH_MAX], shown_child[PATH_MAX + MSG_MAX];
	const char *end, *inc_name, *bol;
	unsigned line = 1;
	size_t len, nlen;
	bool too_long = false, follow = depth <= INCLUDE_DEPTH_MAX;
	int r;

	if (read_whole(path, &text, &len) == -ENOMEM)
		return -ENOMEM;
	if (!text)
		return 0;	/* libconfig reports what it cannot open */
	if (len > PL_CFGFILE_FILE_MAX) {
		file_error(f, shown, 0, "larger than %d bytes", PL_CFGFILE_FILE_MAX);
		free(text);
		return 0;
	}
	if (scan_literals(&f->big, name, text, len) < 0) {
		free(text);
		return -ENOMEM;
	}
	end = text + len;
	for (const char *p = bol = text; p < end; p++) {
		struct stat st;

		if (p == bol && follow && (inc_name = include_name(p, end, &nlen))) {
			nlen = strnlen(inc_name, nlen);	/* libconfig keeps it as a C string */
			snprintf(inc, sizeof inc, "%s/%.*s", f->dir, (int)nlen, inc_name);
			snprintf(child, sizeof child, "%.*s", (int)nlen, inc_name);
			if (stat(inc, &st) < 0) {
				/* libconfig: "cannot open include file" */
			} else if (!S_ISREG(st.st_mode)) {
				file_error(f, shown, line, "@include \"%s\": not a regular file", child);
			} else {
				file_name(f, child, shown_child, sizeof shown_child);
				r = check_file(f, inc, shown_child, child, depth + 1);
				if (r == -ENOMEM) {
					free(text);
					return r;
				}
				/* libconfig stops at the nesting limit: so do
				 * includes here, or a file including itself twice
				 * would be read 2^10 times; its lines still count */
				follow = r != -ELOOP;
			}
		}
		if (*p == '\n' || p + 1 == end) {
			if (!too_long && (size_t)(p - bol) + (*p != '\n') > PL_CFGFILE_LINE_MAX) {
				file_error(f, shown, line, "line longer than %d bytes",
					   PL_CFGFILE_LINE_MAX);
				too_long = true;
			}
			bol = p + 1;
		}
		line += *p == '\n';
	}
	free(text);
	return follow ? 0 : -ELOOP;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int parse(struct pl_cfgfile *f)
{
	char file[PATH_MAX], msg[PATH_MAX + MSG_MAX];
	int r = readable(f->path);

	if (r < 0) {
		snprintf(msg, sizeof msg, "%s: %s", f->path, strerror(-r));
		f->report(f->ud, msg);
		return r;
	}
	if (check_file(f, f->path, f->path, f->path, 1) == -ENOMEM)
		return -ENOMEM;
	if (f->errors)
		return -EINVAL;
	config_set_include_dir(&f->lc, f->dir);
	if (config_read_file(&f->lc, f->path)) {
		if (f->big)
			mark_literals(f->big, config_root_setting(&f->lc));
		return 0;
	}
	if (config_error_type(&f->lc) == CONFIG_ERR_FILE_IO) {
		snprintf(msg, sizeof msg, "%s: %s", f->path, strerror(EIO));
		f->report(f->ud, msg);
		return -EIO;
	}
	file_name(f, config_error_file(&f->lc), file, sizeof file);
	snprintf(msg, sizeof msg, "%s:%d: %s", file, config_error_line(&f->lc),
		 config_error_text(&f->lc));
	f->report(f->ud, msg);
	return -EINVAL;
}

/* ---- the interface ------------------------------------------------------ */

int pl_cfgfile_open(const char *path, pl_config_report_fn *report, void *ud,
		    struct pl_cfgfile **out)
{
	struct pl_cfgfile *f = calloc(1, sizeof *f);
	int r;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	config_init(&f->lc);
	f->path = path;
	f->report = report;
	f->ud = ud;
	f->dir = dir_of(path);
	r = f->dir ? parse(f) : -ENOMEM;
	if (r < 0) {
		pl_cfgfile_close(f);
		return r;
	}
	*out = f;
	return 0;
}

void pl_cfgfile_close(struct pl_cfgfile *f)
{
	if (!f)
		return;
	config_destroy(&f->lc);
	big_files_free(f->big);
	free(f->dir);
	free(f);
}

const config_setting_t *pl_cfgfile_root(const struct pl_cfgfile *f)
{
	return config_root_setting(&f->lc);
}

void pl_cfgfile_where(const struct pl_cfgfile *f, const config_setting_t *s, char *buf, size_t n)
{
	char file[PATH_MAX];

	file_name(f, config_setting_source_file(s), file, sizeof file);
	snprintf(buf, n, "%s:%u", file, config_setting_source_line(s));
}

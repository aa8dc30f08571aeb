/*
 * config.c — see config.h.  Loads pipeline.conf with libconfig 1.5 and
 * validates it whole.
 *
 * libconfig only parses: unknown names are not errors to it, and it has no
 * notion of ranges.  So every group is walked member by member, in source
 * order, against a table of the settings it may hold (struct field): an
 * unknown name, a wrong type or a value out of range is reported at the
 * member's own FILE:LINE and the walk goes on, so that `pipelined -t` lists
 * every mistake at once.  Requirements that span settings (file_root with
 * "file", {variant} with several variants, the s3 group with s3://) are
 * checked after the walk, at the line of the enclosing group.
 *
 * Two libconfig 1.5 quirks are handled here rather than left to surprise:
 * an included file is named by its @include text, relative to the include
 * directory, so messages resolve it against that directory; and an integer
 * literal without the L suffix is silently truncated to 32 bits (10000000000
 * becomes 1410065408, in range for max_pixels), so every plain integer is
 * compared with its source text.
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

#include <libconfig.h>

#include "config.h"
#include "log.h"
#include "template.h"

#define KEY_MAX 160
#define MSG_MAX 1024

struct ctx {
	const char *path;		/* the main file, as given */
	char *dir;			/* its directory: the include directory */
	pl_config_report_fn *report;
	void *ud;
	unsigned errors;
	bool oom;
	bool protocols_bad;		/* already reported: no follow-up errors */
	struct big_file *big;		/* files with integer literals beyond 32 bits */
};

/* ---- reporting ---------------------------------------------------------- */

static void emit(struct ctx *c, const char *msg)
{
	if (c->report)
		c->report(c->ud, msg);
	else
		pl_log(LOG_ERR, "%s", msg);
}

/* The file a setting or parse error came from, as a path an operator can
 * open: libconfig names included files by their @include text. */
static void file_name(const struct ctx *c, const char *file, char *buf, size_t n)
{
	if (!file || strcmp(file, c->path) == 0 || file[0] == '/')
		snprintf(buf, n, "%s", file ? file : c->path);
	else
		snprintf(buf, n, "%s/%s", c->dir, file);
}

static void report(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
	char file[PATH_MAX], text[MSG_MAX], msg[PATH_MAX + MSG_MAX + 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	file_name(c, config_setting_source_file(s), file, sizeof file);
	snprintf(msg, sizeof msg, "%s:%u: %s", file, config_setting_source_line(s), text);
	c->errors++;
	emit(c, msg);
}

static const char *key(char *buf, const char *pfx, const char *name)
{
	snprintf(buf, KEY_MAX, "%s%s%s", pfx, *pfx ? "." : "", name);
	return buf;
}

static void set_str(struct ctx *c, char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s) {
		c->oom = true;
		return;
	}
	free(*dst);
	*dst = s;
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

/* Did libconfig keep the value the operator wrote?  If not, lit is what
 * was written. */
static bool int_literal_fits(const config_setting_t *s, char *lit, size_t litlen)
{
	const struct big_literal *l = config_setting_get_hook(s);

	if (!l)
		return true;
	snprintf(lit, litlen, "%s", l->text);
	return false;
}

/* ---- typed getters ------------------------------------------------------ */

/* An integer in lo..hi; int64 literals too, never floats. */
static bool get_int(struct ctx *c, const config_setting_t *s, const char *k,
		    long long lo, long long hi, long long *out)
{
	char lit[64];
	long long v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = config_setting_get_int(s);
		if (!int_literal_fits(s, lit, sizeof lit)) {
			report(c, s, "%s: %s does not fit a plain integer: write it as %sL",
			       k, lit, lit);
			return false;
		}
		break;
	case CONFIG_TYPE_INT64:
		v = config_setting_get_int64(s);
		break;
	default:
		report(c, s, "%s: expected an integer", k);
		return false;
	}
	if (v < lo || v > hi) {
		report(c, s, "%s: %lld is out of range %lld..%lld", k, v, lo, hi);
		return false;
	}
	*out = v;
	return true;
}

/* Seconds, integer or float, in lo..hi (lo itself excluded when open). */
static bool get_time(struct ctx *c, const config_setting_t *s, const char *k,
		     bool open, double lo, double hi, double *out)
{
	double v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		v = (double)config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		break;
	default:
		report(c, s, "%s: expected a number of seconds", k);
		return false;
	}
	if (!(open ? v > lo : v >= lo) || !(v <= hi)) {
		report(c, s, "%s: %g is out of range %s%g..%g", k, v, open ? ">" : "", lo, hi);
		return false;
	}
	*out = v;
	return true;
}

static const char *get_str(struct ctx *c, const config_setting_t *s, const char *k)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		report(c, s, "%s: expected a string", k);
		return NULL;
	}
	return config_setting_get_string(s);
}

static const char *get_path(struct ctx *c, const config_setting_t *s, const char *k,
			    bool empty_ok)
{
	const char *v = get_str(c, s, k);

	if (v && !(empty_ok && !*v) && v[0] != '/') {
		report(c, s, "%s: \"%s\" is not an absolute path", k, v);
		return NULL;
	}
	return v;
}

struct choice {
	const char *name;
	int value;
};

static bool get_choice(struct ctx *c, const config_setting_t *s, const char *k,
		       const struct choice *ch, const char *listed, int *out)
{
	const char *v = get_str(c, s, k);

	if (!v)
		return false;
	for (; ch->name; ch++)
		if (strcmp(v, ch->name) == 0) {
			*out = ch->value;
			return true;
		}
	report(c, s, "%s: \"%s\" is not one of %s", k, v, listed);
	return false;
}

/* ---- the walk ----------------------------------------------------------- */

enum kind {
	K_INT,		/* int *, lo..hi */
	K_LONG,		/* long *, lo..hi */
	K_UINT,		/* unsigned *, lo..hi */
	K_TIME,		/* double *, >lo..hi */
	K_TIME0,	/* double *, lo..hi */
	K_PATH,		/* char **, absolute */
	K_PATH0,	/* char **, absolute or "" */
	K_BOOL,		/* bool * */
	K_WORKERS,	/* struct pl_stage_conf * */
	K_FN,		/* fn(c, s, key, dst) */
};

typedef void field_fn(struct ctx *c, const config_setting_t *s, const char *k, void *dst);

struct field {
	const char *name;
	enum kind kind;
	void *dst;
	long long lo, hi;
	field_fn *fn;
};

static void workers(struct ctx *c, const config_setting_t *s, const char *k,
		    struct pl_stage_conf *st)
{
	long long v;

	if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    strcmp(config_setting_get_string(s), "auto") == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		st->workers = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
		st->workers_auto = true;
		return;
	}
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		report(c, s, "%s: expected an integer or \"auto\"", k);
		return;
	}
	if (get_int(c, s, k, 1, 256, &v)) {
		st->workers = (unsigned)v;
		st->workers_auto = false;
	}
}

static void field_set(struct ctx *c, const struct field *f, const config_setting_t *s,
		      const char *k)
{
	long long i;
	double d;
	const char *str;

	switch (f->kind) {
	case K_INT:
		if (get_int(c, s, k, f->lo, f->hi, &i))
			*(int *)f->dst = (int)i;
		break;
	case K_LONG:
		if (get_int(c, s, k, f->lo, f->hi, &i))
			*(long *)f->dst = (long)i;
		break;
	case K_UINT:
		if (get_int(c, s, k, f->lo, f->hi, &i))
			*(unsigned *)f->dst = (unsigned)i;
		break;
	case K_TIME:
	case K_TIME0:
		if (get_time(c, s, k, f->kind == K_TIME, (double)f->lo, (double)f->hi, &d))
			*(double *)f->dst = d;
		break;
	case K_PATH:
	case K_PATH0:
		if ((str = get_path(c, s, k, f->kind == K_PATH0)))
			set_str(c, f->dst, str);
		break;
	case K_BOOL:
		if (config_setting_type(s) == CONFIG_TYPE_BOOL)
			*(bool *)f->dst = config_setting_get_bool(s);
		else
			report(c, s, "%s: expected true or false", k);
		break;
	case K_WORKERS:
		workers(c, s, k, f->dst);
		break;
	case K_FN:
		f->fn(c, s, k, f->dst);
		break;
	}
}

/* Every member of g, in source order, against the table. */
static void walk(struct ctx *c, const config_setting_t *g, const char *pfx,
		 const struct field *fields, size_t nfields)
{
	char k[KEY_MAX];

	for (int i = 0; g && i < config_setting_length(g); i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		size_t j;

		for (j = 0; j < nfields; j++)
			if (strcmp(fields[j].name, name) == 0)
				break;
		key(k, pfx, name);
		if (j == nfields)
			report(c, s, "unknown setting '%s'", k);
		else
			field_set(c, &fields[j], s, k);
	}
}

#define WALK(c, g, pfx, ...)                                                    \
	do {                                                                    \
		const struct field f_[] = { __VA_ARGS__ };                      \
		walk(c, g, pfx, f_, sizeof f_ / sizeof *f_);                    \
	} while (0)

/* A group member, or NULL (absent, or reported as not a group). */
static const config_setting_t *group(struct ctx *c, const config_setting_t *s, const char *k)
{
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		report(c, s, "%s: expected a group { … }", k);
		return NULL;
	}
	return s;
}

/* ---- top level ---------------------------------------------------------- */

static void log_level(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	const char *v = get_str(c, s, k);
	int l = v ? pl_log_level_from_name(v) : -1;

	if (!v)
		return;
	/* emerg..crit would hide the daemon's own errors */
	if (l < LOG_ERR || l > LOG_DEBUG) {
		report(c, s, "%s: \"%s\" is not one of err, warning, notice, info, debug", k, v);
		return;
	}
	*(int *)dst = l;
}

/* ---- download ----------------------------------------------------------- */

static void protocols(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	static const struct choice names[] = {
		{ "http", PL_PROTO_HTTP }, { "https", PL_PROTO_HTTPS },
		{ "file", PL_PROTO_FILE }, { NULL, 0 },
	};
	unsigned bits = 0;
	bool ok = true;
	int n;

	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST) {
		report(c, s, "%s: expected a list of strings [ \"http\", … ]", k);
		c->protocols_bad = true;
		return;
	}
	n = config_setting_length(s);
	if (n == 0) {
		report(c, s, "%s: must name at least one protocol", k);
		c->protocols_bad = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		int bit;

		if (!get_choice(c, e, k, names, "http, https, file", &bit)) {
			ok = false;
		} else if (bits & (unsigned)bit) {
			report(c, e, "%s: \"%s\" is listed twice", k, config_setting_get_string(e));
			ok = false;
		} else {
			bits |= (unsigned)bit;
		}
	}
	if (ok)
		*(unsigned *)dst = bits;
	c->protocols_bad = !ok;
}

static void load_download(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	struct pl_config *cfg = dst;
	const config_setting_t *g = group(c, s, k), *root;

	if (!g)
		return;
	WALK(c, g, k,
	     { "workers", K_WORKERS, &cfg->download.stage, 0, 0, NULL },
	     { "queue", K_UINT, &cfg->download.stage.queue, 1, 65536, NULL },
	     { "connect_timeout", K_TIME, &cfg->download.connect_timeout, 0, 3600, NULL },
	     { "timeout", K_TIME, &cfg->download.timeout, 0, 86400, NULL },
	     { "low_speed_limit", K_LONG, &cfg->download.low_speed_limit, 0, 1LL << 31, NULL },
	     { "low_speed_time", K_TIME, &cfg->download.low_speed_time, 0, 3600, NULL },
	     { "max_bytes", K_LONG, &cfg->download.max_bytes, 1, 1LL << 40, NULL },
	     { "retries", K_INT, &cfg->download.retries, 0, 20, NULL },
	     { "backoff", K_TIME0, &cfg->download.backoff, 0, 3600, NULL },
	     { "per_host", K_INT, &cfg->download.per_host, 1, 1024, NULL },
	     { "protocols", K_FN, &cfg->download.protocols, 0, 0, protocols },
	     { "file_root", K_PATH0, &cfg->download.file_root, 0, 0, NULL },
	     { "allow_private", K_BOOL, &cfg->download.allow_private, 0, 0, NULL });

	/* file: reads local files; only ever below an explicit root.  Not
	 * checked against a protocols value already reported as wrong. */
	root = config_setting_get_member(g, "file_root");
	if (c->protocols_bad)
		return;
	if ((cfg->download.protocols & PL_PROTO_FILE) && !*cfg->download.file_root)
		report(c, root ? root : g, "%s.file_root: required when protocols include \"file\"", k);
	else if (!(cfg->download.protocols & PL_PROTO_FILE) && *cfg->download.file_root)
		report(c, root, "%s.file_root: set, but protocols do not include \"file\"", k);
}

/* ---- resize ------------------------------------------------------------- */

static bool variant_name_ok(const char *v)
{
	size_t n = strlen(v);

	if (n < 1 || n >= PL_VARIANT_NAME_MAX || v[0] == '.')
		return false;
	for (; *v; v++)
		if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		      (*v >= '0' && *v <= '9') || *v == '.' || *v == '_' || *v == '-'))
			return false;
	return true;
}

static void variant_name(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	const char *v = get_str(c, s, k);

	if (!v)
		return;
	if (!variant_name_ok(v)) {
		report(c, s, "%s: \"%s\" is not a name: 1..%d letters, digits, '.', '_' or '-', "
			     "not starting with '.'", k, v, PL_VARIANT_NAME_MAX - 1);
		return;
	}
	memcpy(dst, v, strlen(v) + 1);
}

struct variant_enums {
	int fit, crop, format;
};

static void v_fit(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	static const struct choice ch[] = {
		{ "inside", PL_FIT_INSIDE }, { "cover", PL_FIT_COVER }, { NULL, 0 },
	};
	get_choice(c, s, k, ch, "inside, cover", dst);
}

static void v_crop(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	static const struct choice ch[] = {
		{ "centre", PL_CROP_CENTRE }, { "center", PL_CROP_CENTRE },
		{ "attention", PL_CROP_ATTENTION }, { NULL, 0 },
	};
	get_choice(c, s, k, ch, "centre, attention", dst);
}

static void v_format(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	static const struct choice ch[] = {
		{ "jpeg", PL_FORMAT_JPEG }, { "webp", PL_FORMAT_WEBP },
		{ "png", PL_FORMAT_PNG }, { "avif", PL_FORMAT_AVIF }, { NULL, 0 },
	};
	get_choice(c, s, k, ch, "jpeg, webp, png, avif", dst);
}

static void load_variant(struct ctx *c, const config_setting_t *g, const char *k,
			 struct pl_variant *v)
{
	static const char *const required[] = { "name", "width", "height" };
	struct variant_enums e = { PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG };

	v->quality = 80;
	WALK(c, g, k,
	     { "name", K_FN, v->name, 0, 0, variant_name },
	     { "width", K_INT, &v->width, 1, 16384, NULL },
	     { "height", K_INT, &v->height, 1, 16384, NULL },
	     { "fit", K_FN, &e.fit, 0, 0, v_fit },
	     { "crop", K_FN, &e.crop, 0, 0, v_crop },
	     { "format", K_FN, &e.format, 0, 0, v_format },
	     { "quality", K_INT, &v->quality, 1, 100, NULL });
	v->fit = (enum pl_fit)e.fit;
	v->crop = (enum pl_crop)e.crop;
	v->format = (enum pl_format)e.format;
	for (size_t i = 0; i < sizeof required / sizeof *required; i++)
		if (!config_setting_get_member(g, required[i]))
			report(c, g, "%s.%s: required setting is missing", k, required[i]);
}

static void variants(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	struct pl_config *cfg = dst;
	struct pl_variant *vs;
	char vk[KEY_MAX];
	int n;

	if (config_setting_type(s) != CONFIG_TYPE_LIST) {
		report(c, s, "%s: expected a list of groups ( { name = …; … }, … )", k);
		return;
	}
	n = config_setting_length(s);
	if (n == 0) {
		report(c, s, "%s: must hold at least one variant", k);
		return;
	}
	vs = calloc((size_t)n, sizeof *vs);
	if (!vs) {
		c->oom = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);

		snprintf(vk, sizeof vk, "%s[%d]", k, i);
		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			report(c, g, "%s: expected a group { name = …; width = …; height = …; }", vk);
			continue;
		}
		load_variant(c, g, vk, &vs[i]);
		for (int j = 0; j < i && vs[i].name[0]; j++)
			if (strcmp(vs[i].name, vs[j].name) == 0)
				report(c, config_setting_get_member(g, "name"),
				       "%s.name: \"%s\" is already the name of %s[%d]",
				       vk, vs[i].name, k, j);
	}
	free(cfg->resize.variants);
	cfg->resize.variants = vs;
	cfg->resize.nvariants = (size_t)n;
}

static void load_resize(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	struct pl_config *cfg = dst;
	const config_setting_t *g = group(c, s, k);

	if (!g)
		return;
	WALK(c, g, k,
	     { "workers", K_WORKERS, &cfg->resize.stage, 0, 0, NULL },
	     { "queue", K_UINT, &cfg->resize.stage.queue, 1, 65536, NULL },
	     { "max_pixels", K_LONG, &cfg->resize.max_pixels, 1, 10000000000LL, NULL },
	     { "variants", K_FN, cfg, 0, 0, variants });
}

/* ---- upload ------------------------------------------------------------- */

static void s3_endpoint(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	const char *v = get_str(c, s, k);
	const char *host;

	if (!v)
		return;
	host = strncmp(v, "https://", 8) == 0 ? v + 8 : strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
	if (!host || !*host || *host == '/' || strpbrk(v, " \t\r\n")) {
		report(c, s, "%s: \"%s\" is not an http:// or https:// URL", k, v);
		return;
	}
	set_str(c, dst, v);
}

static void s3_region(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	const char *v = get_str(c, s, k);

	if (!v)
		return;
	if (!*v || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v)) {
		report(c, s, "%s: \"%s\" is not a region name (lower-case letters, digits, '-')", k, v);
		return;
	}
	set_str(c, dst, v);
}

static void load_s3(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	struct pl_config *cfg = dst;
	const config_setting_t *g = group(c, s, k);

	if (!g)
		return;
	WALK(c, g, k,
	     { "endpoint", K_FN, &cfg->upload.s3.endpoint, 0, 0, s3_endpoint },
	     { "region", K_FN, &cfg->upload.s3.region, 0, 0, s3_region },
	     { "credentials", K_PATH, &cfg->upload.s3.credentials, 0, 0, NULL });
}

static void url(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	const char *v = get_str(c, s, k), *why;

	if (!v)
		return;
	if (pl_template_check(v, &why) < 0) {
		report(c, s, "%s: %s", k, why);
		return;
	}
	set_str(c, dst, v);
}

/* What only makes sense once the whole upload group (and resize) is known. */
static void upload_rules(struct ctx *c, const config_setting_t *g, const char *k,
			 struct pl_config *cfg)
{
	const config_setting_t *u = config_setting_get_member(g, "url");
	const config_setting_t *s3 = config_setting_get_member(g, "s3");
	/* the url as written, even when rejected above: the s3 rules follow
	 * the scheme the operator meant */
	const char *uv = u && config_setting_type(u) == CONFIG_TYPE_STRING ?
			 config_setting_get_string(u) : cfg->upload.url;
	bool is_s3 = strncmp(uv, "s3://", 5) == 0;

	if (u && cfg->resize.nvariants > 1 && !pl_template_has(cfg->upload.url, "variant"))
		report(c, u, "%s.url: needs {variant}: there are %zu variants, "
			     "which would write the same key", k, cfg->resize.nvariants);
	if (is_s3 && !s3) {
		report(c, g, "%s.s3: required with an s3:// url", k);
	} else if (is_s3 && config_setting_type(s3) == CONFIG_TYPE_GROUP) {
		if (!config_setting_get_member(s3, "endpoint"))
			report(c, s3, "%s.s3.endpoint: required with an s3:// url", k);
		if (!config_setting_get_member(s3, "credentials"))
			report(c, s3, "%s.s3.credentials: required with an s3:// url", k);
	} else if (!is_s3 && s3) {
		report(c, s3, "%s.s3: only used with an s3:// url", k);
	}
}

static void load_upload(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	struct pl_config *cfg = dst;
	const config_setting_t *g = group(c, s, k);

	if (!g)
		return;
	WALK(c, g, k,
	     { "workers", K_WORKERS, &cfg->upload.stage, 0, 0, NULL },
	     { "queue", K_UINT, &cfg->upload.stage.queue, 1, 65536, NULL },
	     { "url", K_FN, &cfg->upload.url, 0, 0, url },
	     { "retries", K_INT, &cfg->upload.retries, 0, 20, NULL },
	     { "backoff", K_TIME0, &cfg->upload.backoff, 0, 3600, NULL },
	     { "connect_timeout", K_TIME, &cfg->upload.connect_timeout, 0, 3600, NULL },
	     { "timeout", K_TIME, &cfg->upload.timeout, 0, 86400, NULL },
	     { "s3", K_FN, cfg, 0, 0, load_s3 });
}

/* ---- defaults and the whole --------------------------------------------- */

static int defaults(struct pl_config *cfg)
{
	static const struct pl_variant thumb = {
		"thumb", 256, 256, PL_FIT_INSIDE, PL_CROP_CENTRE, PL_FORMAT_JPEG, 80,
	};

	cfg->log_level = LOG_INFO;
	cfg->download.stage = (struct pl_stage_conf){ 3, false, 16 };
	cfg->download.connect_timeout = 10.0;
	cfg->download.timeout = 60.0;
	cfg->download.low_speed_limit = 1024;
	cfg->download.low_speed_time = 10.0;
	cfg->download.max_bytes = 52428800;
	cfg->download.retries = 3;
	cfg->download.backoff = 0.5;
	cfg->download.per_host = 4;
	cfg->download.protocols = PL_PROTO_HTTP | PL_PROTO_HTTPS;
	cfg->resize.stage = (struct pl_stage_conf){ 4, false, 16 };
	cfg->resize.max_pixels = 50000000;
	cfg->upload.stage = (struct pl_stage_conf){ 5, false, 16 };
	cfg->upload.retries = 3;
	cfg->upload.backoff = 0.5;
	cfg->upload.connect_timeout = 10.0;
	cfg->upload.timeout = 60.0;

	cfg->resize.variants = malloc(sizeof *cfg->resize.variants);
	if (cfg->resize.variants) {
		cfg->resize.variants[0] = thumb;
		cfg->resize.nvariants = 1;
	}
	cfg->spool = strdup("/var/lib/pipelined/spool");
	cfg->runtime = strdup("/run/pipelined");
	cfg->download.file_root = strdup("");
	/* {job}: item names are unique within a job only, so without it two
	 * jobs with an item "small" would write the same file */
	cfg->upload.url = strdup("file:///var/lib/pipelined/out/{job}/{name}-{variant}.{ext}");
	cfg->upload.s3.endpoint = strdup("");
	cfg->upload.s3.region = strdup("us-east-1");
	cfg->upload.s3.credentials = strdup("");
	if (!cfg->resize.variants || !cfg->spool || !cfg->runtime || !cfg->download.file_root ||
	    !cfg->upload.url || !cfg->upload.s3.endpoint || !cfg->upload.s3.region ||
	    !cfg->upload.s3.credentials)
		return -ENOMEM;
	return 0;
}

static void load_root(struct ctx *c, const config_setting_t *root, struct pl_config *cfg)
{
	const config_setting_t *up = config_setting_get_member(root, "upload");

	WALK(c, root, "",
	     { "spool", K_PATH, &cfg->spool, 0, 0, NULL },
	     { "runtime", K_PATH, &cfg->runtime, 0, 0, NULL },
	     { "log_level", K_FN, &cfg->log_level, 0, 0, log_level },
	     { "download", K_FN, cfg, 0, 0, load_download },
	     { "resize", K_FN, cfg, 0, 0, load_resize },
	     { "upload", K_FN, cfg, 0, 0, load_upload });
	/* after the walk: the {variant} rule needs the variant count,
	 * wherever the groups stand in the file */
	if (up && config_setting_type(up) == CONFIG_TYPE_GROUP)
		upload_rules(c, up, "upload", cfg);
}

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
 * This first read of each file is also where the size limits of config.h
 * are enforced, so that libconfig's scanner never meets an absurd line.
 */
#define INCLUDE_DEPTH_MAX 10	/* libconfig's MAX_INCLUDE_DEPTH: the main file
				   and ten levels of includes below it */

/* The whole file, NULs and all (flex reads past a NUL inside a comment), or
 * its first PL_CONFIG_FILE_MAX + 1 bytes: enough to know it is too large
 * without reading all of a huge one.  A NUL follows the last byte, so that
 * the literal scan may look one byte ahead and call strtoll(). */
static int read_whole(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL, *p;
	size_t cap = 0, n = 0, got;

	*out = NULL;
	if (!f)
		return -errno;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			if (cap > PL_CONFIG_FILE_MAX + 1)
				cap = PL_CONFIG_FILE_MAX + 1;
			if (!(p = realloc(buf, cap + 1))) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = p;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0 && n < PL_CONFIG_FILE_MAX + 1);
	fclose(f);
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

static void file_error(struct ctx *c, const char *shown, unsigned line, const char *what)
{
	char msg[PATH_MAX + MSG_MAX];

	if (line)
		snprintf(msg, sizeof msg, "%s:%u: %s", shown, line, what);
	else
		snprintf(msg, sizeof msg, "%s: %s", shown, what);
	emit(c, msg);
	c->errors++;
}

/* Report a file over the size limits (its first line too long, not every
 * one) and each include of it that is not a regular file, and note its big
 * literals; shown is how path is named in messages, name how libconfig
 * names it, depth 1 the main file.  At the deepest level
 * libconfig opens (depth INCLUDE_DEPTH_MAX + 1) only the limits are
 * checked: libconfig reports any include there as nested too deep without
 * opening it.  0, -ELOOP from that level (libconfig says so), -ENOMEM. */
static int check_file(struct ctx *c, const char *path, const char *shown, const char *name,
		      int depth)
{
	char *text, inc[PATH_MAX], child[PATH_MAX], msg[PATH_MAX + MSG_MAX];
	const char *end, *inc_name, *bol;
	unsigned line = 1;
	size_t len, nlen;
	bool too_long = false, follow = depth <= INCLUDE_DEPTH_MAX;
	int r;

	if (read_whole(path, &text, &len) == -ENOMEM)
		return -ENOMEM;
	if (!text)
		return 0;	/* libconfig reports what it cannot open */
	if (len > PL_CONFIG_FILE_MAX) {
		snprintf(msg, sizeof msg, "larger than %d bytes", PL_CONFIG_FILE_MAX);
		file_error(c, shown, 0, msg);
		free(text);
		return 0;
	}
	if (scan_literals(&c->big, name, text, len) < 0) {
		free(text);
		return -ENOMEM;
	}
	end = text + len;
	for (const char *p = bol = text; p < end; p++) {
		struct stat st;

		if (p == bol && follow && (inc_name = include_name(p, end, &nlen))) {
			nlen = strnlen(inc_name, nlen);	/* libconfig keeps it as a C string */
			snprintf(inc, sizeof inc, "%s/%.*s", c->dir, (int)nlen, inc_name);
			snprintf(child, sizeof child, "%.*s", (int)nlen, inc_name);
			if (stat(inc, &st) < 0) {
				/* libconfig: "cannot open include file" */
			} else if (!S_ISREG(st.st_mode)) {
				snprintf(msg, sizeof msg, "@include \"%s\": not a regular file", child);
				file_error(c, shown, line, msg);
			} else {
				file_name(c, child, msg, sizeof msg);
				r = check_file(c, inc, msg, child, depth + 1);
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
			if (!too_long && (size_t)(p - bol) + (*p != '\n') > PL_CONFIG_LINE_MAX) {
				snprintf(msg, sizeof msg, "line longer than %d bytes", PL_CONFIG_LINE_MAX);
				file_error(c, shown, line, msg);
				too_long = true;
			}
			bol = p + 1;
		}
		line += *p == '\n';
	}
	free(text);
	return follow ? 0 : -ELOOP;
}

static int parse(struct ctx *c, config_t *lc)
{
	char file[PATH_MAX], msg[PATH_MAX + MSG_MAX];
	int r = readable(c->path);

	if (r < 0) {
		snprintf(msg, sizeof msg, "%s: %s", c->path, strerror(-r));
		emit(c, msg);
		return r;
	}
	if (check_file(c, c->path, c->path, c->path, 1) == -ENOMEM)
		return -ENOMEM;
	if (c->errors)
		return -EINVAL;
	config_set_include_dir(lc, c->dir);
	if (config_read_file(lc, c->path)) {
		if (c->big)
			mark_literals(c->big, config_root_setting(lc));
		return 0;
	}
	if (config_error_type(lc) == CONFIG_ERR_FILE_IO) {
		snprintf(msg, sizeof msg, "%s: %s", c->path, strerror(EIO));
		emit(c, msg);
		return -EIO;
	}
	file_name(c, config_error_file(lc), file, sizeof file);
	snprintf(msg, sizeof msg, "%s:%d: %s", file, config_error_line(lc), config_error_text(lc));
	emit(c, msg);
	return -EINVAL;
}

/*
 * A url without {job} is valid: some operators want one flat namespace on
 * purpose.  But item names are only unique within a job, so with such a url
 * two jobs with an item of the same name silently overwrite each other's
 * outputs: say so at every load (-t, start, reload), at the url's line.  A warning,
 * not an error: pl_log, not the report callback, which counts errors.
 */
static void warn_no_job(struct ctx *c, const config_t *lc, const struct pl_config *cfg)
{
	const config_setting_t *u = config_lookup(lc, "upload.url");
	char file[PATH_MAX];

	if (!u || pl_template_has(cfg->upload.url, "job"))
		return;
	file_name(c, config_setting_source_file(u), file, sizeof file);
	pl_log(LOG_WARNING, "%s:%u: upload.url has no {job}: outputs of different jobs with "
	       "the same item name overwrite each other", file, config_setting_source_line(u));
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

int pl_config_load(const char *path, pl_config_report_fn *report_fn, void *ud,
		   struct pl_config **out)
{
	struct ctx c = { .path = path, .report = report_fn, .ud = ud };
	struct pl_config *cfg = NULL;
	config_t lc;
	int r;

	*out = NULL;
	c.dir = dir_of(path);
	if (!c.dir)
		return -ENOMEM;
	config_init(&lc);
	r = parse(&c, &lc);
	if (r < 0)
		goto out;
	cfg = calloc(1, sizeof *cfg);
	if (!cfg || (r = defaults(cfg)) < 0 || !(cfg->path = strdup(path))) {
		r = -ENOMEM;
		goto out;
	}
	load_root(&c, config_root_setting(&lc), cfg);
	r = c.oom ? -ENOMEM : c.errors ? -EINVAL : 0;
	if (r == 0)
		warn_no_job(&c, &lc, cfg);
out:
	config_destroy(&lc);
	free(c.dir);
	big_files_free(c.big);
	if (r < 0) {
		if (r == -ENOMEM)
			pl_log(LOG_ERR, "%s: out of memory", path);
		pl_config_free(cfg);
		return r;
	}
	*out = cfg;
	return 0;
}

void pl_config_free(struct pl_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->spool);
	free(cfg->runtime);
	free(cfg->download.file_root);
	free(cfg->resize.variants);
	free(cfg->upload.url);
	free(cfg->upload.s3.endpoint);
	free(cfg->upload.s3.region);
	free(cfg->upload.s3.credentials);
	free(cfg);
}

const char *pl_config_format_ext(enum pl_format f)
{
	switch (f) {
	case PL_FORMAT_JPEG: return "jpg";
	case PL_FORMAT_WEBP: return "webp";
	case PL_FORMAT_PNG:  return "png";
	case PL_FORMAT_AVIF: return "avif";
	}
	return "bin";
}

const char *pl_config_format_mime(enum pl_format f)
{
	switch (f) {
	case PL_FORMAT_JPEG: return "image/jpeg";
	case PL_FORMAT_WEBP: return "image/webp";
	case PL_FORMAT_PNG:  return "image/png";
	case PL_FORMAT_AVIF: return "image/avif";
	}
	return "application/octet-stream";
}

static bool str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

bool pl_config_restart_differs(const struct pl_config *a, const struct pl_config *b)
{
	const __typeof__(a->download) *da = &a->download, *db = &b->download;
	const __typeof__(a->upload) *ua = &a->upload, *ub = &b->upload;

	if (str_differs(a->spool, b->spool) || str_differs(a->runtime, b->runtime))
		return true;
	if (da->stage.queue != db->stage.queue || da->connect_timeout != db->connect_timeout ||
	    da->timeout != db->timeout || da->low_speed_limit != db->low_speed_limit ||
	    da->low_speed_time != db->low_speed_time || da->max_bytes != db->max_bytes ||
	    da->retries != db->retries || da->backoff != db->backoff ||
	    da->per_host != db->per_host || da->protocols != db->protocols ||
	    da->allow_private != db->allow_private || str_differs(da->file_root, db->file_root))
		return true;
	if (a->resize.stage.queue != b->resize.stage.queue ||
	    a->resize.max_pixels != b->resize.max_pixels ||
	    a->resize.nvariants != b->resize.nvariants)
		return true;
	for (size_t i = 0; i < a->resize.nvariants; i++) {
		const struct pl_variant *va = &a->resize.variants[i], *vb = &b->resize.variants[i];
		if (strcmp(va->name, vb->name) || va->width != vb->width || va->height != vb->height ||
		    va->fit != vb->fit || va->crop != vb->crop || va->format != vb->format ||
		    va->quality != vb->quality)
			return true;
	}
	return ua->stage.queue != ub->stage.queue || str_differs(ua->url, ub->url) ||
	       ua->retries != ub->retries || ua->backoff != ub->backoff ||
	       ua->connect_timeout != ub->connect_timeout || ua->timeout != ub->timeout ||
	       str_differs(ua->s3.endpoint, ub->s3.endpoint) ||
	       str_differs(ua->s3.region, ub->s3.region) ||
	       str_differs(ua->s3.credentials, ub->s3.credentials);
}

/*
 * config_int.h — private to the files of the configuration module
 * (config.c and its conf*.c parts); nothing outside src/conf*.c includes it.
 * config.c was one file of more than a thousand lines; split by concern, its
 * parts share what a reader of a setting needs: the load's context, the
 * reporting of a mistake at its FILE:LINE, the typed getters, and what a
 * row of the settings table is, so that every part reports the same way,
 * checks a type once and describes its settings as rows of the one table.
 */
#ifndef PL_CONFIG_INT_H
#define PL_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "cfgfile.h"
#include "config.h"

#define KEY_MAX 160

/* One load: where its mistakes go, how many there were, what it fills. */
struct ctx {
	struct pl_cfgfile *f;
	pl_config_report_fn *report;
	void *ud;
	unsigned errors;
	bool oom;
	bool protocols_bad;		/* already reported: no follow-up errors */
	struct pl_config *cfg;		/* being loaded */
};

struct choice {
	const char *name;
	int value;
};

/* confget.c: reporting (each counts an error) and the typed getters, which
 * report what is wrong with s and return false or NULL. */
void pl_config_emit(void *ud, const char *msg);
void pl_config_report(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *pl_config_key(char *buf, const char *pfx, const char *name);
void pl_config_set_str(struct ctx *c, char **dst, const char *v);
bool pl_config_get_int(struct ctx *c, const config_setting_t *s, const char *k,
		       long long lo, long long hi, long long *out);
bool pl_config_get_time(struct ctx *c, const config_setting_t *s, const char *k,
			bool open, double lo, double hi, double *out);
const char *pl_config_get_str(struct ctx *c, const config_setting_t *s, const char *k);
const char *pl_config_get_path(struct ctx *c, const config_setting_t *s, const char *k,
			       bool empty_ok);
void pl_config_read_checked(struct ctx *c, const config_setting_t *s, const char *k, char **dst,
			    const char *(*invalid)(const char *v));
bool pl_config_get_choice(struct ctx *c, const config_setting_t *s, const char *k,
			  const struct choice *ch, int *out);

/*
 * Every setting is one row of a table (settings[] in config.c, and
 * variant_settings[] in confvariant.c for the members of a variant): its
 * path as written in the file, the field of the struct it fills, its
 * range, default, whether a reload applies it, and, when the value needs
 * more than its type's check, the function that reads it.  From the rows come the walk (unknown
 * names, wrong types, ranges), the defaults, pl_config_free and
 * pl_config_restart_differs, so that adding a setting is one field in
 * struct pl_config (config.h) and one row in settings[] (and its lines in
 * man/pipeline.conf.5).  A setting is restart-only unless its row says
 * .live, which also needs daemon.c's reload() to apply it.
 *
 * A row's type is not written in the row: CONF()/VARIANT() take it from
 * the field's own C type (TYPE_OF), so a row cannot disagree with its
 * field, and a field of a type the table does not know does not compile.
 */
enum type {
	T_GROUP,	/* no field: a group, holding the rows below its path */
	T_INT,		/* int: an integer in lo..hi, or one of .choices */
	T_LONG,		/* long: the same */
	T_UINT,		/* unsigned: the same; also the enums, which gcc
			   and clang make unsigned when no value is negative
			   (were one int, TYPE_OF would say T_INT) */
	T_DOUBLE,	/* double: seconds in lo..hi, integer or not */
	T_BOOL,		/* bool: true or false */
	T_STR,		/* char *, owned: an absolute path ("" too when
			   .empty_ok), or what .read accepts */
	T_NAME,		/* char [PL_VARIANT_NAME_MAX]: what .read accepts */
	T_STAGE,	/* struct pl_stage_conf: its workers, lo..hi or "auto",
			   or "adaptive" where .def_str is that, the default
			   (its queue and workers_max are rows of their own) */
	T_VARIANTS,	/* struct pl_variant *, counted by resize.nvariants */
	T_LIST,		/* struct pl_strlist, owned: what .read accepts */
};

#define TYPE_OF(x) _Generic(&(x),						\
	int *: T_INT, long *: T_LONG, unsigned *: T_UINT, double *: T_DOUBLE,	\
	bool *: T_BOOL, char **: T_STR, char (*)[PL_VARIANT_NAME_MAX]: T_NAME,	\
	struct pl_stage_conf *: T_STAGE, struct pl_variant **: T_VARIANTS,	\
	struct pl_strlist *: T_LIST)
#define FIELD(S, f)	.type = TYPE_OF(((S *)0)->f), .off = offsetof(S, f)
#define RANGE(l, h)	.lo = (l), .hi = (h)

typedef void read_fn(struct ctx *c, const config_setting_t *s, const char *k, void *field);
typedef void check_fn(struct ctx *c, const config_setting_t *g, const char *k);

struct setting {
	const char *path;	/* "download.retries"; a variant's: "width" */
	enum type type;
	size_t off;		/* of its field, in struct pl_config or pl_variant */
	long long lo, hi;	/* numbers: the range */
	bool lo_excluded;	/* seconds: lo itself is out of range */
	bool empty_ok;		/* paths: "" is allowed too */
	bool required;		/* no default: the group must set it */
	bool live;		/* a reload applies it (daemon.c reload()); every
				   other setting waits for a restart */
	double def;		/* numbers and bools: the default (a double holds
				   every integer default exactly: all < 2^53) */
	const char *def_str;	/* strings: the default, "" when none;
				   stages: "adaptive" when that is allowed and
				   the default (.def is then its starting width) */
	const struct choice *choices;	/* integers: a name instead of a number */
	read_fn *read;		/* reads the value instead of its type's reader */
	check_fn *check;	/* groups: rules across its settings, after them */
};

#define NROWS(t) (sizeof t / sizeof *t)

/* config.c: the machinery the rows drive (see there). */
void pl_config_walk(struct ctx *c, const config_setting_t *g, const char *k, const char *rel,
		    const struct setting *rows, size_t nrows, void *base);
int  pl_config_set_defaults(const struct setting *rows, size_t nrows, void *base);
void pl_config_free_fields(const struct setting *rows, size_t nrows, void *base);
bool pl_config_differs(const struct setting *rows, size_t nrows, const void *a, const void *b);

/* confvariant.c: resize.variants, the one setting written out by hand
 * (T_VARIANTS): read, defaulted, freed and compared there. */
read_fn pl_config_variants;
void pl_config_free_variants(struct pl_config *cfg);
int  pl_config_default_variants(struct pl_config *cfg);
bool pl_config_variants_differ(const struct pl_config *a, const struct pl_config *b);

/* confservices.c: the stream and metrics groups' readers and rules. */
read_fn pl_config_token, pl_config_subject, pl_config_servers, pl_config_listen_address;
check_fn pl_config_stream_rules, pl_config_metrics_rules;
void pl_config_free_list(struct pl_strlist *l);
bool pl_config_lists_differ(const struct pl_strlist *a, const struct pl_strlist *b);

#endif

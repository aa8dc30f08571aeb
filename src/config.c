/*
 * config.c — see config.h.  Loads pipeline.conf and validates it whole;
 * cfgfile.c gets the file parsed by libconfig 1.5 (and works around that
 * version's pitfalls), this file says what the settings mean.
 *
 * libconfig only parses: unknown names are not errors to it, and it has no
 * notion of ranges.  So every group is walked member by member, in source
 * order, against a table of the settings it may hold (struct field): an
 * unknown name, a wrong type or a value out of range is reported at the
 * member's own FILE:LINE and the walk goes on, so that `pipelined -t` lists
 * every mistake at once.  Requirements that span settings (file_root with
 * "file", {variant} with several variants, the s3 group with s3://) are
 * checked after the walk, at the line of the enclosing group.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "cfgfile.h"
#include "config.h"
#include "log.h"
#include "template.h"

#define KEY_MAX 160
#define MSG_MAX 1024

struct ctx {
	struct pl_cfgfile *f;
	pl_config_report_fn *report;
	void *ud;
	unsigned errors;
	bool oom;
	bool protocols_bad;		/* already reported: no follow-up errors */
};

/* ---- reporting ---------------------------------------------------------- */

/* Also how pl_cfgfile reports (ud is the ctx). */
static void emit(void *ud, const char *msg)
{
	struct ctx *c = ud;

	if (c->report)
		c->report(c->ud, msg);
	else
		pl_log(LOG_ERR, "%s", msg);
}

static void report(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
	char where[PATH_MAX + 16], text[MSG_MAX], msg[sizeof where + sizeof text + 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	pl_cfgfile_where(c->f, s, where, sizeof where);
	snprintf(msg, sizeof msg, "%s: %s", where, text);
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
		if (!pl_cfgfile_int_fits(s, lit, sizeof lit)) {
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

/*
 * A url without {job} is valid: some operators want one flat namespace on
 * purpose.  But item names are only unique within a job, so with such a url
 * two jobs with an item of the same name silently overwrite each other's
 * outputs: say so at every load (-t, start, reload), at the url's line.  A warning,
 * not an error: pl_log, not the report callback, which counts errors.
 */
static void warn_no_job(struct ctx *c, const struct pl_config *cfg)
{
	const config_setting_t *up = config_setting_get_member(pl_cfgfile_root(c->f), "upload");
	const config_setting_t *u = up ? config_setting_get_member(up, "url") : NULL;
	char where[PATH_MAX + 16];

	if (!u || pl_template_has(cfg->upload.url, "job"))
		return;
	pl_cfgfile_where(c->f, u, where, sizeof where);
	pl_log(LOG_WARNING, "%s: upload.url has no {job}: outputs of different jobs with "
	       "the same item name overwrite each other", where);
}

int pl_config_load(const char *path, pl_config_report_fn *report_fn, void *ud,
		   struct pl_config **out)
{
	struct ctx c = { .report = report_fn, .ud = ud };
	struct pl_config *cfg = NULL;
	int r;

	*out = NULL;
	r = pl_cfgfile_open(path, emit, &c, &c.f);
	if (r < 0)
		goto out;
	cfg = calloc(1, sizeof *cfg);
	if (!cfg || (r = defaults(cfg)) < 0 || !(cfg->path = strdup(path))) {
		r = -ENOMEM;
		goto out;
	}
	load_root(&c, pl_cfgfile_root(c.f), cfg);
	r = c.oom ? -ENOMEM : c.errors ? -EINVAL : 0;
	if (r == 0)
		warn_no_job(&c, cfg);
out:
	pl_cfgfile_close(c.f);
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

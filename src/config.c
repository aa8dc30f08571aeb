/*
 * config.c — see config.h.  Loads pipeline.conf and validates it whole;
 * cfgfile.c gets the file parsed by libconfig 1.5 (and works around that
 * version's pitfalls), this file says what the settings mean.
 *
 * libconfig only parses: unknown names are not errors to it, and it has no
 * notion of ranges.  So every group is walked member by member, in source
 * order, against the table of settings, one row each (see "the settings
 * table"): an unknown name, a wrong type or a value out of range is
 * reported at the member's own FILE:LINE and the walk goes on, so that
 * `pipelined -t` lists every mistake at once.  Requirements that span
 * settings (file_root with "file", {variant} with several variants, the s3
 * group with s3://) are checked after the walk, at the line of the
 * enclosing group.  The same rows give the defaults, pl_config_free and
 * pl_config_restart_differs, so none of them lists the settings again.
 *
 * Its parts share config_int.h: confget.c reports a mistake and reads a
 * value of a type for every reader; confvariant.c is what a variant of
 * resize.variants is (its rows, its name rule, the list, the formats);
 * confservices.c reads the stream and metrics groups.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "cfgfile.h"
#include "config.h"
#include "config_int.h"
#include "log.h"
#include "sysdirs.h"
#include "template.h"

/* The rows of settings[] (config_int.h has what a row is). */
#define CONF(f)		FIELD(struct pl_config, f)
#define GROUP		.type = T_GROUP
#define ABOVE(l, h)	.lo = (l), .hi = (h), .lo_excluded = true	/* >l..h */


/* ---- readers and rules of particular settings --------------------------- */

/* "adaptive" only where the row's default is (the I/O stages); it starts
 * at the row's default width. */
static void workers(struct ctx *c, const config_setting_t *s, const char *k,
		    struct pl_stage_conf *st, const struct setting *row)
{
	bool adaptive_ok = row->def_str && strcmp(row->def_str, "adaptive") == 0;
	long long v, lo = row->lo, hi = row->hi;

	if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    strcmp(config_setting_get_string(s), "auto") == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		st->workers = (unsigned)(n < lo ? lo : n > hi ? hi : n);
		st->workers_auto = true;
		st->workers_adaptive = false;
		return;
	}
	if (adaptive_ok && config_setting_type(s) == CONFIG_TYPE_STRING &&
	    strcmp(config_setting_get_string(s), "adaptive") == 0) {
		st->workers = (unsigned)row->def;
		st->workers_auto = false;
		st->workers_adaptive = true;
		return;
	}
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		pl_config_report(c, s, adaptive_ok ? "%s: expected an integer, \"auto\" or \"adaptive\""
						   : "%s: expected an integer or \"auto\"", k);
		return;
	}
	if (pl_config_get_int(c, s, k, lo, hi, &v)) {
		st->workers = (unsigned)v;
		st->workers_auto = false;
		st->workers_adaptive = false;
	}
}

static void log_level(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	const char *v = pl_config_get_str(c, s, k);
	int l = v ? pl_log_level_from_name(v) : -1;

	if (!v)
		return;
	/* emerg..crit would hide the daemon's own errors */
	if (l < LOG_ERR || l > LOG_DEBUG) {
		pl_config_report(c, s, "%s: \"%s\" is not one of err, warning, notice, info, debug", k, v);
		return;
	}
	*(int *)dst = l;
}

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
		pl_config_report(c, s, "%s: expected a list of strings [ \"http\", … ]", k);
		c->protocols_bad = true;
		return;
	}
	n = config_setting_length(s);
	if (n == 0) {
		pl_config_report(c, s, "%s: must name at least one protocol", k);
		c->protocols_bad = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		int bit;

		if (!pl_config_get_choice(c, e, k, names, &bit)) {
			ok = false;
		} else if (bits & (unsigned)bit) {
			pl_config_report(c, e, "%s: \"%s\" is listed twice", k, config_setting_get_string(e));
			ok = false;
		} else {
			bits |= (unsigned)bit;
		}
	}
	if (ok)
		*(unsigned *)dst = bits;
	c->protocols_bad = !ok;
}

/* file: reads local files; only ever below an explicit root.  Not checked
 * against a protocols value already reported as wrong. */
static void download_rules(struct ctx *c, const config_setting_t *g, const char *k)
{
	const config_setting_t *root = config_setting_get_member(g, "file_root");
	const struct pl_config *cfg = c->cfg;

	if (c->protocols_bad)
		return;
	if ((cfg->download.protocols & PL_PROTO_FILE) && !*cfg->download.file_root)
		pl_config_report(c, root ? root : g,
				 "%s.file_root: required when protocols include \"file\"", k);
	else if (!(cfg->download.protocols & PL_PROTO_FILE) && *cfg->download.file_root)
		pl_config_report(c, root, "%s.file_root: set, but protocols do not include \"file\"", k);
}

static void url(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	const char *v = pl_config_get_str(c, s, k), *why;

	if (!v)
		return;
	if (pl_template_check(v, &why) < 0) {
		pl_config_report(c, s, "%s: %s", k, why);
		return;
	}
	pl_config_set_str(c, dst, v);
}

const char *pl_config_s3_endpoint_invalid(const char *v)
{
	const char *host;

	v = v ? v : "";
	host = strncmp(v, "https://", 8) == 0 ? v + 8 : strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
	if (!host || !*host || *host == '/' || strpbrk(v, " \t\r\n"))
		return "is not an http:// or https:// URL";
	return NULL;
}

const char *pl_config_s3_region_invalid(const char *v)
{
	if (!v || !*v || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v))
		return "is not a region name (lower-case letters, digits, '-')";
	return NULL;
}

static void s3_endpoint(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	pl_config_read_checked(c, s, k, dst, pl_config_s3_endpoint_invalid);
}

static void s3_region(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	pl_config_read_checked(c, s, k, dst, pl_config_s3_region_invalid);
}

/* ---- where systemd puts things (sysdirs.c) ------------------------------ */

/* A credential file: an absolute path, or the bare name of a credential
 * the unit passes in (pl_sysdirs_credential). */
static void credential_in(struct ctx *c, const config_setting_t *s, const char *k, void *dst,
			  bool empty_ok)
{
	const char *v = pl_config_get_str(c, s, k);
	char dir[PATH_MAX], path[PATH_MAX];

	if (!v)
		return;
	if (!*v && !empty_ok) {
		pl_config_report(c, s, "%s: must not be empty", k);
		return;
	}
	if (!*v || v[0] == '/') {
		pl_config_set_str(c, dst, v);
		return;
	}
	switch (pl_sysdirs_credential(v, path, sizeof path)) {
	case 0:
		pl_config_set_str(c, dst, path);
		break;
	case -EINVAL:
		pl_config_report(c, s, "%s: \"%s\" is neither an absolute path nor a credential name", k, v);
		break;
	case -ENOENT:
		pl_config_report(c, s, "%s: \"%s\" is not an absolute path, and $CREDENTIALS_DIRECTORY "
				       "is not set (LoadCredential= in the unit sets it)", k, v);
		break;
	default:	/* -ENAMETOOLONG: say what would not fit */
		dir[0] = '\0';
		pl_sysdirs_env("CREDENTIALS_DIRECTORY", dir, sizeof dir);
		pl_config_report(c, s, "%s: \"%s/%s\" is too long", k, dir, v);
		break;
	}
}

static void credential(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	credential_in(c, s, k, dst, false);
}

/* The stream's: "" is none. */
static void credential_opt(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	credential_in(c, s, k, dst, true);
}

/* ---- the settings ------------------------------------------------------- */

/* In the order of man/pipeline.conf.5; a group's row comes before its
 * members'.  Without a default a number is 0, a bool false, a string "". */
static const struct setting settings[] = {
	{ "spool",     CONF(spool),     .def_str = "/var/lib/pipelined/spool" },
	{ "runtime",   CONF(runtime),   .def_str = "/run/pipelined" },
	{ "log_level", CONF(log_level), .read = log_level, .def = LOG_INFO, .live = true },

	{ "download",                 GROUP, .check = download_rules },
	{ "download.workers",         CONF(download.stage), RANGE(1, 256), .def = 3,
				      .def_str = "adaptive", .live = true },
	{ "download.workers_max",     CONF(download.stage.workers_max), RANGE(1, 256), .def = 16,
				      .live = true },
	{ "download.queue",           CONF(download.stage.queue), RANGE(1, 65536), .def = 16 },
	{ "download.connect_timeout", CONF(download.connect_timeout), ABOVE(0, 3600), .def = 10 },
	{ "download.timeout",         CONF(download.timeout), ABOVE(0, 86400), .def = 60 },
	{ "download.low_speed_limit", CONF(download.low_speed_limit), RANGE(0, 1LL << 31),
				      .def = 1024 },
	{ "download.low_speed_time",  CONF(download.low_speed_time), ABOVE(0, 3600), .def = 10 },
	{ "download.max_bytes",       CONF(download.max_bytes), RANGE(1, 1LL << 40),
				      .def = 52428800 },
	{ "download.retries",         CONF(download.retries), RANGE(0, 20), .def = 3 },
	{ "download.backoff",         CONF(download.backoff), RANGE(0, 3600), .def = 0.5 },
	{ "download.per_host",        CONF(download.per_host), RANGE(1, 1024), .def = 32 },
	{ "download.protocols",       CONF(download.protocols), .read = protocols,
				      .def = PL_PROTO_HTTP | PL_PROTO_HTTPS },
	{ "download.file_root",       CONF(download.file_root), .empty_ok = true },
	{ "download.allow_private",   CONF(download.allow_private) },

	{ "resize",                   GROUP },
	{ "resize.workers",           CONF(resize.stage), RANGE(1, 256), .def = 4, .live = true },
	{ "resize.queue",             CONF(resize.stage.queue), RANGE(1, 65536), .def = 16 },
	{ "resize.max_pixels",        CONF(resize.max_pixels), RANGE(1, 10000000000LL),
				      .def = 50000000 },
	{ "resize.variants",          CONF(resize.variants), .read = pl_config_variants },

	{ "upload",                   GROUP },
	{ "upload.workers",           CONF(upload.stage), RANGE(1, 256), .def = 5,
				      .def_str = "adaptive", .live = true },
	{ "upload.workers_max",       CONF(upload.stage.workers_max), RANGE(1, 256), .def = 32,
				      .live = true },
	{ "upload.queue",             CONF(upload.stage.queue), RANGE(1, 65536), .def = 16 },
	/* {job}: item names are unique within a job only, so without it two
	 * jobs with an item "small" would write the same file */
	{ "upload.url",               CONF(upload.url), .read = url,
				      .def_str = "file:///var/lib/pipelined/out/{job}/{name}-{variant}.{ext}" },
	{ "upload.retries",           CONF(upload.retries), RANGE(0, 20), .def = 3 },
	{ "upload.backoff",           CONF(upload.backoff), RANGE(0, 3600), .def = 0.5 },
	{ "upload.connect_timeout",   CONF(upload.connect_timeout), ABOVE(0, 3600), .def = 10 },
	{ "upload.timeout",           CONF(upload.timeout), ABOVE(0, 86400), .def = 60 },
	{ "upload.s3",                GROUP },
	{ "upload.s3.endpoint",       CONF(upload.s3.endpoint), .read = s3_endpoint },
	{ "upload.s3.region",         CONF(upload.s3.region), .read = s3_region,
				      .def_str = "us-east-1" },
	{ "upload.s3.credentials",    CONF(upload.s3.credentials), .read = credential },

	{ "stream",                   GROUP, .check = pl_config_stream_rules },
	{ "stream.servers",           CONF(stream.servers), .read = pl_config_servers, .required = true },
	{ "stream.node",              CONF(stream.node), .read = pl_config_token },
	{ "stream.stream",            CONF(stream.stream), .read = pl_config_token, .def_str = "PIPELINED" },
	{ "stream.subject",           CONF(stream.subject), .read = pl_config_subject, .def_str = "pipelined" },
	{ "stream.consumer",          CONF(stream.consumer), .read = pl_config_token, .def_str = "pipelined" },
	/* leases are renewed from the 1 s tick: below 2 s one could lapse */
	{ "stream.ack_wait",          CONF(stream.ack_wait), RANGE(2, 3600), .def = 30 },
	{ "stream.max_deliver",       CONF(stream.max_deliver), RANGE(2, 1000), .def = 20 },
	{ "stream.max_ack_pending",   CONF(stream.max_ack_pending), RANGE(1, 1000000), .def = 1000 },
	{ "stream.replicas",          CONF(stream.replicas), RANGE(1, 5), .def = 1 },
	{ "stream.credentials",       CONF(stream.credentials), .read = credential_opt },
	{ "stream.tls_ca",            CONF(stream.tls_ca), .read = credential_opt },
	{ "stream.tls_cert",          CONF(stream.tls_cert), .read = credential_opt },
	{ "stream.tls_key",           CONF(stream.tls_key), .read = credential_opt },

	{ "metrics",                  GROUP, .check = pl_config_metrics_rules },
	{ "metrics.listen",           CONF(metrics.listen), .read = pl_config_listen_address },
	{ "metrics.connections",      CONF(metrics.connections), RANGE(1, 1024), .def = 16 },
	{ "metrics.timeout",          CONF(metrics.timeout), ABOVE(0, 3600), .def = 10 },
};

/* ---- what the rows give ------------------------------------------------- */

static const struct setting *find(const struct setting *rows, size_t nrows, const char *path)
{
	for (size_t i = 0; i < nrows; i++)
		if (strcmp(rows[i].path, path) == 0)
			return &rows[i];
	return NULL;
}

/* The last part of path when it is a setting directly in the group rel
 * ("" the top), else NULL. */
static const char *child(const char *path, const char *rel)
{
	size_t n = strlen(rel);

	if (n) {
		if (strncmp(path, rel, n) != 0 || path[n] != '.')
			return NULL;
		path += n + 1;
	}
	return strchr(path, '.') ? NULL : path;
}

static void store_int(enum type t, void *field, long long v)
{
	switch (t) {
	case T_INT:  *(int *)field = (int)v; break;
	case T_LONG: *(long *)field = (long)v; break;
	case T_UINT: *(unsigned *)field = (unsigned)v; break;
	default: break;
	}
}

static long long load_int(enum type t, const void *field)
{
	switch (t) {
	case T_INT:  return *(const int *)field;
	case T_LONG: return *(const long *)field;
	case T_UINT: return *(const unsigned *)field;
	default: return 0;
	}
}

/* s, found as row (rk its path from the table's top, k as shown). */
static void read_setting(struct ctx *c, const struct setting *row, const config_setting_t *s,
			 const char *k, const char *rk, const struct setting *rows,
			 size_t nrows, void *base)
{
	void *field = (char *)base + row->off;
	const char *str;
	long long i;
	double d;
	int ch;

	if (row->read) {
		row->read(c, s, k, field);
		return;
	}
	switch (row->type) {
	case T_GROUP:
		if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
			pl_config_report(c, s, "%s: expected a group { … }", k);
			return;
		}
		pl_config_walk(c, s, k, rk, rows, nrows, base);
		if (row->check)
			row->check(c, s, k);
		break;
	case T_INT:
	case T_LONG:
	case T_UINT:
		if (row->choices) {
			if (pl_config_get_choice(c, s, k, row->choices, &ch))
				store_int(row->type, field, ch);
		} else if (pl_config_get_int(c, s, k, row->lo, row->hi, &i)) {
			store_int(row->type, field, i);
		}
		break;
	case T_DOUBLE:
		if (pl_config_get_time(c, s, k, row->lo_excluded, (double)row->lo, (double)row->hi, &d))
			*(double *)field = d;
		break;
	case T_BOOL:
		if (config_setting_type(s) == CONFIG_TYPE_BOOL)
			*(bool *)field = config_setting_get_bool(s);
		else
			pl_config_report(c, s, "%s: expected true or false", k);
		break;
	case T_STR:
		if ((str = pl_config_get_path(c, s, k, row->empty_ok)))
			pl_config_set_str(c, field, str);
		break;
	case T_STAGE:
		workers(c, s, k, field, row);
		break;
	case T_NAME:
	case T_VARIANTS:
	case T_LIST:
		break;	/* always by .read */
	}
}

/* Every member of the group g, in source order, against the rows below
 * rel; then the required ones it lacks.  k is how g is shown. */
void pl_config_walk(struct ctx *c, const config_setting_t *g, const char *k, const char *rel,
		    const struct setting *rows, size_t nrows, void *base)
{
	char sk[KEY_MAX], rk[KEY_MAX];

	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct setting *row = find(rows, nrows, pl_config_key(rk, rel, name));

		pl_config_key(sk, k, name);
		if (!row)
			pl_config_report(c, s, "unknown setting '%s'", sk);
		else
			read_setting(c, row, s, sk, rk, rows, nrows, base);
	}
	for (size_t j = 0; j < nrows; j++) {
		const char *name = child(rows[j].path, rel);

		if (rows[j].required && name && !config_setting_get_member(g, name))
			pl_config_report(c, g, "%s.%s: required setting is missing", k, name);
	}
}

/* Into a zeroed base.  0 or -ENOMEM (what was set is freed by free_fields). */
int pl_config_set_defaults(const struct setting *rows, size_t nrows, void *base)
{
	for (size_t i = 0; i < nrows; i++) {
		const struct setting *row = &rows[i];
		void *field = (char *)base + row->off;
		const char *str = row->def_str ? row->def_str : "";

		switch (row->type) {
		case T_INT:
		case T_LONG:
		case T_UINT:
			store_int(row->type, field, (long long)row->def);
			break;
		case T_DOUBLE:
			*(double *)field = row->def;
			break;
		case T_BOOL:
			*(bool *)field = row->def != 0;
			break;
		case T_STR:
			if (!(*(char **)field = strdup(str)))
				return -ENOMEM;
			break;
		case T_NAME:
			snprintf(field, PL_VARIANT_NAME_MAX, "%s", str);
			break;
		case T_STAGE:
			((struct pl_stage_conf *)field)->workers = (unsigned)row->def;
			((struct pl_stage_conf *)field)->workers_auto = false;
			((struct pl_stage_conf *)field)->workers_adaptive =
				row->def_str && strcmp(row->def_str, "adaptive") == 0;
			break;
		case T_VARIANTS:	/* only in struct pl_config */
			if (pl_config_default_variants(base) < 0)
				return -ENOMEM;
			break;
		case T_GROUP:
		case T_LIST:
			break;		/* nothing, or empty: base is zeroed */
		}
	}
	return 0;
}

void pl_config_free_fields(const struct setting *rows, size_t nrows, void *base)
{
	for (size_t i = 0; i < nrows; i++) {
		void *field = (char *)base + rows[i].off;

		if (rows[i].type == T_STR)
			free(*(char **)field);
		else if (rows[i].type == T_VARIANTS)
			pl_config_free_variants(base);
		else if (rows[i].type == T_LIST)
			pl_config_free_list(field);
	}
}

static bool str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

/* Do a and b differ in a setting that is not live? */
bool pl_config_differs(const struct setting *rows, size_t nrows, const void *a, const void *b)
{
	for (size_t i = 0; i < nrows; i++) {
		const struct setting *row = &rows[i];
		const void *fa = (const char *)a + row->off, *fb = (const char *)b + row->off;
		bool d = false;

		if (row->live)
			continue;
		switch (row->type) {
		case T_GROUP:
			break;
		case T_INT:
		case T_LONG:
		case T_UINT:
			d = load_int(row->type, fa) != load_int(row->type, fb);
			break;
		case T_DOUBLE:
			d = *(const double *)fa != *(const double *)fb;
			break;
		case T_BOOL:
			d = *(const bool *)fa != *(const bool *)fb;
			break;
		case T_STR:
			d = str_differs(*(char *const *)fa, *(char *const *)fb);
			break;
		case T_NAME:
			d = strcmp(fa, fb) != 0;
			break;
		case T_STAGE:
			d = ((const struct pl_stage_conf *)fa)->workers !=
			    ((const struct pl_stage_conf *)fb)->workers ||
			    ((const struct pl_stage_conf *)fa)->workers_auto !=
			    ((const struct pl_stage_conf *)fb)->workers_auto ||
			    ((const struct pl_stage_conf *)fa)->workers_adaptive !=
			    ((const struct pl_stage_conf *)fb)->workers_adaptive;
			break;
		case T_VARIANTS:	/* only in struct pl_config */
			d = pl_config_variants_differ(a, b);
			break;
		case T_LIST:
			d = pl_config_lists_differ(fa, fb);
			break;
		}
		if (d)
			return true;
	}
	return false;
}

/* ---- the whole ---------------------------------------------------------- */

/* What only makes sense once the whole upload group (and resize) is known:
 * run after the whole walk, wherever the groups stand in the file. */
static void upload_rules(struct ctx *c, const config_setting_t *g, const char *k)
{
	const struct pl_config *cfg = c->cfg;
	const config_setting_t *u = config_setting_get_member(g, "url");
	const config_setting_t *s3 = config_setting_get_member(g, "s3");
	/* the url as written, even when rejected above: the s3 rules follow
	 * the scheme the operator meant */
	const char *uv = u && config_setting_type(u) == CONFIG_TYPE_STRING ?
			 config_setting_get_string(u) : cfg->upload.url;
	bool is_s3 = strncmp(uv, "s3://", 5) == 0;

	if (u && cfg->resize.nvariants > 1 && !pl_template_has(cfg->upload.url, "variant"))
		pl_config_report(c, u, "%s.url: needs {variant}: there are %zu variants, "
				       "which would write the same key", k, cfg->resize.nvariants);
	if (is_s3 && !s3) {
		pl_config_report(c, g, "%s.s3: required with an s3:// url", k);
	} else if (is_s3 && config_setting_type(s3) == CONFIG_TYPE_GROUP) {
		if (!config_setting_get_member(s3, "endpoint"))
			pl_config_report(c, s3, "%s.s3.endpoint: required with an s3:// url", k);
		if (!config_setting_get_member(s3, "credentials"))
			pl_config_report(c, s3, "%s.s3.credentials: required with an s3:// url", k);
	} else if (!is_s3 && s3) {
		pl_config_report(c, s3, "%s.s3: only used with an s3:// url", k);
	}
}

/*
 * The directories a setting does not give: explicit setting > the
 * directory systemd passes in the environment > the built-in default
 * (pipeline.conf(5), "Top level").  $STATE_DIRECTORY holds spool/ and the
 * default local upload target out/, as /var/lib/pipelined does.
 */
static void env_defaults(struct ctx *c, const config_setting_t *root)
{
	const config_setting_t *up = config_setting_get_member(root, "upload");
	char dir[PATH_MAX], v[PATH_MAX + 64];

	if (!config_setting_get_member(root, "runtime") &&
	    pl_sysdirs_env("RUNTIME_DIRECTORY", dir, sizeof dir) == 0)
		pl_config_set_str(c, &c->cfg->runtime, dir);
	if (pl_sysdirs_env("STATE_DIRECTORY", dir, sizeof dir) < 0)
		return;
	if (!config_setting_get_member(root, "spool")) {
		snprintf(v, sizeof v, "%s/spool", dir);
		pl_config_set_str(c, &c->cfg->spool, v);
	}
	/* a path with template or URL syntax in it keeps the built-in url */
	if ((!up || !config_setting_get_member(up, "url")) && !strpbrk(dir, "{}%?# ")) {
		snprintf(v, sizeof v, "file://%s/out/{job}/{name}-{variant}.{ext}", dir);
		pl_config_set_str(c, &c->cfg->upload.url, v);
	}
}

static void load_root(struct ctx *c)
{
	const config_setting_t *root = pl_cfgfile_root(c->f);
	const config_setting_t *up = config_setting_get_member(root, "upload");

	pl_config_walk(c, root, "", "", settings, NROWS(settings), c->cfg);
	env_defaults(c, root);
	if (up && config_setting_type(up) == CONFIG_TYPE_GROUP)
		upload_rules(c, up, "upload");
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
	char full[PATH_MAX];
	int r;

	*out = NULL;
	/* under systemd, a relative -c names a file in the configuration
	 * directory */
	if ((r = pl_sysdirs_config_file(path, full, sizeof full, &path)) < 0)
		return r;
	r = pl_cfgfile_open(path, pl_config_emit, &c, &c.f);
	if (r < 0)
		goto out;
	cfg = calloc(1, sizeof *cfg);
	c.cfg = cfg;
	if (!cfg || (r = pl_config_set_defaults(settings, NROWS(settings), cfg)) < 0 ||
	    !(cfg->path = strdup(path))) {
		r = -ENOMEM;
		goto out;
	}
	load_root(&c);
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
	pl_config_free_fields(settings, NROWS(settings), cfg);
	free(cfg->path);
	free(cfg);
}

bool pl_config_restart_differs(const struct pl_config *a, const struct pl_config *b)
{
	return pl_config_differs(settings, NROWS(settings), a, b);
}

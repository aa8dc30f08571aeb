/*
 * confvariant.c — a variant of resize.variants: its members' rows, its
 * name rule, the list read as a whole, and the format names and types
 * (pl_config_format_ext, pl_config_format_mime).
 *
 * How it fits: config.c's walk reads each variant against
 * variant_settings[] here, the same machinery as every other setting; this
 * file is what makes a variant a variant, so that pl_config_variant_check
 * (a variant handed over by hand, as tests and benchmarks do) and the file
 * read apply the very same rows and name rule.  Apart from config.c so
 * that the settings table reads as the settings, and a variant's rules sit
 * in one place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

#define VARIANT(f)	FIELD(struct pl_variant, f)

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
	const char *v = pl_config_get_str(c, s, k);

	if (!v)
		return;
	if (!variant_name_ok(v)) {
		pl_config_report(c, s, "%s: \"%s\" is not a name: 1..%d letters, digits, '.', '_' or '-', "
				       "not starting with '.'", k, v, PL_VARIANT_NAME_MAX - 1);
		return;
	}
	memcpy(dst, v, strlen(v) + 1);
}

/* ---- a variant ---------------------------------------------------------- */

static const struct choice fits[] = {
	{ "inside", PL_FIT_INSIDE }, { "cover", PL_FIT_COVER }, { NULL, 0 },
};
static const struct choice crops[] = {
	{ "centre", PL_CROP_CENTRE }, { "center", PL_CROP_CENTRE },
	{ "attention", PL_CROP_ATTENTION }, { NULL, 0 },
};
static const struct choice formats[] = {
	{ "jpeg", PL_FORMAT_JPEG }, { "webp", PL_FORMAT_WEBP },
	{ "png", PL_FORMAT_PNG }, { "avif", PL_FORMAT_AVIF }, { NULL, 0 },
};

/* The members of one group of resize.variants, in struct pl_variant. */
static const struct setting variant_settings[] = {
	{ "name",    VARIANT(name),    .read = variant_name, .required = true },
	{ "width",   VARIANT(width),   RANGE(1, 16384), .required = true },
	{ "height",  VARIANT(height),  RANGE(1, 16384), .required = true },
	{ "fit",     VARIANT(fit),     .choices = fits, .def = PL_FIT_INSIDE },
	{ "crop",    VARIANT(crop),    .choices = crops, .def = PL_CROP_CENTRE },
	{ "format",  VARIANT(format),  .choices = formats, .def = PL_FORMAT_JPEG },
	{ "quality", VARIANT(quality), RANGE(1, 100), .def = 80 },
};

/* A variant that did not come from a file, against the same rows: the
 * name rule, the ranges and the choices, so that a stage handed one by
 * hand (tests, benchmarks) applies no rules of its own. */
int pl_config_variant_check(const struct pl_variant *v, char *why, size_t whylen)
{
	size_t n = strnlen(v->name, sizeof v->name);

	for (size_t i = 0; i < NROWS(variant_settings); i++) {
		const struct setting *r = &variant_settings[i];
		const void *f = (const char *)v + r->off;
		long long x;
		bool ok;

		if (r->type == T_NAME) {
			if (n == sizeof v->name || !variant_name_ok(v->name))
				return snprintf(why, whylen, "variant \"%.*s\": not a name: 1..%d "
						"letters, digits, '.', '_' or '-', not starting with '.'",
						(int)n, v->name, PL_VARIANT_NAME_MAX - 1), -EINVAL;
			continue;
		}
		x = r->type == T_INT ? (long long)*(const int *)f : (long long)*(const unsigned *)f;
		ok = !r->choices && x >= r->lo && x <= r->hi;
		for (const struct choice *ch = r->choices; ch && ch->name && !ok; ch++)
			ok = ch->value == x;
		if (!ok && r->choices)
			return snprintf(why, whylen, "variant \"%.*s\": %s %lld is not one of "
					"its names", (int)n, v->name, r->path, x), -EINVAL;
		if (!ok)
			return snprintf(why, whylen, "variant \"%.*s\": %s %lld is out of range "
					"%lld..%lld", (int)n, v->name, r->path, x, r->lo, r->hi),
			       -EINVAL;
	}
	return 0;
}

/*
 * resize.variants is the one list of groups, so it is the one setting
 * written out by hand (T_VARIANTS): reading it, its default, freeing and
 * comparing it.  A generic "list of rows" type would need an element size,
 * a count field and an element table in every row, for this one use.  Each
 * variant is still read, defaulted, freed and compared through
 * variant_settings[], so a new member of a variant is one row there.
 */
void pl_config_free_variants(struct pl_config *cfg)
{
	for (size_t i = 0; i < cfg->resize.nvariants; i++)
		pl_config_free_fields(variant_settings, NROWS(variant_settings), &cfg->resize.variants[i]);
	free(cfg->resize.variants);
	cfg->resize.variants = NULL;
	cfg->resize.nvariants = 0;
}

/* The one variant of a file that lists none. */
int pl_config_default_variants(struct pl_config *cfg)
{
	struct pl_variant *v = calloc(1, sizeof *v);

	if (!v)
		return -ENOMEM;
	cfg->resize.variants = v;
	cfg->resize.nvariants = 1;
	if (pl_config_set_defaults(variant_settings, NROWS(variant_settings), v) < 0)
		return -ENOMEM;
	snprintf(v->name, sizeof v->name, "thumb");
	v->width = v->height = 256;
	return 0;
}

bool pl_config_variants_differ(const struct pl_config *a, const struct pl_config *b)
{
	if (a->resize.nvariants != b->resize.nvariants)
		return true;
	for (size_t i = 0; i < a->resize.nvariants; i++)
		if (pl_config_differs(variant_settings, NROWS(variant_settings),
				      &a->resize.variants[i], &b->resize.variants[i]))
			return true;
	return false;
}

void pl_config_variants(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	struct pl_variant *vs;
	char vk[KEY_MAX];
	int n;

	(void)dst;	/* resize.variants, with resize.nvariants: c->cfg */
	if (config_setting_type(s) != CONFIG_TYPE_LIST) {
		pl_config_report(c, s, "%s: expected a list of groups ( { name = …; … }, … )", k);
		return;
	}
	n = config_setting_length(s);
	if (n == 0) {
		pl_config_report(c, s, "%s: must hold at least one variant", k);
		return;
	}
	vs = calloc((size_t)n, sizeof *vs);
	if (!vs) {
		c->oom = true;
		return;
	}
	pl_config_free_variants(c->cfg);
	c->cfg->resize.variants = vs;
	c->cfg->resize.nvariants = (size_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);

		snprintf(vk, sizeof vk, "%s[%d]", k, i);
		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			pl_config_report(c, g, "%s: expected a group { name = …; width = …; height = …; }",
					 vk);
			continue;
		}
		if (pl_config_set_defaults(variant_settings, NROWS(variant_settings), &vs[i]) < 0) {
			c->oom = true;
			return;
		}
		pl_config_walk(c, g, vk, "", variant_settings, NROWS(variant_settings), &vs[i]);
		for (int j = 0; j < i && vs[i].name[0]; j++)
			if (strcmp(vs[i].name, vs[j].name) == 0)
				pl_config_report(c, config_setting_get_member(g, "name"),
						 "%s.name: \"%s\" is already the name of %s[%d]",
						 vk, vs[i].name, k, j);
	}
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

/*
 * template.h — output keys from upload.url.
 *
 * upload.url is a template such as "s3://bucket/thumbs/{name}-{variant}.{ext}".
 * Job data (names, job file names) ends up in paths and object keys, so the
 * expansion is where path escape is stopped: a value may not be empty, start
 * with '.', or hold '/', '\\' or control characters, and the template's own
 * text may not hold a ".." segment.  For URL targets every value is
 * percent-encoded outside RFC 3986's unreserved set; for file:// it is used
 * as is.  Pure functions: a fuzz target and the unit tests call them directly.
 */
#ifndef PL_TEMPLATE_H
#define PL_TEMPLATE_H

#include <stddef.h>

/* Placeholders: {name} {variant} {ext} {job}. */
struct pl_template_vars {
	const char *name, *variant, *ext, *job;
};

/* 0, or -EINVAL with *why (static text) for a template that cannot be used:
 * unknown scheme, unknown or unclosed placeholder, no {name}, a ".." segment,
 * a relative file:// path. */
int pl_template_check(const char *tmpl, const char **why);
/* 0, -EINVAL with *why for a value that would escape, -ENAMETOOLONG. */
int pl_template_expand(const char *tmpl, const struct pl_template_vars *v,
		       char *out, size_t outlen, const char **why);
/* Does the template contain this placeholder ("variant", …)? */
int pl_template_has(const char *tmpl, const char *placeholder);

#endif

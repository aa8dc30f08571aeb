/*
 * template.c — see template.h.  Checking and expanding share one scanner
 * (walk()) so that what -t accepts is exactly what expansion does.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "template.h"

static const char *const schemes[] = { "file://", "http://", "https://", "s3://" };

static const char *scheme_end(const char *t)
{
	for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
		if (strncmp(t, schemes[i], strlen(schemes[i])) == 0)
			return t + strlen(schemes[i]);
	return NULL;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

static int value_check(const char *v, const char **why)
{
	if (!v || !*v)
		return *why = "empty value", -EINVAL;
	if (v[0] == '.')
		return *why = "value starts with '.'", -EINVAL;
	for (const unsigned char *s = (const unsigned char *)v; *s; s++)
		if (*s == '/' || *s == '\\' || *s < 0x20 || *s == 0x7f)
			return *why = "value holds '/', '\\' or a control character", -EINVAL;
	return 0;
}

struct out {
	char *buf;
	size_t len, cap;
	bool overflow;
};

static void put(struct out *o, const char *s, size_t n, bool encode)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char enc[3] = { '%', hex[c >> 4], hex[c & 15] };
		const char *p = encode && !unreserved(c) ? enc : (const char *)&s[i];
		size_t k = encode && !unreserved(c) ? 3 : 1;

		if (o->len + k >= o->cap) {
			o->overflow = true;
			return;
		}
		memcpy(o->buf + o->len, p, k);
		o->len += k;
	}
}

/* The host (or bucket) is the operator's choice, never job data's: a
 * placeholder there would let a job file send outputs anywhere. */
static int authority_check(const char *tmpl, const char *body, const char **why)
{
	bool s3 = strncmp(tmpl, "s3://", 5) == 0;
	size_t n = strcspn(body, s3 ? "/" : "/?#");

	if (n == 0)
		return *why = s3 ? "s3:// url needs a bucket: s3://BUCKET/KEY"
				 : "url needs a host", -EINVAL;
	if (memchr(body, '{', n) || memchr(body, '}', n))
		return *why = "placeholder in the host or bucket: job data must not "
			      "choose where outputs go", -EINVAL;
	if (s3 && body[n] != '/')
		return *why = "s3:// url needs a key after the bucket: s3://BUCKET/KEY", -EINVAL;
	return 0;
}

/* Scan tmpl; with vars, expand into o.  Returns 0 or -EINVAL. */
static int walk(const char *tmpl, const struct pl_template_vars *v, struct out *o,
		unsigned *seen, const char **why)
{
	static const char *const names[] = { "name", "variant", "ext", "job" };
	const char *body = scheme_end(tmpl);
	bool encode;

	if (!body)
		return *why = "url must start with file://, http://, https:// or s3://", -EINVAL;
	if (strncmp(tmpl, "file://", 7) == 0 && body[0] != '/')
		return *why = "file:// url needs an absolute path (file:///…)", -EINVAL;
	encode = strncmp(tmpl, "file://", 7) != 0;
	if (encode) {
		int r = authority_check(tmpl, body, why);
		if (r < 0)
			return r;
	}
	if (o)
		put(o, tmpl, (size_t)(body - tmpl), false);

	for (const char *s = body; *s;) {
		if (*s == '}')
			return *why = "'}' without '{'", -EINVAL;
		if (*s != '{') {
			if ((unsigned char)*s < 0x20 || *s == 0x7f || (encode && *s == ' '))
				return *why = "url holds a control character or space", -EINVAL;
			/* a ".." path segment in the template's own text */
			if (s[0] == '.' && s[1] == '.' && (s == body || s[-1] == '/') &&
			    (s[2] == '/' || s[2] == '\0' || (encode && (s[2] == '?' || s[2] == '#'))))
				return *why = "'..' segment in url", -EINVAL;
			if (o)
				put(o, s, 1, false);
			s++;
			continue;
		}
		const char *end = strchr(s, '}');
		size_t k;
		if (!end)
			return *why = "unclosed '{'", -EINVAL;
		for (k = 0; k < 4; k++)
			if ((size_t)(end - s - 1) == strlen(names[k]) &&
			    strncmp(s + 1, names[k], strlen(names[k])) == 0)
				break;
		if (k == 4)
			return *why = "unknown placeholder (use {name} {variant} {ext} {job})", -EINVAL;
		*seen |= 1u << k;
		if (o) {
			const char *val = k == 0 ? v->name : k == 1 ? v->variant : k == 2 ? v->ext : v->job;
			int r = value_check(val, why);
			if (r < 0)
				return r;
			put(o, val, strlen(val), encode);
		}
		s = end + 1;
	}
	if (!(*seen & 1u))
		return *why = "url needs {name}, or every item would write the same key", -EINVAL;
	return 0;
}

int pl_template_check(const char *tmpl, const char **why)
{
	unsigned seen = 0;

	return walk(tmpl, NULL, NULL, &seen, why);
}

int pl_template_expand(const char *tmpl, const struct pl_template_vars *v,
		       char *out, size_t outlen, const char **why)
{
	struct out o = { out, 0, outlen, false };
	unsigned seen = 0;
	int r;

	if (outlen == 0)
		return *why = "no room", -ENAMETOOLONG;
	r = walk(tmpl, v, &o, &seen, why);
	if (r < 0)
		return r;
	if (o.overflow)
		return *why = "expanded url too long", -ENAMETOOLONG;
	out[o.len] = '\0';
	return 0;
}

int pl_template_has(const char *tmpl, const char *placeholder)
{
	char pat[32];
	size_t n = strlen(placeholder);

	if (n + 3 > sizeof pat)
		return 0;
	pat[0] = '{';
	memcpy(pat + 1, placeholder, n);
	pat[n + 1] = '}';
	pat[n + 2] = '\0';
	return strstr(tmpl, pat) != NULL;
}

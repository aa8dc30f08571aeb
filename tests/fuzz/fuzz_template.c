/*
 * fuzz_template.c — libFuzzer target for the output-key template
 * (src/template.c: pl_template_check, pl_template_expand, pl_template_has).
 *
 * The input is split at NUL bytes into the template and the four values
 * name, variant, ext, job (a missing one is NULL, as an unset value would
 * be).  The invariants are the reasons template.c exists: whatever the
 * template and the job data, a successful expansion
 *   - never holds a "/../" segment nor ends in "/..",
 *   - has exactly the template's own '/' and '\\' (no value adds a folder
 *     level, for file:// or any other scheme),
 *   - starts with the template's scheme and host text unchanged,
 * and check and expand agree: an expansion only succeeds for a template that
 * check accepts.  The output buffer is allocated to the exact size, so a
 * one-byte overrun is an ASan report, and one byte less must fail cleanly.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "template.h"

#define OUT_MAX 8192

static size_t count(const char *s, char c)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Expand into a heap buffer of exactly outlen bytes. */
static int expand_exact(const char *tmpl, const struct pl_template_vars *v, size_t outlen,
			char **out, const char **why)
{
	int r;

	*out = malloc(outlen ? outlen : 1);
	if (!*out)
		abort();
	r = pl_template_expand(tmpl, v, *out, outlen, why);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENAMETOOLONG, "expand returned %d", r);
	FUZZ_CHECK(r == 0 || (*why && **why), "error %d without a reason", r);
	return r;
}

static void check_expansion(const char *tmpl, const char *out)
{
	size_t scheme = strstr(tmpl, "://") ? (size_t)(strstr(tmpl, "://") - tmpl) + 3 : 0;

	FUZZ_CHECK(!strstr(out, "/../"), "\"%s\" -> \"%s\" holds /../", tmpl, out);
	FUZZ_CHECK(!ends_with(out, "/.."), "\"%s\" -> \"%s\" ends in /..", tmpl, out);
	FUZZ_CHECK(count(out, '/') == count(tmpl, '/'),
		   "\"%s\" -> \"%s\": a value added a '/'", tmpl, out);
	FUZZ_CHECK(count(out, '\\') == count(tmpl, '\\'),
		   "\"%s\" -> \"%s\": a value added a '\\'", tmpl, out);
	FUZZ_CHECK(strncmp(out, tmpl, scheme) == 0, "\"%s\" -> \"%s\": scheme changed", tmpl, out);
	for (const unsigned char *s = (const unsigned char *)out; *s; s++)
		FUZZ_CHECK(*s >= 0x20 && *s != 0x7f, "\"%s\": control character in output", tmpl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *field[5] = { NULL }, *p, *out = NULL, *out2 = NULL;
	struct pl_template_vars v;
	const char *why = NULL;
	int checked, r;
	size_t n = 0;

	if (size > OUT_MAX)
		return 0;
	buf = malloc(size + 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	/* NUL-separated fields: the template, then the values */
	for (p = buf; n < 5 && p <= buf + size; p += strlen(p) + 1)
		field[n++] = p;
	v = (struct pl_template_vars){ field[1], field[2], field[3], field[4] };

	checked = pl_template_check(field[0], &why);
	FUZZ_CHECK(checked == 0 || (checked == -EINVAL && why && *why), "check returned %d", checked);
	if (checked == 0)
		FUZZ_CHECK(pl_template_has(field[0], "name"), "accepted without {name}: %s", field[0]);
	(void)pl_template_has(field[0], "variant");
	(void)pl_template_has(field[0], "a-placeholder-name-longer-than-the-buffer");

	why = NULL;
	r = expand_exact(field[0], &v, OUT_MAX, &out, &why);
	if (r == 0) {
		size_t len = strlen(out);

		FUZZ_CHECK(checked == 0, "expanded a template check refuses: %s", field[0]);
		check_expansion(field[0], out);
		/* the exact size fits and gives the same text; one less does not */
		why = NULL;
		FUZZ_CHECK(expand_exact(field[0], &v, len + 1, &out2, &why) == 0, "exact size failed");
		FUZZ_CHECK(strcmp(out, out2) == 0, "different expansion at the exact size");
		free(out2);
		why = NULL;
		FUZZ_CHECK(expand_exact(field[0], &v, len, &out2, &why) == -ENAMETOOLONG,
			   "expansion fit one byte short");
		free(out2);
	}
	/* a zero-sized buffer is an error, never a write */
	why = NULL;
	FUZZ_CHECK(expand_exact(field[0], &v, 0, &out2, &why) == -ENAMETOOLONG, "outlen 0 accepted");
	free(out2);
	free(out);
	free(buf);
	return 0;
}

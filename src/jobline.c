/*
 * jobline.c — see jobline.h.
 *
 * Why it is built this way: everything here is pure (no I/O, no globals,
 * no allocation), so each function can be fuzzed and unit-tested on its
 * own, and the spool only moves bytes between files and these functions.
 * Parsing works in place on the caller's buffer: a job line is at most
 * PL_JOBLINE_MAX bytes and is read into one buffer per job, so nothing is
 * copied per line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jobline.h"
#include "nameset.h"

bool pl_jobline_space(char c)
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

bool pl_jobline_name_valid(const char *name)
{
	size_t len;

	if (!name || name[0] == '.')
		return false;
	for (len = 0; name[len]; len++)
		if (len >= PL_JOBLINE_NAME_MAX || !name_char((unsigned char)name[len]))
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

	while (pl_jobline_space(**p))
		(*p)++;
	if (!**p)
		return NULL;
	start = *p;
	while (**p && !pl_jobline_space(**p))
		(*p)++;
	if (**p)
		*(*p)++ = '\0';
	return start;
}

int pl_jobline_parse(char *buf, char **source, char **name, const char **why)
{
	char *p = buf, *src, *nm;

	*source = *name = NULL;
	*why = NULL;
	if (strlen(buf) > PL_JOBLINE_MAX)
		return *why = "line too long", -EINVAL;
	while (pl_jobline_space(*p))
		p++;
	if (!*p || *p == '#')
		return 0;
	src = next_field(&p);
	nm = next_field(&p);
	if (next_field(&p))
		return *why = "trailing text after NAME", -EINVAL;
	if (!has_scheme(src))
		return *why = "not a URL", -EINVAL;
	if (nm && !pl_jobline_name_valid(nm))
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
int pl_jobline_derive_name(const char *url, char *out, size_t outlen)
{
	const char *s, *path, *end, *seg, *p;
	size_t max, n, stop, o = 0;
	bool leading = true;

	if (outlen < sizeof "item")
		return -ENOBUFS;
	max = outlen - 1 < PL_JOBLINE_NAME_MAX ? outlen - 1 : PL_JOBLINE_NAME_MAX;
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

void pl_jobline_quote(const char *line, size_t len, char out[PL_JOBLINE_QUOTE_MAX + 1])
{
	size_t start = 0, n;

	while (start < len && pl_jobline_space(line[start]))
		start++;
	n = len - start < PL_JOBLINE_QUOTE_MAX ? len - start : PL_JOBLINE_QUOTE_MAX;
	memcpy(out, line + start, n);
	while (n > 0 && pl_jobline_space(out[n - 1]))
		n--;
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)	/* a NUL would end the string early */
		if (out[i] == '\0')
			out[i] = ' ';
}

bool pl_jobline_blank(const char *line)
{
	while (pl_jobline_space(*line))
		line++;
	return *line == '\0' || *line == '#';
}

int pl_jobline_unique_name(struct pl_nameset *names, const char *src, const char *explicit,
			   char out[PL_JOBLINE_NAME_MAX + 1], const char **why)
{
	char base[PL_JOBLINE_NAME_MAX + 1], suffix[24];
	int r;

	if (explicit) {
		r = pl_nameset_add(names, explicit);
		if (r == 0)
			*why = "duplicate NAME";
		snprintf(out, PL_JOBLINE_NAME_MAX + 1, "%s", explicit);
		return r < 0 ? r : 0;
	}
	pl_jobline_derive_name(src, base, sizeof base);
	snprintf(out, PL_JOBLINE_NAME_MAX + 1, "%s", base);
	for (unsigned long k = 2; (r = pl_nameset_add(names, out)) == 0; k++) {
		int slen = snprintf(suffix, sizeof suffix, "-%lu", k);
		int keep = (int)strlen(base);

		if (keep > PL_JOBLINE_NAME_MAX - slen)
			keep = PL_JOBLINE_NAME_MAX - slen;
		snprintf(out, PL_JOBLINE_NAME_MAX + 1, "%.*s%s", keep, base, suffix);
	}
	return r < 0 ? r : 0;
}

int pl_jobline_judge(char *buf, size_t len, bool cut, struct pl_nameset *names,
		     char **source, char name[PL_JOBLINE_NAME_MAX + 1],
		     char quote[PL_JOBLINE_QUOTE_MAX + 1], const char **why)
{
	char *explicit = NULL;
	int r;

	*source = NULL;
	*why = NULL;
	if (!cut && len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > PL_JOBLINE_MAX)
		cut = true;
	buf[len] = '\0';
	pl_jobline_quote(buf, len, quote);
	if (cut) {
		if (pl_jobline_blank(buf))
			return 0;
		*why = "line too long";
		return 1;
	}
	if (memchr(buf, '\0', len)) {
		*why = "NUL byte in line";
		return 1;
	}
	r = pl_jobline_parse(buf, source, &explicit, why);
	if (r <= 0)
		return r == 0 ? 0 : 1;
	r = pl_jobline_unique_name(names, *source, explicit, name, why);
	return r < 0 ? r : 1;
}

/*
 * fuzz_spool.c — libFuzzer target for what the spool reads and writes: the
 * job line (src/jobline.c: pl_jobline_parse, _derive_name, _name_valid,
 * _unique_name, _quote) and the result record (src/record.c:
 * pl_record_format, pl_record_parse).
 *
 * Job files come from whoever can write to the spool, so every byte
 * sequence is fair.  The input is one line (NULs end it early, as a C
 * string would).  Checked:
 *   - parse_line returns 1, 0 or -EINVAL with a reason, and what it hands
 *     out is a whitespace-free URL with a scheme and a valid NAME;
 *   - derive_name, from the parsed URL and from the raw line, at any output
 *     size, always yields a name pl_jobline_name_valid accepts, within outlen;
 *     unique_name hands out valid names, never the same one twice, and
 *     refuses an explicit name the second time;
 *   - a bad line's quote (trimmed, then NULs made spaces) is at most
 *     PL_JOBLINE_QUOTE_MAX bytes, and its record valid;
 *   - the result record built from the parse (and from the raw bytes, as a
 *     bad line's record quotes them) is one line of valid JSON in valid
 *     UTF-8, and the source and error strings decode back to the input when
 *     the input itself was valid UTF-8;
 *   - the record reader takes every record back with its line number and
 *     status, and whatever else it accepts (the raw input, say) is valid
 *     JSON too.
 * The JSON check is a small strict parser below (RFC 8259 grammar), not a
 * pattern match, so a missing escape or a stray byte cannot pass.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "item.h"
#include "jobline.h"
#include "nameset.h"
#include "record.h"

#define LINE_MAX_IN 9000	/* a little above PL_JOBLINE_MAX: the limit is fuzzed too */
#define NAME_MAX_OUT PL_JOBLINE_NAME_MAX

/* ---- UTF-8 and a strict JSON reader --------------------------------- */

/* Length of the well-formed UTF-8 sequence at s[0..n), 0 if ill-formed. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t k;
	unsigned lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (n < k || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return k;
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), k;

	for (size_t i = 0; i < n; i += k)
		if (!(k = utf8_len(p + i, n - i)))
			return false;
	return true;
}

struct json {
	const char *p, *end;
	const char *fail;	/* why it is not JSON */
};

static void ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool lit(struct json *j, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n) != 0)
		return false;
	j->p += n;
	return true;
}

static int hex4(const char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80)
		return o[0] = (char)cp, 1;
	if (cp < 0x800)
		return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
	if (cp < 0x10000)
		return o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
		       o[2] = (char)(0x80 | (cp & 0x3f)), 3;
	return o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
	       o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f)), 4;
}

/* A string; decoded into dec (room for its encoded length + 1) if given. */
static bool jstring(struct json *j, char *dec)
{
	size_t o = 0;

	if (!lit(j, "\""))
		return j->fail = "expected a string", false;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p;
		size_t k;

		if (c < 0x20)
			return j->fail = "raw control character in a string", false;
		if (c != '\\') {
			if (!(k = utf8_len((const unsigned char *)j->p, (size_t)(j->end - j->p))))
				return j->fail = "invalid UTF-8 in a string", false;
			if (dec)
				memcpy(dec + o, j->p, k);
			o += k;
			j->p += k;
			continue;
		}
		if (j->end - j->p < 2)
			return j->fail = "truncated escape", false;
		c = (unsigned char)j->p[1];
		if (c == 'u') {
			int cp = j->end - j->p >= 6 ? hex4(j->p + 2) : -1;

			if (cp < 0)
				return j->fail = "bad \\u escape", false;
			j->p += 6;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				int lo = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' ?
					 hex4(j->p + 2) : -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return j->fail = "unpaired surrogate", false;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				j->p += 6;
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				return j->fail = "unpaired surrogate", false;
			}
			if (dec)
				o += put_utf8(dec + o, (unsigned)cp);
			else
				o += 4;
			continue;
		}
		if (!strchr("\"\\/bfnrt", c) || c == 0)
			return j->fail = "bad escape", false;
		if (dec)
			dec[o] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' :
				 c == 'r' ? '\r' : c == 't' ? '\t' : (char)c;
		o++;
		j->p += 2;
	}
	if (!lit(j, "\""))
		return j->fail = "unterminated string", false;
	if (dec)
		dec[o] = '\0';
	return true;
}

static bool jnumber(struct json *j)
{
	const char *s = j->p;

	lit(j, "-");
	if (lit(j, "0")) {
	} else if (j->p < j->end && *j->p >= '1' && *j->p <= '9') {
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	} else {
		return j->fail = "bad number", false;
	}
	if (lit(j, ".")) {
		if (!(j->p < j->end && *j->p >= '0' && *j->p <= '9'))
			return j->fail = "bad fraction", false;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > s;
}

static bool jvalue(struct json *j, int depth);

static bool jarray(struct json *j, int depth)
{
	lit(j, "[");
	ws(j);
	if (lit(j, "]"))
		return true;
	do {
		ws(j);
		if (!jvalue(j, depth + 1))
			return false;
		ws(j);
	} while (lit(j, ","));
	return lit(j, "]") || (j->fail = "expected ']'", false);
}

static bool jobject(struct json *j, int depth)
{
	lit(j, "{");
	ws(j);
	if (lit(j, "}"))
		return true;
	do {
		ws(j);
		if (!jstring(j, NULL))
			return false;
		ws(j);
		if (!lit(j, ":"))
			return j->fail = "expected ':'", false;
		ws(j);
		if (!jvalue(j, depth + 1))
			return false;
		ws(j);
	} while (lit(j, ","));
	return lit(j, "}") || (j->fail = "expected '}'", false);
}

static bool jvalue(struct json *j, int depth)
{
	if (depth > 8)
		return j->fail = "too deep", false;
	if (j->p >= j->end)
		return j->fail = "missing value", false;
	switch (*j->p) {
	case '{': return jobject(j, depth);
	case '[': return jarray(j, depth);
	case '"': return jstring(j, NULL);
	case 'n': return lit(j, "null") || (j->fail = "bad literal", false);
	default:  return jnumber(j);
	}
}

/* The decoded value of the top-level member key (a string), or NULL. */
static char *member(const char *rec, const char *key)
{
	char pat[32];
	struct json j;
	const char *at;
	char *dec;

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	at = strstr(rec, pat);
	if (!at)
		return NULL;
	j = (struct json){ at + strlen(pat) - 1, rec + strlen(rec), NULL };
	dec = malloc(strlen(rec) + 1);
	if (!dec)
		abort();
	if (!jstring(&j, dec)) {
		free(dec);
		return NULL;
	}
	return dec;
}

/* One record line: valid JSON object, valid UTF-8, one '\n' at the end. */
static void check_record(const char *rec, const char *source, const char *error)
{
	size_t n = strlen(rec);
	struct json j = { rec, rec + n, NULL };
	char *dec;

	FUZZ_CHECK(n > 0 && rec[n - 1] == '\n' && !memchr(rec, '\n', n - 1),
		   "record is not one line: %s", rec);
	FUZZ_CHECK(utf8_valid(rec), "record is not valid UTF-8: %s", rec);
	FUZZ_CHECK(*rec == '{' && jobject(&j, 0), "not JSON (%s) at offset %zu: %s",
		   j.fail ? j.fail : "?", (size_t)(j.p - rec), rec);
	FUZZ_CHECK(j.p == rec + n - 1, "trailing bytes after the object: %s", rec);

	/* what a reader decodes is what was given, when it was valid text */
	if (source && utf8_valid(source)) {
		dec = member(rec, "source");
		FUZZ_CHECK(dec && strcmp(dec, source) == 0, "source did not round-trip: %s", rec);
		free(dec);
	}
	if (error && utf8_valid(error)) {
		dec = member(rec, "error");
		FUZZ_CHECK(dec && strcmp(dec, error) == 0, "error did not round-trip: %s", rec);
		free(dec);
	}
}

/* ---- the spool helpers ---------------------------------------------- */

static void derive(const char *url)
{
	static const size_t sizes[] = { 0, 4, 5, 6, 17, NAME_MAX_OUT, NAME_MAX_OUT + 1, 300 };
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		char *heap = malloc(sizes[i] ? sizes[i] : 1);
		int r;

		if (!heap)
			abort();
		r = pl_jobline_derive_name(url, heap, sizes[i]);
		if (sizes[i] < sizeof "item") {
			FUZZ_CHECK(r == -ENOBUFS, "outlen %zu accepted", sizes[i]);
		} else {
			FUZZ_CHECK(r == 0, "derive_name failed: %d", r);
			FUZZ_CHECK(strnlen(heap, sizes[i]) < sizes[i], "unterminated name");
			FUZZ_CHECK(pl_jobline_name_valid(heap), "derived an invalid name \"%s\" from %s",
				   heap, url);
		}
		free(heap);
	}
}

static void record(unsigned long line, const char *source, const char *name,
		   const char *location, bool ok, const char *error)
{
	struct pl_output outs[2] = { { .location = (char *)location }, { .location = NULL } };
	struct pl_item it = {
		.line = line, .source = (char *)source, .name = (char *)name,
		.outputs = outs, .noutputs = 2,
	};
	char *rec = pl_record_format(&it, ok, error, line * 1000ull);
	unsigned long back;
	bool back_ok;

	FUZZ_CHECK(rec, "record_format failed");
	check_record(rec, source, ok ? NULL : error);
	FUZZ_CHECK(pl_record_parse(rec, strlen(rec), &back, &back_ok) == 0 && back == line &&
		   back_ok == ok, "the reader does not take back: %s", rec);
	free(rec);
}

/* Whatever the reader takes for a record is at least valid JSON. */
static void reread(const char *raw, size_t size)
{
	struct json j = { raw, raw + size, NULL };
	unsigned long line;
	bool ok;

	if (pl_record_parse(raw, size, &line, &ok) < 0)
		return;
	if (size > 0 && raw[size - 1] == '\n')
		j.end--;
	FUZZ_CHECK(!memchr(raw, '\0', size) && utf8_valid(raw), "taken as a record: %s", raw);
	FUZZ_CHECK(*raw == '{' && jobject(&j, 0) && j.p == j.end, "taken as a record: %s", raw);
}

static bool has_ws(const char *s)
{
	return strpbrk(s, " \t\r\n\v\f") != NULL;
}

/* Three items from one source, then one with an explicit name, twice. */
static void unique(const char *source, const char *explicit)
{
	struct pl_nameset names = { 0 };
	char out[3][PL_JOBLINE_NAME_MAX + 1], again[PL_JOBLINE_NAME_MAX + 1];
	const char *why = NULL;

	for (int i = 0; i < 3; i++) {
		FUZZ_CHECK(pl_jobline_unique_name(&names, source, NULL, out[i], &why) == 0 && !why,
			   "unique_name failed for %s", source);
		FUZZ_CHECK(pl_jobline_name_valid(out[i]), "invalid unique name \"%s\"", out[i]);
		for (int k = 0; k < i; k++)
			FUZZ_CHECK(strcmp(out[i], out[k]) != 0, "name \"%s\" handed out twice", out[i]);
	}
	if (explicit) {
		pl_nameset_free(&names);
		FUZZ_CHECK(pl_jobline_unique_name(&names, source, explicit, again, &why) == 0 && !why &&
			   strcmp(again, explicit) == 0, "explicit name %s not taken", explicit);
		FUZZ_CHECK(pl_jobline_unique_name(&names, source, explicit, again, &why) == 0 && why &&
			   strcmp(why, "duplicate NAME") == 0, "explicit name %s taken twice", explicit);
	}
	pl_nameset_free(&names);
}

static void quote(const char *raw, size_t size)
{
	char q[PL_JOBLINE_QUOTE_MAX + 1];
	size_t n;

	pl_jobline_quote(raw, size, q);
	n = strlen(q);
	FUZZ_CHECK(n <= PL_JOBLINE_QUOTE_MAX, "quote of %zu bytes", n);
	record(4, q, NULL, NULL, false, "bad line");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line, *raw, *source, *name, derived[NAME_MAX_OUT + 1];
	const char *why;
	int r;

	if (size > LINE_MAX_IN)
		return 0;
	line = malloc(size + 1);
	raw = malloc(size + 1);
	if (!line || !raw)
		abort();
	memcpy(line, data, size);
	line[size] = '\0';
	memcpy(raw, line, size + 1);

	r = pl_jobline_parse(line, &source, &name, &why);
	FUZZ_CHECK(r == 1 || r == 0 || (r == -EINVAL && why && *why), "parse returned %d", r);
	if (r == 1) {
		FUZZ_CHECK(source && *source && strstr(source, "://") && !has_ws(source),
			   "bad source from %s", raw);
		FUZZ_CHECK(!name || (pl_jobline_name_valid(name) && !has_ws(name)),
			   "bad name from %s", raw);
		derive(source);
		unique(source, name);
		if (!name) {
			pl_jobline_derive_name(source, derived, sizeof derived);
			name = derived;
		}
		record(1, source, name, raw, true, NULL);
		record(2, source, name, NULL, false, raw);
	} else if (r < 0) {
		/* a bad line's record quotes the line itself */
		record(3, raw, NULL, NULL, false, why);
	}
	derive(raw);
	(void)pl_jobline_name_valid(raw);
	reread(raw, size);
	quote(raw, size);
	free(line);
	free(raw);
	return 0;
}

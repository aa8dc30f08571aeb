/*
 * record.c — see record.h.
 *
 * Why it is built this way: the writer goes through pl_strbuf_json, so any
 * bytes a job line holds come out as valid JSON.  The reader is a strict
 * recogniser of exactly that shape, not a JSON parser: resuming a job needs
 * only the line number and the status, and whatever is not a record of
 * ours (a torn write, a line some other program appended) must count as
 * nothing rather than as a recorded line.  The out-of-memory record is a
 * fixed text with two numbers, so an item is recorded even when nothing
 * can be allocated.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "item.h"
#include "record.h"
#include "strbuf.h"

char *pl_record_format(const struct pl_item *it, bool ok, const char *error,
		       unsigned long long ms)
{
	struct pl_strbuf b = { 0 };
	bool first = true;

	pl_strbuf_printf(&b, "{\"line\":%lu,\"source\":", it->line);
	pl_strbuf_json(&b, it->source);
	pl_strbuf_str(&b, ",\"name\":");
	pl_strbuf_json(&b, it->name);
	pl_strbuf_str(&b, ok ? ",\"status\":\"ok\",\"outputs\":[" :
			       ",\"status\":\"failed\",\"outputs\":[");
	for (size_t i = 0; it->outputs && i < it->noutputs; i++) {
		if (!it->outputs[i].location)
			continue;
		if (!first)
			pl_strbuf_put(&b, ",", 1);
		first = false;
		pl_strbuf_json(&b, it->outputs[i].location);
	}
	pl_strbuf_str(&b, "],\"error\":");
	pl_strbuf_json(&b, ok ? NULL : error);
	pl_strbuf_printf(&b, ",\"milliseconds\":%llu}\n", ms);
	return pl_strbuf_take(&b);
}

void pl_record_format_oom(char buf[PL_RECORD_OOM_SIZE], unsigned long line,
			  unsigned long long ms)
{
	snprintf(buf, PL_RECORD_OOM_SIZE,
		 "{\"line\":%lu,\"source\":null,\"name\":null,\"status\":\"failed\","
		 "\"outputs\":[],\"error\":\"out of memory\",\"milliseconds\":%llu}\n",
		 line, ms);
}

/* ---- the reader: a cursor over [p, end) that fails for good ------------ */

struct cursor {
	const char *p, *end;
	bool bad;
};

static bool lit(struct cursor *c, const char *s)
{
	size_t n = strlen(s);

	if (c->bad || (size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
		return !(c->bad = true);
	c->p += n;
	return true;
}

static bool peek(const struct cursor *c, char ch)
{
	return !c->bad && c->p < c->end && *c->p == ch;
}

static bool is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* A decimal number without sign, fraction or leading zero, up to max. */
static unsigned long long number(struct cursor *c, unsigned long long max)
{
	unsigned long long v = 0;
	const char *start = c->p;

	while (!c->bad && c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned d = (unsigned)(*c->p++ - '0');

		if (v > (max - d) / 10)
			c->bad = true;
		v = v * 10 + d;
	}
	if (c->p == start || (*start == '0' && c->p - start > 1))
		c->bad = true;
	return v;
}

/* A JSON string as the writer makes it: no raw control byte, well-formed
 * UTF-8, the escapes JSON defines. */
static void string(struct cursor *c)
{
	if (!lit(c, "\""))
		return;
	while (!c->bad && c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p;
		size_t n;

		if (ch == '\\') {
			if (c->end - c->p >= 2 && strchr("\"\\/bfnrt", c->p[1]) && c->p[1]) {
				c->p += 2;
			} else if (c->end - c->p >= 6 && c->p[1] == 'u' && is_hex(c->p[2]) &&
				   is_hex(c->p[3]) && is_hex(c->p[4]) && is_hex(c->p[5])) {
				c->p += 6;
			} else {
				c->bad = true;
			}
		} else if (ch < 0x20 || !(n = pl_strbuf_utf8_len(c->p, (size_t)(c->end - c->p)))) {
			c->bad = true;
		} else {
			c->p += n;
		}
	}
	lit(c, "\"");
}

static void string_or_null(struct cursor *c)
{
	if (peek(c, 'n'))
		lit(c, "null");
	else
		string(c);
}

int pl_record_parse(const char *rec, size_t len, unsigned long *line, bool *ok)
{
	struct cursor c = { rec, rec + len, false };
	unsigned long n;
	bool is_ok;

	if (len > 0 && rec[len - 1] == '\n')
		c.end--;
	lit(&c, "{\"line\":");
	n = (unsigned long)number(&c, ULONG_MAX);
	lit(&c, ",\"source\":");
	string_or_null(&c);
	lit(&c, ",\"name\":");
	string_or_null(&c);
	lit(&c, ",\"status\":\"");
	is_ok = peek(&c, 'o');
	lit(&c, is_ok ? "ok\"" : "failed\"");
	lit(&c, ",\"outputs\":[");
	if (!peek(&c, ']')) {
		string(&c);
		while (peek(&c, ','))
			lit(&c, ","), string(&c);
	}
	lit(&c, "],\"error\":");
	string_or_null(&c);
	lit(&c, ",\"milliseconds\":");
	number(&c, ULLONG_MAX);
	lit(&c, "}");
	if (c.bad || c.p != c.end)
		return -EINVAL;
	*line = n;
	*ok = is_ok;
	return 0;
}

int pl_record_read_file(int fd, void (*each)(void *arg, unsigned long line, bool ok), void *arg,
			off_t *good)
{
	char *rec = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int dfd, r = 0;

	*good = 0;
	if ((dfd = dup(fd)) < 0)
		return -errno;
	if (!(f = fdopen(dfd, "r"))) {
		r = -errno;
		close(dfd);
		return r;
	}
	if (fseeko(f, 0, SEEK_SET) < 0)
		r = -errno;
	while (r == 0 && (n = getline(&rec, &cap, f)) > 0 && rec[n - 1] == '\n') {
		unsigned long line;
		bool ok;

		*good += n;
		if (pl_record_parse(rec, (size_t)n, &line, &ok) == 0)
			each(arg, line, ok);
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	free(rec);
	fclose(f);
	return r;
}

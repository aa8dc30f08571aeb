/*
 * strbuf.c — see strbuf.h.
 *
 * Why it is built this way: the writers that use it build one line or one
 * small file at a time and check for failure once, at the end, so the
 * buffer remembers a failed allocation (oom) instead of making every append
 * return an error.  JSON quoting is the only serialisation the project
 * needs; a JSON library would bring a dependency and a second notion of
 * what an invalid byte becomes.  Here the rule is one: a byte that is not
 * part of well-formed UTF-8 is replaced, never passed on, so a reader's
 * strict decoder (python's json, a jq) never rejects our output.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* Room for n more bytes and the NUL; false (and oom set) if there is none. */
static bool reserve(struct pl_strbuf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void pl_strbuf_put(struct pl_strbuf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void pl_strbuf_str(struct pl_strbuf *b, const char *s)
{
	pl_strbuf_put(b, s, strlen(s));
}

void pl_strbuf_printf(struct pl_strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {		/* only a format the C library cannot print */
		b->oom = true;
		return;
	}
	if (!reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Each byte is checked before the next is read, so a NUL inside the
 * sequence stops it as well as n does. */
size_t pl_strbuf_utf8_len(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c, lo = 0x80, hi = 0xBF;

	if (n == 0)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (c == 0xE0)
			lo = 0xA0;
		if (c == 0xED)
			hi = 0x9F;
		return n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
		return n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
		       (s[3] & 0xC0) == 0x80 ? 4 : 0;
	}
	return 0;
}

void pl_strbuf_json(struct pl_strbuf *b, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const char *s = str, *end;

	if (!s) {
		pl_strbuf_str(b, "null");
		return;
	}
	end = s + strlen(s);
	pl_strbuf_put(b, "\"", 1);
	while (s < end) {
		unsigned char c = (unsigned char)*s;
		size_t n = pl_strbuf_utf8_len(s, (size_t)(end - s));

		if (n == 0) {
			pl_strbuf_str(b, "\\ufffd");
			s++;
		} else if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			pl_strbuf_put(b, esc, 2);
			s++;
		} else if (c < 0x20) {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			pl_strbuf_put(b, esc, 6);
			s++;
		} else {
			pl_strbuf_put(b, s, n);
			s += n;
		}
	}
	pl_strbuf_put(b, "\"", 1);
}

char *pl_strbuf_take(struct pl_strbuf *b)
{
	char *p;

	pl_strbuf_put(b, "", 0);	/* an empty buffer still gives "" */
	if (b->oom) {
		pl_strbuf_free(b);
		errno = ENOMEM;
		return NULL;
	}
	p = b->p;
	*b = (struct pl_strbuf){ 0 };
	return p;
}

void pl_strbuf_free(struct pl_strbuf *b)
{
	free(b->p);
	*b = (struct pl_strbuf){ 0 };
}

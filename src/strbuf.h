/*
 * strbuf.h — a growable string buffer, JSON string quoting and the UTF-8
 * sequence check: the one place where bytes of unknown origin (job lines,
 * URLs, server messages, file names) become text a machine or a reader can
 * trust, for the result records (record.c), status.json (status.c) and the
 * log (log.c).
 */
#ifndef PL_STRBUF_H
#define PL_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/* Start zeroed.  p is NUL-terminated once anything was put; after a failed
 * allocation oom is set and every later call does nothing, so a caller
 * checks once, at the end. */
struct pl_strbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

void pl_strbuf_put(struct pl_strbuf *b, const char *s, size_t n);
void pl_strbuf_str(struct pl_strbuf *b, const char *s);
void pl_strbuf_printf(struct pl_strbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* s as a JSON string, or null for NULL.  Whatever the bytes, the output is
 * valid JSON in valid UTF-8: each byte of an ill-formed sequence becomes
 * \ufffd, a control character \u00XX, '"' and '\' are escaped. */
void pl_strbuf_json(struct pl_strbuf *b, const char *s);
/* The string (the caller frees it), or NULL with errno ENOMEM after a
 * failed allocation; either way b is empty again. */
char *pl_strbuf_take(struct pl_strbuf *b);
void pl_strbuf_free(struct pl_strbuf *b);

/* Length (1–4) of the well-formed UTF-8 sequence at s, which has n bytes
 * left; 0 if it is ill-formed or cut short (overlong forms, surrogates and
 * code points above U+10FFFF are ill-formed). */
size_t pl_strbuf_utf8_len(const char *s, size_t n);

#endif

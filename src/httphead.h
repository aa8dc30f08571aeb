/*
 * httphead.h — the response headers of one libcurl transfer, read line by
 * line as curl hands them to the header callback: interim (1xx) and
 * redirect responses, the final one, then any chunked trailers.  A status
 * line is taken only where one can stand — the first line, or the first
 * after the blank line that ends a 1xx or a redirect — and only as "HTTP/"
 * version, spaces, exactly three digits (100..999), then a space or the
 * end.  Pure, so that tests/fuzz/fuzz_download.c can drive it; the
 * download and upload stages both read their responses with it.
 */
#ifndef PL_HTTPHEAD_H
#define PL_HTTPHEAD_H

#include <stdbool.h>
#include <stddef.h>

enum pl_httphead_line {
	PL_HTTPHEAD_STATUS,	/* a status line: a new response; status, phrase set */
	PL_HTTPHEAD_FIELD,	/* a header line of the current response */
	PL_HTTPHEAD_INTERIM,	/* blank line ending a 1xx or a redirect: a status line is next */
	PL_HTTPHEAD_FINAL,	/* blank line ending the final response's headers */
	PL_HTTPHEAD_AFTER,	/* anything after that (trailers): changes nothing */
	PL_HTTPHEAD_BAD_STATUS,	/* where a status line must stand, something else */
};

struct pl_httphead {
	unsigned char phase;	/* what the next line can be; httphead.c */
	long status;		/* 100..999 from the last status line, 0 before one */
	char phrase[64];	/* its reason phrase, printable ASCII */
	long long content_length;	/* -1: none announced */
	bool chunked;		/* Transfer-Encoding names chunked */
	bool location;		/* a non-empty Location: curl follows a 3xx */
};

void pl_httphead_init(struct pl_httphead *h);
enum pl_httphead_line pl_httphead_line(struct pl_httphead *h, const char *line, size_t n);
/* Body bytes arrived: the response was final, whatever its status. */
void pl_httphead_body(struct pl_httphead *h);
/* The final response's headers have ended (a body byte or their blank
 * line), and no bad status line came before. */
bool pl_httphead_done(const struct pl_httphead *h);

#endif

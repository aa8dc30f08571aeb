/*
 * download.h — stage 1: fetch item->source into item->data with libcurl.
 * One CURL handle per worker (kept-alive connections), an adaptive
 * per-host limit across workers (hostlimit.h), SSRF guard on every
 * connect, byte cap while streaming.
 */
#ifndef PL_DOWNLOAD_H
#define PL_DOWNLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pool.h"

struct pl_config;

/* libcurl must be initialised first (pl_http_global_init, http.h). */
int  pl_download_new(const struct pl_config *cfg, void **ctx);
void pl_download_free(void *ctx);
/* Bytes of the sources fetched so far (each once, failed attempts not
 * counted). */
uint64_t pl_download_bytes(void *ctx);
extern const struct pl_stage_ops pl_download_ops;

/*
 * The response headers of one transfer, read line by line as curl hands
 * them to the header callback: interim (1xx) and redirect responses, the
 * final one, then any chunked trailers.  A status line is taken only where
 * one can stand — the first line, or the first after the blank line that
 * ends a 1xx or a redirect — and only as "HTTP/" version, spaces, exactly
 * three digits (100..999), then a space or the end.  Pure, so that
 * tests/fuzz/fuzz_download.c can drive it.
 */
enum pl_download_line {
	PL_DL_STATUS,		/* a status line: a new response; status, phrase set */
	PL_DL_FIELD,		/* a header line of the current response */
	PL_DL_INTERIM,		/* blank line ending a 1xx or a redirect: a status line is next */
	PL_DL_FINAL,		/* blank line ending the final response's headers */
	PL_DL_AFTER,		/* anything after that (trailers): changes nothing */
	PL_DL_BAD_STATUS,	/* where a status line must stand, something else */
};

struct pl_download_head {
	unsigned char phase;	/* what the next line can be; download.c */
	long status;		/* 100..999 from the last status line, 0 before one */
	char phrase[64];	/* its reason phrase, printable ASCII */
	long long content_length;	/* -1: none announced */
	bool chunked;		/* Transfer-Encoding names chunked */
	bool location;		/* a non-empty Location: curl follows a 3xx */
};

void pl_download_head_init(struct pl_download_head *h);
enum pl_download_line pl_download_head_line(struct pl_download_head *h, const char *line,
					    size_t n);
/* Body bytes arrived: the response was final, whatever its status. */
void pl_download_head_body(struct pl_download_head *h);

#endif

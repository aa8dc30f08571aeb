/*
 * download.h — stage 1: fetch item->source into item->data with libcurl.
 * One CURL handle per worker (kept-alive connections), an adaptive
 * per-host limit across workers (hostlimit.h), SSRF guard on every
 * connect, byte cap while streaming.
 */
#ifndef PL_DOWNLOAD_H
#define PL_DOWNLOAD_H

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

#endif

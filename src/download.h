/*
 * download.h — stage 1: fetch item->source into item->data with libcurl.
 * One CURL handle per worker (kept-alive connections), per-host limit
 * across workers, SSRF guard on every connect, byte cap while streaming.
 */
#ifndef PL_DOWNLOAD_H
#define PL_DOWNLOAD_H

#include "pool.h"

struct pl_config;

/* Once, on the main thread, before any worker starts. */
int  pl_download_global_init(void);
void pl_download_global_cleanup(void);

int  pl_download_new(const struct pl_config *cfg, void **ctx);
void pl_download_free(void *ctx);
extern const struct pl_stage_ops pl_download_ops;

#endif

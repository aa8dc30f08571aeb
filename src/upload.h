/*
 * upload.h — stage 3: store every item->outputs[i] where upload.url says:
 * file:// (temp + fsync + rename), http(s):// PUT, s3:// PUT Object signed
 * with SigV4.  Sets outputs[i].location.
 */
#ifndef PL_UPLOAD_H
#define PL_UPLOAD_H

#include <stdint.h>

#include "pool.h"

struct pl_config;
struct pl_item;

int  pl_upload_new(const struct pl_config *cfg, void **ctx);
void pl_upload_free(void *ctx);
/* Bytes of the outputs stored so far (each once, retries not counted). */
uint64_t pl_upload_bytes(void *ctx);
extern const struct pl_stage_ops pl_upload_ops;

#endif

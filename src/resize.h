/*
 * resize.h — stage 2: decode item->data once and make every configured
 * variant into item->outputs[] with libvips.
 */
#ifndef PL_RESIZE_H
#define PL_RESIZE_H

#include "pool.h"

struct pl_config;

/* Once, on the main thread, before any worker starts (VIPS_INIT, cache off,
 * untrusted loaders blocked, allow-list of formats). argv0 for VIPS_INIT. */
int  pl_resize_global_init(const char *argv0);
void pl_resize_global_cleanup(void);
/* Is this output format available in this libvips build? (avif) */
int  pl_resize_format_supported(int format);

int  pl_resize_new(const struct pl_config *cfg, void **ctx);
void pl_resize_free(void *ctx);
extern const struct pl_stage_ops pl_resize_ops;

#endif

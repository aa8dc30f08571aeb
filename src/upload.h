/*
 * upload.h — stage 3: store every item->outputs[i] where upload.url says:
 * file:// (temp + fsync + rename), http(s):// PUT, s3:// PUT Object signed
 * with SigV4.  Sets outputs[i].location.
 */
#ifndef PL_UPLOAD_H
#define PL_UPLOAD_H

#include <stddef.h>

#include "pool.h"

struct pl_config;
struct pl_item;

int  pl_upload_new(const struct pl_config *cfg, void **ctx);
void pl_upload_free(void *ctx);
extern const struct pl_stage_ops pl_upload_ops;

/* Check a url template at configuration time: 0, or -EINVAL with *why. */
int  pl_upload_template_check(const char *tmpl, const char **why);
/*
 * Expand {name} {variant} {ext} {job} into out.  Values are checked so that
 * no expansion escapes the target: no "..", no "/", no control characters,
 * no leading "."; percent-encoded where the target is a URL.  0, or -EINVAL
 * with *why, or -ENAMETOOLONG.
 */
int  pl_upload_expand(const char *tmpl, const char *job, const char *name,
		      const char *variant, const char *ext,
		      char *out, size_t outlen, const char **why);

#endif

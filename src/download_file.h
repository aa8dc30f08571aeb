/*
 * download_file.h — the download stage's file:// sources: a regular file
 * below download.file_root, read whole into the item.  Used by download.c.
 */
#ifndef PL_DOWNLOAD_FILE_H
#define PL_DOWNLOAD_FILE_H

#include <stddef.h>

struct pl_item;

/*
 * Read path (the URL's path, decoded, as written) into it->data and
 * it->len.  protocols, file_root ("" when unset) and max_bytes are the
 * download settings.  0, or a negative errno with why saying what failed.
 */
int pl_download_file_fetch(const char *path, unsigned protocols, const char *file_root,
			   long max_bytes, struct pl_item *it, char *why, size_t whylen);

#endif

/*
 * cfgfile.h — a configuration file parsed by libconfig 1.5, with that
 * version's pitfalls worked around (see cfgfile.c for each and its reason):
 * config.c gives the settings their meaning, this module only gets them
 * read safely and located honestly.  Kept apart so that the settings code
 * reads as what the settings are, and so that what is owed to one libconfig
 * version sits in one place, to be dropped when that version is.
 */
#ifndef PL_CFGFILE_H
#define PL_CFGFILE_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "config.h"

/*
 * Limits on every file read (the main one and each @include'd one), checked
 * before libconfig sees it: its scanner takes time quadratic in the length
 * of a line (4 MB on one line: 6.8 s; 16 MB: 93 s), so an absurd file would
 * stall `-t`, the start and every SIGHUP.  Far above any real configuration:
 * the longest single value is an upload.url template or a path, a few KiB at
 * most (PATH_MAX is 4 KiB, an S3 key 1 KiB, most HTTP servers refuse request
 * lines over 8 KiB), and a whole variants list written on one line is about
 * 100 bytes a variant; the shipped file is 3 KiB.  At these limits a file
 * still parses in a fraction of a second.  A line's length does not count
 * its newline.
 */
#define PL_CFGFILE_LINE_MAX 65536	/* bytes on one line */
#define PL_CFGFILE_FILE_MAX 4194304	/* bytes in one file */

struct pl_cfgfile;

/* Read path and the files it includes, and parse them.  0 and *out set;
 * else every problem has gone to report as a complete line ("FILE:LINE:
 * message", or "PATH: reason") and the result is -EINVAL, -EIO, the -errno
 * of opening path, or -ENOMEM (not reported). */
int  pl_cfgfile_open(const char *path, pl_config_report_fn *report, void *ud,
		     struct pl_cfgfile **out);
void pl_cfgfile_close(struct pl_cfgfile *f);

const config_setting_t *pl_cfgfile_root(const struct pl_cfgfile *f);

/* "FILE:LINE" of s, FILE as a path an operator can open. */
void pl_cfgfile_where(const struct pl_cfgfile *f, const config_setting_t *s,
		      char *buf, size_t n);

/* Did libconfig keep the integer s as written?  If not (a literal beyond
 * 32 bits without L, of which it kept the low 32), false and lit is the
 * literal as written. */
bool pl_cfgfile_int_fits(const config_setting_t *s, char *lit, size_t litlen);

#endif

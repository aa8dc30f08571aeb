/*
 * jobline.h — what one line of a job file means.
 *
 *   SOURCE [NAME]      an item: a URL with a scheme, and optionally the
 *                      base name of its outputs
 *   # comment, blank   nothing
 *
 * The spool reads the lines; this says which are items, what each one's
 * name is, and what a bad one's record quotes.  NAME is 1 to 100 of
 * A-Z a-z 0-9 . _ -, not starting with '.'; without one, it is derived
 * from the URL's last path segment and made unique within the job.
 */
#ifndef PL_JOBLINE_H
#define PL_JOBLINE_H

#include <stdbool.h>
#include <stddef.h>

struct pl_nameset;

#define PL_JOBLINE_MAX 8192		/* longest accepted line, without "\r\n" */
#define PL_JOBLINE_NAME_MAX 100		/* longest NAME */
#define PL_JOBLINE_QUOTE_MAX 200	/* how much of a bad line its record quotes */

/* 1 and source/name set (name NULL: derive one), 0 for a blank or comment
 * line, -EINVAL with *why set for a bad one.  The out-pointers point into
 * buf, which is modified. */
int  pl_jobline_parse(char *buf, char **source, char **name, const char **why);
/* Blank or comment: for a line too long to parse, judged on what was kept. */
bool pl_jobline_blank(const char *line);
/* The white space that separates fields and makes a line blank. */
bool pl_jobline_space(char c);
/* The trimmed start of a bad line (NULs made spaces), for its record. */
void pl_jobline_quote(const char *line, size_t len, char out[PL_JOBLINE_QUOTE_MAX + 1]);

/*
 * One line of a job as the spool judges it.  buf holds the line's first len
 * bytes without its "\n" (at most PL_JOBLINE_MAX + 1 of them kept, with room
 * for a NUL after them); cut says the line had more.  A trailing "\r" is
 * dropped.  0 for nothing (blank, comment); 1 for an item, *source set and
 * its unique name in name, or for a bad line, *why set; -ENOMEM.  quote
 * gets what a bad line's record quotes.  The spool and pipelinectl both
 * call this, so a producer's check and the daemon cannot disagree.
 */
int  pl_jobline_judge(char *buf, size_t len, bool cut, struct pl_nameset *names,
		      char **source, char name[PL_JOBLINE_NAME_MAX + 1],
		      char quote[PL_JOBLINE_QUOTE_MAX + 1], const char **why);

bool pl_jobline_name_valid(const char *name);
/* A valid name from a URL's last path segment (percent-decoded, extension
 * dropped, other bytes made '_'; "item" if nothing is left) into out of
 * outlen bytes.  0, or -ENOBUFS when outlen cannot hold "item". */
int  pl_jobline_derive_name(const char *url, char *out, size_t outlen);
/*
 * The name an item gets, remembered in names: an explicit one (*why set to
 * "duplicate NAME" if the job used it already), or the derived one made
 * unique with -2, -3, …  0 or -ENOMEM.
 */
int  pl_jobline_unique_name(struct pl_nameset *names, const char *source, const char *name,
			    char out[PL_JOBLINE_NAME_MAX + 1], const char **why);

#endif

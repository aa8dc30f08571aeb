/*
 * streammsg.h — reading the stream's messages, which any producer may
 * publish (streammsg.c says why this is its own module).
 */
#ifndef PL_STREAMMSG_H
#define PL_STREAMMSG_H

#include <stdbool.h>
#include <stddef.h>

struct pl_item;

/*
 * The two parsers of what any producer may publish, apart from the
 * connection so that they can be tested and fuzzed on bytes alone.
 *
 * An item message (data, len: any bytes): NULL with it->line, ->source and
 * ->name set as a job line would set them, or why not, in buf (buflen
 * bytes).  Either way *owner and *job are set (malloc'd, the caller's to
 * free) as far as they could be read, and it->line with them, so that a
 * refused item can be failed to its owner.
 */
const char *pl_streammsg_parse_item(const char *data, size_t len, char **owner, char **job,
				    struct pl_item *it, char *buf, size_t buflen);
/* A result message: its Pipelined-Job header (NULL if it has none) and its
 * body.  NULL with *line and *ok set, or why it is not a result. */
const char *pl_streammsg_parse_result(const char *job, const char *data, size_t len,
				      unsigned long *line, bool *ok);

#endif

/*
 * log.h — one logging entry point for the whole daemon.
 *
 * Destination is chosen once by pl_log_open(): the journal (native protocol,
 * with fields) when stderr is the journal stream named by JOURNAL_STREAM;
 * stderr with <N> prefixes under a service manager otherwise; plain readable
 * lines on a terminal.  Thread-safe.  Priorities are syslog's LOG_*.
 */
#ifndef PL_LOG_H
#define PL_LOG_H

#include <stddef.h>
#include <syslog.h>

struct pl_item;

void pl_log_open(void);
void pl_log_set_level(int level);
int  pl_log_level_from_name(const char *name);	/* -1 if unknown */

void pl_log(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like pl_log, with ERRNO= (err > 0; 0 = none). */
void pl_log_errno(int prio, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* About one item: adds JOB, ITEM (line), URL, STAGE (may be NULL), ERRNO. */
void pl_log_item(int prio, const struct pl_item *it, const char *stage, int err,
		 const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/*
 * A progress bar kept on the last line of a terminal: pl_log_bar() draws
 * (or redraws) it, and every log line written while it stands clears it,
 * prints whole and draws it again below.  text is one line, without "\r"
 * or escapes; NULL or "" takes the bar away.  pl_log_bar_end() leaves the
 * last frame on a line of its own and stops redrawing it.
 */
void pl_log_bar(const char *text);
void pl_log_bar_end(void);

/* url as it may be shown (a log line, a status, a record): without the
 * "user:password@" of its authority, into out (outlen bytes). */
void pl_log_redact_url(const char *url, char *out, size_t outlen);

#define pl_debug(...) pl_log(LOG_DEBUG, __VA_ARGS__)

#endif

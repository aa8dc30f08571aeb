/*
 * log.c — where log lines go, decided once at start.
 *
 * Under systemd, stderr is usually a stream to journald; writing to it would
 * lose structure, so when JOURNAL_STREAM names our stderr (dev:inode) we use
 * the native journal protocol and attach JOB, ITEM, STAGE, URL and ERRNO as
 * fields an operator can filter on (journalctl JOB=…).  Otherwise stderr:
 * "<N>" prefixes let any service manager set the level; on a terminal a
 * human reads plain lines.  The level can change at any time (SIGUSR2,
 * reload), so it is an atomic.  What goes to stderr is escaped in one
 * place, emit(): a job file's name, a job line or a server's message can
 * hold any bytes, and one line of log must stay one line.
 *
 * --once on a terminal keeps a progress bar on the last line of stderr.
 * The bar lives here, not in the daemon, because only the writer of the
 * log lines knows when one is about to land on it: under one lock, a line
 * clears the bar's line, is written whole, and the bar is drawn again
 * below it (as apt, pip and cargo do), so no thread's line can split the
 * bar or be split by it.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "item.h"
#include "log.h"
#include "strbuf.h"

enum pl_log_sink { SINK_PLAIN, SINK_PREFIX, SINK_JOURNAL };

static enum pl_log_sink sink = SINK_PLAIN;
static atomic_int level = LOG_INFO;

#define BAR_MAX 512
/* Held for every write to stderr, so that a line and the bar never mix. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static char bar[BAR_MAX];	/* the bar standing on the last line; "" = none */

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
	[LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

static int stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void pl_log_open(void)
{
	/* sd_journal_send() succeeds silently when journald is gone, so check
	 * that its socket exists rather than trust the send's result. */
	if (stderr_is_journal() && access("/run/systemd/journal/socket", W_OK) == 0)
		sink = SINK_JOURNAL;
	else if (isatty(STDERR_FILENO))
		sink = SINK_PLAIN;
	else
		sink = SINK_PREFIX;
}

void pl_log_set_level(int l)
{
	if (l >= LOG_EMERG && l <= LOG_DEBUG)
		atomic_store(&level, l);
}

int pl_log_level_from_name(const char *name)
{
	for (int i = LOG_EMERG; i <= LOG_DEBUG; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	if (strcasecmp(name, "error") == 0)
		return LOG_ERR;
	if (strcasecmp(name, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

/* Native journal entry; fields only where they have a value. */
static int journal_send(int prio, int err, const struct pl_item *it, const char *stage,
			const char *msg)
{
	char *f[8];
	struct iovec iov[8];
	int n = 0, r;

	if (asprintf(&f[n++], "MESSAGE=%s", msg) < 0)
		return -ENOMEM;
	if (asprintf(&f[n++], "PRIORITY=%d", prio) < 0)
		n--;
	if (asprintf(&f[n++], "SYSLOG_IDENTIFIER=pipelined") < 0)
		n--;
	if (err > 0 && asprintf(&f[n++], "ERRNO=%d", err) < 0)
		n--;
	if (stage && asprintf(&f[n++], "STAGE=%s", stage) < 0)
		n--;
	if (it && it->job_name && asprintf(&f[n++], "JOB=%s", it->job_name) < 0)
		n--;
	if (it && asprintf(&f[n++], "ITEM=%lu", it->line) < 0)
		n--;
	if (it && it->source && asprintf(&f[n++], "URL=%s", it->source) < 0)
		n--;
	for (int i = 0; i < n; i++)
		iov[i] = (struct iovec){ f[i], strlen(f[i]) };
	r = sd_journal_sendv(iov, n);
	for (int i = 0; i < n; i++)
		free(f[i]);
	return r;
}

#define MSG_MAX 2048	/* a message, formatted, is cut at this */
#define CTX_MAX 1024	/* "job J item N (URL) STAGE: " */
/* A whole stderr line: each byte of context and message may take four. */
#define LINE_MAX_OUT (4 * (MSG_MAX + CTX_MAX) + 64)
#define CLEAR "\r\033[K"	/* back to the start of the bar's line and erase it */
#define HEAD (sizeof CLEAR - 1)	/* room kept before a line for CLEAR */

/*
 * s appended at out + *n, fit for one line of a log: control characters
 * (below 0x20, and 0x7f), C1 controls (U+0080 to U+009F, which some
 * terminals obey) and every byte of ill-formed UTF-8 become \xNN.  Job
 * names, job lines and servers' words end up in messages, and raw they
 * could end the line and forge the next one (with its "<N>" priority), or
 * drive the terminal that --once writes to.
 */
static void put_escaped(char *out, size_t *n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *end = s + strlen(s);

	while (s < end) {
		unsigned char c = (unsigned char)*s;
		size_t k = pl_strbuf_utf8_len(s, (size_t)(end - s));
		bool c1 = k == 2 && c == 0xC2 && (unsigned char)s[1] < 0xA0;

		if (k == 0 || c < 0x20 || c == 0x7F || c1) {
			for (size_t i = 0; i < (c1 ? 2u : 1u); i++) {
				unsigned char b = (unsigned char)*s++;

				out[(*n)++] = '\\';
				out[(*n)++] = 'x';
				out[(*n)++] = hex[b >> 4];
				out[(*n)++] = hex[b & 15];
			}
		} else {
			memcpy(out + *n, s, k);
			*n += k;
			s += k;
		}
	}
}

static void emit(int prio, int err, const struct pl_item *it, const char *stage,
		 const char *fmt, va_list ap)
{
	char msg[MSG_MAX], ctx[CTX_MAX] = "", line[HEAD + LINE_MAX_OUT + BAR_MAX + 3];
	size_t n;

	if (prio > atomic_load(&level))
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);

	/* The journal takes any bytes in a field: nothing to escape there. */
	if (sink == SINK_JOURNAL && journal_send(prio, err, it, stage, msg) >= 0)
		return;	/* else: the stderr stream still reaches journald */

	if (it)
		snprintf(ctx, sizeof ctx, "job %s item %lu (%s)%s%s: ",
			 it->job_name ? it->job_name : "?", it->line,
			 it->source ? it->source : "?", stage ? " " : "", stage ? stage : "");
	n = HEAD;
	if (sink != SINK_PLAIN)
		n += (size_t)snprintf(line + n, 64, "<%d>", prio);
	else
		n += (size_t)snprintf(line + n, 64, "pipelined: %s",
				     prio <= LOG_ERR ? "error: " : prio == LOG_WARNING ? "warning: " : "");
	put_escaped(line, &n, ctx);
	put_escaped(line, &n, msg);
	line[n++] = '\n';
	/* one write per line, so that threads' lines never interleave; over
	 * a bar: the bar's line erased, the line, and the bar again */
	pthread_mutex_lock(&out_lock);
	if (bar[0]) {
		size_t k = strlen(bar);

		memcpy(line, CLEAR, HEAD);
		memcpy(line + n, bar, k);
		memcpy(line + n + k, "\033[K", 3);
		fwrite(line, 1, n + k + 3, stderr);
	} else {
		fwrite(line + HEAD, 1, n - HEAD, stderr);
	}
	pthread_mutex_unlock(&out_lock);
}

void pl_log_bar(const char *text)
{
	pthread_mutex_lock(&out_lock);
	snprintf(bar, sizeof bar, "%s", text ? text : "");
	if (bar[0])
		fprintf(stderr, "\r%s\033[K", bar);
	else
		fputs(CLEAR, stderr);
	fflush(stderr);
	pthread_mutex_unlock(&out_lock);
}

void pl_log_bar_end(void)
{
	pthread_mutex_lock(&out_lock);
	if (bar[0]) {
		fprintf(stderr, "\r%s\033[K\n", bar);
		fflush(stderr);
		bar[0] = '\0';
	}
	pthread_mutex_unlock(&out_lock);
}

void pl_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(prio, 0, NULL, NULL, fmt, ap);
	va_end(ap);
}

void pl_log_errno(int prio, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(prio, err, NULL, NULL, fmt, ap);
	va_end(ap);
}

void pl_log_item(int prio, const struct pl_item *it, const char *stage, int err,
		 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(prio, err, it, stage, fmt, ap);
	va_end(ap);
}

void pl_log_redact_url(const char *url, char *out, size_t outlen)
{
	const char *auth = strstr(url, "://");
	const char *at, *end;

	if (!auth) {
		snprintf(out, outlen, "%s", url);
		return;
	}
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	at = memchr(auth, '@', (size_t)(end - auth));
	if (!at)
		snprintf(out, outlen, "%s", url);
	else
		snprintf(out, outlen, "%.*s%s", (int)(auth - url), url, at + 1);
}

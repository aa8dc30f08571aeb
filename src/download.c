/*
 * download.c — stage 1: fetch item->source into item->data.  See download.h.
 *
 * http(s) goes through libcurl with one easy handle per worker, set up once
 * in worker_start and never reset, so the handle's connection cache keeps
 * connections alive from one item to the next.  Every option is set there;
 * per item only the URL and the per-transfer state in struct worker change.
 *
 * The guards, and why each sits where it does:
 *   - schemes: checked on the URL before anything else, and again by curl on
 *     every redirect (CURLOPT_REDIR_PROTOCOLS_STR);
 *   - SSRF: CURLOPT_OPENSOCKETFUNCTION sees the address actually about to be
 *     connected, after DNS and after every redirect, which no check of the
 *     URL's text can;  proxies are switched off because with one the guard
 *     would only ever see the proxy;
 *   - size: counted in the write callback while streaming; Content-Length is
 *     a hint used to fail early and to preallocate, never trusted;
 *   - file://: no curl at all (its file:// follows symlinks anywhere): the
 *     path is resolved and must stay below download.file_root
 *     (download_file.c);
 *   - headers: every line curl hands over goes through
 *     pl_httphead_line (pure, fuzzed), which takes a status line only
 *     where one can stand and only with three digits.  The status decides
 *     whether the body is kept, so a line curl accepts but that parser
 *     does not fails the item instead of guessing.
 *
 * Every failure names its cause: judge() reads the exact CURLcode, curl's
 * error buffer and the transfer's own state (did a redirect happen, had
 * the headers ended), because curl gives one code to several causes — a
 * redirect to a refused scheme and a reply that is not HTTP are both
 * CURLE_UNSUPPORTED_PROTOCOL, an over-long header line is
 * CURLE_OUT_OF_MEMORY.
 *
 * Retries are not slept here: process() returns the delay and the pool
 * hands the item back when it is due (see pool.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "backoff.h"
#include "config.h"
#include "download.h"
#include "download_file.h"
#include "hostlimit.h"
#include "httphead.h"
#include "item.h"
#include "log.h"
#include "netguard.h"

#define STAGE "download"
#define MAX_REDIRS 5L
/* An error response's body is not kept; past this much we stop reading it. */
#define ERROR_BODY_MAX 65536
/* Deferral while a host is at its limit (see fetch_http). */
#define HOST_BUSY_MIN_MS 20
#define HOST_BUSY_SPREAD_MS 60

struct dl_ctx {
	/* A copy of the download settings: the stage may outlive the
	 * struct pl_config it was made from (reloads). */
	double connect_timeout, timeout, low_speed_time, backoff;
	long low_speed_limit, max_bytes;
	int retries, per_host;
	unsigned protocols;
	bool allow_private;
	char *file_root;
	char proto_str[16];	/* "http,https" as configured */

	struct pl_hostlimit *hosts;	/* per-host limits, per_host the ceiling */

	atomic_uint_fast64_t bytes;	/* sources fetched, for the metrics */
};

struct worker {
	struct dl_ctx *ctx;
	CURL *curl;
	uint64_t rng;
	char errbuf[CURL_ERROR_SIZE];
	char refused[160];	/* set by the open-socket callback */

	/* the response being received (the last one after redirects) */
	struct pl_httphead head;
	bool too_big;		/* body or Content-Length over max_bytes */
	bool cl_too_big;	/* ... announced by Content-Length */
	bool error_body_cut;	/* stopped reading a non-2xx body */
	int abort_err;		/* a callback stopped the transfer for this... */
	char abort_why[160];	/* ... reason */
	char *buf;
	size_t len, cap, discarded;
};

/* ---- small helpers ---------------------------------------------------- */

static const char *status_phrase(long code)
{
	switch (code) {
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return NULL;
	}
}

static void reset_transfer(struct worker *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = w->discarded = 0;
	pl_httphead_init(&w->head);
	w->too_big = w->cl_too_big = w->error_body_cut = false;
	w->abort_err = 0;
	w->abort_why[0] = '\0';
	w->refused[0] = '\0';
	w->errbuf[0] = '\0';
}

/* ---- curl callbacks --------------------------------------------------- */

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct worker *w = ud;
	const char *why;
	curl_socket_t fd;

	(void)purpose;
	why = pl_netguard_classify(&a->addr, a->addrlen);
	if (why && !w->ctx->allow_private) {
		char host[INET6_ADDRSTRLEN] = "?";
		const void *p = a->family == AF_INET6
			? (const void *)&((struct sockaddr_in6 *)&a->addr)->sin6_addr
			: (const void *)&((struct sockaddr_in *)&a->addr)->sin_addr;

		if (a->family == AF_INET || a->family == AF_INET6)
			inet_ntop(a->family, p, host, sizeof host);
		snprintf(w->refused, sizeof w->refused, "refused to connect to %s (%s)", host, why);
		return CURL_SOCKET_BAD;
	}
	/* Our own socket() so that it is close-on-exec: no other sockopt
	 * is needed, hence no CURLOPT_SOCKOPTFUNCTION. */
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* What a server sent, for a reason: up to the line end, printable, no
 * quotes, cut to fit. */
static void quote(char *dst, size_t len, const char *src, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < len && src[i] != '\r' && src[i] != '\n'; i++)
		dst[k++] = src[i] >= 0x20 && src[i] < 0x7f && src[i] != '"' ? src[i] : '?';
	dst[k] = '\0';
}

/* Stop the transfer from a callback, saying why (see judge). */
static size_t abort_transfer(struct worker *w, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static size_t abort_transfer(struct worker *w, int err, const char *fmt, ...)
{
	va_list ap;

	w->abort_err = err;
	va_start(ap, fmt);
	vsnprintf(w->abort_why, sizeof w->abort_why, fmt, ap);
	va_end(ap);
	return 0;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
	struct worker *w = ud;
	struct pl_httphead *h = &w->head;
	size_t n = size * nitems;
	long long cl;

	switch (pl_httphead_line(h, line, n)) {
	case PL_HTTPHEAD_BAD_STATUS: {
		char q[48];

		quote(q, sizeof q, line, n);
		return abort_transfer(w, EPROTO, "invalid HTTP status line \"%s\"", q);
	}
	case PL_HTTPHEAD_FINAL:
		/* Only a 2xx body is kept, so only its announced length
		 * matters. */
		if (h->status < 200 || h->status >= 300)
			break;
		cl = h->chunked ? -1 : h->content_length;
		if (cl > w->ctx->max_bytes) {
			w->too_big = w->cl_too_big = true;
			return 0;	/* abort before reading the body */
		}
		if (cl > 0 && (size_t)cl > w->cap) {
			char *b = realloc(w->buf, (size_t)cl);
			if (!b)
				return abort_transfer(w, ENOMEM, "out of memory for a %lld-byte body",
						      cl);
			w->buf = b;
			w->cap = (size_t)cl;
		}
		break;
	default:
		break;
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct worker *w = ud;
	size_t n = size * nmemb;

	pl_httphead_body(&w->head);
	if (w->head.status < 200 || w->head.status >= 300) {
		/* An error page is not an image: count it, drop it, and stop
		 * reading one that goes on and on. */
		w->discarded += n;
		if (w->discarded > ERROR_BODY_MAX) {
			w->error_body_cut = true;
			return 0;
		}
		return n;
	}
	if (n > (size_t)w->ctx->max_bytes - w->len) {
		w->too_big = true;
		return 0;	/* curl aborts with CURLE_WRITE_ERROR */
	}
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 16384;
		char *b;

		while (cap < w->len + n)
			cap *= 2;
		if (cap > (size_t)w->ctx->max_bytes)
			cap = (size_t)w->ctx->max_bytes;
		b = realloc(w->buf, cap);
		if (!b)
			return abort_transfer(w, ENOMEM, "out of memory for a %zu-byte body", cap);
		w->buf = b;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
	return n;
}

/* ---- worker life cycle ------------------------------------------------ */

#define SETOPT(h, o, v) do { if (curl_easy_setopt(h, o, v) != CURLE_OK) goto fail; } while (0)

static int worker_start(void *vctx, void **wstate)
{
	struct dl_ctx *c = vctx;
	struct worker *w = calloc(1, sizeof *w);
	CURL *h;

	if (!w)
		return -ENOMEM;
	w->ctx = c;
	pl_backoff_seed(&w->rng);
	pl_httphead_init(&w->head);
	h = w->curl = curl_easy_init();
	if (!h)
		goto fail;
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	if (c->proto_str[0]) {
		SETOPT(h, CURLOPT_PROTOCOLS_STR, c->proto_str);
		SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, c->proto_str);
	}
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 1L);
	SETOPT(h, CURLOPT_MAXREDIRS, MAX_REDIRS);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->connect_timeout * 1000 + 0.5));
	SETOPT(h, CURLOPT_TIMEOUT_MS, (long)(c->timeout * 1000 + 0.5));
	if (c->low_speed_limit > 0) {
		long t = (long)(c->low_speed_time + 0.999);
		SETOPT(h, CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
		SETOPT(h, CURLOPT_LOW_SPEED_TIME, t < 1 ? 1L : t);
	}
	SETOPT(h, CURLOPT_USERAGENT, "pipelined/" PL_VERSION);
	SETOPT(h, CURLOPT_PROXY, "");	/* the SSRF guard must see the real peer */
	SETOPT(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	SETOPT(h, CURLOPT_OPENSOCKETDATA, w);
	SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(h, CURLOPT_HEADERDATA, w);
	SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
	SETOPT(h, CURLOPT_WRITEDATA, w);
	SETOPT(h, CURLOPT_ERRORBUFFER, w->errbuf);
	*wstate = w;
	return 0;
fail:
	pl_log(LOG_ERR, "download: cannot set up a curl handle");
	if (w->curl)
		curl_easy_cleanup(w->curl);
	free(w);
	return -ENOMEM;
}

static void worker_stop(void *vctx, void *wstate)
{
	struct worker *w = wstate;

	(void)vctx;
	if (!w)
		return;
	reset_transfer(w);
	curl_easy_cleanup(w->curl);
	free(w);
}

/* ---- http(s) ---------------------------------------------------------- */

enum verdict { OK, FAIL, RETRY };

/*
 * Which of the three clocks ran out.  curl gives them all the same code, and
 * its message text differs between versions, so the phase is read from the
 * transfer's own timings; only the low-speed message is matched, as it has
 * been stable for a long time.
 */
static void timeout_reason(struct worker *w, char *why, size_t whylen)
{
	struct dl_ctx *c = w->ctx;
	curl_off_t total = 0, connected = 0;

	curl_easy_getinfo(w->curl, CURLINFO_TOTAL_TIME_T, &total);
	curl_easy_getinfo(w->curl, CURLINFO_CONNECT_TIME_T, &connected);
	if (strncmp(w->errbuf, "Operation too slow", 18) == 0)
		snprintf(why, whylen, "too slow: under %ld bytes/s for %.1f s",
			 c->low_speed_limit, c->low_speed_time);
	else if ((double)total >= c->timeout * 1e6 * 0.99)
		snprintf(why, whylen, "timed out after %.1f s", c->timeout);
	else if (connected == 0)
		snprintf(why, whylen, "connect timed out after %.1f s", c->connect_timeout);
	else
		snprintf(why, whylen, "timed out after %.1f s", (double)total / 1e6);
}

/* curl's own words for the failure, or the name of its code. */
static const char *detail(const struct worker *w, CURLcode res)
{
	return w->errbuf[0] ? w->errbuf : curl_easy_strerror(res);
}

/*
 * CURLE_UNSUPPORTED_PROTOCOL means a redirect to a scheme that
 * download.protocols leaves out (the first URL's scheme was checked before
 * curl saw it) only if curl did follow one there; otherwise it is curl
 * refusing the response's status line.  Then url is where it led.
 */
static bool redirected_off_list(struct worker *w, char *url, size_t urllen)
{
	long redirects = 0;
	char *eff = NULL;
	size_t k;

	if (curl_easy_getinfo(w->curl, CURLINFO_REDIRECT_COUNT, &redirects) != CURLE_OK ||
	    redirects <= 0 ||
	    curl_easy_getinfo(w->curl, CURLINFO_EFFECTIVE_URL, &eff) != CURLE_OK || !eff)
		return false;
	k = strcspn(eff, ":");
	if ((k == 4 && strncasecmp(eff, "http", 4) == 0 && (w->ctx->protocols & PL_PROTO_HTTP)) ||
	    (k == 5 && strncasecmp(eff, "https", 5) == 0 && (w->ctx->protocols & PL_PROTO_HTTPS)))
		return false;
	quote(url, urllen, eff, strlen(eff));
	return true;
}

/*
 * The failures told as a fixed prefix and curl's own words (detail()).
 * "connection failed" starts every reason for a transport failure: it is
 * what is retried, and what tests/it_faults.py counts.
 */
static const struct {
	CURLcode res;
	int err;
	enum verdict verdict;
	const char *prefix;
} told_by_curl[] = {
	/* closed before the end that Content-Length or the chunks announced */
	{ CURLE_PARTIAL_FILE, ECONNRESET, RETRY, "connection failed: body truncated, " },
	{ CURLE_SEND_ERROR, ECONNRESET, RETRY, "connection failed: " },
	{ CURLE_RECV_ERROR, ECONNRESET, RETRY, "connection failed: " },
	{ CURLE_HTTP2, ECONNRESET, RETRY, "HTTP/2 error: " },
	{ CURLE_HTTP2_STREAM, ECONNRESET, RETRY, "HTTP/2 error: " },
	{ CURLE_SSL_CONNECT_ERROR, ECONNRESET, RETRY, "TLS handshake failed: " },
	/* a header without a colon, a NUL byte, a bad Content-Length */
	{ CURLE_WEIRD_SERVER_REPLY, EPROTO, FAIL, "malformed HTTP response: " },
	{ CURLE_PEER_FAILED_VERIFICATION, EPERM, FAIL, "TLS certificate rejected: " },
};

/* Turn the transfer's outcome into a verdict and a reason. */
static enum verdict judge(struct worker *w, CURLcode res, int *err, char *why, size_t whylen)
{
	struct dl_ctx *c = w->ctx;
	long code = w->head.status;

	if (w->refused[0] && res != CURLE_OK) {
		*err = EPERM;
		snprintf(why, whylen, "%s", w->refused);
		return FAIL;
	}
	if (w->too_big) {
		*err = EFBIG;
		if (w->cl_too_big)
			snprintf(why, whylen, "Content-Length %lld exceeds max_bytes (%ld)",
				 w->head.content_length, c->max_bytes);
		else
			snprintf(why, whylen, "body exceeds max_bytes (%ld)", c->max_bytes);
		return FAIL;
	}
	if (w->abort_err && res != CURLE_OK) {
		*err = w->abort_err;
		snprintf(why, whylen, "%s", w->abort_why);
		return FAIL;
	}
	if (res == CURLE_OK || (res == CURLE_WRITE_ERROR && w->error_body_cut)) {
		const char *ph;

		curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &code);
		*err = EPROTO;
		if (code != w->head.status) {
			/* cannot happen (see parse_status, httphead.c), but if it did, the
			 * body was kept or dropped on the wrong status */
			snprintf(why, whylen, "HTTP status %ld, but the status line said %ld",
				 code, w->head.status);
			return FAIL;
		}
		if (code >= 200 && code < 300)
			return OK;
		ph = status_phrase(code);
		if (!ph)
			ph = w->head.phrase;
		snprintf(why, whylen, "HTTP %ld%s%s", code, *ph ? " " : "", ph);
		return code == 429 || code >= 500 ? RETRY : FAIL;
	}

	switch (res) {
	case CURLE_OPERATION_TIMEDOUT:
		*err = ETIMEDOUT;
		timeout_reason(w, why, whylen);
		return RETRY;
	case CURLE_COULDNT_CONNECT: {
		long os = 0;
		curl_easy_getinfo(w->curl, CURLINFO_OS_ERRNO, &os);
		*err = os > 0 ? (int)os : ECONNREFUSED;
		if (os == ECONNREFUSED || os == 0)
			snprintf(why, whylen, "connection refused");
		else
			snprintf(why, whylen, "cannot connect: %s", strerror((int)os));
		return RETRY;
	}
	case CURLE_COULDNT_RESOLVE_HOST:
		/* curl does not tell a temporary DNS failure from "no such
		 * name"; a few retries of a typo cost little. */
		*err = EHOSTUNREACH;
		snprintf(why, whylen, "cannot resolve host (%s)", detail(w, res));
		return RETRY;
	case CURLE_GOT_NOTHING:
		*err = ECONNRESET;
		snprintf(why, whylen, "connection failed: empty reply from server");
		return RETRY;
	case CURLE_RECV_ERROR:
		/* curl reports a bad chunked encoding under this code too */
		if (strstr(w->errbuf, "in chunked-encoding")) {
			/* its only allocation there is a trailer line, in a
			 * buffer with a small fixed limit */
			if (strncmp(w->errbuf, "Out of memory", 13) == 0) {
				*err = EMSGSIZE;
				snprintf(why, whylen, "chunked trailer line too long");
			} else {
				*err = EPROTO;
				snprintf(why, whylen, "malformed chunked body: %s", w->errbuf);
			}
			return FAIL;
		}
		break;	/* else a transport failure (told_by_curl) */
	case CURLE_TOO_MANY_REDIRECTS:
		*err = ELOOP;
		snprintf(why, whylen, "more than %ld redirects", MAX_REDIRS);
		return FAIL;
	case CURLE_UNSUPPORTED_PROTOCOL: {
		char url[200];

		if (redirected_off_list(w, url, sizeof url)) {
			*err = EPROTONOSUPPORT;
			snprintf(why, whylen, "redirected to a scheme not in download.protocols: %s",
				 url);
		} else if (strstr(w->errbuf, "HTTP/0.9")) {
			/* a reply without a status line: curl would call it
			 * HTTP/0.9, which it refuses by default since 7.66 */
			*err = EPROTO;
			snprintf(why, whylen, "not an HTTP response (no status line)");
		} else {
			*err = EPROTO;
			snprintf(why, whylen, "invalid HTTP status line (%s)", detail(w, res));
		}
		return FAIL;
	}
	case CURLE_OUT_OF_MEMORY: {
		long sent = 0;

		/*
		 * curl keeps each response header line in a buffer capped at
		 * CURL_MAX_HTTP_HEADER and gives this code, without a message,
		 * when a line outgrows it.  A request went out and the final
		 * headers had not ended: that was a header line, not memory.
		 */
		curl_easy_getinfo(w->curl, CURLINFO_REQUEST_SIZE, &sent);
		if (sent > 0 && !pl_httphead_done(&w->head)) {
			*err = EMSGSIZE;
			snprintf(why, whylen, "response header line longer than %d KiB",
				 CURL_MAX_HTTP_HEADER / 1024);
			return FAIL;
		}
		*err = ENOMEM;
		snprintf(why, whylen, "out of memory%s%s", w->errbuf[0] ? ": " : "", w->errbuf);
		return FAIL;
	}
	default:
		break;
	}
	for (size_t i = 0; i < sizeof told_by_curl / sizeof *told_by_curl; i++)
		if (told_by_curl[i].res == res) {
			*err = told_by_curl[i].err;
			snprintf(why, whylen, "%s%s", told_by_curl[i].prefix, detail(w, res));
			return told_by_curl[i].verdict;
		}
	*err = EIO;
	snprintf(why, whylen, "%s%s%s", curl_easy_strerror(res),
		 w->errbuf[0] ? ": " : "", w->errbuf);
	return FAIL;
}

/* Delay before the next attempt (attempt = retries so far); see backoff.h. */
static int retry_delay(struct worker *w, int attempt)
{
	curl_off_t ra = 0;

	if (curl_easy_getinfo(w->curl, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra < 0)
		ra = 0;
	return (int)pl_backoff_ms(w->ctx->backoff, attempt + 1,
				  ra > PL_BACKOFF_MAX_MS ? PL_BACKOFF_MAX_MS : (long)ra, &w->rng);
}

/*
 * The host's answer time for the per-host limit: from the request going out
 * to its first byte back, so that neither connection set-up (a new
 * connection is not queueing) nor the body's size (a big image is not a
 * busy host) reads as latency.  The whole transfer when curl has no split.
 */
static uint64_t first_byte_us(struct worker *w)
{
	curl_off_t pre = 0, start = 0, total = 0;

	curl_easy_getinfo(w->curl, CURLINFO_PRETRANSFER_TIME_T, &pre);
	curl_easy_getinfo(w->curl, CURLINFO_STARTTRANSFER_TIME_T, &start);
	if (start > pre && pre >= 0)
		return (uint64_t)(start - pre);
	curl_easy_getinfo(w->curl, CURLINFO_TOTAL_TIME_T, &total);
	return total > 0 ? (uint64_t)total : 0;
}

static int fetch_http(struct worker *w, struct pl_item *it, const char *host,
		      char *why, size_t whylen)
{
	struct dl_ctx *c = w->ctx;
	uint64_t t0 = pl_now_us();
	enum verdict v;
	CURLcode res;
	int err = 0, r;

	/*
	 * When a host is at its limit, return a short retry delay rather than
	 * block for a slot: a blocked worker would sit idle while items for
	 * other hosts wait behind it in the queue, and it could not be retired
	 * by a width change.  The pool's deferral frees the worker at once;
	 * the cost is an occasional re-check every few tens of ms, which is
	 * nothing next to a transfer.  The deferral does not count as an
	 * attempt.
	 */
	r = pl_hostlimit_acquire(c->hosts, host, t0);
	if (r == -EBUSY) {
		int ms = HOST_BUSY_MIN_MS + (int)(pl_backoff_random(&w->rng) % HOST_BUSY_SPREAD_MS);
		pl_log_item(LOG_DEBUG, it, STAGE, 0, "host %s busy (limit %u of per_host %d): "
			    "again in %d ms", host, pl_hostlimit_get(c->hosts, host), c->per_host, ms);
		return ms;
	}
	if (r < 0)
		return snprintf(why, whylen, "out of memory in the per-host table"), r;

	reset_transfer(w);
	res = curl_easy_setopt(w->curl, CURLOPT_URL, it->source);
	if (res != CURLE_OK) {
		pl_hostlimit_release(c->hosts, host, pl_now_us(), 0, false);
		it->attempts = 0;
		snprintf(why, whylen, "curl does not take the URL: %s", curl_easy_strerror(res));
		return res == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
	}
	res = curl_easy_perform(w->curl);
	v = judge(w, res, &err, why, whylen);
	pl_hostlimit_release(c->hosts, host, pl_now_us(), first_byte_us(w), v == RETRY);

	if (v == OK) {
		pl_log_item(LOG_DEBUG, it, STAGE, 0, "attempt %d: %zu bytes in %.3f s",
			    it->attempts + 1, w->len, (double)(pl_now_us() - t0) / 1e6);
		pl_item_free_data(it);
		if (w->buf && w->cap > w->len + w->len / 8) {
			/* the item may wait in a queue: give back the slack */
			char *b = realloc(w->buf, w->len ? w->len : 1);
			if (b)
				w->buf = b;
		}
		it->data = w->buf ? w->buf : malloc(1);	/* non-NULL even when empty */
		if (!it->data)
			return snprintf(why, whylen, "out of memory for an empty body"), -ENOMEM;
		it->len = w->len;
		w->buf = NULL;
		w->len = w->cap = 0;
		it->attempts = 0;
		return 0;
	}
	reset_transfer(w);
	if (v == RETRY && it->attempts < c->retries) {
		int ms = retry_delay(w, it->attempts);
		it->attempts++;
		pl_log_item(LOG_DEBUG, it, STAGE, err, "attempt %d: %s; retry in %d ms",
			    it->attempts, why, ms);
		return ms;
	}
	if (v == RETRY && it->attempts > 0) {
		size_t n = strlen(why);
		snprintf(why + n, whylen - n, " after %d attempts", it->attempts + 1);
	}
	pl_log_item(LOG_DEBUG, it, STAGE, err, "attempt %d: %s", it->attempts + 1, why);
	it->attempts = 0;
	return -err;
}

/* ---- the stage -------------------------------------------------------- */

/* One part of the parsed URL; on failure the reason names the part. */
static int url_part(CURLU *u, CURLUPart part, unsigned flags, char **out, const char *what,
		    char *why, size_t whylen)
{
	CURLUcode rc = curl_url_get(u, part, out, flags);

	if (rc == CURLUE_OK)
		return 0;
	*out = NULL;
	if (rc == CURLUE_OUT_OF_MEMORY)
		return snprintf(why, whylen, "out of memory reading the URL's %s", what), -ENOMEM;
	snprintf(why, whylen, "bad URL: %s: %s", what, curl_url_strerror(rc));
	return -EINVAL;
}

static int process(void *vctx, void *wstate, void *vitem, char *why, size_t whylen)
{
	struct dl_ctx *c = vctx;
	struct worker *w = wstate;
	struct pl_item *it = vitem;
	char *scheme = NULL, *host = NULL, *path = NULL;
	CURLU *u;
	CURLUcode rc;
	int r;

	if (!it->source || !*it->source)
		return snprintf(why, whylen, "empty source URL"), -EINVAL;
	u = curl_url();
	if (!u)
		return snprintf(why, whylen, "out of memory parsing the URL"), -ENOMEM;
	/* PATH_AS_IS: for file://, ".." is resolved by realpath() in
	 * download_file.c, so the reason names the path as written. */
	rc = curl_url_set(u, CURLUPART_URL, it->source, CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS);
	if (rc != CURLUE_OK) {
		snprintf(why, whylen, "bad URL: %s", curl_url_strerror(rc));
		r = -EINVAL;
		goto out;
	}
	if ((r = url_part(u, CURLUPART_SCHEME, 0, &scheme, "scheme", why, whylen)) < 0)
		goto out;
	for (char *s = scheme; *s; s++)
		*s = (char)tolower((unsigned char)*s);

	if (strcmp(scheme, "file") == 0) {
		if ((r = url_part(u, CURLUPART_PATH, CURLU_URLDECODE, &path, "file:// path",
				  why, whylen)) < 0)
			goto out;
		r = pl_download_file_fetch(path, c->protocols, c->file_root, c->max_bytes, it,
					   why, whylen);
		if (r < 0)
			pl_log_item(LOG_DEBUG, it, STAGE, -r, "%s", why);
		else
			pl_log_item(LOG_DEBUG, it, STAGE, 0, "%zu bytes from file", it->len);
		it->attempts = 0;
		goto out;
	}
	if (!((strcmp(scheme, "http") == 0 && (c->protocols & PL_PROTO_HTTP)) ||
	      (strcmp(scheme, "https") == 0 && (c->protocols & PL_PROTO_HTTPS)))) {
		snprintf(why, whylen, "scheme %s:// is not in download.protocols", scheme);
		r = -EPROTONOSUPPORT;
		goto out;
	}
	if ((r = url_part(u, CURLUPART_HOST, 0, &host, "host", why, whylen)) < 0)
		goto out;
	for (char *s = host; *s; s++)
		*s = (char)tolower((unsigned char)*s);
	r = fetch_http(w, it, host, why, whylen);
out:
	if (r == 0)
		atomic_fetch_add_explicit(&c->bytes, it->len, memory_order_relaxed);
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_url_cleanup(u);
	return r;
}

const struct pl_stage_ops pl_download_ops = {
	.worker_start = worker_start,
	.worker_stop = worker_stop,
	.process = process,
};

uint64_t pl_download_bytes(void *ctx)
{
	struct dl_ctx *c = ctx;

	return atomic_load_explicit(&c->bytes, memory_order_relaxed);
}

int pl_download_new(const struct pl_config *cfg, void **ctx)
{
	struct dl_ctx *c = calloc(1, sizeof *c);
	int r;

	if (!c)
		return -ENOMEM;
	c->connect_timeout = cfg->download.connect_timeout;
	c->timeout = cfg->download.timeout;
	c->low_speed_limit = cfg->download.low_speed_limit;
	c->low_speed_time = cfg->download.low_speed_time;
	c->max_bytes = cfg->download.max_bytes;
	c->retries = cfg->download.retries;
	c->backoff = cfg->download.backoff;
	c->per_host = cfg->download.per_host;
	c->protocols = cfg->download.protocols;
	c->allow_private = cfg->download.allow_private;
	c->file_root = strdup(cfg->download.file_root ? cfg->download.file_root : "");
	if (!c->file_root) {
		free(c);
		return -ENOMEM;
	}
	snprintf(c->proto_str, sizeof c->proto_str, "%s%s%s",
		 c->protocols & PL_PROTO_HTTP ? "http" : "",
		 (c->protocols & PL_PROTO_HTTP) && (c->protocols & PL_PROTO_HTTPS) ? "," : "",
		 c->protocols & PL_PROTO_HTTPS ? "https" : "");
	if ((r = pl_hostlimit_new((unsigned)c->per_host, &c->hosts)) < 0) {
		free(c->file_root);
		free(c);
		return r;
	}
	*ctx = c;
	return 0;
}

void pl_download_free(void *ctx)
{
	struct dl_ctx *c = ctx;

	if (!c)
		return;
	pl_hostlimit_free(c->hosts);
	free(c->file_root);
	free(c);
}

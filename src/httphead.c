/*
 * httphead.c — the reader of one transfer's response headers.  See httphead.h.
 *
 * It sits apart from the stages because both network stages need it and a
 * fuzzer drives it alone: download keeps or drops a body on the status it
 * reads, and refuses a line curl accepts but it does not rather than guess;
 * upload takes the reason phrase for its failure reasons and learns where a
 * new response begins.  It is pure (no curl, no allocation, no locale), so
 * tests/fuzz/fuzz_download.c checks every line against curl's own reading
 * of it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httphead.h"

enum { PH_STATUS, PH_FIELDS, PH_DONE, PH_BAD };

void pl_httphead_init(struct pl_httphead *h)
{
	memset(h, 0, sizeof *h);
	h->phase = PH_STATUS;
	h->content_length = -1;
}

void pl_httphead_body(struct pl_httphead *h)
{
	if (h->phase != PH_BAD)
		h->phase = PH_DONE;
}

bool pl_httphead_done(const struct pl_httphead *h)
{
	return h->phase == PH_DONE;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';	/* isdigit() would follow the locale */
}

/*
 * "HTTP/1.1 404 Not Found\r\n", "HTTP/1.0 200\r\n", or curl's own
 * "HTTP/2 200 \r\n".  Stricter than curl, which also takes "HTTP/2 1000",
 * "http/1.1 404" and "HTTP/x" (the last two as 200!): whatever passes here
 * gives the code curl reports too, so the status that decides whether the
 * body is kept is the one the transfer ends with.
 */
static bool parse_status(struct pl_httphead *h, const char *line, size_t n)
{
	size_t i = 5, k = 0;
	long code;

	if (n < 5 || memcmp(line, "HTTP/", 5) != 0)
		return false;
	if (i >= n || !is_digit(line[i++]))
		return false;
	if (i + 1 < n && line[i] == '.' && is_digit(line[i + 1]))
		i += 2;
	if (i >= n || line[i] != ' ')
		return false;
	while (i < n && line[i] == ' ')
		i++;
	if (n - i < 3 || !is_digit(line[i]) || !is_digit(line[i + 1]) || !is_digit(line[i + 2]))
		return false;
	code = (line[i] - '0') * 100 + (line[i + 1] - '0') * 10 + (line[i + 2] - '0');
	i += 3;
	if (code < 100 || (i < n && line[i] != ' ' && line[i] != '\r' && line[i] != '\n'))
		return false;
	h->status = code;
	while (i < n && line[i] == ' ')
		i++;
	/* the server's phrase, kept printable: it ends up in a log line */
	while (i < n && k + 1 < sizeof h->phrase && line[i] >= 0x20 && line[i] < 0x7f)
		h->phrase[k++] = line[i++];
	while (k > 0 && h->phrase[k - 1] == ' ')
		k--;
	h->phrase[k] = '\0';
	return true;
}

/* NAME: at the start of line (any case); the offset of the value, or 0. */
static size_t field_value(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);

	return n > k && strncasecmp(line, name, k) == 0 ? k : 0;
}

static void parse_field(struct pl_httphead *h, const char *line, size_t n)
{
	size_t v;

	if ((v = field_value(line, n, "Content-Length:"))) {
		char tmp[32], *end;
		size_t k = n - v < sizeof tmp - 1 ? n - v : sizeof tmp - 1;
		long long x;

		memcpy(tmp, line + v, k);
		tmp[k] = '\0';
		errno = 0;
		x = strtoll(tmp, &end, 10);
		if (errno == 0 && end != tmp && x >= 0)
			h->content_length = x;
	} else if ((v = field_value(line, n, "Transfer-Encoding:"))) {
		/* as curl reads it: the token in any case */
		h->chunked = false;
		for (; v + 7 <= n && !h->chunked; v++)
			h->chunked = strncasecmp(line + v, "chunked", 7) == 0;
	} else if ((v = field_value(line, n, "Location:"))) {
		/* curl ignores an empty one */
		for (; v < n && !h->location; v++)
			h->location = line[v] != ' ' && line[v] != '\t' && line[v] != '\r' &&
				      line[v] != '\n';
	}
}

enum pl_httphead_line pl_httphead_line(struct pl_httphead *h, const char *line, size_t n)
{
	switch (h->phase) {
	case PH_STATUS:
		/* a new response: nothing of the previous one carries over */
		pl_httphead_init(h);
		if (!parse_status(h, line, n)) {
			h->phase = PH_BAD;
			return PL_HTTPHEAD_BAD_STATUS;
		}
		h->phase = PH_FIELDS;
		return PL_HTTPHEAD_STATUS;
	case PH_FIELDS:
		if ((n == 2 && line[0] == '\r' && line[1] == '\n') || (n == 1 && line[0] == '\n')) {
			/* Another response follows a 1xx, and a 3xx that curl
			 * follows (it does when there is a Location); after any
			 * other, only trailers can come. */
			bool more = h->status < 200 ||
				    (h->status >= 300 && h->status < 400 && h->location);
			h->phase = more ? PH_STATUS : PH_DONE;
			return more ? PL_HTTPHEAD_INTERIM : PL_HTTPHEAD_FINAL;
		}
		parse_field(h, line, n);
		return PL_HTTPHEAD_FIELD;
	default:
		return PL_HTTPHEAD_AFTER;
	}
}

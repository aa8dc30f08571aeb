/*
 * fuzz_download.c — libFuzzer target for the response-header reader both
 * network stages use (src/httphead.c: pl_httphead_line, _body).
 *
 * Servers are hostile, so every byte sequence is fair.  Byte 0 says after
 * which line body bytes arrive (255: never); the rest is split after each
 * '\n' and handed over line by line, as curl's header callback does.
 * Checked, besides "never crash, never overflow" (UBSan):
 *   - a status line is taken only as the first line or right after the
 *     blank line that ends a 1xx or a 3xx with a Location, and only as
 *     "HTTP/" DIGIT ["." DIGIT], spaces, three digits 100..999, then a
 *     space or the end; its code is those digits;
 *   - where curl would read the same line as a status line (its sscanf
 *     patterns, redone below), it reads the same code: the status that
 *     decides whether the body is kept is the one the transfer ends with;
 *   - any other line leaves the status and phrase alone: a stray "HTTP/"
 *     header cannot reset the response;
 *   - after the final headers, a body byte or a bad status line nothing
 *     changes at all (trailers are ignored);
 *   - the phrase is short, printable and NUL-terminated; Content-Length is
 *     -1 or a non-negative number.
 */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "httphead.h"

static bool blank(const char *l, size_t n)
{
	return (n == 1 && l[0] == '\n') || (n == 2 && l[0] == '\r' && l[1] == '\n');
}

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/* curl 7.88's reading of a first header line (lib/http.c,
 * Curl_http_readwrite_headers): the code, or -1 where it refuses the line
 * or does not read a code from it.  Only called on lines without NUL,
 * which curl refuses anyway. */
static long curl_code(const char *line, size_t n)
{
	char z[4096], sep = 0, d4 = 0, two[2];
	int major = 0, minor = 0, code = 0, nc;

	if (n >= sizeof z)
		return -1;
	memcpy(z, line, n);
	z[n] = '\0';
	nc = sscanf(z, " HTTP/%1d.%1d%c%3d%c", &major, &minor, &sep, &code, &d4);
	if (nc == 1 && major >= 2 && sscanf(z, " HTTP/%1[23] %d", two, &code) == 2)
		return code;
	if (digit(d4) || (nc >= 4 && code < 100))
		return -1;
	if (nc >= 4 && sep == ' ' && (major * 10 + minor == 10 || major * 10 + minor == 11 ||
				      major * 10 + minor == 20))
		return code;
	return -1;
}

/* Our parser's promise about an accepted status line, checked by hand. */
static void check_status(const struct pl_httphead *h, const char *l, size_t n)
{
	size_t i = 5;
	long want;

	FUZZ_CHECK(n >= 5 && memcmp(l, "HTTP/", 5) == 0, "status line without HTTP/");
	FUZZ_CHECK(i < n && digit(l[i]), "no major version");
	i++;
	if (i + 1 < n && l[i] == '.' && digit(l[i + 1]))
		i += 2;
	FUZZ_CHECK(i < n && l[i] == ' ', "no space after the version");
	while (i < n && l[i] == ' ')
		i++;
	FUZZ_CHECK(n - i >= 3 && digit(l[i]) && digit(l[i + 1]) && digit(l[i + 2]),
		   "no three digits");
	want = (l[i] - '0') * 100 + (l[i + 1] - '0') * 10 + (l[i + 2] - '0');
	FUZZ_CHECK(h->status == want && want >= 100, "status %ld, digits say %ld", h->status, want);
	i += 3;
	FUZZ_CHECK(i == n || l[i] == ' ' || l[i] == '\r' || l[i] == '\n',
		   "a fourth character 0x%02x after the code", (unsigned char)l[i]);
	if (!memchr(l, '\0', n)) {
		long c = curl_code(l, n);
		FUZZ_CHECK(c < 0 || c == h->status, "curl reads %ld, we read %ld", c, h->status);
	}
}

static void check_shape(const struct pl_httphead *h)
{
	size_t k = strnlen(h->phrase, sizeof h->phrase);

	FUZZ_CHECK(k < sizeof h->phrase, "phrase not terminated");
	for (size_t i = 0; i < k; i++)
		FUZZ_CHECK(h->phrase[i] >= 0x20 && h->phrase[i] < 0x7f, "phrase byte 0x%02x",
			   (unsigned char)h->phrase[i]);
	FUZZ_CHECK(h->status == 0 || (h->status >= 100 && h->status <= 999), "status %ld",
		   h->status);
	FUZZ_CHECK(h->content_length >= -1, "Content-Length %lld", h->content_length);
}

/* Field by field: a struct copy need not copy its padding. */
static bool same(const struct pl_httphead *a, const struct pl_httphead *b)
{
	return a->phase == b->phase && a->status == b->status &&
	       strcmp(a->phrase, b->phrase) == 0 && a->content_length == b->content_length &&
	       a->chunked == b->chunked && a->location == b->location;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_httphead h, before;
	const char *p, *end;
	size_t index = 0, body_after;
	bool status_may = true, over = false;

	if (size == 0)
		return 0;
	body_after = data[0];
	p = (const char *)data + 1;
	end = (const char *)data + size;
	pl_httphead_init(&h);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		enum pl_httphead_line kind;

		before = h;
		kind = pl_httphead_line(&h, p, n);
		check_shape(&h);
		switch (kind) {
		case PL_HTTPHEAD_STATUS:
			FUZZ_CHECK(status_may && !over, "status line at line %zu", index);
			check_status(&h, p, n);
			status_may = false;
			break;
		case PL_HTTPHEAD_BAD_STATUS:
			FUZZ_CHECK(status_may && !over, "bad status line where none stands");
			over = true;
			break;
		case PL_HTTPHEAD_FIELD:
			FUZZ_CHECK(!status_may && !over && !blank(p, n), "field out of place");
			FUZZ_CHECK(h.status == before.status &&
				   strcmp(h.phrase, before.phrase) == 0,
				   "a header line changed the status %ld -> %ld", before.status,
				   h.status);
			break;
		case PL_HTTPHEAD_INTERIM:
			FUZZ_CHECK(!status_may && !over && blank(p, n), "interim end out of place");
			FUZZ_CHECK(h.status < 200 || (h.status >= 300 && h.status < 400 && h.location),
				   "status %ld is not interim", h.status);
			status_may = true;
			break;
		case PL_HTTPHEAD_FINAL:
			FUZZ_CHECK(!status_may && !over && blank(p, n), "final end out of place");
			FUZZ_CHECK(!(h.status < 200 ||
				     (h.status >= 300 && h.status < 400 && h.location)),
				   "status %ld is interim", h.status);
			over = true;
			break;
		case PL_HTTPHEAD_AFTER:
			FUZZ_CHECK(over, "a line ignored before the headers ended");
			FUZZ_CHECK(same(&h, &before), "a trailer changed the state");
			break;
		default:
			FUZZ_CHECK(0, "unknown line kind %d", (int)kind);
		}
		if (index++ == body_after) {
			pl_httphead_body(&h);
			over = true;
		}
		p += n;
	}
	return 0;
}

/*
 * fuzz_stream.c — libFuzzer target for the two parsers of what any producer
 * on the shared NATS stream may publish (src/stream.c):
 * pl_streammsg_parse_item (an item message) and pl_streammsg_parse_result (a
 * result message: its Pipelined-Job header and its body).
 *
 * Nothing on the stream is trusted, so every byte sequence is fair.  The
 * whole input is an item message; it is also a result body under the
 * header "job", and when it holds a NUL, the bytes before it are a header
 * and the rest a body.  Each parser gets an exact-size copy, so that a read
 * past the end is an ASan report.  Checked:
 *   - a refused item or result has a reason, non-empty, within the buffer,
 *     free of control bytes and valid UTF-8 (it goes into a record and a
 *     dead letter's header);
 *   - whatever owner and job a refused item hands out (to fail it to) obey
 *     the rules an accepted one does; its failure record is a record;
 *   - an accepted item has an owner token, a spool job name, line > 0, a
 *     source within PL_JOBLINE_MAX without white space, a name
 *     pl_jobline_name_valid accepts, and reads back the same as a job line;
 *   - the result a worker would send back for an item (pl_record_format)
 *     is taken by the owner's parser with the item's line and status, and
 *     an accepted result, written again, reads back the same;
 *   - an accepted result names a spool job name (anything else is a job no
 *     spool can have, asked for again for ever).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "item.h"
#include "jobline.h"
#include "record.h"
#include "strbuf.h"
#include "streammsg.h"

#define WHY_SIZE 256	/* what the daemon gives the item parser */

static bool printable(const char *s)
{
	size_t n = strlen(s), k;

	for (size_t i = 0; i < n; i += k) {
		k = pl_strbuf_utf8_len(s + i, n - i);
		if (k == 0 || (k == 1 && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)))
			return false;
	}
	return true;
}

/* The rules as pipelined(8) states them, an oracle apart from stream.c's. */
static bool owner_ok(const char *o)
{
	size_t n = strlen(o);

	return n >= 1 && n <= 64 && strspn(o, "abcdefghijklmnopqrstuvwxyz"
					    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static bool job_ok(const char *j)
{
	size_t n = strlen(j);

	if (n == 0 || n > 240 || j[0] == '.' || strchr(j, '/'))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)j[i] < 0x20 || j[i] == 0x7f)
			return false;
	return true;
}

/* Through the owner's parser, as the result message it would get. */
static void result_round_trip(const char *job, const struct pl_item *it, bool ok,
			      const char *error)
{
	char *rec = pl_record_format(it, ok, error, 12);
	unsigned long line = 0;
	bool rok = !ok;
	const char *why;

	FUZZ_CHECK(rec, "pl_record_format failed");
	why = pl_streammsg_parse_result(job, rec, strlen(rec), &line, &rok);
	FUZZ_CHECK(!why, "the result of line %lu refused (%s): %s", it->line, why, rec);
	FUZZ_CHECK(line == it->line && rok == ok, "record read back as line %lu %s: %s", line,
		   rok ? "ok" : "failed", rec);
	free(rec);
}

static void item(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1), *owner = NULL, *job = NULL, buf[WHY_SIZE];
	struct pl_item *it = pl_item_new();
	const char *why;

	FUZZ_CHECK(copy && it, "out of memory");
	memcpy(copy, data, size);
	why = pl_streammsg_parse_item(copy, size, &owner, &job, it, buf, sizeof buf);
	free(copy);
	FUZZ_CHECK(!owner || owner_ok(owner), "owner \"%s\" handed out", owner);
	FUZZ_CHECK(!job || job_ok(job), "job \"%s\" handed out", job);
	FUZZ_CHECK(!job || owner, "a job without an owner");
	if (why) {
		FUZZ_CHECK(why == buf && why[0] && strlen(why) < sizeof buf, "reason \"%s\"", why);
		FUZZ_CHECK(printable(why), "reason not printable UTF-8: \"%s\"", why);
		if (owner && job && it->line)	/* failed to its owner, as refuse() does */
			result_round_trip(job, it, false, why);
	} else {
		char line[PL_JOBLINE_MAX + 2], *src, *nm;
		const char *lwhy = NULL;

		FUZZ_CHECK(owner && job, "accepted without owner or job");
		FUZZ_CHECK(it->line > 0, "accepted with line 0");
		FUZZ_CHECK(it->source && it->source[0] && strlen(it->source) <= PL_JOBLINE_MAX,
			   "source of %zu bytes", it->source ? strlen(it->source) : 0);
		for (const char *p = it->source; *p; p++)
			FUZZ_CHECK(!pl_jobline_space(*p), "white space in source \"%s\"", it->source);
		FUZZ_CHECK(it->name && pl_jobline_name_valid(it->name), "name \"%s\"", it->name);
		/* the job line it stands for says the same */
		if (strlen(it->source) + 1 + strlen(it->name) <= PL_JOBLINE_MAX) {
			snprintf(line, sizeof line, "%s %s", it->source, it->name);
			FUZZ_CHECK(pl_jobline_parse(line, &src, &nm, &lwhy) == 1 &&
				   strcmp(src, it->source) == 0 && nm && strcmp(nm, it->name) == 0,
				   "\"%s\" %s \"%s\" as a job line: %s", it->source, it->name,
				   line, lwhy ? lwhy : "differs");
		}
		result_round_trip(job, it, true, NULL);
		result_round_trip(job, it, false, "a reason");
	}
	free(owner);
	free(job);
	pl_item_free(it);
}

static void result(const char *job, const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	unsigned long line = 0;
	bool ok = false;
	const char *why;

	FUZZ_CHECK(copy, "out of memory");
	memcpy(copy, data, size);
	why = pl_streammsg_parse_result(job, copy, size, &line, &ok);
	free(copy);
	if (why) {
		FUZZ_CHECK(why[0] && printable(why), "reason \"%s\"", why);
		return;
	}
	FUZZ_CHECK(job && job_ok(job), "a result for job \"%s\" accepted", job ? job : "(none)");
	{
		struct pl_item it = { .line = line };

		result_round_trip(job, &it, ok, "again");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);

	item(data, size);
	result("job", data, size);
	if (nul)
		result((const char *)data, nul + 1, size - (size_t)(nul + 1 - data));
	return 0;
}

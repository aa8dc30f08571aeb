/*
 * streammsg.c — the parsers of what any producer may publish on the stream
 * (see streammsg.h): an item message (JSON: owner, job, line, source, name)
 * and a result message (its Pipelined-Job header and a result record).
 *
 * Why apart from stream.c: these read untrusted bytes and nothing else, so
 * they are tested (test_stream.c) and fuzzed (fuzz_stream) without a
 * connection; stream.c keeps the connection, the leases and the crash
 * guard.  An item message is held to the same rules as a line of a job
 * file (jobline.c), and a result to the record's own reader (record.c);
 * every reason that leaves here is printable UTF-8, because it travels in
 * a record and in a dead letter's header.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "item.h"
#include "jobline.h"
#include "record.h"
#include "strbuf.h"
#include "streammsg.h"

static bool token_valid(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > 64)
		return false;
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		      (*t >= '0' && *t <= '9') || *t == '_' || *t == '-'))
			return false;
	return true;
}

/* A job name as the spool allows it, and one that can travel in a header. */
static bool job_valid(const char *j)
{
	size_t n = strlen(j);

	if (n == 0 || n > 240 || j[0] == '.' || strchr(j, '/'))
		return false;
	for (; *j; j++)
		if ((unsigned char)*j < 0x20 || *j == 0x7f)
			return false;
	return true;
}

/* A reason as it goes out, in a record and in a dead letter's header: a
 * hostile message's bytes quoted in a JSON parser's error (or a UTF-8
 * sequence cut by the buffer's end) become '?', so that no control byte
 * can break a header line and the reason is valid UTF-8. */
static void printable(char *s)
{
	size_t n = strlen(s), k;

	for (size_t i = 0; i < n; i += k) {
		k = pl_strbuf_utf8_len(s + i, n - i);
		if (k == 0 || (k == 1 && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)))
			s[i] = '?', k = 1;
	}
}

const char *pl_streammsg_parse_item(const char *data, size_t len, char **owner_out,
				 char **job_out, struct pl_item *it, char *buf, size_t buflen)
{
	const char *job, *owner, *source, *name, *why = NULL;
	char *src = NULL, *nm = NULL, line[8192 + 2];
	json_error_t jerr;
	json_int_t ln;
	json_t *o, *v;
	int r;

	o = json_loadb(data, len, 0, &jerr);
	if (!o || !json_is_object(o)) {
		snprintf(buf, buflen, "not a JSON object: %s", o ? "another JSON value" : jerr.text);
		json_decref(o);
		printable(buf);
		return buf;
	}
	owner = json_string_value(json_object_get(o, "owner"));
	job = json_string_value(json_object_get(o, "job"));
	if (!owner || !token_valid(owner)) {
		why = "\"owner\" missing or not 1 to 64 of A-Z a-z 0-9 _ -";
		goto out;
	}
	*owner_out = strdup(owner);
	if (!job || !job_valid(job)) {
		why = "\"job\" missing or not a spool job name";
		goto out;
	}
	*job_out = strdup(job);
	v = json_object_get(o, "line");
	ln = json_integer_value(v);
	if (!json_is_integer(v) || ln < 1) {
		why = "\"line\" missing or not a positive integer";
		goto out;
	}
	it->line = (unsigned long)ln;
	source = json_string_value(json_object_get(o, "source"));
	v = json_object_get(o, "name");
	name = json_string_value(v);
	if (!source || (v && !json_is_null(v) && !name)) {
		why = "\"source\" missing, or \"name\" not a string";
		goto out;
	}
	/* the same rules as a line of a job file */
	if ((size_t)snprintf(line, sizeof line, "%s%s%s", source, name ? " " : "",
			     name ? name : "") >= sizeof line) {
		why = "line too long";
		goto out;
	}
	r = pl_jobline_parse(line, &src, &nm, &why);
	if (r <= 0) {
		why = r == 0 ? "\"source\" is empty" : why;
		goto out;
	}
	it->source = strdup(src);
	if (nm)
		it->name = strdup(nm);
	else if ((it->name = malloc(PL_JOBLINE_NAME_MAX + 1)))
		pl_jobline_derive_name(src, it->name, PL_JOBLINE_NAME_MAX + 1);
	if (!it->source || !it->name || !*owner_out || !*job_out)
		why = "out of memory";
out:
	json_decref(o);
	if (why && why != buf) {
		snprintf(buf, buflen, "%s", why);
		printable(buf);
		why = buf;
	}
	return why;
}

const char *pl_streammsg_parse_result(const char *job, const char *data, size_t len,
				   unsigned long *line, bool *ok)
{
	if (!job)
		return "no Pipelined-Job header";
	/* "." or ".." would be found in new/ and asked for again for ever */
	if (!job_valid(job))
		return "Pipelined-Job is not a spool job name";
	if (pl_record_parse(data, len, line, ok) < 0)
		return "not a result record";
	return NULL;
}

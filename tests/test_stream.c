/*
 * test_stream.c — the parsers of stream messages, on bytes alone: what any
 * producer on the shared stream may publish as an item or a result
 * (pipelined(8), Many machines).  The stream itself, with a real server,
 * is tests/it_stream*.py; these pin the accept/refuse rules and the reasons
 * a refused message goes back with; and the record of what the server
 * denied (streamdeny.c) on a fake clock.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "item.h"
#include "streamdeny.h"
#include "streammsg.h"

struct parsed {
	struct pl_item *it;
	char *owner, *job;
	const char *why;
	char buf[256];
};

static void parse(struct parsed *p, const char *data, size_t len)
{
	memset(p, 0, sizeof *p);
	p->it = pl_item_new();
	ck_assert_ptr_nonnull(p->it);
	p->why = pl_streammsg_parse_item(data, len, &p->owner, &p->job, p->it, p->buf, sizeof p->buf);
}

static void parsed_free(struct parsed *p)
{
	pl_item_free(p->it);
	free(p->owner);
	free(p->job);
}

START_TEST(item_accepted)
{
	static const char msg[] = "{\"job\":\"j1\",\"owner\":\"n0\",\"line\":3,"
				  "\"source\":\"https://example.com/a/b.jpg\",\"name\":\"x\"}";
	struct parsed p;

	parse(&p, msg, strlen(msg));
	ck_assert_ptr_null(p.why);
	ck_assert_str_eq(p.owner, "n0");
	ck_assert_str_eq(p.job, "j1");
	ck_assert_uint_eq(p.it->line, 3);
	ck_assert_str_eq(p.it->source, "https://example.com/a/b.jpg");
	ck_assert_str_eq(p.it->name, "x");
	parsed_free(&p);
}
END_TEST

START_TEST(item_name_derived)
{
	static const char msg[] = "{\"job\":\"j1\",\"owner\":\"n0\",\"line\":1,"
				  "\"source\":\"file:///in/pic.png\",\"name\":null}";
	struct parsed p;

	parse(&p, msg, strlen(msg));
	ck_assert_ptr_null(p.why);
	ck_assert_str_eq(p.it->name, "pic");
	parsed_free(&p);
}
END_TEST

/* Refused: the reason, and how much of owner, job and line was read. */
START_TEST(item_refused)
{
	static const struct {
		const char *msg, *why;
		bool owner, job;
		unsigned long line;
	} cases[] = {
		{ "[1]", "not a JSON object: another JSON value", false, false, 0 },
		{ "{\"job\":\"j\",\"line\":1,\"source\":\"file:///a\"}", "\"owner\" missing", false,
		  false, 0 },
		{ "{\"job\":\"../j\",\"owner\":\"n0\",\"line\":1,\"source\":\"file:///a\"}",
		  "\"job\" missing or not a spool job name", true, false, 0 },
		{ "{\"job\":\"j\",\"owner\":\"n0\",\"line\":0,\"source\":\"file:///a\"}",
		  "\"line\" missing or not a positive integer", true, true, 0 },
		{ "{\"job\":\"j\",\"owner\":\"n0\",\"line\":2}", "\"source\" missing", true, true, 2 },
		{ "{\"job\":\"j\",\"owner\":\"n0\",\"line\":2,\"source\":\"file:///a\",\"name\":7}",
		  "\"source\" missing, or \"name\" not a string", true, true, 2 },
		{ "{\"job\":\"j\",\"owner\":\"n0\",\"line\":2,\"source\":\" \"}",
		  "\"source\" is empty", true, true, 2 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct parsed p;

		parse(&p, cases[i].msg, strlen(cases[i].msg));
		ck_assert_ptr_nonnull(p.why);
		ck_assert_msg(strncmp(p.why, cases[i].why, strlen(cases[i].why)) == 0,
			      "%s: %s", cases[i].msg, p.why);
		ck_assert_int_eq(p.owner != NULL, cases[i].owner);
		ck_assert_int_eq(p.job != NULL, cases[i].job);
		ck_assert_uint_eq(p.it->line, cases[i].line);
		parsed_free(&p);
	}
}
END_TEST

/* A JSON parser's error quotes the bytes it stopped at: the reason goes
 * into a record and a dead letter's header, so they come out as '?'. */
START_TEST(item_reason_printable)
{
	static const char *const msgs[] = {
		"\x7f\"job\":\"j\"}",
		"\x01",
		"{\"job\":\"a\x01\r\nb\"}",
		"{\"job\"\r\n\x02:1}",
		"\xc3",
		"\xe2\x82",
	};

	for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
		struct parsed p;

		parse(&p, msgs[i], strlen(msgs[i]));
		ck_assert_ptr_nonnull(p.why);
		ck_assert_msg(strncmp(p.why, "not a JSON object: ", 19) == 0, "%s", p.why);
		for (const unsigned char *c = (const unsigned char *)p.why; *c; c++)
			ck_assert_msg(*c >= 0x20 && *c < 0x7f, "message %zu: reason \"%s\"", i, p.why);
		parsed_free(&p);
	}
}
END_TEST

START_TEST(result_parsed)
{
	static const char rec[] = "{\"line\":4,\"source\":\"file:///x\",\"name\":\"x\",\"status\":"
				  "\"failed\",\"outputs\":[],\"error\":\"e\",\"milliseconds\":1}\n";
	unsigned long line = 0;
	bool ok = true;

	ck_assert_ptr_null(pl_streammsg_parse_result("j1", rec, strlen(rec), &line, &ok));
	ck_assert_uint_eq(line, 4);
	ck_assert(!ok);
	ck_assert_ptr_nonnull(pl_streammsg_parse_result(NULL, rec, strlen(rec), &line, &ok));
	ck_assert_ptr_nonnull(pl_streammsg_parse_result("j1", "not a result", 12, &line, &ok));
	/* no job a spool can have: "." and ".." exist in new/ and would be
	 * asked for again for ever */
	ck_assert_ptr_nonnull(pl_streammsg_parse_result(".", rec, strlen(rec), &line, &ok));
	ck_assert_ptr_nonnull(pl_streammsg_parse_result("..", rec, strlen(rec), &line, &ok));
	ck_assert_ptr_nonnull(pl_streammsg_parse_result("a/b", rec, strlen(rec), &line, &ok));
	ck_assert_ptr_nonnull(pl_streammsg_parse_result("", rec, strlen(rec), &line, &ok));
}
END_TEST

#define DENY_PUB(subj) "Permissions Violation for Publish to \"" subj "\""
#define T0 1000000ULL	/* a slot with time 0 is an empty one */

/* A denial is held for PL_STREAMDENY_HOLD_US, logged once and then every
 * PL_STREAMDENY_LOG_US with the count in between. */
START_TEST(denial_held_and_logged_rarely)
{
	struct pl_streamdeny d;
	struct pl_streamdeny_note n;
	char why[512];

	pl_streamdeny_init(&d);
	ck_assert(!pl_streamdeny_publish_denied(&d, "p.items", T0, why, sizeof why));
	pl_streamdeny_add(&d, DENY_PUB("p.items"), T0, &n);
	ck_assert(n.say && n.publish && n.times == 0);
	ck_assert_str_eq(n.subj, "p.items");
	ck_assert(pl_streamdeny_publish_denied(&d, "p.items", T0 + 1, why, sizeof why));
	ck_assert_str_eq(why, "the server denies this user publishing on p.items: "
			 DENY_PUB("p.items"));
	ck_assert(!pl_streamdeny_publish_denied(&d, "p.dead", T0 + 1, NULL, 0));
	/* held while it lasts, then tried again */
	ck_assert(pl_streamdeny_publish_denied(&d, "p.items", T0 + PL_STREAMDENY_HOLD_US - 1,
					       NULL, 0));
	ck_assert(!pl_streamdeny_publish_denied(&d, "p.items", T0 + PL_STREAMDENY_HOLD_US,
						NULL, 0));
	/* the same denial again: quiet until the log period is up, then said
	 * with how many times it came in between */
	for (int i = 1; i <= 3; i++) {
		pl_streamdeny_add(&d, DENY_PUB("p.items"), T0 + i * 1000000ULL, &n);
		ck_assert(!n.say);
	}
	pl_streamdeny_add(&d, DENY_PUB("p.items"), T0 + PL_STREAMDENY_LOG_US, &n);
	ck_assert(n.say);
	ck_assert_uint_eq(n.times, 4);
	pl_streamdeny_finalise(&d);
}
END_TEST

/* A subscription denial is noted apart and never holds a publish back;
 * the table keeps the latest denials, the oldest giving way. */
START_TEST(denial_kinds_and_slots)
{
	struct pl_streamdeny d;
	struct pl_streamdeny_note n;
	char subj[64], text[128];

	pl_streamdeny_init(&d);
	pl_streamdeny_add(&d, "Permissions Violation for Subscription to \"_INBOX.>\"", T0, &n);
	ck_assert(n.say && !n.publish);
	ck_assert_str_eq(n.subj, "_INBOX.>");
	ck_assert(!pl_streamdeny_publish_denied(&d, "_INBOX.>", T0, NULL, 0));
	/* words that name no subject are still noted, under "" */
	pl_streamdeny_add(&d, "Permissions Violation", T0, &n);
	ck_assert(n.say && n.publish);
	ck_assert_str_eq(n.subj, "");
	for (unsigned i = 0; i <= PL_STREAMDENY_SLOTS; i++) {
		snprintf(subj, sizeof subj, "s.%u", i);
		snprintf(text, sizeof text, "Permissions Violation for Publish to \"%s\"", subj);
		pl_streamdeny_add(&d, text, T0 + 1 + i, &n);
		ck_assert(n.say);
	}
	/* s.0 was the oldest of the full table when s.8 came */
	ck_assert(!pl_streamdeny_publish_denied(&d, "s.0", T0 + 100, NULL, 0));
	for (unsigned i = 1; i <= PL_STREAMDENY_SLOTS; i++) {
		snprintf(subj, sizeof subj, "s.%u", i);
		ck_assert(pl_streamdeny_publish_denied(&d, subj, T0 + 100, NULL, 0));
	}
	pl_streamdeny_finalise(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stream");
	TCase *tc = tcase_create("stream");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, item_accepted);
	tcase_add_test(tc, item_name_derived);
	tcase_add_test(tc, item_refused);
	tcase_add_test(tc, item_reason_printable);
	tcase_add_test(tc, result_parsed);
	tcase_add_test(tc, denial_held_and_logged_rarely);
	tcase_add_test(tc, denial_kinds_and_slots);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * test_log.c — what log.c writes to stderr: one line per message, whatever
 * bytes the message holds.  Job file names, job lines and server messages
 * reach the log; raw, a "\n<0>…" in one forges a line with its own
 * priority, and an ESC sequence drives the terminal of --once.  Both
 * stderr sinks are checked: "<N>" lines (stderr a file) and plain lines
 * (stderr a terminal: a pseudo-terminal here).  And the --once progress
 * bar: a line written over it clears it, prints whole and redraws it below,
 * also while threads log and the bar is redrawn at the same time.
 */
#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "item.h"
#include "log.h"
#include "testutil.h"

#define FORGED "x\n<0>forged\x1b[2J\xff"
#define FORGED_ESCAPED "x\\x0a<0>forged\\x1b[2J\\xff"

/* Everything logged to a file while fn runs. */
static char *logged_to_file(void (*fn)(void))
{
	char *text = pl_test_stderr_of(fn);

	ck_assert_ptr_nonnull(text);
	return text;
}

static void log_forged(void)
{
	pl_log(LOG_WARNING, "spool: new/%s is not a job", FORGED);
}

static void log_item(void)
{
	struct pl_item it = { .job_name = "j\x7f" "ob", .line = 5,
			      .source = "http://h/a\r\xc2\x9b" "b caf\xc3\xa9 \xf0\x9f\x98\x80" };

	pl_log_item(LOG_ERR, &it, "download", 0, "HTTP 500: %s", "\x1b]0;title\x07");
}

static void log_long(void)
{
	char msg[4000];
	struct pl_item it = { .job_name = msg, .line = 1, .source = msg };

	memset(msg, '\x01', sizeof msg - 1);
	msg[sizeof msg - 1] = '\0';
	pl_log_item(LOG_ERR, &it, NULL, 0, "%s", msg);
}

START_TEST(url_redacted)
{
	static const char *const cases[][2] = {
		{ "nats://u:secret@127.0.0.1:4222", "nats://127.0.0.1:4222" },
		{ "https://user@h/p?q=a@b", "https://h/p?q=a@b" },	/* an @ past the host stays */
		{ "http://h/a@b", "http://h/a@b" },
		{ "s3://bucket/{name}", "s3://bucket/{name}" },
		{ "no scheme@all", "no scheme@all" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pl_log_redact_url(cases[i][0], out, sizeof out);
		ck_assert_str_eq(out, cases[i][1]);
	}
}
END_TEST

START_TEST(prefix_sink_escapes)
{
	char *text = logged_to_file(log_forged);

	ck_assert_str_eq(text, "<4>spool: new/" FORGED_ESCAPED " is not a job\n");
	free(text);

	/* the context too; valid UTF-8 stays as it is, C1 controls do not */
	text = logged_to_file(log_item);
	ck_assert_str_eq(text, "<3>job j\\x7fob item 5 (http://h/a\\x0d\\xc2\\x9bb caf\xc3\xa9 "
			       "\xf0\x9f\x98\x80) download: HTTP 500: \\x1b]0;title\\x07\n");
	free(text);
}
END_TEST

/* Every byte of the longest context and message escaped: one whole line. */
START_TEST(longest_line)
{
	char *text = logged_to_file(log_long), *p;
	size_t n = strlen(text), escapes = 0;

	ck_assert_ptr_eq(strchr(text, '\n'), text + n - 1);
	ck_assert(strncmp(text, "<3>job \\x01", 11) == 0);
	for (p = text; (p = strstr(p, "\\x01")); p += 4)
		escapes++;
	/* the context is cut at 1023 bytes ("job " and 1019 of the name), the
	 * message at 2047; "<3>job " and the newline are left */
	ck_assert_uint_eq(escapes, 1019 + 2047);
	ck_assert_uint_eq(n - 4 * escapes, strlen("<3>job \n"));
	free(text);
}
END_TEST

static void log_over_bar(void)
{
	pl_log(LOG_INFO, "before");
	pl_log_bar("[#.] 1/2");
	pl_log(LOG_INFO, "job j finished");
	pl_log_bar("[##] 2/2");
	pl_log_bar_end();
	pl_log(LOG_INFO, "after");
	pl_log_bar_end();	/* no bar: nothing */
}

/* A line over the bar erases the bar's line, is written whole, and the bar
 * comes back below it; the bar's end leaves its last frame on its own line. */
START_TEST(bar_redrawn_below_lines)
{
	char *text = logged_to_file(log_over_bar);

	ck_assert_str_eq(text, "<6>before\n"
			       "\r[#.] 1/2\033[K"
			       "\r\033[K<6>job j finished\n[#.] 1/2\033[K"
			       "\r[##] 2/2\033[K"
			       "\r[##] 2/2\033[K\n"
			       "<6>after\n");
	free(text);
}
END_TEST

#define RACE_THREADS 4
#define RACE_LINES 200

static void *race_logger(void *arg)
{
	for (int i = 0; i < RACE_LINES; i++)
		pl_log(LOG_INFO, "thread %d line %d", (int)(intptr_t)arg, i);
	return NULL;
}

static void log_race(void)
{
	pthread_t t[RACE_THREADS];
	char frame[64];

	for (int i = 0; i < RACE_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, race_logger, (void *)(intptr_t)i), 0);
	for (int i = 0; i < 500; i++) {
		snprintf(frame, sizeof frame, "[%.*s] frame %d", i % 20, "####################", i);
		pl_log_bar(frame);
	}
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(t[i], NULL);
	pl_log_bar_end();
}

/* Threads log while another redraws the bar: each log line ends up whole,
 * on a line of its own once the terminal has applied the "\r"s (what
 * follows the last "\r" of a line is the log line alone). */
START_TEST(bar_never_splits_lines)
{
	char *text = logged_to_file(log_race), *save = NULL, *line;
	int seen[RACE_THREADS][RACE_LINES] = { { 0 } }, ended = 0;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *last = strrchr(line, '\r'), *shown = last ? last + 1 : line;
		int th, ln, used = 0;

		if (strncmp(shown, "\033[K", 3) == 0)
			shown += 3;
		if (sscanf(shown, "<6>thread %d line %d%n", &th, &ln, &used) == 2 &&
		    shown[used] == '\0') {
			ck_assert(th >= 0 && th < RACE_THREADS && ln >= 0 && ln < RACE_LINES);
			seen[th][ln]++;
		} else {
			/* the bar's last frame, whole, ends the output */
			ck_assert_msg(strncmp(shown, "[", 1) == 0 && strstr(shown, "] frame 499\033[K"),
				      "not a whole line: %s", shown);
			ended++;
		}
	}
	ck_assert_int_eq(ended, 1);
	for (int i = 0; i < RACE_THREADS; i++)
		for (int j = 0; j < RACE_LINES; j++)
			ck_assert_int_eq(seen[i][j], 1);
	free(text);
}
END_TEST

START_TEST(plain_sink_escapes)
{
	struct termios raw;
	struct pollfd pfd;
	char out[512];
	size_t n = 0;
	int master, slave, saved;

	master = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(master, 0);
	ck_assert_int_eq(grantpt(master), 0);
	ck_assert_int_eq(unlockpt(master), 0);
	slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	ck_assert_int_ge(slave, 0);
	ck_assert_int_eq(tcgetattr(slave, &raw), 0);
	cfmakeraw(&raw);		/* bytes as written: no "\r\n" for "\n" */
	ck_assert_int_eq(tcsetattr(slave, TCSANOW, &raw), 0);

	saved = pl_test_stderr_to(slave);
	ck_assert_int_ge(saved, 0);
	log_forged();
	pl_test_stderr_restore(saved);

	pfd = (struct pollfd){ .fd = master, .events = POLLIN };
	while (n < sizeof out - 1 && !memchr(out, '\n', n)) {
		ssize_t r;

		ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
		r = read(master, out + n, sizeof out - 1 - n);
		ck_assert_int_gt(r, 0);
		n += (size_t)r;
	}
	out[n] = '\0';
	ck_assert_str_eq(out, "pipelined: warning: spool: new/" FORGED_ESCAPED " is not a job\n");
	close(slave);
	close(master);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("stderr");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, prefix_sink_escapes);
	tcase_add_test(tc, url_redacted);
	tcase_add_test(tc, longest_line);
	tcase_add_test(tc, plain_sink_escapes);
	tcase_add_test(tc, bar_redrawn_below_lines);
	tcase_add_test(tc, bar_never_splits_lines);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

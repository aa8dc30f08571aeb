/*
 * test_spool.c — the spool against real folders: parsing and naming, the
 * JSON records (checked by Debian's python3 json module, an independent
 * parser), claiming, inotify, recovery, finishing, resuming after a crash or
 * a stop, concurrent recording, and the sweep of what dead producers left
 * in tmp/.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crashguard.h"
#include "item.h"
#include "nameset.h"
#include "record.h"
#include "jobline.h"
#include "spool.h"
#include "spoolcount.h"
#include "spooldir.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------- */

static char *dir;

static void setup(void)
{
	dir = pl_test_tmpdir("spool");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	pl_test_rmtree(dir);
	free(dir);
	dir = NULL;
}

static const char *path_of(const char *rel)
{
	static char buf[4][4096];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, rel);
	return buf[k];
}

static bool exists(const char *rel)
{
	return access(path_of(rel), F_OK) == 0;
}

static void put_file(const char *rel, const char *text)
{
	ck_assert_int_eq(pl_test_write_file(path_of(rel), text, strlen(text)), 0);
}

/* A job as a producer submits it: written in tmp/, renamed into new/. */
static void submit(const char *name, const char *text)
{
	char tmp[64], dst[64];

	snprintf(tmp, sizeof tmp, "tmp/%s", name);
	snprintf(dst, sizeof dst, "new/%s", name);
	put_file(tmp, text);
	ck_assert_int_eq(rename(path_of(tmp), path_of(dst)), 0);
}

static char *slurp(const char *rel)
{
	FILE *f = fopen(path_of(rel), "r");
	char *buf = NULL;
	size_t len = 0;

	ck_assert_msg(f != NULL, "cannot open %s", rel);
	FILE *m = open_memstream(&buf, &len);
	int c;
	while ((c = fgetc(f)) != EOF)
		fputc(c, m);
	fclose(m);
	fclose(f);
	return buf;
}

static int count_char(const char *s, char c)
{
	int n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

/*
 * Every line of a result file must be a JSON object with the record's
 * keys; prints "line name status" per record, sorted by line.
 */
static const char *const summarize =
	"import json,sys\n"
	"recs=[json.loads(l) for l in open(sys.argv[1],encoding='utf-8')]\n"
	"for r in recs:\n"
	"  assert set(r)=={'line','source','name','status','outputs','error','milliseconds'},r\n"
	"  assert isinstance(r['outputs'],list) and isinstance(r['milliseconds'],int)\n"
	"for r in sorted(recs,key=lambda r:r['line']):\n"
	"  print(r['line'],r['name'],r['status'],','.join(r['outputs']),r['error'] or '-')\n";

static void expect_result(const char *rel, const char *want)
{
	char out[65536];

	ck_assert_int_eq(pl_test_run_python(summarize, path_of(rel), out, sizeof out), 0);
	ck_assert_str_eq(out, want);
}

static struct pl_spool *open_spool(void)
{
	struct pl_spool *s;

	ck_assert_int_eq(pl_spool_open(dir, &s), 0);
	return s;
}

static struct pl_job *claim(struct pl_spool *s)
{
	struct pl_job *j;

	ck_assert_int_eq(pl_spool_claim(s, &j), 0);
	ck_assert_ptr_nonnull(j);
	return j;
}

static struct pl_item *next_good(struct pl_job *j)
{
	struct pl_item *it;
	const char *bad;

	ck_assert_int_eq(pl_spool_next_item(j, &it, &bad), 0);
	ck_assert_msg(bad == NULL, "unexpected bad line %lu: %s", it->line, bad);
	return it;
}

static void expect_end(struct pl_job *j)
{
	struct pl_item *it;
	const char *bad;

	ck_assert_int_eq(pl_spool_next_item(j, &it, &bad), -ENODATA);
}

/* ---- pure helpers --------------------------------------------------- */

static int parse(const char *line, char **src, char **name, const char **why)
{
	static char buf[10000];

	snprintf(buf, sizeof buf, "%s", line);
	return pl_jobline_parse(buf, src, name, why);
}

START_TEST(parse_good_lines)
{
	char *src, *name;
	const char *why;

	ck_assert_int_eq(parse("http://h/a.jpg", &src, &name, &why), 1);
	ck_assert_str_eq(src, "http://h/a.jpg");
	ck_assert_ptr_null(name);
	ck_assert_int_eq(parse("  https://h/a.jpg\tcat-1.v2_x  \r", &src, &name, &why), 1);
	ck_assert_str_eq(src, "https://h/a.jpg");
	ck_assert_str_eq(name, "cat-1.v2_x");
	ck_assert_int_eq(parse("s3://bucket/key\r", &src, &name, &why), 1);
	ck_assert_str_eq(src, "s3://bucket/key");
	ck_assert_int_eq(parse("", &src, &name, &why), 0);
	ck_assert_int_eq(parse("  \t\r", &src, &name, &why), 0);
	ck_assert_int_eq(parse("# http://h/a.jpg a", &src, &name, &why), 0);
	ck_assert_int_eq(parse("   #comment", &src, &name, &why), 0);
}
END_TEST

START_TEST(parse_bad_lines)
{
	char *src, *name, big[9000];
	const char *why;

	ck_assert_int_eq(parse("http://h/a.jpg a b", &src, &name, &why), -EINVAL);
	ck_assert_str_eq(why, "trailing text after NAME");
	ck_assert_int_eq(parse("h/a.jpg", &src, &name, &why), -EINVAL);
	ck_assert_str_eq(why, "not a URL");
	ck_assert_int_eq(parse("://h/a.jpg", &src, &name, &why), -EINVAL);
	ck_assert_str_eq(why, "not a URL");
	ck_assert_int_eq(parse("1http://h/a.jpg", &src, &name, &why), -EINVAL);
	ck_assert_int_eq(parse("http://h/a.jpg a/b", &src, &name, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "invalid NAME"));
	ck_assert_int_eq(parse("http://h/a.jpg .hidden", &src, &name, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "invalid NAME"));
	ck_assert_int_eq(parse("http://h/a.jpg caf\xc3\xa9", &src, &name, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "invalid NAME"));

	memset(big, 'x', sizeof big);
	memcpy(big, "http://h/", 9);
	big[8193] = '\0';
	ck_assert_int_eq(parse(big, &src, &name, &why), -EINVAL);
	ck_assert_str_eq(why, "line too long");
	big[8192] = '\0';
	ck_assert_int_eq(parse(big, &src, &name, &why), 1);
}
END_TEST

/* judge() on a copy of line, as read: at most PL_JOBLINE_MAX + 1 bytes
 * kept and cut set when there were more, as both readers do. */
static int judge(struct pl_nameset *names, const char *line, size_t len, char **src,
		 char name[PL_JOBLINE_NAME_MAX + 1], char quote[PL_JOBLINE_QUOTE_MAX + 1],
		 const char **why)
{
	static char buf[PL_JOBLINE_MAX + 2];
	bool cut = len > PL_JOBLINE_MAX + 1;

	if (cut)
		len = PL_JOBLINE_MAX + 1;
	memcpy(buf, line, len);
	return pl_jobline_judge(buf, len, cut, names, src, name, quote, why);
}

START_TEST(judge_lines)
{
	char name[PL_JOBLINE_NAME_MAX + 1], quote[PL_JOBLINE_QUOTE_MAX + 1], *src, big[9000];
	struct pl_nameset names = { 0 };
	const char *why;

#define J(s) judge(&names, s, sizeof s - 1, &src, name, quote, &why)
	ck_assert_int_eq(J("  # comment"), 0);
	ck_assert_int_eq(J("\r"), 0);
	ck_assert_int_eq(J("http://h/a.jpg\r"), 1);	/* CRLF: the \r goes */
	ck_assert_ptr_null(why);
	ck_assert_str_eq(src, "http://h/a.jpg");
	ck_assert_str_eq(name, "a");
	ck_assert_int_eq(J("http://h/x/a.png"), 1);	/* derived names made unique */
	ck_assert_str_eq(name, "a-2");
	ck_assert_int_eq(J("http://h/b.jpg a-2"), 1);	/* an explicit one is not */
	ck_assert_str_eq(why, "duplicate NAME");
	ck_assert_str_eq(quote, "http://h/b.jpg a-2");
	ck_assert_int_eq(J("  nope  "), 1);
	ck_assert_str_eq(why, "not a URL");
	ck_assert_str_eq(quote, "nope");
	ck_assert_int_eq(J("http://h/\0c.jpg"), 1);
	ck_assert_str_eq(why, "NUL byte in line");
	ck_assert_str_eq(quote, "http://h/ c.jpg");
#undef J
	memset(big, ' ', sizeof big);		/* a blank line too long is still blank */
	ck_assert_int_eq(judge(&names, big, sizeof big, &src, name, quote, &why), 0);
	memcpy(big + 100, "http://h/", 9);
	ck_assert_int_eq(judge(&names, big, sizeof big, &src, name, quote, &why), 1);
	ck_assert_str_eq(why, "line too long");
	ck_assert_int_eq(strncmp(quote, "http://h/", 9), 0);
	memset(big, 'x', sizeof big);		/* exactly the limit, then one more */
	memcpy(big, "http://h/", 9);
	ck_assert_int_eq(judge(&names, big, PL_JOBLINE_MAX, &src, name, quote, &why), 1);
	ck_assert_ptr_null(why);
	ck_assert_int_eq(judge(&names, big, PL_JOBLINE_MAX + 1, &src, name, quote, &why), 1);
	ck_assert_str_eq(why, "line too long");
	big[PL_JOBLINE_MAX] = '\r';		/* the limit and a CR is the limit */
	ck_assert_int_eq(judge(&names, big, PL_JOBLINE_MAX + 1, &src, name, quote, &why), 1);
	ck_assert_ptr_null(why);
	pl_nameset_free(&names);
}
END_TEST

START_TEST(name_validity)
{
	char n[102];

	ck_assert(pl_jobline_name_valid("a"));
	ck_assert(pl_jobline_name_valid("A-z_0.9"));
	ck_assert(!pl_jobline_name_valid(""));
	ck_assert(!pl_jobline_name_valid(".a"));
	ck_assert(!pl_jobline_name_valid("a b"));
	ck_assert(!pl_jobline_name_valid("a\\b"));
	memset(n, 'n', 100);
	n[100] = '\0';
	ck_assert(pl_jobline_name_valid(n));
	n[100] = 'n';
	n[101] = '\0';
	ck_assert(!pl_jobline_name_valid(n));
}
END_TEST

static const char *derive(const char *url)
{
	static char out[128];

	ck_assert_int_eq(pl_jobline_derive_name(url, out, sizeof out), 0);
	ck_assert_msg(pl_jobline_name_valid(out), "derived invalid name '%s' from %s", out, url);
	return out;
}

START_TEST(derive_names)
{
	char longurl[400], small[8];

	ck_assert_str_eq(derive("http://h/dir/photo.jpg"), "photo");
	ck_assert_str_eq(derive("http://h/dir/photo.jpg?size=2&x=/y.png#frag"), "photo");
	ck_assert_str_eq(derive("http://h/a/archive.tar.gz"), "archive.tar");
	ck_assert_str_eq(derive("http://h/my%20cat%2Fdog.png"), "my_cat_dog");
	ck_assert_str_eq(derive("http://h/%41%62c.jpg"), "Abc");
	ck_assert_str_eq(derive("http://h/bad%zzpct"), "bad_zzpct");
	ck_assert_str_eq(derive("http://h/caf%C3%A9.jpg"), "caf__");
	ck_assert_str_eq(derive("http://h/..hidden"), "hidden");
	ck_assert_str_eq(derive("http://h/.jpg"), "jpg");
	ck_assert_str_eq(derive("http://h/..a.b.jpg"), "a.b");
	ck_assert_str_eq(derive("http://h/dir/"), "item");
	ck_assert_str_eq(derive("http://h"), "item");
	ck_assert_str_eq(derive("http://h?x=a.jpg"), "item");
	ck_assert_str_eq(derive("file:///srv/img/x.y.z"), "x.y");
	ck_assert_str_eq(derive("http://h/%2e%2e"), "item");

	memcpy(longurl, "http://h/", 9);
	memset(longurl + 9, 'q', 300);
	strcpy(longurl + 309, ".jpg");
	ck_assert_uint_eq(strlen(derive(longurl)), 100);

	ck_assert_int_eq(pl_jobline_derive_name("http://h/abcdefghij.jpg", small, sizeof small), 0);
	ck_assert_str_eq(small, "abcdefg");
	ck_assert_int_lt(pl_jobline_derive_name("http://h/a", small, 4), 0);
}
END_TEST

/* The record's source and error, decoded by python, as hex of UTF-8. */
START_TEST(json_escaping)
{
	struct pl_item it = { 0 };
	struct pl_output outs[3] = { 0 };
	char out[4096], want[1024], *rec;
	const char *src = "http://h/\"q\"\\back\x01\x1f\t\n\x7f caf\xc3\xa9 \xff\xc3 \xed\xa0\x80 \xf0\x9f\x98\x80";
	const char *rel = "rec.json";

	it.line = 7;
	it.source = (char *)src;
	it.name = "n\"x";
	outs[0].location = "/out/a \"b\".jpg";
	outs[2].location = "/out/c.jpg";
	it.outputs = outs;
	it.noutputs = 3;
	rec = pl_record_format(&it, false, "bad \x02 \xc0\xaf", 41);
	ck_assert_ptr_nonnull(rec);
	ck_assert_int_eq(count_char(rec, '\n'), 1);
	ck_assert(rec[strlen(rec) - 1] == '\n');
	put_file(rel, rec);
	free(rec);

	ck_assert_int_eq(pl_test_run_python(
		"import json,sys\n"
		"r=json.loads(open(sys.argv[1],'rb').read().decode('utf-8'))\n"
		"print(r['line'],r['name'],r['status'],r['outputs'],r['milliseconds'])\n"
		"print(r['source'].encode('utf-8').hex())\n"
		"print(r['error'].encode('utf-8').hex())\n", path_of(rel), out, sizeof out), 0);
	/* invalid bytes (\xff, lone \xc3, a surrogate, an overlong) → U+FFFD each */
	snprintf(want, sizeof want,
		 "7 n\"x failed ['/out/a \"b\".jpg', '/out/c.jpg'] 41\n%s\n%s\n",
		 "687474703a2f2f682f227122" "5c6261636b" "011f090a7f" "20636166c3a9"
		 "20efbfbdefbfbd" "20efbfbdefbfbdefbfbd" "20f09f9880",
		 "626164" "2002" "20efbfbdefbfbd");
	ck_assert_str_eq(out, want);

	it.source = NULL;
	it.name = NULL;
	it.outputs = NULL;
	it.noutputs = 0;
	rec = pl_record_format(&it, true, "ignored", 0);
	ck_assert_str_eq(rec, "{\"line\":7,\"source\":null,\"name\":null,\"status\":\"ok\","
			      "\"outputs\":[],\"error\":null,\"milliseconds\":0}\n");
	free(rec);
}
END_TEST

/* Each name once, however many (the table grows), and "" is a name too. */
START_TEST(nameset_adds)
{
	struct pl_nameset set = { 0 };
	char name[32];

	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 1000; i++) {
			snprintf(name, sizeof name, "a-%d", i);
			ck_assert_int_eq(pl_nameset_add(&set, name), round == 0);
		}
	ck_assert_uint_eq(set.count, 1000);
	ck_assert_int_eq(pl_nameset_add(&set, ""), 1);
	ck_assert_int_eq(pl_nameset_add(&set, ""), 0);
	pl_nameset_free(&set);
	ck_assert_ptr_null(set.slot);
	ck_assert_int_eq(pl_nameset_add(&set, "a-1"), 1);
	pl_nameset_free(&set);
}
END_TEST

/* What a record says, through the reader resume uses; -1 if not a record. */
static int parsed(const char *rec, size_t len, unsigned long *line)
{
	bool ok;

	*line = 0;
	if (pl_record_parse(rec, len, line, &ok) < 0)
		return -1;
	return ok;
}

static int parsed_str(const char *rec, unsigned long *line)
{
	return parsed(rec, strlen(rec), line);
}

/* The reader takes back what the writer writes, and nothing else. */
START_TEST(record_parse)
{
	static const char *const not_records[] = {
		"",
		"\n",
		"{\"line\":1}\n",
		"{\"line\":5,\"status\":\"ok\"}\n",
		"{\"line\":5,\"source\":null,\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3",				/* torn */
		"{\"line\":05,\"source\":null,\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}",				/* leading zero */
		"{\"line\":-5,\"source\":null,\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}",
		"{\"line\":99999999999999999999999,\"source\":null,\"name\":null,\"status\":\"ok\","
		"\"outputs\":[],\"error\":null,\"milliseconds\":3}",		/* too big */
		"{\"line\": 5,\"source\":null,\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}",				/* a space */
		"{\"line\":5,\"source\":null,\"name\":null,\"status\":\"okay\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}",
		"{\"line\":5,\"source\":null,\"name\":null,\"status\":\"ok\",\"outputs\":[,],"
		"\"error\":null,\"milliseconds\":3}",
		"{\"line\":5,\"source\":\"a\x01\",\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}",				/* raw control */
		"{\"line\":5,\"source\":\"\xff\",\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}",				/* not UTF-8 */
		"{\"line\":5,\"source\":\"\\x41\",\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}",				/* bad escape */
		"{\"line\":5,\"source\":null,\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3,\"x\":1}",			/* a key more */
		"{\"line\":5,\"source\":null,\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}x\n",			/* trailing text */
		"{\"line\":5,\"source\":null,\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}\n\n",
	};
	static const char nul_inside[] =
		"{\"line\":5,\"source\":\"a\0b\",\"name\":null,\"status\":\"ok\",\"outputs\":[],"
		"\"error\":null,\"milliseconds\":3}\n";
	struct pl_output outs[2] = { { .location = "/o/\"1\".jpg" }, { .location = "/o/2.png" } };
	struct pl_item it = { .line = 42, .source = "http://h/\"x\"\\\x01\xff", .name = "n",
			      .outputs = outs, .noutputs = 2 };
	char oom[PL_RECORD_OOM_SIZE], *rec;
	unsigned long line;

	rec = pl_record_format(&it, true, NULL, 12);
	ck_assert_int_eq(parsed_str(rec, &line), 1);
	ck_assert_uint_eq(line, 42);
	rec[strlen(rec) - 1] = '\0';		/* without its newline too */
	ck_assert_int_eq(parsed_str(rec, &line), 1);
	free(rec);
	/* a failed item whose error quotes an ok record is still failed */
	it.line = 7;
	rec = pl_record_format(&it, false, ",\"status\":\"ok\",", 0);
	ck_assert_int_eq(parsed_str(rec, &line), 0);
	ck_assert_uint_eq(line, 7);
	free(rec);
	it.source = it.name = NULL;
	it.outputs = NULL;
	rec = pl_record_format(&it, false, NULL, 0);
	ck_assert_int_eq(parsed_str(rec, &line), 0);
	free(rec);
	pl_record_format_oom(oom, 9, 1234);
	ck_assert_int_eq(parsed_str(oom, &line), 0);
	ck_assert_uint_eq(line, 9);

	for (size_t i = 0; i < sizeof not_records / sizeof *not_records; i++)
		ck_assert_msg(parsed_str(not_records[i], &line) == -1, "taken as a record: %s",
			      not_records[i]);
	ck_assert_int_eq(parsed(nul_inside, sizeof nul_inside - 1, &line), -1);
}
END_TEST

/*
 * Random bytes through every pure helper: derived names are always valid,
 * parse results point into the buffer, and every record is valid JSON that
 * python reads back (a small fuzz run that needs no fuzzer).
 */
START_TEST(random_inputs)
{
	FILE *f = fopen(path_of("random.json"), "w");
	char line[300], copy[300], name[101], out[256];
	unsigned seed = 12345;

	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 500; i++) {
		size_t n = (size_t)(rand_r(&seed) % 250);
		struct pl_item it = { .line = (unsigned long)i + 1 };
		char *src, *nm, *rec;
		const char *why;
		int r;

		for (size_t k = 0; k < n; k++)
			line[k] = (char)(rand_r(&seed) % 255 + 1);
		if (i % 3 == 0 && n > 8)
			memcpy(line, "http://", 7);
		line[n] = '\0';
		memcpy(copy, line, n + 1);
		r = pl_jobline_parse(copy, &src, &nm, &why);
		ck_assert(r == 0 || r == 1 || (r == -EINVAL && why));
		if (r == 1) {
			ck_assert(src >= copy && src < copy + n);
			ck_assert(!nm || pl_jobline_name_valid(nm));
		}
		ck_assert_int_eq(pl_jobline_derive_name(line, name, sizeof name), 0);
		ck_assert_msg(pl_jobline_name_valid(name), "invalid derived name '%s'", name);
		it.source = line;
		it.name = name;
		rec = pl_record_format(&it, i % 2, line, 1);
		ck_assert_ptr_nonnull(rec);
		ck_assert_ptr_eq(strchr(rec, '\n'), rec + strlen(rec) - 1);
		fputs(rec, f);
		free(rec);
	}
	fclose(f);
	ck_assert_int_eq(pl_test_run_python("import json,sys\n"
				    "print(sum(1 for l in open(sys.argv[1],encoding='utf-8') if json.loads(l)))\n",
				    path_of("random.json"), out, sizeof out), 0);
	ck_assert_str_eq(out, "500\n");
}
END_TEST

/* ---- the spool on disk ---------------------------------------------- */

START_TEST(open_creates_folders)
{
	static const char *const sub[] = { "tmp", "new", "cur", "done", "failed" };
	/* producers in the group write tmp/ and new/ (sticky), read the rest */
	static const mode_t mode[] = { 01770, 01770, 0750, 0750, 0750 };
	struct pl_spool *s;
	char *nested;
	struct stat st;

	umask(022);
	ck_assert_int_ge(asprintf(&nested, "%s/spool", dir), 0);
	for (int round = 0; round < 2; round++) {
		ck_assert_int_eq(pl_spool_open(nested, &s), 0);
		ck_assert_int_eq(stat(nested, &st), 0);
		ck_assert_int_eq(st.st_mode & 07777, 0750);
		for (int i = 0; i < 5; i++) {
			char rel[32];
			snprintf(rel, sizeof rel, "spool/%s", sub[i]);
			ck_assert_int_eq(stat(path_of(rel), &st), 0);
			ck_assert(S_ISDIR(st.st_mode));
			ck_assert_int_eq(st.st_mode & 07777, mode[i]);
			/* an existing spool with other modes is set right again */
			ck_assert_int_eq(chmod(path_of(rel), 0700), 0);
		}
		ck_assert_int_ge(pl_spool_fd(s), 0);
		pl_spool_close(s);
		ck_assert_int_eq(chmod(nested, 0700), 0);
	}
	free(nested);

	/* a spool that cannot be created is an error */
	ck_assert_int_lt(pl_spool_open("/proc/nonexistent/spool", &s), 0);
	ck_assert_ptr_null(s);
}
END_TEST

START_TEST(claim_order)
{
	struct pl_spool *s = open_spool();
	struct pl_job *j;

	put_file("tmp/1500.c", "http://h/c.jpg\n");
	ck_assert_int_eq(pl_spool_claim(s, &j), -EAGAIN);	/* tmp/ is not new/ */
	submit("2000.b", "http://h/b.jpg\n");
	submit("1000.a", "http://h/a.jpg\n");
	ck_assert_int_eq(rename(path_of("tmp/1500.c"), path_of("new/1500.c")), 0);
	put_file("new/.hidden", "http://h/x.jpg\n");
	ck_assert_int_eq(mkdir(path_of("new/subdir"), 0700), 0);
	/* without the events, the spool still believes new/ empty */
	ck_assert_int_eq(pl_spool_claim(s, &j), -EAGAIN);
	pl_spool_handle_events(s);

	const char *order[] = { "1000.a", "1500.c", "2000.b" };
	for (int i = 0; i < 3; i++) {
		char rel[64];
		struct pl_item *it;

		j = claim(s);
		snprintf(rel, sizeof rel, "cur/%s", order[i]);
		ck_assert_msg(exists(rel), "%s not claimed in order", order[i]);
		snprintf(rel, sizeof rel, "new/%s", order[i]);
		ck_assert(!exists(rel));
		it = next_good(j);
		ck_assert_str_eq(it->job_name, order[i]);
		ck_assert_ptr_eq(it->job, j);
		ck_assert_uint_eq(it->line, 1);
		pl_spool_item_done(it);
		expect_end(j);
		pl_spool_job_release(j);
	}
	ck_assert_int_eq(pl_spool_claim(s, &j), -EAGAIN);
	ck_assert(exists("new/.hidden"));
	ck_assert(exists("done/1000.a") && exists("done/1500.c") && exists("done/2000.b"));
	pl_spool_close(s);
}
END_TEST

START_TEST(claim_skips_vanished)
{
	struct pl_spool *s = open_spool();
	struct pl_job *j;

	submit("1", "http://h/a.jpg\n");
	submit("2", "http://h/b.jpg\n");
	j = claim(s);	/* "1"; the scan listed "2" as well */
	pl_spool_job_release(j);	/* not read: stays in cur/ until close */
	/* another daemon takes "2" */
	ck_assert_int_eq(rename(path_of("new/2"), path_of("tmp/2")), 0);
	ck_assert_int_eq(pl_spool_claim(s, &j), -EAGAIN);
	pl_spool_close(s);
	ck_assert(exists("new/1"));
}
END_TEST

START_TEST(inotify_wakes)
{
	struct pl_spool *s = open_spool();
	struct pollfd pfd = { .fd = pl_spool_fd(s), .events = POLLIN };
	struct pl_job *j;

	ck_assert_int_eq(pl_spool_claim(s, &j), -EAGAIN);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	put_file("tmp/42.job", "http://h/a.jpg\n");
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);		/* tmp/ is not watched */
	ck_assert_int_eq(rename(path_of("tmp/42.job"), path_of("new/42.job")), 0);
	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
	ck_assert(pfd.revents & POLLIN);
	pl_spool_handle_events(s);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);		/* drained */
	j = claim(s);
	ck_assert(exists("cur/42.job"));
	pl_spool_job_release(j);
	pl_spool_close(s);
}
END_TEST

START_TEST(recover_cur)
{
	struct pl_spool *s = open_spool();

	put_file("cur/100.x", "http://h/a.jpg\n");
	put_file("cur/100.x.result", "");
	put_file("cur/200.y", "http://h/b.jpg\n");
	ck_assert_int_eq(pl_spool_recover(s), 2);
	ck_assert(exists("new/100.x") && exists("new/200.y"));
	ck_assert(!exists("cur/100.x") && !exists("cur/200.y"));
	ck_assert(exists("cur/100.x.result"));
	ck_assert(!exists("new/100.x.result"));
	ck_assert_int_eq(pl_spool_recover(s), 0);
	pl_spool_close(s);
}
END_TEST

START_TEST(cycle_ok_to_done)
{
	struct pl_spool *s = open_spool();
	struct pl_item *a, *b, *c;
	struct pl_job *j;

	submit("1.ok", "# photos\n\nhttp://h/p/photo.jpg\r\n  https://h/q/photo.png\n"
		       "http://h/r.gif front\n");
	j = claim(s);
	a = next_good(j);
	ck_assert_uint_eq(a->line, 3);
	ck_assert_str_eq(a->source, "http://h/p/photo.jpg");
	ck_assert_str_eq(a->name, "photo");
	ck_assert_str_eq(a->job_name, "1.ok");
	ck_assert_uint_gt(a->fed_us, 0);
	b = next_good(j);
	ck_assert_str_eq(b->name, "photo-2");
	c = next_good(j);
	ck_assert_str_eq(c->name, "front");
	expect_end(j);

	a->outputs = calloc(2, sizeof *a->outputs);
	a->noutputs = 2;
	a->outputs[0].location = strdup("/out/photo-thumb.jpg");
	a->outputs[1].location = strdup("/out/photo-big.jpg");
	pl_spool_item_done(a);
	pl_spool_item_done(b);
	pl_spool_job_release(j);
	ck_assert(exists("cur/1.ok"));		/* c still outstanding */
	ck_assert(exists("cur/1.ok.result"));
	pl_spool_item_done(c);
	ck_assert(!exists("cur/1.ok") && !exists("cur/1.ok.result"));
	ck_assert(exists("done/1.ok"));
	expect_result("done/1.ok.result",
		      "3 photo ok /out/photo-thumb.jpg,/out/photo-big.jpg -\n"
		      "4 photo-2 ok  -\n"
		      "5 front ok  -\n");
	pl_spool_close(s);
}
END_TEST

START_TEST(cycle_failed_and_bad_lines)
{
	struct pl_spool *s = open_spool();
	struct pl_item *it;
	struct pl_job *j;
	const char *bad;
	char *big = malloc(9000 + 64), *text, *rec;

	memset(big, 'y', 9000);
	memcpy(big, "http://h/", 9);
	big[9000] = '\0';
	ck_assert_int_ge(asprintf(&text,
		"http://h/a.jpg\nhttp://h/b.png a-2\nnot-a-url\nhttp://h/c.jpg x y\n"
		"%s\nhttp://h/d.jpg .dot\nhttp://h/e.jpg\n", big), 0);
	submit("2.bad", text);
	free(text);
	j = claim(s);

	const char *why[] = { NULL, NULL, "not a URL", "trailing text after NAME",
			      "line too long", "invalid NAME", NULL };
	for (int i = 0; i < 7; i++) {
		ck_assert_int_eq(pl_spool_next_item(j, &it, &bad), 0);
		ck_assert_uint_eq(it->line, (unsigned long)i + 1);
		if (why[i]) {
			ck_assert_ptr_nonnull(bad);
			ck_assert_msg(strncmp(bad, why[i], strlen(why[i])) == 0, "line %d: %s", i + 1, bad);
			ck_assert_ptr_null(it->name);
			ck_assert_uint_le(strlen(it->source), 200);
			pl_spool_item_failed(it, EINVAL, bad);
		} else {
			ck_assert_ptr_null(bad);
			pl_spool_item_done(it);
		}
	}
	/* the "too long" source is the line's first 200 bytes */
	expect_end(j);
	pl_spool_job_release(j);
	ck_assert(exists("failed/2.bad"));
	ck_assert(!exists("cur/2.bad"));
	expect_result("failed/2.bad.result",
		      "1 a ok  -\n"
		      "2 a-2 ok  -\n"
		      "3 None failed  not a URL\n"
		      "4 None failed  trailing text after NAME\n"
		      "5 None failed  line too long\n"
		      "6 None failed  invalid NAME (1 to 100 of A-Z a-z 0-9 . _ -, not starting with '.')\n"
		      "7 e ok  -\n");
	rec = slurp("failed/2.bad.result");
	ck_assert_ptr_nonnull(strstr(rec, "\"source\":\"not-a-url\""));
	ck_assert_ptr_nonnull(strstr(rec, "\"source\":\"http://h/c.jpg x y\""));
	big[200] = '\0';
	ck_assert_ptr_nonnull(strstr(rec, big));
	free(rec);
	free(big);
	pl_spool_close(s);
}
END_TEST

START_TEST(names_unique_within_job)
{
	struct pl_spool *s = open_spool();
	struct pl_item *it;
	struct pl_job *j;
	const char *bad;

	submit("3.names", "http://h/a.jpg\nhttp://h/x/a.png\nhttp://h/b.jpg a-2\n"
			  "http://h/c.jpg c\nhttp://h/c.gif\nhttp://h/d.jpg c\nhttp://h/a-2.jpg\n"
			  "http://h/f.jpg failme\n");
	j = claim(s);
	const char *want[] = { "a", "a-2", NULL, "c", "c-2", NULL, "a-2-2", "failme" };
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(pl_spool_next_item(j, &it, &bad), 0);
		if (want[i]) {
			ck_assert_ptr_null(bad);
			ck_assert_str_eq(it->name, want[i]);
		} else {
			ck_assert_str_eq(bad, "duplicate NAME");
		}
		if (bad)
			pl_spool_item_failed(it, EINVAL, bad);
		else if (i == 7)
			pl_spool_item_failed(it, ETIMEDOUT, NULL);
		else
			pl_spool_item_done(it);
	}
	expect_end(j);
	pl_spool_job_release(j);
	expect_result("failed/3.names.result",
		      "1 a ok  -\n2 a-2 ok  -\n3 None failed  duplicate NAME\n4 c ok  -\n"
		      "5 c-2 ok  -\n6 None failed  duplicate NAME\n7 a-2-2 ok  -\n8 failme failed  Connection timed out\n");
	pl_spool_close(s);
}
END_TEST

START_TEST(resume_after_crash)
{
	struct pl_spool *s;
	struct pl_item *it;
	struct pl_job *j;
	char *rec;

	/* As a crash leaves it: job in cur/, two records and a torn third. */
	put_file("cur/5.crash", "http://h/a.jpg\nhttp://h/a.jpg\n# note\nhttp://h/a.jpg\n"
				"http://h/a.jpg\nhttp://h/b.jpg\n");
	put_file("cur/5.crash.result",
		 "{\"line\":1,\"source\":\"http://h/a.jpg\",\"name\":\"a\",\"status\":\"ok\","
		 "\"outputs\":[],\"error\":null,\"milliseconds\":3}\n"
		 "{\"line\":4,\"source\":\"http://h/a.jpg\",\"name\":\"a-3\",\"status\":\"ok\","
		 "\"outputs\":[],\"error\":null,\"milliseconds\":3}\n"
		 "{\"line\":5,\"source\":\"http://h/a.j");
	s = open_spool();
	ck_assert_int_eq(pl_spool_recover(s), 1);
	j = claim(s);
	rec = slurp("cur/5.crash.result");
	ck_assert_int_eq(count_char(rec, '\n'), 2);
	ck_assert(rec[strlen(rec) - 1] == '\n');	/* torn line cut off */
	free(rec);

	it = next_good(j);
	ck_assert_uint_eq(it->line, 2);
	ck_assert_str_eq(it->name, "a-2");
	pl_spool_item_done(it);
	it = next_good(j);
	ck_assert_uint_eq(it->line, 5);
	ck_assert_str_eq(it->name, "a-4");	/* same as in the first run */
	pl_spool_item_done(it);
	it = next_good(j);
	ck_assert_uint_eq(it->line, 6);
	ck_assert_str_eq(it->name, "b");
	pl_spool_item_done(it);
	expect_end(j);
	pl_spool_job_release(j);
	expect_result("done/5.crash.result",
		      "1 a ok  -\n2 a-2 ok  -\n4 a-3 ok  -\n5 a-4 ok  -\n6 b ok  -\n");
	pl_spool_close(s);
}
END_TEST

/* A line of the result file that is not a record of ours (another
 * program's, or a damaged one) does not count as a recorded line. */
START_TEST(resume_ignores_foreign_lines)
{
	struct pl_spool *s = open_spool();
	struct pl_item *it;
	struct pl_job *j;

	put_file("cur/7.f", "http://h/a.jpg\nhttp://h/b.jpg\nhttp://h/c.jpg\n");
	put_file("cur/7.f.result",
		 "{\"line\":1,\"status\":\"ok\"}\n"
		 "{\"line\":2,\"source\":\"http://h/b.jpg\",\"name\":\"b\",\"status\":\"ok\","
		 "\"outputs\":[],\"error\":null,\"milliseconds\":3}\n"
		 "{\"line\":3,\"source\":\"http://h/c.jpg\",\"name\":\"c\",\"status\":\"ok\","
		 "\"outputs\":[],\"error\":null,\"milliseconds\":3} and more\n");
	ck_assert_int_eq(pl_spool_recover(s), 1);
	j = claim(s);
	it = next_good(j);
	ck_assert_uint_eq(it->line, 1);
	pl_spool_item_done(it);
	it = next_good(j);
	ck_assert_uint_eq(it->line, 3);
	pl_spool_item_done(it);
	expect_end(j);
	pl_spool_job_release(j);
	ck_assert(exists("done/7.f"));
	pl_spool_close(s);
}
END_TEST

START_TEST(resume_keeps_earlier_failure)
{
	struct pl_spool *s = open_spool();
	struct pl_item *it;
	struct pl_job *j;

	put_file("cur/6.f", "http://h/a.jpg\nhttp://h/b.jpg\n");
	put_file("cur/6.f.result",
		 "{\"line\":1,\"source\":\"http://h/a.jpg\",\"name\":\"a\",\"status\":\"failed\","
		 "\"outputs\":[],\"error\":\"HTTP 404\",\"milliseconds\":3}\n");
	ck_assert_int_eq(pl_spool_recover(s), 1);
	j = claim(s);
	it = next_good(j);
	ck_assert_uint_eq(it->line, 2);
	pl_spool_item_done(it);
	expect_end(j);
	pl_spool_job_release(j);
	ck_assert(exists("failed/6.f") && exists("failed/6.f.result"));
	pl_spool_close(s);
}
END_TEST

START_TEST(requeue_close_rerun)
{
	struct pl_spool *s = open_spool();
	struct pl_item *a, *b, *c;
	struct pl_job *j;
	const char *bad;

	submit("7.stop", "http://h/a.jpg\nhttp://h/b.jpg\nhttp://h/c.jpg\n");
	j = claim(s);
	a = next_good(j);
	b = next_good(j);
	c = next_good(j);
	expect_end(j);
	pl_spool_item_done(a);
	pl_spool_item_requeue(b);	/* fast stop: b never entered a stage */
	pl_spool_job_release(j);
	ck_assert(exists("cur/7.stop"));	/* c is still in the pipeline */
	pl_spool_close(s);		/* job goes back while c is out */
	ck_assert(exists("new/7.stop"));
	ck_assert(!exists("cur/7.stop"));
	pl_spool_item_done(c);		/* recorded; last reference frees all */
	ck_assert(exists("cur/7.stop.result"));
	ck_assert(!exists("done/7.stop"));

	s = open_spool();
	j = claim(s);
	b = next_good(j);
	ck_assert_uint_eq(b->line, 2);
	ck_assert_str_eq(b->name, "b");
	ck_assert_int_eq(pl_spool_next_item(j, &c, &bad), -ENODATA);
	pl_spool_item_done(b);
	pl_spool_job_release(j);
	expect_result("done/7.stop.result", "1 a ok  -\n2 b ok  -\n3 c ok  -\n");
	pl_spool_close(s);
}
END_TEST

START_TEST(release_early_then_close)
{
	struct pl_spool *s = open_spool();
	struct pl_item *a;
	struct pl_job *j;

	submit("8.early", "http://h/a.jpg\nhttp://h/b.jpg\n");
	j = claim(s);
	a = next_good(j);
	pl_spool_job_release(j);	/* stops before the end */
	pl_spool_item_done(a);
	ck_assert(exists("cur/8.early"));	/* not finished: not read to its end */
	pl_spool_close(s);
	ck_assert(exists("new/8.early"));

	s = open_spool();
	j = claim(s);
	a = next_good(j);
	ck_assert_uint_eq(a->line, 2);
	pl_spool_item_done(a);
	expect_end(j);
	pl_spool_job_release(j);
	expect_result("done/8.early.result", "1 a ok  -\n2 b ok  -\n");
	pl_spool_close(s);
}
END_TEST

#define NITEMS 2000
#define NTHREADS 4

struct worker {
	struct pl_item **items;
	int from, to;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = w->from; i < w->to; i++) {
		if (i % 7 == 0)
			pl_spool_item_failed(w->items[i], EIO, "boom");
		else
			pl_spool_item_done(w->items[i]);
	}
	return NULL;
}

START_TEST(concurrent_records)
{
	struct pl_spool *s = open_spool();
	struct pl_item **items = calloc(NITEMS, sizeof *items);
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	char *text = NULL, out[256];
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	struct pl_job *j;

	for (int i = 0; i < NITEMS; i++)
		fprintf(m, "http://h/img.jpg\n");
	fclose(m);
	submit("9.many", text);
	free(text);
	j = claim(s);
	for (int i = 0; i < NITEMS; i++)
		items[i] = next_good(j);
	expect_end(j);
	pl_spool_job_release(j);
	for (int k = 0; k < NTHREADS; k++) {
		w[k] = (struct worker){ items, k * NITEMS / NTHREADS, (k + 1) * NITEMS / NTHREADS };
		ck_assert_int_eq(pthread_create(&t[k], NULL, worker_main, &w[k]), 0);
	}
	for (int k = 0; k < NTHREADS; k++)
		pthread_join(t[k], NULL);
	ck_assert(exists("failed/9.many"));
	ck_assert_int_eq(pl_test_run_python(
		"import json,sys,collections\n"
		"recs=[json.loads(l) for l in open(sys.argv[1])]\n"
		"lines=collections.Counter(r['line'] for r in recs)\n"
		"names=set(r['name'] for r in recs)\n"
		"bad=[r for r in recs if (r['status']=='failed')!=((r['line']-1)%7==0)]\n"
		"print(len(recs),len(lines),max(lines.values()),min(lines),max(lines),len(names),len(bad))\n",
		path_of("failed/9.many.result"), out, sizeof out), 0);
	ck_assert_str_eq(out, "2000 2000 1 1 2000 2000 0\n");
	free(items);
	pl_spool_close(s);
}
END_TEST

START_TEST(result_named_job_rejected)
{
	struct pl_spool *s = open_spool();
	struct pl_item *it;
	struct pl_job *j;

	submit("10.result", "http://h/a.jpg\n");
	submit("11.job", "http://h/a.jpg\n");
	j = claim(s);
	it = next_good(j);
	ck_assert_str_eq(it->job_name, "11.job");
	pl_spool_item_requeue(it);
	ck_assert(exists("failed/10.result"));
	ck_assert(!exists("new/10.result"));
	ck_assert(exists("cur/11.job"));
	pl_spool_job_release(j);
	pl_spool_close(s);
	ck_assert(exists("new/11.job"));
}
END_TEST

/* ---- hostile entries, the lock, stops, the crash guard -------------- */

#define SECRET "secret-line-never-quoted"

static void put_secret(void)
{
	put_file("secret", "http://h/" SECRET "\n");
}

/* A job swapped for a symlink, a FIFO or a hard link after the scan of
 * new/ is caught when it is opened: failed/ with a reason, never read. */
START_TEST(swap_after_scan_rejected)
{
	struct pl_spool *s = open_spool();
	struct pl_item *it;
	struct pl_job *j;
	char *rec;

	put_secret();
	submit("a", "http://h/a.jpg\n");
	submit("b", "http://h/b.jpg\n");
	submit("c", "http://h/c.jpg\n");
	submit("d", "http://h/d.jpg\n");
	j = claim(s);		/* the scan lists a b c d */
	ck_assert_int_eq(unlink(path_of("new/b")), 0);
	ck_assert_int_eq(symlink(path_of("secret"), path_of("new/b")), 0);
	ck_assert_int_eq(unlink(path_of("new/c")), 0);
	ck_assert_int_eq(mkfifo(path_of("new/c"), 0600), 0);
	ck_assert_int_eq(unlink(path_of("new/d")), 0);
	ck_assert_int_eq(link(path_of("secret"), path_of("new/d")), 0);
	it = next_good(j);
	ck_assert_str_eq(it->job_name, "a");
	pl_spool_item_done(it);
	expect_end(j);
	pl_spool_job_release(j);
	/* b, c and d are refused in turn; claim does not block on the FIFO */
	ck_assert_int_eq(pl_spool_claim(s, &j), -EAGAIN);
	ck_assert_uint_eq(pl_spool_rejected(s), 3);
	ck_assert(!exists("new/b") && !exists("new/c") && !exists("new/d"));
	rec = slurp("failed/b.result");
	ck_assert_ptr_nonnull(strstr(rec, "\"line\":0"));
	ck_assert_ptr_nonnull(strstr(rec, "is a symbolic link, not a regular file"));
	ck_assert_ptr_null(strstr(rec, SECRET));
	free(rec);
	rec = slurp("failed/c.result");
	ck_assert_ptr_nonnull(strstr(rec, "is a FIFO"));
	free(rec);
	rec = slurp("failed/d.result");
	ck_assert_ptr_nonnull(strstr(rec, "has 2 hard links"));
	ck_assert_ptr_null(strstr(rec, SECRET));
	free(rec);
	pl_spool_close(s);
}
END_TEST

/* The check that counts is the one after the move into cur/: a symlink or
 * FIFO that lands there (the swap between the two) is refused as well. */
START_TEST(swap_into_cur_rejected)
{
	struct pl_spool *s = open_spool();
	struct pl_job *j;
	char *rec;

	put_secret();
	ck_assert_int_eq(symlink(path_of("secret"), path_of("cur/e")), 0);
	ck_assert_int_eq(mkfifo(path_of("cur/f"), 0600), 0);
	ck_assert_int_eq(pl_spool_recover(s), 2);	/* back to new/, as after a crash */
	ck_assert_int_eq(pl_spool_claim(s, &j), -EAGAIN);
	ck_assert_uint_eq(pl_spool_rejected(s), 2);
	rec = slurp("failed/e.result");
	ck_assert_ptr_nonnull(strstr(rec, "symbolic link"));
	free(rec);
	ck_assert(exists("failed/f"));
	pl_spool_close(s);
}
END_TEST

/* Folders are moved, dot-files are left (a tool may be writing them) and
 * never claimed; the result file is never opened through a symlink. */
START_TEST(folders_and_dotfiles)
{
	struct pl_spool *s = open_spool();
	struct pl_job *j;
	char *rec;

	ck_assert_int_eq(mkdir(path_of("new/folder"), 0700), 0);
	put_file("new/.partial", "http://h/a.jpg\n");
	put_secret();
	submit("g", "http://h/a.jpg\n");
	ck_assert_int_eq(symlink(path_of("secret"), path_of("cur/g.result")), 0);
	/* g's result is a symlink: g stays in cur/, the secret is untouched */
	ck_assert_int_eq(pl_spool_claim(s, &j), -EAGAIN);
	ck_assert(exists("failed/folder"));
	ck_assert(exists("new/.partial"));
	ck_assert(exists("cur/g"));
	rec = slurp("secret");
	ck_assert_str_eq(rec, "http://h/" SECRET "\n");
	free(rec);
	ck_assert_uint_eq(pl_spool_rejected(s), 1);
	pl_spool_close(s);
}
END_TEST

/* ---- the sweep of tmp/ ---------------------------------------------- */

#define HOUR ((time_t)3600)

/* The rule alone: regular, one link, mtime and ctime both past 36 hours. */
START_TEST(tmp_abandoned_rule)
{
	const time_t now = 1700000000, limit = PL_SPOOLDIR_TMP_MAX_AGE;
	struct stat st = { .st_mode = S_IFREG | 0640, .st_nlink = 1 };

	ck_assert_int_eq(limit, 36 * HOUR);
	st.st_mtime = st.st_ctime = now - limit - 1;
	ck_assert(pl_spooldir_tmp_abandoned(&st, now));
	st.st_mtime = now - limit;		/* exactly 36 hours: not yet */
	ck_assert(!pl_spooldir_tmp_abandoned(&st, now));
	st.st_mtime = now - limit - 1;
	st.st_ctime = now - HOUR;		/* an old mtime given to a new file */
	ck_assert(!pl_spooldir_tmp_abandoned(&st, now));
	st.st_ctime = now - limit - 1;
	st.st_nlink = 2;
	ck_assert(!pl_spooldir_tmp_abandoned(&st, now));
	st.st_nlink = 1;
	for (size_t i = 0; i < 5; i++) {
		static const mode_t other[] = { S_IFLNK, S_IFDIR, S_IFIFO, S_IFSOCK, S_IFCHR };

		st.st_mode = other[i] | 0777;
		ck_assert(!pl_spooldir_tmp_abandoned(&st, now));
	}
}
END_TEST

static void set_mtime(const char *rel, time_t t)
{
	struct timespec ts[2] = { { .tv_sec = t }, { .tv_sec = t } };

	ck_assert_int_eq(utimensat(AT_FDCWD, path_of(rel), ts, AT_SYMLINK_NOFOLLOW), 0);
}

static struct pl_spool *sweep_spool;
static time_t sweep_now;
static int sweep_removed;

static void run_sweep(void)
{
	sweep_removed = pl_spool_sweep_tmp(sweep_spool, sweep_now);
}

/*
 * What a killed producer left in tmp/ goes once untouched for 36 hours,
 * and nothing else there does.  A file's ctime cannot be set back, so the
 * sweep's clock is moved on instead: every file planted now has a ctime
 * 37 hours old at t0 + 37 h, and its mtime says the rest.
 */
START_TEST(sweep_tmp_removes_abandoned)
{
	const time_t t0 = time(NULL), old = t0 - 40 * HOUR, later = t0 + 37 * HOUR;
	struct pl_spool *s = open_spool();
	char *log;

	/* what pipelinectl leaves when killed, and a hand-made name with a
	 * newline in it (the log line must stay one line) */
	put_file("tmp/.job7.4242.0123456789abcdef", "http://h/a.jpg\n");
	set_mtime("tmp/.job7.4242.0123456789abcdef", old);
	put_file("tmp/by\nhand", "http://h/b.jpg\n");
	set_mtime("tmp/by\nhand", old);
	/* a slow upload still being written: its mtime is fresh at `later` */
	put_file("tmp/.big.4343.fedcba9876543210", "http://h/c.jpg\n");
	set_mtime("tmp/.big.4343.fedcba9876543210", later - 60);
	/* old, but not regular files of their own */
	put_file("target", "http://h/t.jpg\n");
	set_mtime("target", old);
	ck_assert_int_eq(symlink(path_of("target"), path_of("tmp/link")), 0);
	set_mtime("tmp/link", old);
	ck_assert_int_eq(link(path_of("target"), path_of("tmp/second-name")), 0);
	ck_assert_int_eq(mkdir(path_of("tmp/folder"), 0750), 0);
	put_file("tmp/folder/inside", "x\n");
	set_mtime("tmp/folder/inside", old);
	set_mtime("tmp/folder", old);
	ck_assert_int_eq(mkfifo(path_of("tmp/fifo"), 0640), 0);
	set_mtime("tmp/fifo", old);

	/* now: the old mtimes were given to files just made (cp -p, rsync -t
	 * do that on the way to new/), and their ctime says so */
	sweep_spool = s;
	sweep_now = t0;
	log = pl_test_stderr_of(run_sweep);
	ck_assert_ptr_nonnull(log);
	ck_assert_int_eq(sweep_removed, 0);
	ck_assert_ptr_null(strstr(log, "removed"));
	free(log);
	ck_assert(exists("tmp/.job7.4242.0123456789abcdef"));

	sweep_now = later;
	log = pl_test_stderr_of(run_sweep);
	ck_assert_ptr_nonnull(log);
	ck_assert_int_eq(sweep_removed, 2);
	ck_assert_uint_eq(pl_spool_tmp_removed(s), 2);
	ck_assert(!exists("tmp/.job7.4242.0123456789abcdef"));
	ck_assert(!exists("tmp/by\nhand"));
	/* the age is the ctime's, the newer of the two */
	ck_assert_msg(strstr(log, "removed tmp/.job7.4242.0123456789abcdef, 15 bytes untouched "
			      "for 37 hours"), "no line for the dot-file in:\n%s", log);
	ck_assert_msg(strstr(log, "removed tmp/by\\x0ahand, 15 bytes"),
		      "no escaped line for by\\nhand in:\n%s", log);
	ck_assert_int_eq(count_char(log, '\n'), 2);	/* one line per file, nothing else */
	free(log);
	ck_assert(exists("tmp/.big.4343.fedcba9876543210"));
	ck_assert(exists("tmp/link"));
	ck_assert(exists("target"));
	ck_assert(exists("tmp/second-name"));
	ck_assert(exists("tmp/folder/inside"));
	ck_assert(exists("tmp/fifo"));

	/* nothing more to take: the next sweep is quiet */
	ck_assert_int_eq(pl_spool_sweep_tmp(s, later), 0);
	ck_assert_uint_eq(pl_spool_tmp_removed(s), 2);
	pl_spool_close(s);
}
END_TEST

/* One daemon per spool: the second open is refused until the first closes. */
START_TEST(spool_lock)
{
	struct pl_spool *s = open_spool(), *t;
	char *pid;

	ck_assert_int_eq(pl_spool_open(dir, &t), -EBUSY);
	ck_assert_ptr_null(t);
	pid = slurp("pipelined.lock");
	ck_assert_int_eq(atoi(pid), getpid());
	free(pid);
	pl_spool_close(s);
	ck_assert_int_eq(pl_spool_open(dir, &t), 0);
	pl_spool_close(t);
}
END_TEST

/* A stop interrupts reading a job however long its line. */
START_TEST(interrupt_long_read)
{
	struct pl_spool *s = open_spool();
	struct pl_item *it;
	struct pl_job *j;
	const char *bad;
	int fd;

	fd = open(path_of("tmp/huge"), O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 1LL << 40), 0);	/* 1 TiB of NULs, sparse */
	close(fd);
	ck_assert_int_eq(rename(path_of("tmp/huge"), path_of("new/huge")), 0);
	j = claim(s);
	pl_spool_interrupt(s);
	ck_assert_int_eq(pl_spool_next_item(j, &it, &bad), -EINTR);
	pl_spool_job_release(j);
	pl_spool_close(s);
	ck_assert(exists("new/huge"));
}
END_TEST

START_TEST(crashguard_records)
{
	struct pl_crashguard_state st;
	char buf[200];

	memset(buf, ' ', sizeof buf);
	ck_assert_int_eq(pl_crashguard_parse("", 0, &st), -EINVAL);
	ck_assert_int_eq(pl_crashguard_parse(buf, 160, &st), -EINVAL);
	snprintf(buf, sizeof buf, "pipelined-crashguard 1 id=7 mark=40 suspect=9 crashes=1");
	buf[strlen(buf)] = ' ';
	buf[159] = '\n';
	ck_assert_int_eq(pl_crashguard_parse(buf, 160, &st), 0);
	ck_assert_uint_eq(st.id, 7);
	ck_assert_uint_eq(st.mark, 40);
	ck_assert_uint_eq(st.suspect, 9);
	ck_assert_uint_eq(st.crashes, 1);
	ck_assert_int_eq(pl_crashguard_parse(buf, 159, &st), -EINVAL);	/* torn */
	ck_assert_uint_eq(st.mark, 0);
	buf[40] = '\0';
	ck_assert_int_eq(pl_crashguard_parse(buf, 160, &st), -EINVAL);
}
END_TEST

/*
 * A child process claims the job, takes items as the feeder would and dies
 * without closing anything: that is a crash.  alone_line > 0 makes it run
 * that line alone first (as the feeder does after a crash) and die with it.
 */
static void crash_child(unsigned long take, unsigned long alone_line)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct pl_spool *s;
		struct pl_job *j;
		struct pl_item *it;
		const char *bad;

		if (pl_spool_open(dir, &s) < 0 || pl_spool_recover(s) < 0 || pl_spool_claim(s, &j) < 0)
			_exit(2);
		for (unsigned long k = 0; k < take; k++) {
			if (pl_spool_next_item(j, &it, &bad) < 0)
				_exit(3);
			if (it->line == alone_line) {
				if (!it->alone || pl_spool_item_alone(it) < 0)
					_exit(4);
				_exit(0);	/* the crash, with the suspect on disk */
			}
			if (k % 2 == 0)		/* half finish, half are in flight */
				pl_spool_item_done(it);
		}
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

START_TEST(crash_guard_isolates_the_suspect)
{
	char job[4096] = "";
	struct pl_spool *s;
	struct pl_job *j;
	struct pl_item *it;
	const char *bad;
	unsigned long n = 0, failed = 0;

	for (int i = 1; i <= 50; i++)
		snprintf(job + strlen(job), sizeof job - strlen(job), "http://h/%d.jpg\n", i);
	pl_spool_close(open_spool());	/* the folders */
	submit("crashy", job);
	crash_child(10, 0);	/* a crash with lines 2, 4, … 10 in flight */
	crash_child(10, 4);	/* line 4 alone: crash 1 put down to it */
	crash_child(10, 4);	/* and crash 2 */

	s = open_spool();
	ck_assert_int_eq(pl_spool_recover(s), 1);
	j = claim(s);
	while (pl_spool_next_item(j, &it, &bad) == 0) {
		n++;
		if (it->line <= 32 + 1)	/* the first run's mark: line 1 + 32 */
			ck_assert_msg(it->alone || bad, "line %lu should run alone", it->line);
		else
			ck_assert_msg(!it->alone, "line %lu should not run alone", it->line);
		if (bad) {
			ck_assert_uint_eq(it->line, 4);
			ck_assert_str_eq(bad, "crashed the daemon 2 times");
			pl_spool_item_failed(it, EIO, bad);
			failed++;
			continue;
		}
		pl_spool_item_done(it);
	}
	ck_assert_uint_eq(failed, 1);
	/* lines 1, 3, 5, 7, 9 were done in the first run, 2 alone in the second */
	ck_assert_uint_eq(n, 50 - 6);
	pl_spool_job_release(j);
	pl_spool_close(s);
	ck_assert(exists("failed/crashy"));
	ck_assert(!exists("cur/.crashy.guard"));
}
END_TEST

/* A graceful stop leaves nothing suspect: the next run is a normal one. */
START_TEST(crash_guard_cleared_by_stop)
{
	struct pl_spool *s = open_spool();
	struct pl_job *j;
	struct pl_item *it;

	submit("calm", "http://h/1.jpg\nhttp://h/2.jpg\nhttp://h/3.jpg\n");
	j = claim(s);
	it = next_good(j);
	ck_assert(!it->alone);
	pl_spool_item_done(it);
	ck_assert(exists("cur/.calm.guard"));
	pl_spool_job_release(j);
	pl_spool_close(s);
	ck_assert(!exists("cur/.calm.guard"));
	s = open_spool();
	j = claim(s);
	it = next_good(j);
	ck_assert_uint_eq(it->line, 2);
	ck_assert(!it->alone);
	pl_spool_item_done(it);
	pl_spool_job_release(j);
	pl_spool_close(s);
}
END_TEST

START_TEST(count_pending)
{
	struct pl_spool *s = open_spool();
	unsigned long n = 99;

	ck_assert_int_eq(pl_spool_count_pending(s, &n), 0);
	ck_assert_uint_eq(n, 0);
	submit("1.a", "# header\n\nhttp://h/a.jpg\n   \n  http://h/b.jpg x\n  # c\nbad line\n");
	submit("2.b", "http://h/c.jpg");	/* no final newline */
	put_file("new/.tmp", "http://h/x.jpg\n");
	put_file("new/3.result", "{}\n{}\n");
	/* 2.b resumed later: one record already in cur/ */
	put_file("cur/2.b.result", "{\"line\":1}\n");
	ck_assert_int_eq(pl_spool_count_pending(s, &n), 0);
	ck_assert_uint_eq(n, 3);
	pl_spool_close(s);
}
END_TEST

/* Change a file's ctime (chmod), looking until the clock shows it: file
 * times are coarse, and the cache must be seen to notice the ctime alone. */
static void bump_ctime(const char *rel, const struct stat *before)
{
	struct stat st;

	do {
		ck_assert_int_eq(chmod(path_of(rel), 0640), 0);
		ck_assert_int_eq(stat(path_of(rel), &st), 0);
	} while (st.st_ctim.tv_sec == before->st_ctim.tv_sec &&
		 st.st_ctim.tv_nsec == before->st_ctim.tv_nsec);
}

/* The metrics recount new/ every few seconds: a job file unchanged since
 * the last count is not read again, a changed one is, whatever changed. */
START_TEST(count_remembers_unchanged_jobs)
{
	struct pl_spoolcount *c;
	struct pl_spooldir d;
	atomic_bool stop = false;
	unsigned long jobs, items;
	struct timespec keep[2];
	struct stat st;
	FILE *f;

	ck_assert_int_eq(pl_spooldir_open(&d, dir), 0);
	ck_assert_int_eq(pl_spoolcount_new(&c), 0);
	submit("a", "http://h/a.jpg\nhttp://h/b.jpg\n");
	submit("b", "http://h/c.jpg\n");
	ck_assert_int_eq(pl_spoolcount_waiting(&d, c, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(jobs, 2);
	ck_assert_uint_eq(items, 3);
	ck_assert_uint_eq(pl_spoolcount_reads(c), 2);
	ck_assert_int_eq(pl_spoolcount_waiting(&d, c, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(items, 3);
	ck_assert_uint_eq(pl_spoolcount_reads(c), 2);	/* nothing read again */
	/* more jobs than a lookup's first probe: every one found again */
	for (int i = 0; i < 9; i++) {
		char name[8];

		snprintf(name, sizeof name, "m%d", i);
		submit(name, "# none\n");
	}
	ck_assert_int_eq(pl_spoolcount_waiting(&d, c, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(pl_spoolcount_reads(c), 11);
	ck_assert_int_eq(pl_spoolcount_waiting(&d, c, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(jobs, 11);
	ck_assert_uint_eq(items, 3);
	ck_assert_uint_eq(pl_spoolcount_reads(c), 11);

	/* grown in place: read again */
	ck_assert_ptr_nonnull(f = fopen(path_of("new/b"), "a"));
	fputs("http://h/d.jpg\n", f);
	fclose(f);
	ck_assert_int_eq(pl_spoolcount_waiting(&d, c, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(items, 4);
	ck_assert_uint_eq(pl_spoolcount_reads(c), 12);

	/* same size, mtime set back: the ctime still tells */
	ck_assert_int_eq(stat(path_of("new/a"), &st), 0);
	keep[0] = st.st_atim;
	keep[1] = st.st_mtim;
	ck_assert_ptr_nonnull(f = fopen(path_of("new/a"), "r+"));
	fputc('#', f);
	fclose(f);
	ck_assert_int_eq(utimensat(AT_FDCWD, path_of("new/a"), keep, 0), 0);
	bump_ctime("new/a", &st);
	ck_assert_int_eq(pl_spoolcount_waiting(&d, c, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(items, 3);
	ck_assert_uint_eq(pl_spoolcount_reads(c), 13);

	/* gone, then a new job of that name: forgotten, read */
	ck_assert_int_eq(unlink(path_of("new/a")), 0);
	ck_assert_int_eq(pl_spoolcount_waiting(&d, c, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(jobs, 10);
	ck_assert_uint_eq(items, 2);
	submit("a", "http://h/e.jpg\n");
	ck_assert_int_eq(pl_spoolcount_waiting(&d, c, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(items, 3);
	ck_assert_uint_eq(pl_spoolcount_reads(c), 14);

	/* without a cache every job is read, with the same figures */
	ck_assert_int_eq(pl_spoolcount_waiting(&d, NULL, &stop, &jobs, &items), 0);
	ck_assert_uint_eq(jobs, 11);
	ck_assert_uint_eq(items, 3);
	pl_spoolcount_free(c);
	pl_spooldir_close(&d);
}
END_TEST

START_TEST(crlf_and_no_final_newline)
{
	struct pl_spool *s = open_spool();
	struct pl_item *it;
	struct pl_job *j;

	submit("12.crlf", "http://h/a.jpg one\r\n\r\n#c\r\nhttp://h/b.jpg");
	j = claim(s);
	it = next_good(j);
	ck_assert_str_eq(it->name, "one");
	ck_assert_str_eq(it->source, "http://h/a.jpg");
	pl_spool_item_done(it);
	it = next_good(j);
	ck_assert_uint_eq(it->line, 4);
	ck_assert_str_eq(it->name, "b");
	pl_spool_item_done(it);
	expect_end(j);
	pl_spool_job_release(j);
	ck_assert(exists("done/12.crlf"));
	pl_spool_close(s);
}
END_TEST

START_TEST(empty_job_finishes)
{
	struct pl_spool *s = open_spool();
	struct pl_job *j;

	submit("13.empty", "# nothing here\n\n");
	j = claim(s);
	expect_end(j);
	pl_spool_job_release(j);
	ck_assert(exists("done/13.empty"));
	ck_assert(exists("done/13.empty.result"));
	pl_spool_close(s);
}
END_TEST

static Suite *spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *pure = tcase_create("pure"), *disk = tcase_create("disk");

	tcase_add_checked_fixture(pure, setup, teardown);
	tcase_add_test(pure, parse_good_lines);
	tcase_add_test(pure, parse_bad_lines);
	tcase_add_test(pure, judge_lines);
	tcase_add_test(pure, name_validity);
	tcase_add_test(pure, derive_names);
	tcase_add_test(pure, json_escaping);
	tcase_add_test(pure, record_parse);
	tcase_add_test(pure, nameset_adds);
	tcase_add_test(pure, random_inputs);
	suite_add_tcase(s, pure);

	tcase_add_checked_fixture(disk, setup, teardown);
	tcase_set_timeout(disk, 60);
	tcase_add_test(disk, open_creates_folders);
	tcase_add_test(disk, claim_order);
	tcase_add_test(disk, claim_skips_vanished);
	tcase_add_test(disk, inotify_wakes);
	tcase_add_test(disk, recover_cur);
	tcase_add_test(disk, cycle_ok_to_done);
	tcase_add_test(disk, cycle_failed_and_bad_lines);
	tcase_add_test(disk, names_unique_within_job);
	tcase_add_test(disk, resume_after_crash);
	tcase_add_test(disk, resume_keeps_earlier_failure);
	tcase_add_test(disk, resume_ignores_foreign_lines);
	tcase_add_test(disk, requeue_close_rerun);
	tcase_add_test(disk, release_early_then_close);
	tcase_add_test(disk, concurrent_records);
	tcase_add_test(disk, result_named_job_rejected);
	tcase_add_test(disk, count_pending);
	tcase_add_test(disk, count_remembers_unchanged_jobs);
	tcase_add_test(disk, crlf_and_no_final_newline);
	tcase_add_test(disk, empty_job_finishes);
	tcase_add_test(pure, crashguard_records);
	tcase_add_test(disk, swap_after_scan_rejected);
	tcase_add_test(disk, swap_into_cur_rejected);
	tcase_add_test(disk, folders_and_dotfiles);
	tcase_add_test(disk, spool_lock);
	tcase_add_test(pure, tmp_abandoned_rule);
	tcase_add_test(disk, sweep_tmp_removes_abandoned);
	tcase_add_test(disk, interrupt_long_read);
	tcase_add_test(disk, crash_guard_isolates_the_suspect);
	tcase_add_test(disk, crash_guard_cleared_by_stop);
	suite_add_tcase(s, disk);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

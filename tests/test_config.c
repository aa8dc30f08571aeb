/*
 * test_config.c — the configuration loader against real files.
 *
 * Each case writes a small pipeline.conf into a fresh folder and asserts the
 * exact "FILE:LINE: message" lines the loader reports, because those lines
 * are what an operator reads from `pipelined -t`: a wrong line number or a
 * vague message is a bug here.  The texts put one setting per line so that
 * the line numbers in the expectations can be counted by eye.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "cfgfile.h"
#include "config.h"
#include "template.h"
#include "testutil.h"

#define MAXMSG 32

struct msgs {
	char *m[MAXMSG];
	int n;
};

static char *dir;
static char path[PATH_MAX];
static struct msgs ms;
static struct pl_config *cfg;

static void collect(void *ud, const char *msg)
{
	struct msgs *m = ud;

	ck_assert_int_lt(m->n, MAXMSG);
	m->m[m->n] = strdup(msg);
	ck_assert_ptr_nonnull(m->m[m->n]);
	m->n++;
}

static void setup(void)
{
	/* what systemd would pass: each case that wants one sets it */
	unsetenv("RUNTIME_DIRECTORY");
	unsetenv("STATE_DIRECTORY");
	unsetenv("CONFIGURATION_DIRECTORY");
	unsetenv("CREDENTIALS_DIRECTORY");
	dir = pl_test_tmpdir("config");
	ck_assert_ptr_nonnull(dir);
	snprintf(path, sizeof path, "%s/pipeline.conf", dir);
	memset(&ms, 0, sizeof ms);
	cfg = NULL;
}

static void teardown(void)
{
	for (int i = 0; i < ms.n; i++)
		free(ms.m[i]);
	pl_config_free(cfg);
	pl_test_rmtree(dir);
	free(dir);
}

static void write_at(const char *p, const char *text)
{
	ck_assert_int_eq(pl_test_write_file(p, text, strlen(text)), 0);
}

static int load(const char *text)
{
	write_at(path, text);
	return pl_config_load(path, collect, &ms, &cfg);
}

/* Message i is "PATH:LINE: text" for the main file. */
static void expect_at(int i, const char *file, int line, const char *fmt, ...)
{
	char text[512], want[PATH_MAX + 600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	snprintf(want, sizeof want, "%s:%d: %s", file, line, text);
	ck_assert_int_gt(ms.n, i);
	ck_assert_str_eq(ms.m[i], want);
}

#define expect(i, line, ...) expect_at(i, path, line, __VA_ARGS__)

/* One bad file, one error expected. */
static void one_error(const char *text, int line, const char *msg)
{
	ck_assert_int_eq(load(text), -EINVAL);
	ck_assert_ptr_null(cfg);
	expect(0, line, "%s", msg);
	ck_assert_int_eq(ms.n, 1);
}

static void check_defaults(const struct pl_config *c)
{
	ck_assert_str_eq(c->spool, "/var/lib/pipelined/spool");
	ck_assert_str_eq(c->runtime, "/run/pipelined");
	ck_assert_int_eq(c->log_level, LOG_INFO);

	ck_assert_uint_eq(c->download.stage.workers, 3);
	ck_assert(!c->download.stage.workers_auto);
	ck_assert(c->download.stage.workers_adaptive);
	ck_assert_uint_eq(c->download.stage.workers_max, 16);
	ck_assert_uint_eq(c->download.stage.queue, 16);
	ck_assert_double_eq(c->download.connect_timeout, 10.0);
	ck_assert_double_eq(c->download.timeout, 60.0);
	ck_assert_int_eq(c->download.low_speed_limit, 1024);
	ck_assert_double_eq(c->download.low_speed_time, 10.0);
	ck_assert_int_eq(c->download.max_bytes, 52428800);
	ck_assert_int_eq(c->download.retries, 3);
	ck_assert_double_eq(c->download.backoff, 0.5);
	ck_assert_int_eq(c->download.per_host, 32);
	ck_assert_uint_eq(c->download.protocols, PL_PROTO_HTTP | PL_PROTO_HTTPS);
	ck_assert_str_eq(c->download.file_root, "");
	ck_assert(!c->download.allow_private);

	ck_assert_uint_eq(c->resize.stage.workers, 4);
	ck_assert(!c->resize.stage.workers_adaptive);
	ck_assert_uint_eq(c->resize.stage.queue, 16);
	ck_assert_int_eq(c->resize.max_pixels, 50000000);
	ck_assert_uint_eq(c->resize.nvariants, 1);
	ck_assert_str_eq(c->resize.variants[0].name, "thumb");
	ck_assert_int_eq(c->resize.variants[0].width, 256);
	ck_assert_int_eq(c->resize.variants[0].height, 256);
	ck_assert_int_eq(c->resize.variants[0].fit, PL_FIT_INSIDE);
	ck_assert_int_eq(c->resize.variants[0].crop, PL_CROP_CENTRE);
	ck_assert_int_eq(c->resize.variants[0].format, PL_FORMAT_JPEG);
	ck_assert_int_eq(c->resize.variants[0].quality, 80);

	ck_assert_uint_eq(c->upload.stage.workers, 5);
	ck_assert(c->upload.stage.workers_adaptive);
	ck_assert_uint_eq(c->upload.stage.workers_max, 32);
	ck_assert_uint_eq(c->upload.stage.queue, 16);
	ck_assert_str_eq(c->upload.url, "file:///var/lib/pipelined/out/{job}/{name}-{variant}.{ext}");
	ck_assert_int_eq(c->upload.retries, 3);
	ck_assert_double_eq(c->upload.backoff, 0.5);
	ck_assert_double_eq(c->upload.connect_timeout, 10.0);
	ck_assert_double_eq(c->upload.timeout, 60.0);
	ck_assert_str_eq(c->upload.s3.endpoint, "");
	ck_assert_str_eq(c->upload.s3.region, "us-east-1");
	ck_assert_str_eq(c->upload.s3.credentials, "");
}

/* ---- loading what is valid --------------------------------------------- */

START_TEST(defaults_from_empty_file)
{
	ck_assert_int_eq(load("# nothing set\n"), 0);
	ck_assert_int_eq(ms.n, 0);
	ck_assert_str_eq(cfg->path, path);
	check_defaults(cfg);
}
END_TEST

START_TEST(shipped_file_loads_and_equals_defaults)
{
	const char *src = getenv("PL_SRCDIR");
	char shipped[PATH_MAX];

	ck_assert_msg(src != NULL, "PL_SRCDIR is not set");
	snprintf(shipped, sizeof shipped, "%s/conf/pipeline.conf", src);
	ck_assert_int_eq(pl_config_load(shipped, collect, &ms, &cfg), 0);
	ck_assert_msg(ms.n == 0, "first error: %s", ms.n ? ms.m[0] : "");
	check_defaults(cfg);
}
END_TEST

/* Two jobs, each with an item named "small": the default keys differ, both
 * the built-in url and the shipped file's (they used to be the same file). */
static void jobs_apart(const char *url)
{
	const struct pl_template_vars a = { "small", "thumb", "jpg", "job-a" },
				      b = { "small", "thumb", "jpg", "job-b" };
	char ka[512], kb[512];
	const char *why = "";

	ck_assert_msg(pl_template_expand(url, &a, ka, sizeof ka, &why) == 0, "%s: %s", url, why);
	ck_assert_msg(pl_template_expand(url, &b, kb, sizeof kb, &why) == 0, "%s: %s", url, why);
	ck_assert_msg(strcmp(ka, kb) != 0, "two jobs write the same key %s", ka);
}

START_TEST(default_url_separates_jobs)
{
	const char *src = getenv("PL_SRCDIR");
	char shipped[PATH_MAX];

	ck_assert_int_eq(load(""), 0);
	jobs_apart(cfg->upload.url);
	pl_config_free(cfg);
	cfg = NULL;
	ck_assert_msg(src != NULL, "PL_SRCDIR is not set");
	snprintf(shipped, sizeof shipped, "%s/conf/pipeline.conf", src);
	ck_assert_int_eq(pl_config_load(shipped, collect, &ms, &cfg), 0);
	jobs_apart(cfg->upload.url);
}
END_TEST

/* What the loader logs (pl_log writes to stderr in a test) while it loads
 * text; returns the load's result. */
static int load_logged(const char *text, char *log, size_t loglen)
{
	FILE *tmp = tmpfile();
	int saved, r;
	size_t n;

	ck_assert_ptr_nonnull(tmp);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
	r = load(text);
	fflush(stderr);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	rewind(tmp);
	n = fread(log, 1, loglen - 1, tmp);
	log[n] = '\0';
	fclose(tmp);
	return r;
}

/* A url without {job} is allowed (a flat namespace may be wanted) but
 * warned about at its line; with {job}, or the default, nothing is said. */
START_TEST(url_without_job_warns)
{
	char log[4096], want[PATH_MAX + 200];

	ck_assert_int_eq(load_logged("spool = \"/s\";\n"
				     "upload = {\n"
				     "  url = \"s3://b/thumbs/{name}-{variant}.{ext}\";\n"
				     "  s3 = { endpoint = \"https://s3.example.net\";\n"
				     "         credentials = \"/etc/c\"; };\n"
				     "};\n", log, sizeof log), 0);
	ck_assert_int_eq(ms.n, 0);
	snprintf(want, sizeof want, "%s:3: upload.url has no {job}: outputs of different jobs "
		 "with the same item name overwrite each other\n", path);
	ck_assert_msg(strstr(log, want), "log: %s", log);
	pl_config_free(cfg);
	cfg = NULL;

	ck_assert_int_eq(load_logged("upload = { url = \"file:///o/{job}/{name}.{ext}\"; };\n",
				     log, sizeof log), 0);
	ck_assert_msg(!strstr(log, "{job}"), "log: %s", log);
	pl_config_free(cfg);
	cfg = NULL;
	ck_assert_int_eq(load_logged("# defaults\n", log, sizeof log), 0);
	ck_assert_msg(!strstr(log, "{job}"), "log: %s", log);
	pl_config_free(cfg);
	cfg = NULL;

	/* a file with errors is reported, not warned about */
	ck_assert_int_eq(load_logged("upload = { url = \"file:///o/{name}\"; retries = -1; };\n",
				     log, sizeof log), -EINVAL);
	ck_assert_msg(!strstr(log, "{job}"), "log: %s", log);
}
END_TEST

START_TEST(workers_auto)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	ck_assert_int_eq(load("resize = { workers = \"auto\"; };\n"
			      "upload = { workers = 7; };\n"), 0);
	ck_assert(cfg->resize.stage.workers_auto);
	ck_assert_uint_eq(cfg->resize.stage.workers, (unsigned)(n > 256 ? 256 : n));
	ck_assert(!cfg->upload.stage.workers_auto);
	ck_assert_uint_eq(cfg->upload.stage.workers, 7);
	ck_assert(!cfg->upload.stage.workers_adaptive);	/* a number pins it */
	ck_assert(!cfg->download.stage.workers_auto);
}
END_TEST

/* "adaptive" starts at the stage's default width; only the I/O stages
 * take it, resize is CPU-bound ("auto" is its adaptive). */
START_TEST(workers_adaptive)
{
	ck_assert_int_eq(load("download = { workers = 6; };\n"
			      "upload = { workers = \"adaptive\"; workers_max = 8; };\n"), 0);
	ck_assert(!cfg->download.stage.workers_adaptive);
	ck_assert_uint_eq(cfg->download.stage.workers, 6);
	ck_assert(cfg->upload.stage.workers_adaptive);
	ck_assert_uint_eq(cfg->upload.stage.workers, 5);
	ck_assert_uint_eq(cfg->upload.stage.workers_max, 8);
	pl_config_free(cfg);
	cfg = NULL;
	ck_assert_int_eq(load("resize = { workers = \"adaptive\"; };\n"), -EINVAL);
	expect(0, 1, "resize.workers: expected an integer or \"auto\"");
}
END_TEST

START_TEST(everything_set)
{
	ck_assert_int_eq(load(
		"spool = \"/srv/spool\";\n"
		"runtime = \"/run/x\";\n"
		"log_level = \"debug\";\n"
		"download = {\n"
		"  workers = 8; queue = 100; connect_timeout = 2; timeout = 1.5;\n"
		"  low_speed_limit = 2147483648L; low_speed_time = 3;\n"
		"  max_bytes = 1099511627776L; retries = 0; backoff = 0;\n"
		"  per_host = 1; protocols = ( \"file\", \"https\" );\n"
		"  file_root = \"/srv/in\"; allow_private = true;\n"
		"};\n"
		"resize = {\n"
		"  max_pixels = 10000000000L;\n"
		"  variants = (\n"
		"    { name = \"big-1.x_y\"; width = 16384; height = 1; fit = \"cover\";\n"
		"      crop = \"center\"; format = \"webp\"; quality = 100; },\n"
		"    { name = \"s\"; width = 1; height = 2; format = \"avif\";\n"
		"      crop = \"attention\"; quality = 1; },\n"
		"    { name = \"p\"; width = 3; height = 4; format = \"png\"; }\n"
		"  );\n"
		"};\n"
		"upload = {\n"
		"  url = \"s3://bucket/out/{job}/{name}-{variant}.{ext}\";\n"
		"  retries = 20; backoff = 3600; connect_timeout = 3600; timeout = 86400;\n"
		"  s3 = { endpoint = \"http://127.0.0.1:9000\"; region = \"eu-west-3\";\n"
		"         credentials = \"/etc/pipelined/s3.cred\"; };\n"
		"};\n"), 0);
	ck_assert_int_eq(ms.n, 0);
	ck_assert_str_eq(cfg->spool, "/srv/spool");
	ck_assert_str_eq(cfg->runtime, "/run/x");
	ck_assert_int_eq(cfg->log_level, LOG_DEBUG);
	ck_assert_uint_eq(cfg->download.stage.workers, 8);
	ck_assert_uint_eq(cfg->download.stage.queue, 100);
	ck_assert_double_eq(cfg->download.connect_timeout, 2.0);
	ck_assert_double_eq(cfg->download.timeout, 1.5);
	ck_assert_int_eq(cfg->download.low_speed_limit, 2147483648L);
	ck_assert_double_eq(cfg->download.low_speed_time, 3.0);
	ck_assert_int_eq(cfg->download.max_bytes, 1L << 40);
	ck_assert_int_eq(cfg->download.retries, 0);
	ck_assert_double_eq(cfg->download.backoff, 0.0);
	ck_assert_int_eq(cfg->download.per_host, 1);
	ck_assert_uint_eq(cfg->download.protocols, PL_PROTO_FILE | PL_PROTO_HTTPS);
	ck_assert_str_eq(cfg->download.file_root, "/srv/in");
	ck_assert(cfg->download.allow_private);
	ck_assert_int_eq(cfg->resize.max_pixels, 10000000000L);
	ck_assert_uint_eq(cfg->resize.nvariants, 3);
	ck_assert_str_eq(cfg->resize.variants[0].name, "big-1.x_y");
	ck_assert_int_eq(cfg->resize.variants[0].width, 16384);
	ck_assert_int_eq(cfg->resize.variants[0].height, 1);
	ck_assert_int_eq(cfg->resize.variants[0].fit, PL_FIT_COVER);
	ck_assert_int_eq(cfg->resize.variants[0].crop, PL_CROP_CENTRE);
	ck_assert_int_eq(cfg->resize.variants[0].format, PL_FORMAT_WEBP);
	ck_assert_int_eq(cfg->resize.variants[0].quality, 100);
	ck_assert_int_eq(cfg->resize.variants[1].fit, PL_FIT_INSIDE);
	ck_assert_int_eq(cfg->resize.variants[1].crop, PL_CROP_ATTENTION);
	ck_assert_int_eq(cfg->resize.variants[1].format, PL_FORMAT_AVIF);
	ck_assert_int_eq(cfg->resize.variants[1].quality, 1);
	ck_assert_int_eq(cfg->resize.variants[2].format, PL_FORMAT_PNG);
	ck_assert_int_eq(cfg->resize.variants[2].quality, 80);
	ck_assert_str_eq(cfg->upload.url, "s3://bucket/out/{job}/{name}-{variant}.{ext}");
	ck_assert_int_eq(cfg->upload.retries, 20);
	ck_assert_double_eq(cfg->upload.backoff, 3600.0);
	ck_assert_double_eq(cfg->upload.connect_timeout, 3600.0);
	ck_assert_double_eq(cfg->upload.timeout, 86400.0);
	ck_assert_str_eq(cfg->upload.s3.endpoint, "http://127.0.0.1:9000");
	ck_assert_str_eq(cfg->upload.s3.region, "eu-west-3");
	ck_assert_str_eq(cfg->upload.s3.credentials, "/etc/pipelined/s3.cred");
}
END_TEST

/* The 32-bit literal check finds each setting's own literal: several
 * settings of one name on a line (variants, or the same name in two
 * groups), a literal with leading zeros (decimal to libconfig, not octal),
 * a name inside a comment or string before the setting: all valid. */
START_TEST(same_name_on_one_line)
{
	ck_assert_int_eq(load("resize = { variants = ( { name = \"a\"; width = 32; height = 8; },"
			      " { name = \"b\"; width = 16; height = 8; } ); };\n"
			      "download = { retries = 5; queue = 010; }; upload = { retries = 3;\n"
			      "  url = \"file:///o/{job}/queue=9/{name}-{variant}\"; /* queue = 7 */ queue = 4; };\n"),
			 0);
	ck_assert_msg(ms.n == 0, "first error: %s", ms.n ? ms.m[0] : "");
	ck_assert_int_eq(cfg->resize.variants[0].width, 32);
	ck_assert_int_eq(cfg->resize.variants[1].width, 16);
	ck_assert_int_eq(cfg->download.retries, 5);
	ck_assert_uint_eq(cfg->download.stage.queue, 10);
	ck_assert_int_eq(cfg->upload.retries, 3);
	ck_assert_uint_eq(cfg->upload.stage.queue, 4);
}
END_TEST

/* A reload applies the stage widths and log_level; pl_config_restart_differs
 * must say "restart" for every other setting, each changed alone. */
START_TEST(restart_differs_but_for_live_settings)
{
	static const char *const live[] = {
		"download = { workers = 7; };\n", "resize = { workers = \"auto\"; };\n",
		"upload = { workers = 1; };\n", "log_level = \"debug\";\n",
	};
	static const char *const restart[] = {
		"spool = \"/x\";\n", "runtime = \"/x\";\n",
		"download = { queue = 9; };\n", "download = { connect_timeout = 2.5; };\n",
		"download = { timeout = 3; };\n", "download = { low_speed_limit = 5; };\n",
		"download = { low_speed_time = 6; };\n", "download = { max_bytes = 7; };\n",
		"download = { retries = 8; };\n", "download = { backoff = 9; };\n",
		"download = { per_host = 10; };\n", "download = { allow_private = true; };\n",
		"download = { protocols = [ \"https\" ]; };\n",
		"download = { protocols = [ \"file\", \"http\", \"https\" ]; file_root = \"/in\"; };\n",
		"resize = { queue = 3; };\n", "resize = { max_pixels = 4; };\n",
		"resize = { variants = ( { name = \"thumc\"; width = 256; height = 256; } ); };\n",
		"resize = { variants = ( { name = \"thumb\"; width = 255; height = 256; } ); };\n",
		"resize = { variants = ( { name = \"thumb\"; width = 256; height = 255; } ); };\n",
		"resize = { variants = ( { name = \"thumb\"; width = 256; height = 256;"
		" fit = \"cover\"; } ); };\n",
		"resize = { variants = ( { name = \"thumb\"; width = 256; height = 256;"
		" crop = \"attention\"; } ); };\n",
		"resize = { variants = ( { name = \"thumb\"; width = 256; height = 256;"
		" format = \"png\"; } ); };\n",
		"resize = { variants = ( { name = \"thumb\"; width = 256; height = 256;"
		" quality = 81; } ); };\n",
		"resize = { variants = ( { name = \"thumb\"; width = 256; height = 256; },"
		" { name = \"b\"; width = 1; height = 1; } ); };\n"
		"upload = { url = \"file:///var/lib/pipelined/out/{job}/{name}-{variant}.{ext}\"; };\n",
		"upload = { queue = 5; };\n", "upload = { url = \"file:///o/{job}/{name}-{variant}\"; };\n",
		"upload = { retries = 1; };\n", "upload = { backoff = 2; };\n",
		"upload = { connect_timeout = 3; };\n", "upload = { timeout = 4; };\n",
	};
#define S3(members) "upload = { url = \"s3://b/{job}/{name}-{variant}.{ext}\";" \
			    " s3 = { " members " }; };\n"
	static const char *const s3_changes[] = {
		S3("endpoint = \"https://e\"; credentials = \"/c\"; region = \"eu-1\";"),
		S3("endpoint = \"https://f\"; credentials = \"/c\";"),
		S3("endpoint = \"https://e\"; credentials = \"/d\";"),
	};
	struct pl_config *dflt, *s3cfg;

	ck_assert_int_eq(load("# defaults\n"), 0);
	dflt = cfg;
	cfg = NULL;
	ck_assert(!pl_config_restart_differs(dflt, dflt));
	for (size_t i = 0; i < sizeof live / sizeof *live; i++) {
		ck_assert_msg(load(live[i]) == 0, "%s", live[i]);
		ck_assert_msg(!pl_config_restart_differs(dflt, cfg), "restart for %s", live[i]);
		pl_config_free(cfg);
		cfg = NULL;
	}
	for (size_t i = 0; i < sizeof restart / sizeof *restart; i++) {
		ck_assert_msg(load(restart[i]) == 0, "%s", restart[i]);
		ck_assert_msg(pl_config_restart_differs(dflt, cfg), "no restart for %s", restart[i]);
		ck_assert_msg(pl_config_restart_differs(cfg, dflt), "no restart for %s", restart[i]);
		pl_config_free(cfg);
		cfg = NULL;
	}
	/* the s3 settings, against an s3 configuration */
	ck_assert_int_eq(load(S3("endpoint = \"https://e\"; credentials = \"/c\";")), 0);
#undef S3
	s3cfg = cfg;
	cfg = NULL;
	for (size_t i = 0; i < sizeof s3_changes / sizeof *s3_changes; i++) {
		ck_assert_msg(load(s3_changes[i]) == 0, "%s", s3_changes[i]);
		ck_assert_msg(pl_config_restart_differs(s3cfg, cfg), "no restart for %s",
			      s3_changes[i]);
		pl_config_free(cfg);
		cfg = NULL;
	}
	pl_config_free(s3cfg);
	pl_config_free(dflt);
}
END_TEST

START_TEST(include_relative_to_the_config_folder)
{
	char inc[PATH_MAX];

	snprintf(inc, sizeof inc, "%s/conf.d/download.conf", dir);
	write_at(inc, "download = { workers = 9; };\n");
	/* loaded from another working directory: the include still resolves */
	ck_assert_int_eq(chdir("/"), 0);
	ck_assert_int_eq(load("spool = \"/s\";\n@include \"conf.d/download.conf\"\n"), 0);
	ck_assert_uint_eq(cfg->download.stage.workers, 9);
}
END_TEST

START_TEST(format_names)
{
	ck_assert_str_eq(pl_config_format_ext(PL_FORMAT_JPEG), "jpg");
	ck_assert_str_eq(pl_config_format_ext(PL_FORMAT_WEBP), "webp");
	ck_assert_str_eq(pl_config_format_ext(PL_FORMAT_PNG), "png");
	ck_assert_str_eq(pl_config_format_ext(PL_FORMAT_AVIF), "avif");
	ck_assert_str_eq(pl_config_format_mime(PL_FORMAT_JPEG), "image/jpeg");
	ck_assert_str_eq(pl_config_format_mime(PL_FORMAT_WEBP), "image/webp");
	ck_assert_str_eq(pl_config_format_mime(PL_FORMAT_PNG), "image/png");
	ck_assert_str_eq(pl_config_format_mime(PL_FORMAT_AVIF), "image/avif");
	pl_config_free(NULL);
}
END_TEST

/* The rules the stages apply to a configuration made by hand are the
 * loader's: a loaded default passes them, and each kind of bad value is
 * named. */
START_TEST(value_rules_for_stages)
{
	struct pl_variant v;
	char why[256];

	ck_assert_int_eq(load("spool = \"/s\";\n"), 0);
	ck_assert_int_eq(pl_config_variant_check(&cfg->resize.variants[0], why, sizeof why), 0);
	ck_assert_ptr_null(pl_config_s3_region_invalid(cfg->upload.s3.region));
	v = cfg->resize.variants[0];
	v.width = 0;
	ck_assert_int_eq(pl_config_variant_check(&v, why, sizeof why), -EINVAL);
	ck_assert_str_eq(why, "variant \"thumb\": width 0 is out of range 1..16384");
	v = cfg->resize.variants[0];
	v.format = (enum pl_format)42;
	ck_assert_int_eq(pl_config_variant_check(&v, why, sizeof why), -EINVAL);
	ck_assert_str_eq(why, "variant \"thumb\": format 42 is not one of its names");
	v = cfg->resize.variants[0];
	memset(v.name, 'a', sizeof v.name);	/* no terminating NUL */
	ck_assert_int_eq(pl_config_variant_check(&v, why, sizeof why), -EINVAL);
	ck_assert_msg(strstr(why, "not a name"), "%s", why);
	v.name[0] = '\0';
	ck_assert_int_eq(pl_config_variant_check(&v, why, sizeof why), -EINVAL);

	ck_assert_ptr_null(pl_config_s3_endpoint_invalid("https://s3.example.net"));
	ck_assert_ptr_null(pl_config_s3_endpoint_invalid("http://127.0.0.1:9000/"));
	ck_assert_str_eq(pl_config_s3_endpoint_invalid("ftp://x"), "is not an http:// or https:// URL");
	ck_assert_ptr_nonnull(pl_config_s3_endpoint_invalid("https://"));
	ck_assert_ptr_nonnull(pl_config_s3_endpoint_invalid(NULL));
	ck_assert_ptr_null(pl_config_s3_region_invalid("eu-west-3"));
	ck_assert_ptr_nonnull(pl_config_s3_region_invalid("aws:eu"));
	ck_assert_ptr_nonnull(pl_config_s3_region_invalid(""));
	ck_assert_ptr_nonnull(pl_config_s3_region_invalid(NULL));
}
END_TEST

/* ---- file-level failures ----------------------------------------------- */

START_TEST(missing_file)
{
	char want[PATH_MAX + 64];

	ck_assert_int_eq(pl_config_load(path, collect, &ms, &cfg), -ENOENT);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof want, "%s: No such file or directory", path);
	ck_assert_int_eq(ms.n, 1);
	ck_assert_str_eq(ms.m[0], want);
}
END_TEST

START_TEST(directory_is_not_a_file)
{
	char want[PATH_MAX + 64];

	ck_assert_int_eq(pl_config_load(dir, collect, &ms, &cfg), -EISDIR);
	snprintf(want, sizeof want, "%s: Is a directory", dir);
	ck_assert_int_eq(ms.n, 1);
	ck_assert_str_eq(ms.m[0], want);
}
END_TEST

START_TEST(parse_error_line)
{
	ck_assert_int_eq(load("spool = \"/s\";\n"
			      "download = {\n"
			      "  workers = 3;\n"
			      "  queue = = 4;\n"
			      "};\n"), -EINVAL);
	ck_assert_ptr_null(cfg);
	expect(0, 4, "syntax error");
	ck_assert_int_eq(ms.n, 1);
}
END_TEST

START_TEST(parse_error_in_include_names_that_file)
{
	char inc[PATH_MAX];

	snprintf(inc, sizeof inc, "%s/inc/bad.conf", dir);
	write_at(inc, "# included\nlog_level = ;\n");
	ck_assert_int_eq(load("spool = \"/s\";\n@include \"inc/bad.conf\"\n"), -EINVAL);
	expect_at(0, inc, 2, "syntax error");
	ck_assert_int_eq(ms.n, 1);
}
END_TEST

START_TEST(error_in_include_names_that_file)
{
	char inc[PATH_MAX];

	snprintf(inc, sizeof inc, "%s/inc/dl.conf", dir);
	write_at(inc, "download = {\n  workers = 1;\n  bogus = 2;\n};\n");
	ck_assert_int_eq(load("log_level = \"info\";\n"
			      "@include \"inc/dl.conf\"\n"
			      "colour = \"red\";\n"), -EINVAL);
	expect_at(0, inc, 3, "unknown setting 'download.bogus'");
	expect(1, 3, "unknown setting 'colour'");
	ck_assert_int_eq(ms.n, 2);
}
END_TEST

/* libconfig 1.5 fopen()s an include, which succeeds on a folder, and then
 * its scanner exit(2)s: the loader must refuse it first, in every form the
 * scanner sees (found by tests/fuzz/fuzz_config). */
START_TEST(include_of_a_folder_is_an_error)
{
	static const char after_nul[] = "spool = \"/s\"; # \0 comment\n@include \"inc\"\n";
	char inc[PATH_MAX], sub[PATH_MAX];

	snprintf(sub, sizeof sub, "%s/inc", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_eq(load("spool = \"/s\";\n@include \"\"\n"), -EINVAL);
	ck_assert_ptr_null(cfg);
	expect(0, 2, "@include \"\": not a regular file");
	ck_assert_int_eq(ms.n, 1);

	/* nested, and with a folder name that spans a line */
	snprintf(inc, sizeof inc, "%s/inc/a.conf", dir);
	write_at(inc, "# included\n  @include\t\"inc\"\n");
	snprintf(sub, sizeof sub, "%s/in\nc", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	free(ms.m[0]);
	ms.n = 0;
	ck_assert_int_eq(load("@include \"inc/a.conf\"\n@include \"in\nc\"\n"), -EINVAL);
	expect_at(0, inc, 2, "@include \"inc\": not a regular file");
	expect(1, 2, "@include \"in\nc\": not a regular file");
	ck_assert_int_eq(ms.n, 2);

	/* flex reads on past a NUL inside a comment */
	free(ms.m[0]);
	free(ms.m[1]);
	ms.n = 0;
	ck_assert_int_eq(pl_test_write_file(path, after_nul, sizeof after_nul - 1), 0);
	ck_assert_int_eq(pl_config_load(path, collect, &ms, &cfg), -EINVAL);
	expect(0, 2, "@include \"inc\": not a regular file");
	ck_assert_int_eq(ms.n, 1);
}
END_TEST

/* A file that includes itself stops at libconfig's nesting limit, once. */
START_TEST(include_loop_is_reported_once)
{
	ck_assert_int_eq(load("@include \"pipeline.conf\"\n@include \"pipeline.conf\"\n"), -EINVAL);
	ck_assert_int_eq(ms.n, 1);
	ck_assert_ptr_nonnull(strstr(ms.m[0], "include file nesting too deep"));
}
END_TEST

/* ---- size limits, checked before libconfig reads a byte ------------------ */

/* libconfig 1.5's scanner is quadratic in the length of a line (4 MB on one
 * line took 6.8 s, 16 MB 93 s): absurd files are refused by size first. */

/* A file of exactly size bytes: head, then '#' comment lines of at most
 * linelen bytes (newline not counted) filling the rest, each ending in '\n'. */
static char *filled(const char *head, size_t size, size_t linelen)
{
	char *buf = malloc(size + 1);
	size_t n = strlen(head);

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_le(n, size);
	memcpy(buf, head, n);
	while (n < size) {
		size_t k = size - n - 1 < linelen ? size - n - 1 : linelen;

		memset(buf + n, 'x', k);
		if (k)
			buf[n] = '#';
		n += k;
		buf[n++] = '\n';
	}
	buf[size] = '\0';
	return buf;
}

START_TEST(long_line_refused)
{
	/* a 4 MB line, under the file limit: refused at its line */
	char *text = filled("spool = \"/s\";\n# next: one line of 4 MB\n", 4000000, 4000000);

	ck_assert_int_eq(load(text), -EINVAL);
	ck_assert_ptr_null(cfg);
	expect(0, 3, "line longer than 65536 bytes");
	ck_assert_int_eq(ms.n, 1);
	free(text);
}
END_TEST

START_TEST(large_file_refused)
{
	char want[PATH_MAX + 64], *text = filled("spool = \"/s\";\n", PL_CFGFILE_FILE_MAX + 1, 80);

	ck_assert_int_eq(load(text), -EINVAL);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof want, "%s: larger than 4194304 bytes", path);
	ck_assert_int_eq(ms.n, 1);
	ck_assert_str_eq(ms.m[0], want);
	free(text);
}
END_TEST

/* Exactly at both limits: loads, and the long line's value is whole. */
START_TEST(file_at_the_limits_loads)
{
	size_t vlen = PL_CFGFILE_LINE_MAX - strlen("spool = \"/\";");
	char *head = malloc(PL_CFGFILE_LINE_MAX + 64), *text;

	ck_assert_ptr_nonnull(head);
	ck_assert_uint_eq(PL_CFGFILE_LINE_MAX, 65536);
	ck_assert_uint_eq(PL_CFGFILE_FILE_MAX, 4194304);
	snprintf(head, PL_CFGFILE_LINE_MAX + 64, "spool = \"/%0*d\";\n", (int)vlen, 0);
	ck_assert_uint_eq(strlen(head), PL_CFGFILE_LINE_MAX + 1);
	text = filled(head, PL_CFGFILE_FILE_MAX, PL_CFGFILE_LINE_MAX);
	ck_assert_uint_eq(strlen(text), PL_CFGFILE_FILE_MAX);
	ck_assert_int_eq(load(text), 0);
	ck_assert_msg(ms.n == 0, "first error: %s", ms.n ? ms.m[0] : "");
	ck_assert_uint_eq(strlen(cfg->spool), vlen + 1);
	free(head);
	free(text);

	/* one byte more on that line, without a newline at the end */
	pl_config_free(cfg);
	cfg = NULL;
	head = malloc(PL_CFGFILE_LINE_MAX + 2);
	ck_assert_ptr_nonnull(head);
	memset(head, '#', PL_CFGFILE_LINE_MAX + 1);
	head[PL_CFGFILE_LINE_MAX + 1] = '\0';
	ck_assert_int_eq(load(head), -EINVAL);
	expect(0, 1, "line longer than 65536 bytes");
	ck_assert_int_eq(ms.n, 1);
	free(head);
}
END_TEST

/* Included files are held to the same limits, down to the deepest one
 * libconfig opens (ten levels below the main file). */
START_TEST(limits_apply_to_included_files)
{
	char inc[PATH_MAX], next[64], want[PATH_MAX + 64], *text;

	text = filled("download = { workers = 2; };\n", 100000, PL_CFGFILE_LINE_MAX + 1);
	snprintf(inc, sizeof inc, "%s/inc/long.conf", dir);
	write_at(inc, text);
	free(text);
	ck_assert_int_eq(load("spool = \"/s\";\n@include \"inc/long.conf\"\n"), -EINVAL);
	expect_at(0, inc, 2, "line longer than 65536 bytes");
	ck_assert_int_eq(ms.n, 1);

	free(ms.m[0]);
	ms.n = 0;
	text = filled("", PL_CFGFILE_FILE_MAX + 1, 100);
	write_at(inc, text);
	free(text);
	ck_assert_int_eq(load("spool = \"/s\";\n@include \"inc/long.conf\"\n"), -EINVAL);
	snprintf(want, sizeof want, "%s: larger than 4194304 bytes", inc);
	ck_assert_int_eq(ms.n, 1);
	ck_assert_str_eq(ms.m[0], want);

	/* d1.conf includes d2.conf ... d9.conf includes long.conf: libconfig
	 * reads that one (nesting level 10), so it is checked too */
	free(ms.m[0]);
	ms.n = 0;
	text = filled("# deepest\n", 100000, PL_CFGFILE_LINE_MAX + 1);
	write_at(inc, text);
	free(text);
	for (int i = 1; i <= 9; i++) {
		char body[64];

		snprintf(next, sizeof next, "%s/inc/d%d.conf", dir, i);
		if (i < 9)
			snprintf(body, sizeof body, "@include \"inc/d%d.conf\"\n", i + 1);
		else
			snprintf(body, sizeof body, "@include \"inc/long.conf\"\n");
		write_at(next, body);
	}
	ck_assert_int_eq(load("@include \"inc/d1.conf\"\n"), -EINVAL);
	expect_at(0, inc, 2, "line longer than 65536 bytes");
	ck_assert_int_eq(ms.n, 1);
}
END_TEST

/* ---- one error of each kind, with its line ----------------------------- */

START_TEST(unknown_settings)
{
	one_error("spool = \"/s\";\nfoo = 1;\n", 2, "unknown setting 'foo'");
}
END_TEST

START_TEST(unknown_in_download)
{
	one_error("download = {\n  workers = 2;\n  foo = 1;\n};\n", 3,
		  "unknown setting 'download.foo'");
}
END_TEST

START_TEST(unknown_in_variant)
{
	one_error("resize = {\n"
		  "  variants = (\n"
		  "    { name = \"a\"; width = 1; height = 1; },\n"
		  "    { name = \"b\"; width = 1; height = 1;\n"
		  "      colour = \"red\"; }\n"
		  "  );\n"
		  "};\n", 5, "unknown setting 'resize.variants[1].colour'");
}
END_TEST

START_TEST(unknown_in_s3)
{
	one_error("upload = {\n"
		  "  url = \"s3://b/{name}.{ext}\";\n"
		  "  s3 = {\n"
		  "    endpoint = \"https://s3.example.net\";\n"
		  "    credentials = \"/etc/c\";\n"
		  "    secret = \"x\";\n"
		  "  };\n"
		  "};\n", 6, "unknown setting 'upload.s3.secret'");
}
END_TEST

START_TEST(wrong_types)
{
	ck_assert_int_eq(load("spool = 5;\n"				/* 1 */
			      "download = {\n"				/* 2 */
			      "  workers = 2.5;\n"			/* 3 */
			      "  queue = 1.0;\n"			/* 4 */
			      "  timeout = \"60\";\n"			/* 5 */
			      "  allow_private = 1;\n"			/* 6 */
			      "  protocols = \"http\";\n"		/* 7 */
			      "  max_bytes = 1e6;\n"			/* 8 */
			      "};\n"					/* 9 */
			      "resize = {\n"				/* 10 */
			      "  workers = \"many\";\n"			/* 11 */
			      "  variants = { name = \"a\"; };\n"	/* 12 */
			      "};\n"					/* 13 */
			      "upload = 3;\n"),				/* 14 */
			 -EINVAL);
	expect(0, 1, "spool: expected a string");
	expect(1, 3, "download.workers: expected an integer, \"auto\" or \"adaptive\"");
	expect(2, 4, "download.queue: expected an integer");
	expect(3, 5, "download.timeout: expected a number of seconds");
	expect(4, 6, "download.allow_private: expected true or false");
	expect(5, 7, "download.protocols: expected a list of strings [ \"http\", … ]");
	expect(6, 8, "download.max_bytes: expected an integer");
	expect(7, 11, "resize.workers: expected an integer or \"auto\"");
	expect(8, 12, "resize.variants: expected a list of groups ( { name = …; … }, … )");
	expect(9, 14, "upload: expected a group { … }");
	ck_assert_int_eq(ms.n, 10);
}
END_TEST

START_TEST(ranges)
{
	ck_assert_int_eq(load("download = {\n"				/* 1 */
			      "  workers = 0;\n"			/* 2 */
			      "  queue = 65537;\n"			/* 3 */
			      "  timeout = 0;\n"			/* 4 */
			      "  connect_timeout = 3600.5;\n"		/* 5 */
			      "  backoff = -1.0;\n"			/* 6 */
			      "  retries = 21;\n"			/* 7 */
			      "  per_host = 1025;\n"			/* 8 */
			      "  low_speed_limit = -1;\n"		/* 9 */
			      "  max_bytes = 0;\n"			/* 10 */
			      "};\n"					/* 11 */
			      "resize = {\n"				/* 12 */
			      "  workers = 257;\n"			/* 13 */
			      "  max_pixels = 10000000001L;\n"		/* 14 */
			      "  variants = ( { name = \"a\";\n"	/* 15 */
			      "    width = 16385;\n"			/* 16 */
			      "    height = 0;\n"			/* 17 */
			      "    quality = 0; } );\n"			/* 18 */
			      "};\n"),					/* 19 */
			 -EINVAL);
	expect(0, 2, "download.workers: 0 is out of range 1..256");
	expect(1, 3, "download.queue: 65537 is out of range 1..65536");
	expect(2, 4, "download.timeout: 0 is out of range >0..86400");
	expect(3, 5, "download.connect_timeout: 3600.5 is out of range >0..3600");
	expect(4, 6, "download.backoff: -1 is out of range 0..3600");
	expect(5, 7, "download.retries: 21 is out of range 0..20");
	expect(6, 8, "download.per_host: 1025 is out of range 1..1024");
	expect(7, 9, "download.low_speed_limit: -1 is out of range 0..2147483648");
	expect(8, 10, "download.max_bytes: 0 is out of range 1..1099511627776");
	expect(9, 13, "resize.workers: 257 is out of range 1..256");
	expect(10, 14, "resize.max_pixels: 10000000001 is out of range 1..10000000000");
	expect(11, 16, "resize.variants[0].width: 16385 is out of range 1..16384");
	expect(12, 17, "resize.variants[0].height: 0 is out of range 1..16384");
	expect(13, 18, "resize.variants[0].quality: 0 is out of range 1..100");
	ck_assert_int_eq(ms.n, 14);
}
END_TEST

/* libconfig 1.5 keeps only 32 bits of a literal without L: caught. */
START_TEST(big_literal_without_L)
{
	ck_assert_int_eq(load("download = {\n"
			      "  max_bytes = 3000000000;\n"
			      "};\n"
			      "resize = { max_pixels = 10000000000; };\n"
			      "upload = {\n"
			      "  queue = 4294967312;\n"	/* 2^32 + 16 */
			      "  retries = 0x100000003;\n"
			      "};\n"), -EINVAL);
	expect(0, 2, "download.max_bytes: 3000000000 does not fit a plain integer: "
		     "write it as 3000000000L");
	expect(1, 4, "resize.max_pixels: 10000000000 does not fit a plain integer: "
		     "write it as 10000000000L");
	expect(2, 6, "upload.queue: 4294967312 does not fit a plain integer: "
		     "write it as 4294967312L");
	expect(3, 7, "upload.retries: 0x100000003 does not fit a plain integer: "
		     "write it as 0x100000003L");
	ck_assert_int_eq(ms.n, 4);
}
END_TEST

/* Seconds are read as integers are: a cut literal is not 1 s or 0 s. */
START_TEST(big_literal_without_L_in_seconds)
{
	ck_assert_int_eq(load("download = {\n"
			      "  backoff = 4294967297;\n"	/* 2^32 + 1 */
			      "  timeout = 4294967296L;\n"
			      "};\n"), -EINVAL);
	expect(0, 2, "download.backoff: 4294967297 does not fit a plain integer: "
		     "write it as 4294967297L");
	expect(1, 3, "download.timeout: 4.29497e+09 is out of range >0..86400");
	ck_assert_int_eq(ms.n, 2);
}
END_TEST

/* ... and a truncated literal among settings of the same name on its line
 * is still caught, at its own setting; so is one on the line after its
 * name. */
START_TEST(big_literal_among_same_names)
{
	ck_assert_int_eq(load("resize = { variants = ( { name = \"a\"; width = 32; height = 8; },"
			      " { name = \"b\"; width = 4294967312; height = 8; } );\n"	/* 1 */
			      "  max_pixels =\n"						/* 2 */
			      "    10000000000; };\n"						/* 3 */
			      "download = { retries = 3; }; upload = { retries = 4294967299;"
			      " url = \"file:///o/{job}/{name}-{variant}\"; };\n"),			/* 4 */
			 -EINVAL);
	expect(0, 1, "resize.variants[1].width: 4294967312 does not fit a plain integer: "
		     "write it as 4294967312L");
	expect(1, 2, "resize.max_pixels: 10000000000 does not fit a plain integer: "
		     "write it as 10000000000L");
	expect(2, 4, "upload.retries: 4294967299 does not fit a plain integer: "
		     "write it as 4294967299L");
	ck_assert_int_eq(ms.n, 3);
}
END_TEST

START_TEST(bad_strings)
{
	ck_assert_int_eq(load("spool = \"var/spool\";\n"			/* 1 */
			      "runtime = \"\";\n"				/* 2 */
			      "log_level = \"crit\";\n"				/* 3 */
			      "download = { file_root = \"in\"; };\n"		/* 4 */
			      "resize = { variants = ( { name = \".x\";\n"	/* 5 */
			      "  width = 1; height = 1;\n"			/* 6 */
			      "  fit = \"outside\";\n"				/* 7 */
			      "  crop = \"left\";\n"				/* 8 */
			      "  format = \"gif\"; } ); };\n"			/* 9 */
			      "upload = { url = \"ftp://h/{name}\"; };\n"),	/* 10 */
			 -EINVAL);
	expect(0, 1, "spool: \"var/spool\" is not an absolute path");
	expect(1, 2, "runtime: \"\" is not an absolute path");
	expect(2, 3, "log_level: \"crit\" is not one of err, warning, notice, info, debug");
	expect(3, 4, "download.file_root: \"in\" is not an absolute path");
	expect(4, 5, "resize.variants[0].name: \".x\" is not a name: 1..63 letters, digits, "
		     "'.', '_' or '-', not starting with '.'");
	expect(5, 7, "resize.variants[0].fit: \"outside\" is not one of inside, cover");
	expect(6, 8, "resize.variants[0].crop: \"left\" is not one of centre, attention");
	expect(7, 9, "resize.variants[0].format: \"gif\" is not one of jpeg, webp, png, avif");
	expect(8, 10, "upload.url: url must start with file://, http://, https:// or s3://");
	ck_assert_int_eq(ms.n, 9);
}
END_TEST

START_TEST(protocols_list)
{
	ck_assert_int_eq(load("download = {\n"
			      "  protocols = [ \"http\",\n"
			      "                \"ftp\",\n"
			      "                \"http\" ];\n"
			      "};\n"), -EINVAL);
	expect(0, 3, "download.protocols: \"ftp\" is not one of http, https, file");
	expect(1, 4, "download.protocols: \"http\" is listed twice");
	ck_assert_int_eq(ms.n, 2);
	teardown();
	setup();
	one_error("download = {\n  protocols = [ ];\n};\n", 2,
		  "download.protocols: must name at least one protocol");
}
END_TEST

START_TEST(file_protocol_needs_root)
{
	one_error("spool = \"/s\";\n"
		  "download = {\n"
		  "  protocols = [ \"file\" ];\n"
		  "};\n", 2, "download.file_root: required when protocols include \"file\"");
}
END_TEST

START_TEST(file_root_without_file_protocol)
{
	one_error("download = {\n"
		  "  protocols = [ \"https\" ];\n"
		  "  file_root = \"/srv/in\";\n"
		  "};\n", 3, "download.file_root: set, but protocols do not include \"file\"");
}
END_TEST

START_TEST(variants_required_and_unique)
{
	ck_assert_int_eq(load("resize = {\n"				/* 1 */
			      "  variants = (\n"			/* 2 */
			      "    { name = \"a\"; width = 1; height = 1; },\n"	/* 3 */
			      "    { width = 1;\n"			/* 4 */
			      "      height = 2; },\n"			/* 5 */
			      "    { name = \"b\"; },\n"		/* 6 */
			      "    { name = \"a\"; width = 1; height = 1; },\n"	/* 7 */
			      "    5\n"					/* 8 */
			      "  );\n"					/* 9 */
			      "};\n"					/* 10 */
			      "upload = { url = \"file:///o/{name}-{variant}\"; };\n"),
			 -EINVAL);
	expect(0, 4, "resize.variants[1].name: required setting is missing");
	expect(1, 6, "resize.variants[2].width: required setting is missing");
	expect(2, 6, "resize.variants[2].height: required setting is missing");
	expect(3, 7, "resize.variants[3].name: \"a\" is already the name of resize.variants[0]");
	expect(4, 8, "resize.variants[4]: expected a group { name = …; width = …; height = …; }");
	ck_assert_int_eq(ms.n, 5);
	teardown();
	setup();
	one_error("resize = {\n  variants = ( );\n};\n", 2,
		  "resize.variants: must hold at least one variant");
}
END_TEST

START_TEST(several_variants_need_variant_placeholder)
{
	one_error("resize = { variants = (\n"
		  "  { name = \"a\"; width = 1; height = 1; },\n"
		  "  { name = \"b\"; width = 2; height = 2; } ); };\n"
		  "upload = {\n"
		  "  url = \"https://h/x/{name}.{ext}\";\n"
		  "};\n", 5,
		  "upload.url: needs {variant}: there are 2 variants, which would write the same key");
	/* one variant: fine without it */
	teardown();
	setup();
	ck_assert_int_eq(load("upload = { url = \"https://h/x/{name}.{ext}\"; };\n"), 0);
}
END_TEST

START_TEST(template_reason_reported)
{
	one_error("upload = {\n  url = \"file:///out/../{name}\";\n};\n", 2,
		  "upload.url: '..' segment in url");
}
END_TEST

/* Off without the group; the group alone listens on loopback; the
 * address rule, the ranges and a reload that toggles it (a restart). */
START_TEST(metrics_group)
{
	struct pl_config *off;

	ck_assert_int_eq(load("spool = \"/s\";\n"), 0);
	ck_assert_str_eq(cfg->metrics.listen, "");
	off = cfg;
	cfg = NULL;
	ck_assert_int_eq(load("spool = \"/s\";\nmetrics = { };\n"), 0);
	ck_assert_str_eq(cfg->metrics.listen, "127.0.0.1:9464");
	ck_assert_int_eq(cfg->metrics.connections, 16);
	ck_assert(cfg->metrics.timeout == 10);
	ck_assert(pl_config_restart_differs(off, cfg));
	pl_config_free(off);
	pl_config_free(cfg);
	cfg = NULL;
	ck_assert_int_eq(load("metrics = {\n"
			      "  listen = \"[::1]:9100\";\n"
			      "  connections = 4;\n"
			      "  timeout = 2.5;\n"
			      "};\n"), 0);
	ck_assert_str_eq(cfg->metrics.listen, "[::1]:9100");
	ck_assert_int_eq(cfg->metrics.connections, 4);
	ck_assert(cfg->metrics.timeout == 2.5);
	pl_config_free(cfg);
	cfg = NULL;
	ck_assert_int_eq(load("metrics = {\n"
			      "  listen = \"localhost:9464\";\n"
			      "  connections = 0;\n"
			      "  timeout = 0;\n"
			      "};\n"), -EINVAL);
	expect(0, 2, "metrics.listen: \"localhost:9464\" is not ADDRESS:PORT (an IPv4 address, "
		     "or an IPv6 one in [ ], and a port 1..65535)");
	expect(1, 3, "metrics.connections: 0 is out of range 1..1024");
	expect(2, 4, "metrics.timeout: 0 is out of range >0..3600");
	ck_assert_int_eq(ms.n, 3);
}
END_TEST

START_TEST(s3_group_required)
{
	one_error("spool = \"/s\";\n"
		  "upload = {\n"
		  "  url = \"s3://b/{name}-{variant}.{ext}\";\n"
		  "};\n", 2, "upload.s3: required with an s3:// url");
}
END_TEST

START_TEST(s3_fields_required)
{
	ck_assert_int_eq(load("upload = {\n"
			      "  url = \"s3://b/{name}-{variant}.{ext}\";\n"
			      "  s3 = {\n"
			      "    region = \"eu-west-1\";\n"
			      "  };\n"
			      "};\n"), -EINVAL);
	expect(0, 3, "upload.s3.endpoint: required with an s3:// url");
	expect(1, 3, "upload.s3.credentials: required with an s3:// url");
	ck_assert_int_eq(ms.n, 2);
}
END_TEST

START_TEST(s3_values)
{
	ck_assert_int_eq(load("upload = {\n"
			      "  url = \"s3://b/{name}-{variant}.{ext}\";\n"
			      "  s3 = {\n"
			      "    endpoint = \"s3.example.net\";\n"
			      "    region = \"EU West\";\n"
			      "    credentials = \"s3.cred\";\n"
			      "  };\n"
			      "};\n"), -EINVAL);
	expect(0, 4, "upload.s3.endpoint: \"s3.example.net\" is not an http:// or https:// URL");
	expect(1, 5, "upload.s3.region: \"EU West\" is not a region name "
		     "(lower-case letters, digits, '-')");
	expect(2, 6, "upload.s3.credentials: \"s3.cred\" is not an absolute path, and "
		     "$CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit sets it)");
	ck_assert_int_eq(ms.n, 3);
}
END_TEST

START_TEST(s3_group_with_other_scheme)
{
	one_error("upload = {\n"
		  "  url = \"https://h/{name}-{variant}.{ext}\";\n"
		  "  s3 = {\n"
		  "    endpoint = \"https://s3.example.net\";\n"
		  "    credentials = \"/etc/c\";\n"
		  "  };\n"
		  "};\n", 3, "upload.s3: only used with an s3:// url");
}
END_TEST

/* All errors, across groups and kinds, in source order. */
START_TEST(all_errors_reported)
{
	ck_assert_int_eq(load("spool = \"rel\";\n"				/* 1 */
			      "download = {\n"					/* 2 */
			      "  workers = 0;\n"				/* 3 */
			      "  nonsense = true;\n"				/* 4 */
			      "};\n"						/* 5 */
			      "resize = { variants = (\n"			/* 6 */
			      "  { name = \"a\"; width = 1; height = 1; quality = 101; },\n"	/* 7 */
			      "  { name = \"b\"; width = 1; height = 1; } ); };\n"	/* 8 */
			      "upload = {\n"					/* 9 */
			      "  url = \"file:///o/{name}.{ext}\";\n"		/* 10 */
			      "  timeout = 0.0;\n"				/* 11 */
			      "};\n"						/* 12 */
			      "log_level = \"loud\";\n"),			/* 13 */
			 -EINVAL);
	expect(0, 1, "spool: \"rel\" is not an absolute path");
	expect(1, 3, "download.workers: 0 is out of range 1..256");
	expect(2, 4, "unknown setting 'download.nonsense'");
	expect(3, 7, "resize.variants[0].quality: 101 is out of range 1..100");
	expect(4, 11, "upload.timeout: 0 is out of range >0..86400");
	expect(5, 13, "log_level: \"loud\" is not one of err, warning, notice, info, debug");
	expect(6, 10, "upload.url: needs {variant}: there are 2 variants, "
		      "which would write the same key");
	ck_assert_int_eq(ms.n, 7);
	ck_assert_ptr_null(cfg);
}
END_TEST

/* Explicit setting > systemd's directory > built-in default; the first of
 * a colon-separated list. */
START_TEST(systemd_directories)
{
	setenv("RUNTIME_DIRECTORY", "/run/user/1000/pipelined:/run/other", 1);
	setenv("STATE_DIRECTORY", "/var/lib/pl", 1);
	ck_assert_int_eq(load(""), 0);
	ck_assert_str_eq(cfg->runtime, "/run/user/1000/pipelined");
	ck_assert_str_eq(cfg->spool, "/var/lib/pl/spool");
	ck_assert_str_eq(cfg->upload.url, "file:///var/lib/pl/out/{job}/{name}-{variant}.{ext}");
	pl_config_free(cfg);
	cfg = NULL;
	ck_assert_int_eq(load("spool = \"/s\";\nruntime = \"/r\";\n"
			      "upload = { url = \"file:///o/{job}/{name}.{ext}\"; };\n"), 0);
	ck_assert_str_eq(cfg->runtime, "/r");
	ck_assert_str_eq(cfg->spool, "/s");
	ck_assert_str_eq(cfg->upload.url, "file:///o/{job}/{name}.{ext}");
	pl_config_free(cfg);
	cfg = NULL;
	setenv("RUNTIME_DIRECTORY", "relative", 1);	/* not systemd's: ignored */
	unsetenv("STATE_DIRECTORY");
	ck_assert_int_eq(load(""), 0);
	ck_assert_str_eq(cfg->runtime, "/run/pipelined");
	ck_assert_str_eq(cfg->spool, "/var/lib/pipelined/spool");
}
END_TEST

/* A relative -c names a file in $CONFIGURATION_DIRECTORY. */
START_TEST(relative_path_in_configuration_directory)
{
	write_at(path, "runtime = \"/r\";\n");
	setenv("CONFIGURATION_DIRECTORY", dir, 1);
	ck_assert_int_eq(pl_config_load("pipeline.conf", collect, &ms, &cfg), 0);
	ck_assert_str_eq(cfg->runtime, "/r");
	ck_assert_str_eq(cfg->path, path);
}
END_TEST

/* A credential's bare name is read from $CREDENTIALS_DIRECTORY. */
START_TEST(credentials_directory)
{
	const char *text = "upload = {\n"
			   "  url = \"s3://b/{job}/{name}-{variant}.{ext}\";\n"
			   "  s3 = {\n"
			   "    endpoint = \"http://127.0.0.1:9000\";\n"
			   "    credentials = \"s3.cred\";\n"
			   "  };\n"
			   "};\n"
			   "stream = {\n"
			   "  servers = [ \"nats://127.0.0.1:4222\" ];\n"
			   "  credentials = \"nats.creds\";\n"
			   "  tls_ca = \"/etc/ssl/ca.pem\";\n"
			   "};\n";

	setenv("CREDENTIALS_DIRECTORY", "/run/credentials/pipelined.service", 1);
	ck_assert_int_eq(load(text), 0);
	ck_assert_str_eq(cfg->upload.s3.credentials, "/run/credentials/pipelined.service/s3.cred");
	ck_assert_str_eq(cfg->stream.credentials, "/run/credentials/pipelined.service/nats.creds");
	ck_assert_str_eq(cfg->stream.tls_ca, "/etc/ssl/ca.pem");
	ck_assert_str_eq(cfg->stream.tls_cert, "");	/* the default: none */
	pl_config_free(cfg);
	cfg = NULL;
	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert_int_eq(load(text), -EINVAL);
	expect(0, 5, "upload.s3.credentials: \"s3.cred\" is not an absolute path, and "
		     "$CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit sets it)");
	expect(1, 10, "stream.credentials: \"nats.creds\" is not an absolute path, and "
		      "$CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit sets it)");
	ck_assert_int_eq(ms.n, 2);
}
END_TEST

/* Leases are renewed from a one-second tick: an ack_wait it cannot keep
 * is refused. */
START_TEST(stream_ack_wait_floor)
{
	one_error("stream = {\n"
		  "  servers = [ \"nats://127.0.0.1:4222\" ];\n"
		  "  ack_wait = 1.5;\n"
		  "};\n", 3, "stream.ack_wait: 1.5 is out of range 2..3600");
}
END_TEST

START_TEST(credential_name_with_a_slash)
{
	setenv("CREDENTIALS_DIRECTORY", "/run/credentials/x", 1);
	one_error("upload = {\n"
		  "  url = \"s3://b/{job}/{name}-{variant}.{ext}\";\n"
		  "  s3 = {\n"
		  "    endpoint = \"http://127.0.0.1:9000\";\n"
		  "    credentials = \"../s3.cred\";\n"
		  "  };\n"
		  "};\n", 5,
		  "upload.s3.credentials: \"../s3.cred\" is neither an absolute path nor a credential name");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("config");
	TCase *ok = tcase_create("valid"), *file = tcase_create("file"),
	      *bad = tcase_create("errors");

	tcase_add_checked_fixture(ok, setup, teardown);
	tcase_add_checked_fixture(file, setup, teardown);
	/* the size-limit cases write and read files of 4 MiB: room on a busy machine */
	tcase_set_timeout(file, 60);
	tcase_add_checked_fixture(bad, setup, teardown);
	tcase_add_test(ok, defaults_from_empty_file);
	tcase_add_test(ok, shipped_file_loads_and_equals_defaults);
	tcase_add_test(ok, default_url_separates_jobs);
	tcase_add_test(ok, url_without_job_warns);
	tcase_add_test(ok, workers_auto);
	tcase_add_test(ok, workers_adaptive);
	tcase_add_test(ok, everything_set);
	tcase_add_test(ok, same_name_on_one_line);
	tcase_add_test(ok, restart_differs_but_for_live_settings);
	tcase_add_test(ok, include_relative_to_the_config_folder);
	tcase_add_test(ok, format_names);
	tcase_add_test(ok, value_rules_for_stages);
	tcase_add_test(ok, systemd_directories);
	tcase_add_test(ok, relative_path_in_configuration_directory);
	tcase_add_test(ok, credentials_directory);
	tcase_add_test(bad, credential_name_with_a_slash);
	tcase_add_test(bad, stream_ack_wait_floor);
	tcase_add_test(file, missing_file);
	tcase_add_test(file, directory_is_not_a_file);
	tcase_add_test(file, parse_error_line);
	tcase_add_test(file, parse_error_in_include_names_that_file);
	tcase_add_test(file, error_in_include_names_that_file);
	tcase_add_test(file, include_of_a_folder_is_an_error);
	tcase_add_test(file, include_loop_is_reported_once);
	tcase_add_test(file, long_line_refused);
	tcase_add_test(file, large_file_refused);
	tcase_add_test(file, file_at_the_limits_loads);
	tcase_add_test(file, limits_apply_to_included_files);
	tcase_add_test(bad, unknown_settings);
	tcase_add_test(bad, unknown_in_download);
	tcase_add_test(bad, unknown_in_variant);
	tcase_add_test(bad, unknown_in_s3);
	tcase_add_test(bad, wrong_types);
	tcase_add_test(bad, ranges);
	tcase_add_test(bad, big_literal_without_L);
	tcase_add_test(bad, big_literal_without_L_in_seconds);
	tcase_add_test(bad, big_literal_among_same_names);
	tcase_add_test(bad, bad_strings);
	tcase_add_test(bad, protocols_list);
	tcase_add_test(bad, file_protocol_needs_root);
	tcase_add_test(bad, file_root_without_file_protocol);
	tcase_add_test(bad, variants_required_and_unique);
	tcase_add_test(bad, several_variants_need_variant_placeholder);
	tcase_add_test(bad, template_reason_reported);
	tcase_add_test(bad, metrics_group);
	tcase_add_test(bad, s3_group_required);
	tcase_add_test(bad, s3_fields_required);
	tcase_add_test(bad, s3_values);
	tcase_add_test(bad, s3_group_with_other_scheme);
	tcase_add_test(bad, all_errors_reported);
	suite_add_tcase(s, ok);
	suite_add_tcase(s, file);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

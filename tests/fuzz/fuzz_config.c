/*
 * fuzz_config.c — libFuzzer target for the configuration loader and
 * validator (src/config.c and its conf*.c parts: pl_config_load,
 * pl_config_free, and through them libconfig and pl_template_check).
 *
 * pl_config_load reads a file (and lexes it, to catch libconfig's silent
 * 32-bit truncation of integer literals), so each input is written to one
 * file in a private directory made once per process (under /dev/shm, else
 * /tmp), then loaded.  That directory is also the include directory, and it holds nothing but the input and one
 * known snippet, inc.conf, so @include is fuzzed without reaching the rest
 * of the file system: an @include is let through only when it names a plain
 * file in that directory (no '/', no leading '.', no escapes), anything else
 * is skipped before loading.
 *
 * On success the loaded config must satisfy what the daemon relies on
 * without re-checking: an accepted upload.url template, {variant} when there
 * are several variants, valid variant names, stage widths and queues in
 * range, absolute paths; and a config never differs from itself.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "template.h"

static char dir[64], conf[96], inc[96];

/* libconfig 1.5 loses the strings its scanner was building when a parse
 * error cuts them short (allocated in libconfig_yylex / strbuf_append, never
 * freed: its grammar has no destructors): a leak in the library, of a few
 * bytes per bad file, that the daemon cannot free.  Only allocations made
 * inside libconfig.so are suppressed (libconfig never calls back into our
 * code), and here in the binary so a reproducer needs no LSAN_OPTIONS. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

static void cleanup(void)
{
	unlink(conf);
	unlink(inc);
	rmdir(dir);
}

static void write_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = data;

	if (fd < 0) {
		perror(path);
		abort();
	}
	while (size > 0) {
		ssize_t n = write(fd, p, size);

		if (n < 0) {
			perror(path);
			abort();
		}
		p += n;
		size -= (size_t)n;
	}
	close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char snippet[] =
		"log_level = \"debug\";\n"
		"resize = { variants = ( { name = \"a\"; width = 10; height = 10; },\n"
		"                        { name = \"b\"; width = 99999; height = 10; } ); };\n";

	(void)argc;
	(void)argv;
	/* the loader's warnings (a url without {job}) would be a line per run */
	pl_log_set_level(LOG_ERR);
	/* tmpfs when there is one: rewriting a file on ext4 costs a discard
	 * per run, a third of the time */
	/* with the pid in the name: a crash skips atexit, and scripts/fuzz
	 * then removes what its own fuzzer process left */
	snprintf(dir, sizeof dir, "%s/pl-fuzz-config-%ld-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(conf, sizeof conf, "%s/pipeline.conf", dir);
	snprintf(inc, sizeof inc, "%s/inc.conf", dir);
	write_file(inc, snippet, sizeof snippet - 1);
	atexit(cleanup);
	return 0;
}

/* Is every @include a plain name inside the directory? libconfig 1.5 takes
 * `@include "FILE"` only; the check is case-blind to be safe. */
static bool includes_confined(const uint8_t *data, size_t size)
{
	static const char kw[] = "@include";
	size_t k = sizeof kw - 1;

	for (size_t i = 0; i + k <= size; i++) {
		size_t j;

		if (strncasecmp((const char *)data + i, kw, k) != 0)
			continue;
		j = i + k;
		while (j < size && (data[j] == ' ' || data[j] == '\t'))
			j++;
		if (j >= size || data[j] != '"')
			continue;	/* not an include to libconfig: a syntax error */
		if (++j >= size || data[j] == '.')
			return false;
		for (; j < size && data[j] != '"'; j++)
			if (!isalnum(data[j]) && data[j] != '.' && data[j] != '_' && data[j] != '-')
				return false;
	}
	return true;
}

static void no_report(void *ud, const char *msg)
{
	(void)ud;
	FUZZ_CHECK(msg && *msg, "empty error message");
}

static void check_stage(const char *name, const struct pl_stage_conf *st)
{
	FUZZ_CHECK(st->workers >= 1 && st->workers <= 256, "%s.workers %u", name, st->workers);
	FUZZ_CHECK(st->queue >= 1 && st->queue <= 65536, "%s.queue %u", name, st->queue);
}

static void check_config(const struct pl_config *cfg)
{
	const char *why;

	FUZZ_CHECK(cfg->spool && cfg->spool[0] == '/', "spool not absolute");
	FUZZ_CHECK(cfg->runtime && cfg->runtime[0] == '/', "runtime not absolute");
	check_stage("download", &cfg->download.stage);
	check_stage("resize", &cfg->resize.stage);
	check_stage("upload", &cfg->upload.stage);
	FUZZ_CHECK(cfg->download.protocols && !(cfg->download.protocols & ~7u), "protocols");
	FUZZ_CHECK(!(cfg->download.protocols & PL_PROTO_FILE) == !*cfg->download.file_root,
		   "file_root and protocols disagree");
	FUZZ_CHECK(pl_template_check(cfg->upload.url, &why) == 0, "url %s: %s", cfg->upload.url, why);
	FUZZ_CHECK(cfg->resize.nvariants >= 1, "no variants");
	FUZZ_CHECK(cfg->resize.nvariants == 1 || pl_template_has(cfg->upload.url, "variant"),
		   "%zu variants without {variant}", cfg->resize.nvariants);
	for (size_t i = 0; i < cfg->resize.nvariants; i++) {
		const struct pl_variant *v = &cfg->resize.variants[i];

		FUZZ_CHECK(v->name[0] && v->name[0] != '.' && strlen(v->name) < PL_VARIANT_NAME_MAX,
			   "variant name \"%s\"", v->name);
		FUZZ_CHECK(v->width >= 1 && v->width <= 16384 && v->height >= 1 && v->height <= 16384,
			   "variant %s size %dx%d", v->name, v->width, v->height);
		FUZZ_CHECK(v->quality >= 1 && v->quality <= 100, "quality %d", v->quality);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(v->name, cfg->resize.variants[j].name) != 0,
				   "duplicate variant %s", v->name);
		(void)pl_config_format_ext(v->format);
		(void)pl_config_format_mime(v->format);
	}
	FUZZ_CHECK(strncmp(cfg->upload.url, "s3://", 5) != 0 ||
		   (*cfg->upload.s3.endpoint && cfg->upload.s3.credentials[0] == '/'),
		   "s3:// without endpoint or credentials");
	FUZZ_CHECK(!pl_config_restart_differs(cfg, cfg), "config differs from itself");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pl_config *cfg = NULL;
	int r;

	if (!includes_confined(data, size))
		return -1;	/* not added to the corpus */
	write_file(conf, data, size);
	r = pl_config_load(conf, no_report, NULL, &cfg);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -EIO, "load returned %d", r);
	FUZZ_CHECK((r == 0) == (cfg != NULL), "result %d with cfg %p", r, (void *)cfg);
	if (cfg)
		check_config(cfg);
	pl_config_free(cfg);
	return 0;
}

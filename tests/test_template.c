/*
 * test_template.c — upload.url templates: expansion, encoding, and the
 * checks that keep job data from choosing where outputs go.
 *
 * Values come from job files (names) and must never escape the template's
 * folder or host, so most cases here are hostile values and templates, each
 * asserting both the error code and that a reason is given.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

static const struct pl_template_vars std = { "photo", "thumb", "jpg", "job-1" };

static void expands(const char *tmpl, const struct pl_template_vars *v, const char *want)
{
	char out[512];
	const char *why = NULL;
	int r = pl_template_expand(tmpl, v, out, sizeof out, &why);

	ck_assert_msg(r == 0, "%s: %d (%s)", tmpl, r, why ? why : "");
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(pl_template_check(tmpl, &why), 0);
}

/* The value is refused at expansion; the template itself is fine. */
static void value_refused(const char *tmpl, const struct pl_template_vars *v)
{
	char out[512];
	const char *why = NULL;

	ck_assert_int_eq(pl_template_check(tmpl, &why), 0);
	ck_assert_int_eq(pl_template_expand(tmpl, v, out, sizeof out, &why), -EINVAL);
	ck_assert_ptr_nonnull(why);
}

/* The template is refused by check and by expansion, with this reason. */
static void template_refused(const char *tmpl, const char *reason)
{
	char out[512];
	const char *why = NULL;

	ck_assert_msg(pl_template_check(tmpl, &why) == -EINVAL, "accepted: %s", tmpl);
	ck_assert_str_eq(why, reason);
	why = NULL;
	ck_assert_int_eq(pl_template_expand(tmpl, &std, out, sizeof out, &why), -EINVAL);
	ck_assert_str_eq(why, reason);
}

START_TEST(expansion)
{
	expands("file:///out/{name}-{variant}.{ext}", &std, "file:///out/photo-thumb.jpg");
	expands("file:///out/{job}/{name}/{variant}.{ext}", &std,
		"file:///out/job-1/photo/thumb.jpg");
	expands("https://h.example:8080/dav/{name}.{ext}", &std,
		"https://h.example:8080/dav/photo.jpg");
	expands("s3://bucket/k/{name}{name}", &std, "s3://bucket/k/photophoto");
	expands("http://h/put?key={name}", &std, "http://h/put?key=photo");
}
END_TEST

START_TEST(percent_encoding_for_urls)
{
	struct pl_template_vars v = { "a b+c&d", "t~_-.x", "jpg", "j:1%" };

	expands("http://h/{name}-{variant}.{ext}", &v, "http://h/a%20b%2Bc%26d-t~_-.x.jpg");
	expands("s3://b/{job}/{name}", &v, "s3://b/j%3A1%25/a%20b%2Bc%26d");
	v.name = "caf\xc3\xa9";
	expands("https://h/{name}", &v, "https://h/caf%C3%A9");
}
END_TEST

START_TEST(file_values_plain)
{
	struct pl_template_vars v = { "a b+c&d", "thumb", "jpg", "j:1%" };

	expands("file:///o/{job}/{name}", &v, "file:///o/j:1%/a b+c&d");
	v.name = "caf\xc3\xa9";
	expands("file:///o/{name}", &v, "file:///o/caf\xc3\xa9");
}
END_TEST

START_TEST(escaping_values_rejected)
{
	static const char *const bad[] = {
		"a/b", "/abs", "..", "../x", ".hidden", ".", "a\\b", "a\nb", "a\tb",
		"a\x7f", "", "x\x01",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct pl_template_vars v = std;

		v.name = bad[i];
		value_refused("file:///o/{name}.{ext}", &v);
		value_refused("https://h/{name}.{ext}", &v);
		v = std;
		v.job = bad[i];
		value_refused("s3://b/{job}/{name}", &v);
	}
	/* a NULL value for a placeholder the template uses */
	struct pl_template_vars v = std;
	v.variant = NULL;
	value_refused("file:///o/{name}-{variant}", &v);
	/* ... and not needed when the template does not use it */
	expands("file:///o/{name}", &v, "file:///o/photo");
	/* dots inside a value are fine */
	v = std;
	v.name = "a..b.c";
	expands("file:///o/{name}", &v, "file:///o/a..b.c");
}
END_TEST

START_TEST(bad_templates)
{
	template_refused("ftp://h/{name}", "url must start with file://, http://, https:// or s3://");
	template_refused("/out/{name}", "url must start with file://, http://, https:// or s3://");
	template_refused("file://out/{name}", "file:// url needs an absolute path (file:///…)");
	template_refused("file:///o/{nam}", "unknown placeholder (use {name} {variant} {ext} {job})");
	template_refused("file:///o/{}", "unknown placeholder (use {name} {variant} {ext} {job})");
	template_refused("file:///o/{NAME}", "unknown placeholder (use {name} {variant} {ext} {job})");
	template_refused("file:///o/{name", "unclosed '{'");
	template_refused("file:///o/name}", "'}' without '{'");
	template_refused("file:///o/{variant}.{ext}",
			 "url needs {name}, or every item would write the same key");
	template_refused("file:///o/../{name}", "'..' segment in url");
	template_refused("file:///o/{name}/..", "'..' segment in url");
	template_refused("https://h/a/../{name}", "'..' segment in url");
	template_refused("https://h/{name}/..?x=1", "'..' segment in url");
}
END_TEST

/* Fixed in template.c: these were accepted before. */
START_TEST(host_and_bucket_are_literal)
{
	const char *p = "placeholder in the host or bucket: job data must not choose where outputs go";

	template_refused("http://{name}/x", p);
	template_refused("https://{name}.example.com/x/{name}", p);
	template_refused("https://h:{job}/{name}", p);
	template_refused("s3://{job}/{name}", p);
	template_refused("s3://b{job}x/{name}", p);
	template_refused("http:///{name}", "url needs a host");
	template_refused("s3:///{name}", "s3:// url needs a bucket: s3://BUCKET/KEY");
	template_refused("s3://bucket", "s3:// url needs a key after the bucket: s3://BUCKET/KEY");
	template_refused("file:///o/a\tb/{name}", "url holds a control character or space");
	template_refused("https://h/a b/{name}", "url holds a control character or space");
	/* a space in a local path is the operator's business */
	expands("file:///o/my files/{name}", &std, "file:///o/my files/photo");
}
END_TEST

START_TEST(overflow)
{
	const char *t = "file:///o/{name}.{ext}";	/* -> file:///o/photo.jpg (19) */
	char out[64];
	const char *why = NULL;

	ck_assert_int_eq(pl_template_expand(t, &std, out, 20, &why), 0);
	ck_assert_str_eq(out, "file:///o/photo.jpg");
	ck_assert_int_eq(pl_template_expand(t, &std, out, 19, &why), -ENAMETOOLONG);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_eq(pl_template_expand(t, &std, out, 5, &why), -ENAMETOOLONG);
	ck_assert_int_eq(pl_template_expand(t, &std, out, 0, &why), -ENAMETOOLONG);

	/* encoding triples the size: the limit counts encoded bytes */
	struct pl_template_vars v = std;
	v.name = "   ";		/* -> %20%20%20 */
	ck_assert_int_eq(pl_template_expand("http://h/{name}", &v, out, 19, &why), 0);
	ck_assert_str_eq(out, "http://h/%20%20%20");
	ck_assert_int_eq(pl_template_expand("http://h/{name}", &v, out, 18, &why), -ENAMETOOLONG);
}
END_TEST

START_TEST(has_placeholder)
{
	const char *t = "s3://b/{job}/{name}-{variant}.{ext}";

	ck_assert(pl_template_has(t, "name"));
	ck_assert(pl_template_has(t, "variant"));
	ck_assert(pl_template_has(t, "ext"));
	ck_assert(pl_template_has(t, "job"));
	ck_assert(!pl_template_has("file:///o/{name}.{ext}", "variant"));
	ck_assert(!pl_template_has("file:///o/variant/{name}", "variant"));
	ck_assert(!pl_template_has(t, "nam"));
	ck_assert(!pl_template_has(t, "a-placeholder-name-far-too-long-to-exist"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("template");
	TCase *tc = tcase_create("template");

	tcase_add_test(tc, expansion);
	tcase_add_test(tc, percent_encoding_for_urls);
	tcase_add_test(tc, file_values_plain);
	tcase_add_test(tc, escaping_values_rejected);
	tcase_add_test(tc, bad_templates);
	tcase_add_test(tc, host_and_bucket_are_literal);
	tcase_add_test(tc, overflow);
	tcase_add_test(tc, has_placeholder);
	suite_add_tcase(s, tc);
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

/*
 * test_sysdirs.c — the look-ups of the directories systemd passes in the
 * environment: the first of a colon list, only absolute values, names too
 * long for the buffer, -c relative to $CONFIGURATION_DIRECTORY, and which
 * credential names resolve.  (test_config covers how the settings use
 * them.)  Each test runs in its own forked process, so setenv stays local.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sysdirs.h"

START_TEST(env_first_of_list)
{
	char buf[64];

	setenv("STATE_DIRECTORY", "/var/lib/pl:/var/lib/other", 1);
	ck_assert_int_eq(pl_sysdirs_env("STATE_DIRECTORY", buf, sizeof buf), 0);
	ck_assert_str_eq(buf, "/var/lib/pl");
	/* exactly fits, then one byte short */
	ck_assert_int_eq(pl_sysdirs_env("STATE_DIRECTORY", buf, 12), 0);
	ck_assert_int_eq(pl_sysdirs_env("STATE_DIRECTORY", buf, 11), -ENAMETOOLONG);
}
END_TEST

START_TEST(env_only_absolute)
{
	char buf[64];

	unsetenv("RUNTIME_DIRECTORY");
	ck_assert_int_eq(pl_sysdirs_env("RUNTIME_DIRECTORY", buf, sizeof buf), -ENOENT);
	setenv("RUNTIME_DIRECTORY", "relative/dir", 1);
	ck_assert_int_eq(pl_sysdirs_env("RUNTIME_DIRECTORY", buf, sizeof buf), -ENOENT);
	setenv("RUNTIME_DIRECTORY", "", 1);
	ck_assert_int_eq(pl_sysdirs_env("RUNTIME_DIRECTORY", buf, sizeof buf), -ENOENT);
}
END_TEST

START_TEST(config_file)
{
	char buf[64];
	const char *f;

	unsetenv("CONFIGURATION_DIRECTORY");
	ck_assert_int_eq(pl_sysdirs_config_file("pipeline.conf", buf, sizeof buf, &f), 0);
	ck_assert_str_eq(f, "pipeline.conf");
	setenv("CONFIGURATION_DIRECTORY", "/etc/pipelined:/etc/x", 1);
	ck_assert_int_eq(pl_sysdirs_config_file("pipeline.conf", buf, sizeof buf, &f), 0);
	ck_assert_str_eq(f, "/etc/pipelined/pipeline.conf");
	ck_assert_int_eq(pl_sysdirs_config_file("/abs.conf", buf, sizeof buf, &f), 0);
	ck_assert_str_eq(f, "/abs.conf");
	ck_assert_int_eq(pl_sysdirs_config_file("pipeline.conf", buf, 20, &f), -ENAMETOOLONG);
}
END_TEST

START_TEST(credential_names)
{
	char buf[64];

	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert_int_eq(pl_sysdirs_credential("s3.cred", buf, sizeof buf), -ENOENT);
	setenv("CREDENTIALS_DIRECTORY", "/run/credentials/p.service", 1);
	ck_assert_int_eq(pl_sysdirs_credential("s3.cred", buf, sizeof buf), 0);
	ck_assert_str_eq(buf, "/run/credentials/p.service/s3.cred");
	ck_assert_int_eq(pl_sysdirs_credential("..", buf, sizeof buf), -EINVAL);
	ck_assert_int_eq(pl_sysdirs_credential(".", buf, sizeof buf), -EINVAL);
	ck_assert_int_eq(pl_sysdirs_credential("../s3.cred", buf, sizeof buf), -EINVAL);
	ck_assert_int_eq(pl_sysdirs_credential("a/b", buf, sizeof buf), -EINVAL);
	ck_assert_int_eq(pl_sysdirs_credential("", buf, sizeof buf), -EINVAL);
	ck_assert_int_eq(pl_sysdirs_credential("s3.cred", buf, 30), -ENAMETOOLONG);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sysdirs");
	TCase *tc = tcase_create("sysdirs");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, env_first_of_list);
	tcase_add_test(tc, env_only_absolute);
	tcase_add_test(tc, config_file);
	tcase_add_test(tc, credential_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

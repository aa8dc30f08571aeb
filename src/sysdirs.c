/*
 * sysdirs.c — see sysdirs.h.
 *
 * systemd hands a service its directories in the environment
 * ($RUNTIME_DIRECTORY, $STATE_DIRECTORY, $CONFIGURATION_DIRECTORY,
 * $CREDENTIALS_DIRECTORY; systemd.exec(5)), each possibly a colon-separated
 * list when the unit names several: the first is the daemon's.  Following
 * them makes a user unit (systemctl --user), where /run/pipelined is not
 * writable, work without a single path in the file.  Only an absolute
 * value counts: anything else was not set by systemd.
 *
 * Kept apart from config.c, which says what each setting means and which
 * of a setting, the environment and a built-in default wins (pipeline.conf(5),
 * "Top level"): these are only the look-ups, the same for every setting
 * that uses them, and testable without a configuration file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sysdirs.h"

int pl_sysdirs_env(const char *var, char *buf, size_t size)
{
	const char *v = getenv(var);
	size_t n;

	if (!v || v[0] != '/')
		return -ENOENT;
	n = strcspn(v, ":");
	if (n >= size)
		return -ENAMETOOLONG;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return 0;
}

/* Under systemd the working directory is / anyway, so a relative -c can
 * only have meant the configuration directory. */
int pl_sysdirs_config_file(const char *path, char *buf, size_t size, const char **file)
{
	size_t n;

	*file = path;
	if (path[0] == '/' || pl_sysdirs_env("CONFIGURATION_DIRECTORY", buf, size) < 0)
		return 0;
	n = strlen(buf);
	if (snprintf(buf + n, size - n, "/%s", path) >= (int)(size - n))
		return -ENAMETOOLONG;
	*file = buf;
	return 0;
}

/*
 * A credential the unit passes in with LoadCredential=/LoadCredentialEncrypted=
 * is a file named after it in $CREDENTIALS_DIRECTORY.  Resolved at load, so
 * that every user of the setting opens one absolute path and -t names a
 * missing directory.
 */
int pl_sysdirs_credential(const char *v, char *buf, size_t size)
{
	size_t n;

	if (!*v || strchr(v, '/') || strcmp(v, "..") == 0 || strcmp(v, ".") == 0)
		return -EINVAL;
	if (pl_sysdirs_env("CREDENTIALS_DIRECTORY", buf, size) < 0)
		return -ENOENT;
	n = strlen(buf);
	if (snprintf(buf + n, size - n, "/%s", v) >= (int)(size - n))
		return -ENAMETOOLONG;
	return 0;
}

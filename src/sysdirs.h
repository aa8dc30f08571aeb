/*
 * sysdirs.h — the directories systemd hands a service in its environment
 * (systemd.exec(5)): where the configuration, state, runtime files and
 * credentials are.  Pure look-ups; config.c decides what they are used for.
 */
#ifndef PL_SYSDIRS_H
#define PL_SYSDIRS_H

#include <stddef.h>

/* The first directory of the environment variable var that systemd sets
 * (RUNTIME_DIRECTORY, STATE_DIRECTORY, …) into buf: 0, -ENOENT when unset
 * or not absolute, -ENAMETOOLONG. */
int pl_sysdirs_env(const char *var, char *buf, size_t size);

/* The file that -c path names: a relative path is in
 * $CONFIGURATION_DIRECTORY when that is set, else path as given.  0 with
 * *file set (to path or to buf), or -ENAMETOOLONG. */
int pl_sysdirs_config_file(const char *path, char *buf, size_t size, const char **file);

/* The file of the credential named v (what a credential setting holds when
 * it is not an absolute path) in $CREDENTIALS_DIRECTORY, into buf.  0;
 * -EINVAL when v is not a bare name (empty, a slash in it, "." or "..");
 * -ENOENT when $CREDENTIALS_DIRECTORY is not usable; -ENAMETOOLONG. */
int pl_sysdirs_credential(const char *v, char *buf, size_t size);

#endif

/*
 * config_int.h — private to the files of the configuration module
 * (config.c and its conf*.c parts); nothing outside src/conf*.c includes it.
 * config.c was one file of more than a thousand lines; split by concern, its
 * parts share what a reader of a setting needs: the load's context, the
 * reporting of a mistake at its FILE:LINE, and the typed getters, so that
 * every part reports the same way and checks a type once.
 */
#ifndef PL_CONFIG_INT_H
#define PL_CONFIG_INT_H

#include <stdbool.h>

#include <libconfig.h>

#include "cfgfile.h"
#include "config.h"

#define KEY_MAX 160

/* One load: where its mistakes go, how many there were, what it fills. */
struct ctx {
	struct pl_cfgfile *f;
	pl_config_report_fn *report;
	void *ud;
	unsigned errors;
	bool oom;
	bool protocols_bad;		/* already reported: no follow-up errors */
	struct pl_config *cfg;		/* being loaded */
};

struct choice {
	const char *name;
	int value;
};

/* confget.c: reporting (each counts an error) and the typed getters, which
 * report what is wrong with s and return false or NULL. */
void pl_config_emit(void *ud, const char *msg);
void pl_config_report(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *pl_config_key(char *buf, const char *pfx, const char *name);
void pl_config_set_str(struct ctx *c, char **dst, const char *v);
bool pl_config_get_int(struct ctx *c, const config_setting_t *s, const char *k,
		       long long lo, long long hi, long long *out);
bool pl_config_get_time(struct ctx *c, const config_setting_t *s, const char *k,
			bool open, double lo, double hi, double *out);
const char *pl_config_get_str(struct ctx *c, const config_setting_t *s, const char *k);
const char *pl_config_get_path(struct ctx *c, const config_setting_t *s, const char *k,
			       bool empty_ok);
bool pl_config_get_choice(struct ctx *c, const config_setting_t *s, const char *k,
			  const struct choice *ch, int *out);

#endif

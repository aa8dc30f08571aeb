/*
 * confget.c — how the configuration's readers report a mistake and read a
 * value of a given type (see config_int.h).  Every setting, whichever part
 * of the module reads it, goes through these, so a type is checked and a
 * mistake worded and located ("FILE:LINE: key: what is wrong") the same way
 * everywhere, and counted, so that a load with any mistake fails whole.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "log.h"

#define MSG_MAX 1024

/* ---- reporting ---------------------------------------------------------- */

/* Also how pl_cfgfile reports (ud is the ctx). */
void pl_config_emit(void *ud, const char *msg)
{
	struct ctx *c = ud;

	if (c->report)
		c->report(c->ud, msg);
	else
		pl_log(LOG_ERR, "%s", msg);
}

void pl_config_report(struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
	char where[PATH_MAX + 16], text[MSG_MAX], msg[sizeof where + sizeof text + 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	pl_cfgfile_where(c->f, s, where, sizeof where);
	snprintf(msg, sizeof msg, "%s: %s", where, text);
	c->errors++;
	pl_config_emit(c, msg);
}

const char *pl_config_key(char *buf, const char *pfx, const char *name)
{
	snprintf(buf, KEY_MAX, "%s%s%s", pfx, *pfx ? "." : "", name);
	return buf;
}

void pl_config_set_str(struct ctx *c, char **dst, const char *v)
{
	char *s = strdup(v);

	if (!s) {
		c->oom = true;
		return;
	}
	free(*dst);
	*dst = s;
}

/* ---- typed getters ------------------------------------------------------ */

/* The number s holds: 1, an integer in *i (int64 literals too; a plain
 * literal libconfig cut to 32 bits is reported), or 2, a float in *f where
 * f is given; 0 when it is neither (reported: expected what) or was cut. */
static int number(struct ctx *c, const config_setting_t *s, const char *k, const char *what,
		  long long *i, double *f)
{
	char lit[64];

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		if (!pl_cfgfile_int_fits(s, lit, sizeof lit)) {
			pl_config_report(c, s, "%s: %s does not fit a plain integer: write it as %sL",
					 k, lit, lit);
			return 0;
		}
		/* fall through */
	case CONFIG_TYPE_INT64:
		*i = config_setting_get_int64(s);
		return 1;
	case CONFIG_TYPE_FLOAT:
		if (f) {
			*f = config_setting_get_float(s);
			return 2;
		}
		break;
	default:
		break;
	}
	pl_config_report(c, s, "%s: expected %s", k, what);
	return 0;
}

/* An integer in lo..hi; int64 literals too, never floats. */
bool pl_config_get_int(struct ctx *c, const config_setting_t *s, const char *k,
		       long long lo, long long hi, long long *out)
{
	long long v;

	if (!number(c, s, k, "an integer", &v, NULL))
		return false;
	if (v < lo || v > hi) {
		pl_config_report(c, s, "%s: %lld is out of range %lld..%lld", k, v, lo, hi);
		return false;
	}
	*out = v;
	return true;
}

/* Seconds, integer or float, in lo..hi (lo itself excluded when open). */
bool pl_config_get_time(struct ctx *c, const config_setting_t *s, const char *k,
			bool open, double lo, double hi, double *out)
{
	int kind;
	long long i;
	double v;

	if (!(kind = number(c, s, k, "a number of seconds", &i, &v)))
		return false;
	if (kind == 1)
		v = (double)i;
	if (!(open ? v > lo : v >= lo) || !(v <= hi)) {
		pl_config_report(c, s, "%s: %g is out of range %s%g..%g", k, v, open ? ">" : "", lo, hi);
		return false;
	}
	*out = v;
	return true;
}

const char *pl_config_get_str(struct ctx *c, const config_setting_t *s, const char *k)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		pl_config_report(c, s, "%s: expected a string", k);
		return NULL;
	}
	return config_setting_get_string(s);
}

const char *pl_config_get_path(struct ctx *c, const config_setting_t *s, const char *k,
			       bool empty_ok)
{
	const char *v = pl_config_get_str(c, s, k);

	if (v && !(empty_ok && !*v) && v[0] != '/') {
		pl_config_report(c, s, "%s: \"%s\" is not an absolute path", k, v);
		return NULL;
	}
	return v;
}

/* A string that invalid() accepts, into *dst.  invalid() says what is wrong
 * with a value ("is not …"), which follows the value quoted; or NULL. */
void pl_config_read_checked(struct ctx *c, const config_setting_t *s, const char *k, char **dst,
			    const char *(*invalid)(const char *v))
{
	const char *v = pl_config_get_str(c, s, k), *bad;

	if (!v)
		return;
	if ((bad = invalid(v))) {
		pl_config_report(c, s, "%s: \"%s\" %s", k, v, bad);
		return;
	}
	pl_config_set_str(c, dst, v);
}

/* One of the names in ch (ended by a NULL name).  The message lists each
 * value by its first name: later names of a value are aliases ("center"). */
bool pl_config_get_choice(struct ctx *c, const config_setting_t *s, const char *k,
			  const struct choice *ch, int *out)
{
	const char *v = pl_config_get_str(c, s, k);
	char listed[256] = "";
	size_t n = 0;

	if (!v)
		return false;
	for (const struct choice *x = ch; x->name; x++)
		if (strcmp(v, x->name) == 0) {
			*out = x->value;
			return true;
		}
	for (const struct choice *x = ch; x->name && n < sizeof listed; x++) {
		const struct choice *first = ch;

		while (first->value != x->value)
			first++;
		if (first == x)
			n += (size_t)snprintf(listed + n, sizeof listed - n, "%s%s",
					      n ? ", " : "", x->name);
	}
	pl_config_report(c, s, "%s: \"%s\" is not one of %s", k, v, listed);
	return false;
}

/*
 * confservices.c — the groups that turn a service on by being there:
 * stream (the NATS JetStream intake, stream.c) and metrics (the Prometheus
 * endpoint, metrics.c).  Their readers check what those services will hand
 * to the network (subject tokens, server URLs, a listen address) and their
 * group rules fill in what a present group leaves out (the node name, the
 * loopback address).
 *
 * How it fits: the rows of settings[] in config.c name these readers and
 * rules; this file says what a valid value of each is.  Apart from config.c
 * because these rules follow NATS and the endpoint's socket, not the
 * settings table, and change with them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "metrics.h"

/* ---- the stream group --------------------------------------------------- */

/* A name that can stand in a NATS subject as one token and as a durable
 * consumer name: 1 to 64 of A-Z a-z 0-9 _ -. */
static bool token_ok(const char *v)
{
	size_t n = strlen(v);

	return n >= 1 && n <= 64 &&
	       strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static const char *token_invalid(const char *v)
{
	return token_ok(v) ? NULL : "is not 1 to 64 of A-Z a-z 0-9 _ -";
}

void pl_config_token(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	pl_config_read_checked(c, s, k, dst, token_invalid);
}

/* Tokens joined by '.': no wildcard, no empty token. */
static const char *subject_invalid(const char *v)
{
	char tok[KEY_MAX];
	bool ok = *v && strlen(v) < 128;

	for (const char *p = v; ok && *p; p += *p == '.') {
		size_t n = strcspn(p, ".");

		ok = n > 0 && n < sizeof tok && (memcpy(tok, p, n), tok[n] = '\0', token_ok(tok));
		p += n;
		ok = ok && !(p[0] == '.' && p[1] == '\0');
	}
	return ok ? NULL : "is not a subject prefix (tokens of A-Z a-z 0-9 _ - joined by '.')";
}

void pl_config_subject(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	pl_config_read_checked(c, s, k, dst, subject_invalid);
}

void pl_config_servers(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	struct pl_strlist *l = dst;
	int n = config_setting_length(s);
	char ek[KEY_MAX];

	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST) {
		pl_config_report(c, s, "%s: expected a list of URLs [ \"nats://host:port\", … ]", k);
		return;
	}
	if (n < 1 || n > 16) {
		pl_config_report(c, s, "%s: expected 1 to 16 URLs", k);
		return;
	}
	if (!(l->v = calloc((size_t)n, sizeof *l->v))) {
		c->oom = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v, *host;

		snprintf(ek, sizeof ek, "%s[%d]", k, i);
		if (!(v = pl_config_get_str(c, e, ek)))
			continue;
		host = strncmp(v, "nats://", 7) == 0 ? v + 7 : strncmp(v, "tls://", 6) == 0 ? v + 6 : NULL;
		if (!host || !*host || *host == '/' || *host == ':' || strpbrk(v, " \t\r\n")) {
			pl_config_report(c, e, "%s: \"%s\" is not a nats:// or tls:// URL", ek, v);
			continue;
		}
		if (!(l->v[l->n] = strdup(v))) {
			c->oom = true;
			return;
		}
		l->n++;
	}
}

void pl_config_free_list(struct pl_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

bool pl_config_lists_differ(const struct pl_strlist *a, const struct pl_strlist *b)
{
	if (a->n != b->n)
		return true;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return true;
	return false;
}

/* The group is there: the stream intake is on.  Without a node name the
 * host's name is used, made a valid token. */
void pl_config_stream_rules(struct ctx *c, const config_setting_t *g, const char *k)
{
	struct pl_stream_conf *st = &c->cfg->stream;
	const config_setting_t *cert = config_setting_get_member(g, "tls_cert");
	const config_setting_t *key = config_setting_get_member(g, "tls_key");
	char host[65] = "";

	st->enabled = true;
	if (!!cert != !!key)
		pl_config_report(c, cert ? cert : key, "%s.%s: needs %s.%s as well",
				 k, cert ? "tls_cert" : "tls_key", k, cert ? "tls_key" : "tls_cert");
	if (*st->node)
		return;
	if (gethostname(host, sizeof host - 1) < 0 || !*host)
		snprintf(host, sizeof host, "pipelined");
	for (char *p = host; *p; p++)
		if (!token_ok((char[]){ *p, '\0' }))
			*p = '-';
	pl_config_set_str(c, &st->node, host);
}

/* ---- the metrics group -------------------------------------------------- */

/* The rule the endpoint's socket follows (metrics.c). */
static const char *listen_invalid(const char *v)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (pl_metrics_parse_listen(v, &ss, &len) < 0)
		return "is not ADDRESS:PORT (an IPv4 address, or an IPv6 one in [ ], and a port "
		       "1..65535)";
	return NULL;
}

void pl_config_listen_address(struct ctx *c, const config_setting_t *s, const char *k, void *dst)
{
	pl_config_read_checked(c, s, k, dst, listen_invalid);
}

/* The group is there: the endpoint is on, on loopback unless it says. */
void pl_config_metrics_rules(struct ctx *c, const config_setting_t *g, const char *k)
{
	(void)g;
	(void)k;
	if (!*c->cfg->metrics.listen)
		pl_config_set_str(c, &c->cfg->metrics.listen, "127.0.0.1:9464");
}

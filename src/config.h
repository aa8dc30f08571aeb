/*
 * config.h — the daemon's settings, loaded from a libconfig file and
 * validated whole: every error is reported as "FILE:LINE: message", not just
 * the first.  A loaded struct pl_config is immutable; a reload loads a new
 * one and the daemon swaps what can change live (widths, log level).
 */
#ifndef PL_CONFIG_H
#define PL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum pl_fit    { PL_FIT_INSIDE, PL_FIT_COVER };
enum pl_crop   { PL_CROP_CENTRE, PL_CROP_ATTENTION };
enum pl_format { PL_FORMAT_JPEG, PL_FORMAT_WEBP, PL_FORMAT_PNG, PL_FORMAT_AVIF };

/* Protocol bits for download.protocols. */
#define PL_PROTO_HTTP  0x1u
#define PL_PROTO_HTTPS 0x2u
#define PL_PROTO_FILE  0x4u

#define PL_VARIANT_NAME_MAX 64

struct pl_variant {
	char name[PL_VARIANT_NAME_MAX];	/* letters, digits, ._- */
	int width, height;		/* pixels, 1..16384 */
	enum pl_fit fit;
	enum pl_crop crop;		/* for cover */
	enum pl_format format;
	int quality;			/* 1..100; ignored by png */
};

struct pl_stage_conf {
	unsigned workers;		/* resolved: "auto" becomes the online CPU count,
					   "adaptive" the starting width */
	bool workers_auto;
	bool workers_adaptive;		/* "adaptive": adapt.c sizes it, workers..workers_max */
	unsigned workers_max;		/* download and upload: adaptive's ceiling */
	unsigned queue;			/* input queue capacity, 1..65536 */
};

/* A list of strings (stream.servers). */
struct pl_strlist {
	char **v;
	size_t n;
};

/* The stream group: many daemons on one NATS JetStream stream (stream.h). */
struct pl_stream_conf {
	bool enabled;			/* the group is in the file */
	struct pl_strlist servers;	/* nats:// or tls:// URLs */
	char *node;			/* this daemon's name: results come to it */
	char *stream;			/* JetStream stream name */
	char *subject;			/* subject prefix: SUBJECT.items, … */
	char *consumer;			/* durable name of the shared consumer */
	double ack_wait;		/* seconds */
	int max_deliver;
	int max_ack_pending;		/* items out at once, all daemons together */
	int replicas;
	char *credentials;		/* .creds file, "" = none */
	char *tls_ca, *tls_cert, *tls_key;	/* "" = none */
};

struct pl_config {
	char *path;			/* the file it came from */
	char *spool;			/* spool directory */
	char *runtime;			/* where status.json goes */
	int log_level;			/* LOG_ERR .. LOG_DEBUG (syslog.h) */

	struct {
		struct pl_stage_conf stage;
		double connect_timeout;	/* seconds */
		double timeout;		/* whole transfer, seconds */
		long low_speed_limit;	/* bytes/s ... */
		double low_speed_time;	/* ... below which for this long aborts */
		long max_bytes;
		int retries;
		double backoff;		/* first retry delay, seconds */
		int per_host;
		unsigned protocols;	/* PL_PROTO_* */
		char *file_root;	/* "" = none */
		bool allow_private;
	} download;

	struct {
		struct pl_stage_conf stage;
		long max_pixels;
		struct pl_variant *variants;
		size_t nvariants;
	} resize;

	struct {
		struct pl_stage_conf stage;
		char *url;		/* template: file://, http(s)://, s3:// */
		int retries;
		double backoff;
		double connect_timeout;
		double timeout;
		struct {
			char *endpoint;	/* "" unless url is s3:// */
			char *region;
			char *credentials;	/* path of the credentials file */
		} s3;
	} upload;

	struct pl_stream_conf stream;

	/* The metrics group: a Prometheus endpoint (metrics.h). */
	struct {
		char *listen;		/* "ADDRESS:PORT"; "" = no group, no endpoint */
		int connections;	/* clients at once */
		double timeout;		/* seconds a client has for a request */
	} metrics;
};

/* Called once per error with a complete "FILE:LINE: message" line. */
typedef void pl_config_report_fn(void *ud, const char *msg);

/* 0 and *out set, or -EINVAL after reporting every error (or another -errno
 * when the file cannot be read, also reported).  Warnings about a valid file
 * (an upload.url without {job}) are logged with pl_log, not reported. */
int  pl_config_load(const char *path, pl_config_report_fn *report, void *ud,
		    struct pl_config **out);
void pl_config_free(struct pl_config *cfg);

/* Do a and b differ in anything a reload cannot apply live (everything but
 * the stage widths and log_level)? */
bool pl_config_restart_differs(const struct pl_config *a, const struct pl_config *b);

/*
 * The rules of single values, for a struct pl_config that pl_config_load
 * did not make (the stages check what they are handed; tests and benches
 * fill one by hand).  pl_config_load applies the same rules, so whatever it
 * loaded passes them.  The two _invalid return NULL for a valid value, else
 * what to say after it ("is not a region name (…)"); NULL is invalid.
 */
const char *pl_config_s3_endpoint_invalid(const char *v);
const char *pl_config_s3_region_invalid(const char *v);
/* 0, or -EINVAL and why: "variant \"thumb\": width 0 is out of range
 * 1..16384". */
int pl_config_variant_check(const struct pl_variant *v, char *why, size_t whylen);

const char *pl_config_format_ext(enum pl_format f);	/* "jpg", "webp", … */
const char *pl_config_format_mime(enum pl_format f);	/* "image/jpeg", … */

#endif

/*
 * metrics.c — the Prometheus endpoint (see metrics.h): GET /metrics, the
 * text exposition format 0.0.4, for a dashboard.
 *
 * How it fits and why it is built this way:
 *  - HTTP is libmicrohttpd's (Debian's libmicrohttpd 0.9.75): a kept
 *    library parses requests, so no HTTP parser lives here, and it bounds
 *    what a client may cost: a connection limit, an inactivity timeout and
 *    a per-connection memory pool (a 1 MB request line is answered 414 and
 *    closed, never buffered).  It runs one thread of its own (epoll), which
 *    is the only thread that renders and answers.  sd-event with a socket
 *    from socket activation would have kept one event loop, but it would
 *    have meant parsing HTTP by hand.
 *  - Scrapes never touch what workers touch.  The daemon's one-second
 *    status tick already reads the stages' counters for STATUS= and hands
 *    that snapshot here (pl_metrics_publish): a copy under a mutex that
 *    only the HTTP thread shares.  Reading the counters in the handler
 *    instead would be fresher, but pl_pool_stats takes the pool's lock and
 *    the queue's for a moment, and scrapes come as often as a client likes:
 *    a client hammering /metrics would contend with the workers.  This way
 *    workers see one read a second however many scrapes there are; a
 *    scrape is at most a second old, less than any scrape interval.
 *  - The spool's backlog (jobs and items in new/) means reading every
 *    waiting job, too slow for the main loop: the HTTP thread counts it
 *    itself, when a scrape finds the last count older than BACKLOG_AGE, so
 *    nothing is read when nobody scrapes and a flood of scrapes reads the
 *    spool at most once per BACKLOG_AGE.
 *  - libmicrohttpd's timeout is one of inactivity: a client that sends a
 *    byte a second is never idle and would keep its connection forever, so
 *    with `connections` of them nobody could scrape.  So each connection
 *    also has a deadline: the tick shuts down (shutdown(2); libmicrohttpd
 *    then closes it as a client gone) every connection that has not
 *    finished a request within `timeout` seconds of opening or of its last
 *    request.  Its slot is cleared under the same mutex before
 *    libmicrohttpd closes the socket, so the tick never touches a reused
 *    descriptor.
 *  - The listening socket is made here, so that a port in use is reported
 *    with its reason (libmicrohttpd only says it failed).
 *  - Every client holds a descriptor of the daemon's, from the same
 *    open-file limit as the workers' sockets and the spool's files: a
 *    flood up to that limit (systemd's default is 1,024, the most
 *    `connections` may say) would leave the daemon unable to claim a job.
 *    So clients get at most a quarter of the limit, whatever the setting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <vips/vips.h>

#include "item.h"
#include "log.h"
#include "metrics.h"

#define BACKLOG_AGE_US (5ULL * 1000000ULL)
/* A scrape request is a few hundred bytes; what does not fit is refused. */
#define CONN_MEMORY (16 * 1024)
#define LISTEN_BACKLOG 64
#define FD_SHARE 4	/* clients get 1/FD_SHARE of the open-file limit */
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct slot {
	int fd;			/* -1: free */
	uint64_t since_us;	/* opened, or finished its last request */
	bool cut;		/* already shut down */
};

struct pl_metrics {
	struct MHD_Daemon *mhd;
	struct MHD_Response *not_found, *not_allowed;
	uint64_t timeout_us;
	pl_metrics_backlog_fn *backlog;
	void *backlog_ud;

	pthread_mutex_t lock;	/* the tick and the HTTP thread: */
	struct pl_metrics_sample sample;
	bool published;
	struct slot *slots;
	unsigned nslots;

	/* the HTTP thread's alone */
	uint64_t backlog_at_us;
	bool has_backlog;
	unsigned long backlog_jobs, backlog_items;
	char libvips[32], libcurl[32];
};

/* ---- the exposition ----------------------------------------------------- */

static void family(struct pl_strbuf *b, const char *name, const char *type, const char *help)
{
	pl_strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: '\', '"' and a newline escaped, as the format asks. */
static void label(struct pl_strbuf *b, const char *v)
{
	for (v = v ? v : ""; *v; v++) {
		if (*v == '\\' || *v == '"')
			pl_strbuf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			pl_strbuf_str(b, "\\n");
		else
			pl_strbuf_put(b, v, 1);
	}
}

static void value(struct pl_strbuf *b, const char *name, const char *stage,
		  const char *outcome, unsigned long long v)
{
	pl_strbuf_str(b, name);
	if (stage || outcome) {
		pl_strbuf_str(b, "{");
		if (stage) {
			pl_strbuf_str(b, "stage=\"");
			label(b, stage);
			pl_strbuf_str(b, outcome ? "\"," : "\"");
		}
		if (outcome)
			pl_strbuf_printf(b, "outcome=\"%s\"", outcome);
		pl_strbuf_str(b, "}");
	}
	pl_strbuf_printf(b, " %llu\n", v);
}

/* A family of one series without labels. */
static void scalar(struct pl_strbuf *b, const char *name, const char *type, const char *help,
		   unsigned long long v)
{
	family(b, name, type, help);
	value(b, name, NULL, NULL, v);
}

/* One gauge or counter per stage, its field of the stage's stats. */
#define PER_STAGE(b, s, name, type, help, field)				\
	do {									\
		family(b, name, type, help);					\
		for (size_t i_ = 0; i_ < (s)->nstages; i_++)			\
			value(b, name, (s)->names[i_], NULL,			\
			      (unsigned long long)(s)->st[i_].field);		\
	} while (0)

static void histograms(struct pl_strbuf *b, const struct pl_status *s)
{
	const char *name = "pipelined_stage_duration_seconds";

	family(b, name, "histogram", "Time a stage took over one attempt at one item.");
	for (size_t i = 0; i < s->nstages; i++) {
		const struct pl_stage_stats *t = &s->st[i];
		unsigned long long n = 0;

		for (size_t j = 0; j < PL_POOL_HIST_N; j++) {
			n += t->hist[j];
			pl_strbuf_printf(b, "%s_bucket{stage=\"", name);
			label(b, s->names[i]);
			pl_strbuf_printf(b, "\",le=\"%g\"} %llu\n",
					 pl_pool_hist_bounds_us[j] / 1e6, n);
		}
		n += t->hist[PL_POOL_HIST_N];
		pl_strbuf_printf(b, "%s_bucket{stage=\"", name);
		label(b, s->names[i]);
		pl_strbuf_printf(b, "\",le=\"+Inf\"} %llu\n%s_sum{stage=\"", n, name);
		label(b, s->names[i]);
		pl_strbuf_printf(b, "\"} %.6f\n%s_count{stage=\"", t->hist_sum_us / 1e6, name);
		label(b, s->names[i]);
		pl_strbuf_printf(b, "\"} %llu\n", n);
	}
}

static void stream(struct pl_strbuf *b, const struct pl_status *s)
{
	const struct pl_stream_stats *t = &s->stream;

	scalar(b, "pipelined_stream_connected", "gauge",
	       "1 while connected to a NATS server, else 0.", t->connected);
	scalar(b, "pipelined_stream_items_pulled_total", "counter",
	       "Items this daemon pulled from the stream to run.", t->pulled);
	scalar(b, "pipelined_stream_items_in_flight", "gauge",
	       "Items pulled and not yet acknowledged.", t->in_flight);
	scalar(b, "pipelined_stream_items_acked_total", "counter",
	       "Items acknowledged after their result was stored.", t->acked);
	scalar(b, "pipelined_stream_items_redelivered_total", "counter",
	       "Items pulled that the stream had delivered before.", t->redelivered);
	scalar(b, "pipelined_stream_items_dead_lettered_total", "counter",
	       "Items this daemon moved to the dead-letter subject.", t->dead);
	scalar(b, "pipelined_stream_items_published_total", "counter",
	       "Items of this daemon's jobs published to the stream.", t->published);
	family(b, "pipelined_stream_results_total", "counter",
	       "Results of this daemon's jobs that came back, by outcome.");
	value(b, "pipelined_stream_results_total", NULL, "ok", s->remote_ok);
	value(b, "pipelined_stream_results_total", NULL, "failed", s->remote_failed);
	value(b, "pipelined_stream_results_total", NULL, "rejected", t->rejected);
}

void pl_metrics_render(const struct pl_metrics_sample *m, struct pl_strbuf *b)
{
	const struct pl_status *s = &m->status;

	family(b, "pipelined_build_info", "gauge",
	       "Always 1; the labels say the version and the libraries' versions.");
	pl_strbuf_str(b, "pipelined_build_info{version=\"");
	label(b, m->version);
	pl_strbuf_str(b, "\",libvips=\"");
	label(b, m->libvips);
	pl_strbuf_str(b, "\",libcurl=\"");
	label(b, m->libcurl);
	pl_strbuf_str(b, "\"} 1\n");
	family(b, "pipelined_start_time_seconds", "gauge",
	       "When the daemon started, in seconds since the Unix epoch.");
	pl_strbuf_printf(b, "pipelined_start_time_seconds %.3f\n", m->start_time);

	family(b, "pipelined_items_total", "counter",
	       "Items through the whole pipeline, by outcome (their result records).");
	value(b, "pipelined_items_total", NULL, "ok", s->done);
	value(b, "pipelined_items_total", NULL, "failed", s->failed);
	family(b, "pipelined_stage_items_total", "counter",
	       "Items a stage passed on (ok) or failed.");
	for (size_t i = 0; i < s->nstages; i++) {
		value(b, "pipelined_stage_items_total", s->names[i], "ok", s->st[i].done);
		value(b, "pipelined_stage_items_total", s->names[i], "failed", s->st[i].failed);
	}
	PER_STAGE(b, s, "pipelined_stage_retries_total", "counter",
		  "Attempts of a stage that ended in a retry later.", retried);
	scalar(b, "pipelined_downloaded_bytes_total", "counter",
	       "Bytes of sources fetched, each source once.", m->bytes_downloaded);
	scalar(b, "pipelined_uploaded_bytes_total", "counter",
	       "Bytes of outputs stored, each output once.", m->bytes_uploaded);

	PER_STAGE(b, s, "pipelined_stage_queue_items", "gauge",
		  "Items waiting in a stage's input queue.", queued);
	PER_STAGE(b, s, "pipelined_stage_delayed_items", "gauge",
		  "Items waiting for a retry in a stage.", delayed);
	PER_STAGE(b, s, "pipelined_stage_workers", "gauge",
		  "Workers a stage is set to have (its width).", width);
	PER_STAGE(b, s, "pipelined_stage_workers_busy", "gauge",
		  "Workers of a stage busy with an item.", busy);
	histograms(b, s);

	family(b, "pipelined_jobs_total", "counter",
	       "Jobs finished, by outcome: moved to done/ or to failed/.");
	value(b, "pipelined_jobs_total", NULL, "done", m->jobs_done);
	value(b, "pipelined_jobs_total", NULL, "failed", m->jobs_failed);
	scalar(b, "pipelined_tmp_files_removed_total", "counter",
	       "Files of tmp/ removed as abandoned, untouched for 36 hours.", m->tmp_removed);
	if (m->has_backlog) {
		scalar(b, "pipelined_spool_jobs_waiting", "gauge",
		       "Jobs waiting in new/.", m->backlog_jobs);
		scalar(b, "pipelined_spool_items_waiting", "gauge",
		       "Items of the jobs in new/ not yet recorded.", m->backlog_items);
	}
	if (s->has_stream)
		stream(b, s);
}

/* ---- the address -------------------------------------------------------- */

int pl_metrics_parse_listen(const char *v, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h = v;
	size_t hn;
	char *end;
	long port;

	memset(ss, 0, sizeof *ss);
	if (!v || !(colon = strrchr(v, ':')))
		return -EINVAL;
	hn = (size_t)(colon - v);
	if (*v == '[') {	/* [v6]:port */
		if (hn < 2 || v[hn - 1] != ']')
			return -EINVAL;
		h = v + 1;
		hn -= 2;
	}
	if (hn == 0 || hn >= sizeof host || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	memcpy(host, h, hn);
	host[hn] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535)
		return -EINVAL;
	if (*v != '[') {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof *a;
	}
	return 0;
}

/* ---- the server --------------------------------------------------------- */

static struct slot *slot_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
			  enum MHD_ConnectionNotificationCode what)
{
	struct pl_metrics *m = cls;
	struct slot *s = *ctx;

	pthread_mutex_lock(&m->lock);
	if (what == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		/* the limit keeps them within the slots; one that is not in
		 * a slot still has libmicrohttpd's inactivity timeout */
		for (unsigned i = 0; ci && i < m->nslots && !*ctx; i++)
			if (m->slots[i].fd < 0) {
				m->slots[i] = (struct slot){ .fd = ci->connect_fd,
							     .since_us = pl_now_us() };
				*ctx = &m->slots[i];
			}
	} else if (s) {
		s->fd = -1;
		*ctx = NULL;
	}
	pthread_mutex_unlock(&m->lock);
}

/* A request finished: the connection's deadline starts again. */
static void on_completed(void *cls, struct MHD_Connection *c, void **req,
			 enum MHD_RequestTerminationCode why)
{
	struct pl_metrics *m = cls;
	struct slot *s = slot_of(c);

	(void)req;
	(void)why;
	if (!s)
		return;
	pthread_mutex_lock(&m->lock);
	if (s->fd >= 0)
		s->since_us = pl_now_us();
	pthread_mutex_unlock(&m->lock);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	pl_log(LOG_DEBUG, "metrics: %s", msg);
}

/* The copy last published, with the spool's backlog; false before the
 * first tick. */
static bool take_sample(struct pl_metrics *m, struct pl_metrics_sample *out)
{
	uint64_t now = pl_now_us();
	bool ok;

	if (m->backlog && (!m->backlog_at_us || now - m->backlog_at_us >= BACKLOG_AGE_US)) {
		m->has_backlog = m->backlog(m->backlog_ud, &m->backlog_jobs,
					    &m->backlog_items) == 0;
		m->backlog_at_us = pl_now_us();
	}
	pthread_mutex_lock(&m->lock);
	ok = m->published;
	*out = m->sample;
	pthread_mutex_unlock(&m->lock);
	out->has_backlog = m->has_backlog;
	out->backlog_jobs = m->backlog_jobs;
	out->backlog_items = m->backlog_items;
	out->version = PL_VERSION;
	out->libvips = m->libvips;
	out->libcurl = m->libcurl;
	return ok;
}

static enum MHD_Result reply_metrics(struct pl_metrics *m, struct MHD_Connection *c)
{
	struct pl_metrics_sample s;
	struct pl_strbuf b = { 0 };
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t len;
	char *text;

	if (!take_sample(m, &s))
		pl_strbuf_str(&b, "# no sample yet: the daemon is starting\n");
	else
		pl_metrics_render(&s, &b);
	len = b.len;
	if (!(text = pl_strbuf_take(&b)))
		return MHD_NO;	/* out of memory: the connection is closed */
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE) != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;
	}
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);	/* the queue holds its own reference */
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **req)
{
	static int seen;	/* marks a request whose headers were looked at */
	struct pl_metrics *m = cls;

	(void)version;
	(void)upload;
	if (strcmp(url, "/metrics") != 0)
		return MHD_queue_response(c, MHD_HTTP_NOT_FOUND, m->not_found);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, m->not_allowed);
	/* the first call only says the headers are in; a body to a GET is
	 * read and dropped */
	if (!*req) {
		*req = &seen;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	return reply_metrics(m, c);
}

static struct MHD_Response *fixed(const char *text)
{
	return MHD_create_response_from_buffer(strlen(text), (void *)text,
					       MHD_RESPMEM_PERSISTENT);
}

static int listen_on(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, r;

	if ((r = pl_metrics_parse_listen(addr, &ss, &len)) < 0)
		return r;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

unsigned pl_metrics_connection_limit(unsigned connections)
{
	struct rlimit rl;
	rlim_t share;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return connections;
	share = rl.rlim_cur / FD_SHARE;
	return share < 1 ? 1 : share < connections ? (unsigned)share : connections;
}

int pl_metrics_start(const char *addr, unsigned connections, double timeout,
		     pl_metrics_backlog_fn *backlog, void *ud, struct pl_metrics **out)
{
	struct pl_metrics *m;
	unsigned limit;
	int fd, r;

	*out = NULL;
	if (connections < 1 || !(timeout > 0))
		return -EINVAL;
	if ((limit = pl_metrics_connection_limit(connections)) < connections) {
		pl_log(LOG_WARNING, "metrics: %u clients at once, not %u: a quarter of the "
		       "open-file limit (LimitNOFILE=) is all they may hold", limit, connections);
		connections = limit;
	}
	if (!(m = calloc(1, sizeof *m)) || !(m->slots = calloc(connections, sizeof *m->slots))) {
		free(m);
		return -ENOMEM;
	}
	m->nslots = connections;
	for (unsigned i = 0; i < connections; i++)
		m->slots[i].fd = -1;
	m->timeout_us = (uint64_t)(timeout * 1e6);
	m->backlog = backlog;
	m->backlog_ud = ud;
	snprintf(m->libvips, sizeof m->libvips, "%s", vips_version_string());
	snprintf(m->libcurl, sizeof m->libcurl, "%s", curl_version_info(CURLVERSION_NOW)->version);
	if ((r = pthread_mutex_init(&m->lock, NULL)) != 0) {
		free(m->slots);
		free(m);
		return -r;
	}
	m->not_found = fixed("not found: the metrics are at /metrics\n");
	m->not_allowed = fixed("only GET and HEAD\n");
	if (!m->not_found || !m->not_allowed ||
	    MHD_add_response_header(m->not_allowed, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES) {
		r = -ENOMEM;
		goto fail;
	}
	if ((fd = listen_on(addr)) < 0) {
		r = fd;
		pl_log_errno(LOG_ERR, -r, "metrics: cannot listen on %s: %s", addr, strerror(-r));
		goto fail;
	}
	m->mhd = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0,
				  NULL, NULL, on_request, m,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, connections,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ceil(timeout),
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
				  MHD_OPTION_NOTIFY_CONNECTION, on_connection, m,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, m,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, NULL,
				  MHD_OPTION_END);
	if (!m->mhd) {
		close(fd);
		r = -EIO;
		pl_log(LOG_ERR, "metrics: cannot start the HTTP server on %s", addr);
		goto fail;
	}
	pl_log(LOG_INFO, "metrics on http://%s/metrics", addr);
	*out = m;
	return 0;
fail:
	pl_metrics_stop(m);
	return r;
}

void pl_metrics_publish(struct pl_metrics *m, const struct pl_metrics_sample *s)
{
	struct timespec ts;
	uint64_t now;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	now = pl_now_us();	/* under the lock: no slot's time is later */
	if (!m->published && clock_gettime(CLOCK_REALTIME, &ts) == 0)
		m->sample.start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9 - s->status.uptime_s;
	{
		double start = m->sample.start_time;

		m->sample = *s;
		m->sample.start_time = start;
	}
	m->published = true;
	for (unsigned i = 0; i < m->nslots; i++) {
		struct slot *t = &m->slots[i];

		if (t->fd >= 0 && !t->cut && now - t->since_us > m->timeout_us) {
			shutdown(t->fd, SHUT_RDWR);
			t->cut = true;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

void pl_metrics_stop(struct pl_metrics *m)
{
	if (!m)
		return;
	if (m->mhd)
		MHD_stop_daemon(m->mhd);	/* joins its thread, closes the socket */
	if (m->not_found)
		MHD_destroy_response(m->not_found);
	if (m->not_allowed)
		MHD_destroy_response(m->not_allowed);
	pthread_mutex_destroy(&m->lock);
	free(m->slots);
	free(m);
}

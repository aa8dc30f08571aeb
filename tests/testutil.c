/*
 * testutil.c — see testutil.h.  nginx runs in the foreground as our child
 * ("daemon off") so that a crashed test cannot leave it behind; readiness is
 * awaited by connecting, never by sleeping a fixed time.  The scripted
 * server is one poll() thread: a test's peers are few, and one thread
 * keeps the order of answers exactly as scripted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "http.h"
#include "log.h"
#include "testutil.h"

char *pl_test_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/pltest-%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0)
		return NULL;
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

void pl_test_rmtree(const char *path)
{
	pid_t pid;

	if (!path)
		return;
	pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

int pl_test_run_python(const char *script, const char *arg, char *out, size_t outlen)
{
	int pfd[2], status;
	pid_t pid;
	size_t n = 0;
	ssize_t r;

	if (outlen == 0 || pipe(pfd) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl("/usr/bin/python3", "python3", "-c", script, arg, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while (n + 1 < outlen && (r = read(pfd[0], out + n, outlen - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int mkparents(const char *path)
{
	char buf[4096];

	snprintf(buf, sizeof buf, "%s", path);
	for (char *s = buf + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(buf, 0777) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

int pl_test_write_file(const char *path, const void *data, size_t len)
{
	int fd, r = mkparents(path);

	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len) {
		r = errno ? -errno : -EIO;
		close(fd);
		return r;
	}
	return close(fd) < 0 ? -errno : 0;
}

int pl_test_stderr_to(int fd)
{
	int saved;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	if (saved < 0)
		return -errno;
	if (dup2(fd, STDERR_FILENO) < 0) {
		int r = -errno;

		close(saved);
		return r;
	}
	unsetenv("JOURNAL_STREAM");
	pl_log_open();
	return saved;
}

void pl_test_stderr_restore(int saved)
{
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	pl_log_open();
}

char *pl_test_stderr_of(void (*fn)(void))
{
	char *dir = pl_test_tmpdir("stderr"), path[4096], *text = NULL;
	struct stat st;
	int fd = -1, saved;

	if (!dir)
		return NULL;
	snprintf(path, sizeof path, "%s/stderr", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (saved = pl_test_stderr_to(fd)) < 0)
		goto out;
	fn();
	pl_test_stderr_restore(saved);
	if (fstat(fd, &st) < 0 || !(text = calloc(1, (size_t)st.st_size + 1)))
		goto out;
	if (pread(fd, text, (size_t)st.st_size, 0) != st.st_size) {
		free(text);
		text = NULL;
	}
out:
	if (fd >= 0)
		close(fd);
	pl_test_rmtree(dir);
	free(dir);
	return text;
}

int pl_test_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int can_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

int pl_test_nginx_start(struct pl_test_nginx *n, const char *extra_server)
{
	char conf[8192], path[4096];
	int r;

	memset(n, 0, sizeof *n);
	n->dir = pl_test_tmpdir("nginx");
	if (!n->dir)
		return -errno;
	chmod(n->dir, 0755);	/* mkdtemp's 0700 keeps nginx's nobody workers out */
	snprintf(path, sizeof path, "%s/www", n->dir);
	mkdir(path, 0777);
	snprintf(path, sizeof path, "%s/dav", n->dir);
	mkdir(path, 0777);
	chmod(path, 0777);	/* workers may run as nobody */

	for (int attempt = 0; attempt < 5; attempt++) {
		n->port = pl_test_free_port();
		snprintf(conf, sizeof conf,
			 "daemon off;\nmaster_process on;\nworker_processes 1;\n"
			 "pid %1$s/nginx.pid;\nerror_log %1$s/error.log warn;\n"
			 "events { worker_connections 256; }\n"
			 "http {\n access_log %1$s/access.log;\n"
			 " client_body_temp_path %1$s/body; proxy_temp_path %1$s/proxy;\n"
			 " fastcgi_temp_path %1$s/fastcgi; uwsgi_temp_path %1$s/uwsgi;\n"
			 " scgi_temp_path %1$s/scgi;\n types { image/jpeg jpg; image/png png; text/html html; }\n"
			 " server {\n  listen 127.0.0.1:%2$d;\n  root %1$s/www;\n"
			 "  location /dav/ { root %1$s; dav_methods PUT DELETE; create_full_put_path on;\n"
			 "   dav_access user:rw group:rw all:rw; client_max_body_size 200m; }\n"
			 "  %3$s\n }\n}\n",
			 n->dir, n->port, extra_server ? extra_server : "");
		snprintf(path, sizeof path, "%s/nginx.conf", n->dir);
		if ((r = pl_test_write_file(path, conf, strlen(conf))) < 0)
			return r;

		n->pid = fork();
		if (n->pid < 0)
			return -errno;
		if (n->pid == 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, 0);
			dup2(null, 1);
			execlp("nginx", "nginx", "-q", "-c", path, "-p", n->dir, (char *)NULL);
			execl("/usr/sbin/nginx", "nginx", "-q", "-c", path, "-p", n->dir, (char *)NULL);
			_exit(127);
		}
		for (int i = 0; i < 1000; i++) {	/* up to 10 s */
			int status;
			if (can_connect(n->port))
				return 0;
			if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
				n->pid = 0;
				break;	/* port taken meanwhile: try another */
			}
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (n->pid > 0) {
			kill(n->pid, SIGKILL);
			waitpid(n->pid, NULL, 0);
			n->pid = 0;
		}
	}
	return -EADDRINUSE;
}

void pl_test_nginx_stop(struct pl_test_nginx *n)
{
	if (n->pid > 0) {
		kill(n->pid, SIGQUIT);
		waitpid(n->pid, NULL, 0);
		n->pid = 0;
	}
	pl_test_rmtree(n->dir);
	free(n->dir);
	n->dir = NULL;
}

/* ------------------------------------------------- a scripted HTTP server */

/* A connection being read: its header, then its body. */
struct srv_conn {
	int fd;
	char head[16384];
	size_t fill;
	bool in_body;
	struct pl_test_req req;
	size_t have;
	uint64_t due_ms;	/* PACED: answer then, 0 = nothing pending */
};

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static bool srv_stopping(struct pl_test_srv *s, int ms)
{
	struct pollfd p = { s->stop[0], POLLIN, 0 };

	return poll(&p, 1, ms) > 0;
}

static int send_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static void srv_note(struct pl_test_srv *s, bool *flag)
{
	pthread_mutex_lock(&s->mu);
	*flag = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void srv_flood(struct pl_test_srv *s, int fd)
{
	static char chunk[65536];
	char head[128];
	int small = 65536;
	long long sent = 0;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	if (s->flood_cl)
		snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n\r\n",
			 s->flood_total);
	else
		snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
	if (send_all(fd, head, strlen(head)) == 0) {
		memset(chunk, 'x', sizeof chunk);
		while (sent < s->flood_total) {
			ssize_t k = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				break;	/* the client hung up: what we want */
			sent += k;
		}
	}
	pthread_mutex_lock(&s->mu);
	s->sent = sent;
	pthread_mutex_unlock(&s->mu);
	srv_note(s, &s->handled);
}

static void srv_slow(struct pl_test_srv *s, int fd)
{
	const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";

	if (send_all(fd, head, strlen(head)) == 0)
		for (int i = 0; i < 100 && !srv_stopping(s, 1000); i++)
			if (send_all(fd, "x", 1) < 0)
				break;
	srv_note(s, &s->handled);
}

/* One complete request arrived on fd; 1 to keep the connection, 0 to close. */
static int srv_answer(struct pl_test_srv *s, int fd, int index)
{
	const char *resp;

	switch (s->mode) {
	case PL_TEST_SRV_SILENT:
		return 1;
	case PL_TEST_SRV_SLOW:
		srv_slow(s, fd);
		return 0;
	case PL_TEST_SRV_FLOOD:
		srv_flood(s, fd);
		return 0;
	case PL_TEST_SRV_HOLD:
		if (index == 0) {
			pthread_mutex_lock(&s->mu);
			s->holding = true;
			pthread_cond_broadcast(&s->cv);
			while (!s->release)
				pthread_cond_wait(&s->cv, &s->mu);
			pthread_mutex_unlock(&s->mu);
		}
		/* fall through */
	case PL_TEST_SRV_PACED:	/* srv_read and srv_main pace it */
	case PL_TEST_SRV_SCRIPT:
		if (s->nscript == 0)
			return 0;
		resp = s->script[(size_t)index < s->nscript ? (size_t)index : s->nscript - 1];
		if (send_all(fd, resp, strlen(resp)) < 0)
			return 0;
		return !s->close && strstr(resp, "Connection: close") == NULL;
	}
	return 0;
}

static const char *header_value(const char *head, const char *name)
{
	size_t n = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n"))
		if (strncasecmp(l + 2, name, n) == 0 && l[2 + n] == ':')
			return l + 3 + n + strspn(l + 3 + n, " ");
	return NULL;
}

/* The header in c->head is complete (end points at its blank line): parse
 * it and start the body with what came after it.  0, or -1 to hang up. */
static int srv_parse_head(struct srv_conn *c, char *end)
{
	struct pl_test_req *r = &c->req;
	size_t after = c->fill - (size_t)(end + 4 - c->head);
	const char *v;

	*end = '\0';
	memset(r, 0, sizeof *r);
	sscanf(c->head, "%15s %511s", r->method, r->path);
	v = header_value(c->head, "Content-Type");
	snprintf(r->ctype, sizeof r->ctype, "%.*s", v ? (int)strcspn(v, "\r") : 0, v ? v : "");
	v = header_value(c->head, "Content-Length");
	r->clen = v ? atol(v) : -1;
	r->expect = header_value(c->head, "Expect") != NULL;
	r->bodylen = r->clen > 0 ? (size_t)r->clen : 0;
	r->body = malloc(r->bodylen + 1);
	if (!r->body)
		return -1;
	c->have = after < r->bodylen ? after : r->bodylen;
	memcpy(r->body, end + 4, c->have);	/* more is pipelining: not here */
	c->in_body = true;
	return 0;
}

/* Data is waiting on c: read it; answer a complete request.  0 to keep
 * the connection, -1 to close it. */
static int srv_read(struct pl_test_srv *s, struct srv_conn *c)
{
	ssize_t k;
	int index;

	if (!c->in_body) {
		char *end;

		k = recv(c->fd, c->head + c->fill, sizeof c->head - 1 - c->fill, 0);
		if (k <= 0)
			return -1;
		c->fill += (size_t)k;
		c->head[c->fill] = '\0';
		end = strstr(c->head, "\r\n\r\n");
		if (!end)
			return c->fill < sizeof c->head - 1 ? 0 : -1;
		if (srv_parse_head(c, end) < 0)
			return -1;
	} else {
		k = recv(c->fd, c->req.body + c->have, c->req.bodylen - c->have, 0);
		if (k <= 0)
			return -1;
		c->have += (size_t)k;
	}
	if (c->have < c->req.bodylen)
		return 0;
	c->in_body = false;
	c->fill = 0;
	pthread_mutex_lock(&s->mu);
	index = s->requests++;
	if (index < PL_TEST_SRV_KEEP)
		s->reqs[index] = c->req;
	else
		free(c->req.body);
	c->req.body = NULL;
	if (s->mode == PL_TEST_SRV_PACED && (!s->ceiling || s->waiting < s->ceiling)) {
		c->due_ms = mono_ms() + (uint64_t)s->latency_ms;
		if (++s->waiting > s->peak)
			s->peak = s->waiting;
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	if (s->mode == PL_TEST_SRV_PACED) {
		static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
					   "Content-Length: 0\r\n\r\n";

		s->refused++;
		pthread_mutex_unlock(&s->mu);
		return send_all(c->fd, busy, sizeof busy - 1) < 0 ? -1 : 0;
	}
	pthread_mutex_unlock(&s->mu);
	return srv_answer(s, c->fd, index) ? 0 : -1;
}

static void srv_hangup(struct pl_test_srv *s, struct srv_conn *c)
{
	if (c->due_ms) {
		pthread_mutex_lock(&s->mu);
		s->waiting--;
		pthread_mutex_unlock(&s->mu);
		c->due_ms = 0;
	}
	close(c->fd);
	c->fd = -1;
	free(c->req.body);
	c->req.body = NULL;
	c->in_body = false;
	c->fill = 0;
}

/* PACED: answer what is due; how long poll may sleep until the next. */
static int srv_paced(struct pl_test_srv *s, struct srv_conn *conn)
{
	uint64_t now = mono_ms(), next = 0;

	for (int i = 0; i < PL_TEST_SRV_MAXCONN; i++) {
		struct srv_conn *c = &conn[i];

		if (c->fd < 0 || !c->due_ms)
			continue;
		if (c->due_ms <= now) {
			c->due_ms = 0;
			pthread_mutex_lock(&s->mu);
			s->waiting--;
			pthread_mutex_unlock(&s->mu);
			if (!srv_answer(s, c->fd, 0))
				srv_hangup(s, c);
		} else if (!next || c->due_ms < next) {
			next = c->due_ms;
		}
	}
	return next ? (int)(next - now) : -1;
}

static void *srv_main(void *arg)
{
	struct pl_test_srv *s = arg;
	struct pollfd p[2 + PL_TEST_SRV_MAXCONN];
	struct srv_conn *conn = calloc(PL_TEST_SRV_MAXCONN, sizeof *conn);

	if (!conn)
		return NULL;
	for (int i = 0; i < PL_TEST_SRV_MAXCONN; i++)
		conn[i].fd = -1;
	for (;;) {
		int wait = s->mode == PL_TEST_SRV_PACED ? srv_paced(s, conn) : -1;

		p[0] = (struct pollfd){ s->stop[0], POLLIN, 0 };
		p[1] = (struct pollfd){ s->lfd, POLLIN, 0 };
		for (int i = 0; i < PL_TEST_SRV_MAXCONN; i++)
			p[2 + i] = (struct pollfd){ conn[i].fd, POLLIN, 0 };
		if (poll(p, 2 + PL_TEST_SRV_MAXCONN, wait) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
			int i = 0;
			while (i < PL_TEST_SRV_MAXCONN && conn[i].fd >= 0)
				i++;
			if (fd >= 0 && i < PL_TEST_SRV_MAXCONN) {
				conn[i].fd = fd;
				pthread_mutex_lock(&s->mu);
				s->accepts++;
				pthread_mutex_unlock(&s->mu);
			} else if (fd >= 0) {
				close(fd);
			}
		}
		for (int i = 0; i < PL_TEST_SRV_MAXCONN; i++)
			if (conn[i].fd >= 0 && p[2 + i].revents && srv_read(s, &conn[i]) < 0)
				srv_hangup(s, &conn[i]);
	}
	for (int i = 0; i < PL_TEST_SRV_MAXCONN; i++)
		if (conn[i].fd >= 0)
			srv_hangup(s, &conn[i]);
	free(conn);
	return NULL;
}

int pl_test_srv_start(struct pl_test_srv *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int one = 1, r;

	if (inet_pton(AF_INET, s->addr ? s->addr : "127.0.0.1", &a.sin_addr) != 1)
		return -EINVAL;
	s->accepts = s->requests = 0;
	s->sent = 0;
	s->waiting = s->peak = s->refused = 0;
	s->handled = s->holding = s->release = false;
	memset(s->reqs, 0, sizeof s->reqs);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return -errno;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->lfd, 16) < 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&a, &len) < 0 || pipe2(s->stop, O_CLOEXEC) < 0) {
		r = -errno;
		close(s->lfd);
		return r;
	}
	s->port = ntohs(a.sin_port);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if ((r = pthread_create(&s->th, NULL, srv_main, s)) != 0) {
		close(s->lfd);
		close(s->stop[0]);
		close(s->stop[1]);
		return -r;
	}
	return 0;
}

void pl_test_srv_release(struct pl_test_srv *s)
{
	srv_note(s, &s->release);
}

void pl_test_srv_stop(struct pl_test_srv *s)
{
	pl_test_srv_release(s);	/* a held request must not block the join */
	if (write(s->stop[1], "x", 1) != 1)
		abort();
	pthread_join(s->th, NULL);
	close(s->lfd);
	close(s->stop[0]);
	close(s->stop[1]);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	for (int i = 0; i < PL_TEST_SRV_KEEP; i++) {
		free(s->reqs[i].body);
		s->reqs[i].body = NULL;
	}
}

bool pl_test_srv_await(struct pl_test_srv *s, bool *flag)
{
	struct timespec dl;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 20;
	pthread_mutex_lock(&s->mu);
	while (!*flag)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
			break;
	ok = *flag;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

int pl_test_srv_requests(struct pl_test_srv *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->requests;
	pthread_mutex_unlock(&s->mu);
	return n;
}

const char *pl_test_srv_url(const struct pl_test_srv *s, const char *path)
{
	static char url[256];

	snprintf(url, sizeof url, "http://%s:%d%s", s->addr ? s->addr : "127.0.0.1", s->port, path);
	return url;
}

/* ------------------------------------------------------ a stage, by hand */

int pl_test_stage_open(struct pl_test_stage *s, const struct pl_stage_ops *ops,
		       int (*make)(const struct pl_config *, void **), void (*free_ctx)(void *),
		       const struct pl_config *cfg)
{
	int r;

	memset(s, 0, sizeof *s);
	s->ops = ops;
	s->free = free_ctx;
	/* as the daemon does before any stage exists (libcurl counts these) */
	if ((r = pl_http_global_init()) < 0)
		return r;
	if ((r = make(cfg, &s->ctx)) < 0)
		goto fail;
	if ((r = ops->worker_start(s->ctx, &s->ws)) < 0) {
		free_ctx(s->ctx);
		goto fail;
	}
	return 0;
fail:
	pl_http_global_cleanup();
	return r;
}

int pl_test_stage_run(struct pl_test_stage *s, void *item, char *why)
{
	why[0] = '\0';
	return s->ops->process(s->ctx, s->ws, item, why, PL_REASON_MAX);
}

void pl_test_stage_close(struct pl_test_stage *s)
{
	s->ops->worker_stop(s->ctx, s->ws);
	s->free(s->ctx);
	pl_http_global_cleanup();
}

/* ------------------------------------------------- crafted image containers */

void pl_test_buf_add(struct pl_test_buf *t, const void *data, size_t n)
{
	if (t->len + n > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;

		while (cap < t->len + n)
			cap *= 2;
		t->b = realloc(t->b, cap);
		if (!t->b)
			abort();
		t->cap = cap;
	}
	if (n)
		memcpy(t->b + t->len, data, n);
	t->len += n;
}

void pl_test_buf_free(struct pl_test_buf *t)
{
	free(t->b);
	memset(t, 0, sizeof *t);
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

void pl_test_png_chunk(struct pl_test_buf *t, const char *type, const void *data, size_t n)
{
	unsigned char h[8];
	uLong crc;

	put_be32(h, (uint32_t)n);
	memcpy(h + 4, type, 4);
	pl_test_buf_add(t, h, 8);
	pl_test_buf_add(t, data, n);
	crc = crc32(crc32(0, h + 4, 4), n ? data : (const void *)"", (uInt)n);
	put_be32(h, (uint32_t)crc);
	pl_test_buf_add(t, h, 4);
}

void pl_test_png_start(struct pl_test_buf *t, int w, int h)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	unsigned char ihdr[13] = { 0 };

	put_be32(ihdr, (uint32_t)w);
	put_be32(ihdr + 4, (uint32_t)h);
	ihdr[8] = 8;	/* bit depth */
	ihdr[9] = 2;	/* RGB */
	pl_test_buf_add(t, sig, 8);
	pl_test_png_chunk(t, "IHDR", ihdr, sizeof ihdr);
}

void pl_test_png_end(struct pl_test_buf *t, int w, int h)
{
	size_t row = (size_t)w * 3 + 1, n = row * (size_t)h;
	unsigned char *raw = malloc(n);
	uLongf zlen = compressBound((uLong)n);
	unsigned char *z = malloc(zlen);

	if (!raw || !z)
		abort();
	memset(raw, 0x80, n);
	for (int y = 0; y < h; y++)
		raw[(size_t)y * row] = 0;	/* filter: none */
	if (compress(z, &zlen, raw, (uLong)n) != Z_OK)
		abort();
	pl_test_png_chunk(t, "IDAT", z, zlen);
	pl_test_png_chunk(t, "IEND", NULL, 0);
	free(raw);
	free(z);
}

void pl_test_png_deflated(struct pl_test_buf *t, const char *keyword, int fill, size_t n)
{
	unsigned char *raw = malloc(n ? n : 1);
	uLongf zlen = compressBound((uLong)n);
	unsigned char *z = malloc(zlen);

	if (!raw || !z)
		abort();
	memset(raw, fill, n);
	if (compress2(z, &zlen, raw, (uLong)n, 9) != Z_OK)
		abort();
	pl_test_buf_add(t, keyword, strlen(keyword) + 1);
	pl_test_buf_add(t, "", 1);	/* compression method 0 */
	pl_test_buf_add(t, z, zlen);
	free(raw);
	free(z);
}

void pl_test_png_ztxt_bomb(struct pl_test_buf *t)
{
	static const unsigned char head[8] = { 0x7f, 0xff, 0xff, 0xf0, 'z', 'T', 'X', 't' };
	static const unsigned char body[144] = "Comment";

	pl_test_png_start(t, 16, 16);
	pl_test_buf_add(t, head, sizeof head);
	pl_test_buf_add(t, body, 144 - t->len);
}

void pl_test_riff_chunk(struct pl_test_buf *t, const char *type, const void *data, size_t n)
{
	unsigned char h[8];

	memcpy(h, type, 4);
	h[4] = (unsigned char)n, h[5] = (unsigned char)(n >> 8);
	h[6] = (unsigned char)(n >> 16), h[7] = (unsigned char)(n >> 24);
	pl_test_buf_add(t, h, 8);
	pl_test_buf_add(t, data, n);
	if (n & 1)
		pl_test_buf_add(t, "", 1);
}

/* Append v as an n-byte integer in the file's byte order. */
static void tiff_int(struct pl_test_buf *t, bool be, unsigned n, uint64_t v)
{
	unsigned char b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (unsigned char)(v >> 8 * (be ? n - 1 - i : i));
	pl_test_buf_add(t, b, n);
}

static unsigned tiff_size(unsigned type)
{
	return type == 3 ? 2 : type == 4 ? 4 : type == 5 || type == 16 ? 8 : 1;
}

static int tag_cmp(const void *a, const void *b)
{
	const struct pl_test_tiff_tag *x = a, *y = b;

	return (int)x->tag - (int)y->tag;
}

void pl_test_tiff(struct pl_test_buf *t, int flags, int w, int h, int pages,
		  const struct pl_test_tiff_tag *tags, size_t ntags, size_t blob_len)
{
	bool be = flags & PL_TEST_TIFF_BE, big = flags & PL_TEST_TIFF_BIG;
	unsigned os = big ? 8 : 4;
	size_t npix = (size_t)w * h * 3, nall = ntags + 10;
	struct pl_test_tiff_tag *all = calloc(nall, sizeof *all);
	uint64_t *at = calloc(nall, sizeof *at);
	uint64_t pix, blob = 0, bps, next_at;
	unsigned char *grey = malloc(npix);

	if (!all || !at || !grey)
		abort();
	pl_test_buf_add(t, be ? "MM" : "II", 2);
	tiff_int(t, be, 2, big ? 43 : 42);
	if (big) {
		tiff_int(t, be, 2, 8);
		tiff_int(t, be, 2, 0);
	}
	next_at = t->len;
	tiff_int(t, be, os, 0);		/* first directory, patched below */
	memset(grey, 0x80, npix);
	pix = t->len;
	pl_test_buf_add(t, grey, npix);
	bps = t->len;
	tiff_int(t, be, 2, 8), tiff_int(t, be, 2, 8), tiff_int(t, be, 2, 8);
	if (blob_len) {
		unsigned char *zero = calloc(1, blob_len);

		if (!zero)
			abort();
		blob = t->len;
		pl_test_buf_add(t, zero, blob_len);
		free(zero);
	}
	{
		const struct pl_test_tiff_tag base[10] = {
			{ 256, 4, 1, NULL }, { 257, 4, 1, NULL }, { 258, 3, 3, NULL },
			{ 259, 3, 1, NULL }, { 262, 3, 1, NULL }, { 273, 4, 1, NULL },
			{ 277, 3, 1, NULL }, { 278, 4, 1, NULL }, { 279, 4, 1, NULL },
			{ 284, 3, 1, NULL },
		};
		const uint64_t val[10] = { w, h, bps, 1, 2, pix, 3, h, npix, 1 };

		memcpy(all, base, sizeof base);
		for (int i = 0; i < 10; i++)
			at[i] = val[i];
	}
	for (size_t i = 0; i < ntags; i++) {
		all[10 + i] = tags[i];
		if (tags[i].data) {
			at[10 + i] = t->len;
			pl_test_buf_add(t, tags[i].data, tags[i].count * tiff_size(tags[i].type));
			if (t->len & 1)
				pl_test_buf_add(t, "", 1);
		} else {
			all[10 + i].count = blob_len / tiff_size(tags[i].type);
			at[10 + i] = blob;
		}
	}
	/* sort the entries by tag, keeping their values alongside */
	for (size_t i = 0; i < nall; i++)
		all[i].data = (const void *)(uintptr_t)i;
	qsort(all, nall, sizeof *all, tag_cmp);
	for (int p = 0; p < pages; p++) {
		uint64_t dir = t->len;

		for (unsigned i = 0; i < os; i++)	/* patch the pointer to here */
			t->b[next_at + i] = (unsigned char)(dir >> 8 * (be ? os - 1 - i : i));
		tiff_int(t, be, big ? 8 : 2, nall);
		for (size_t i = 0; i < nall; i++) {
			uint64_t v = at[(uintptr_t)all[i].data];

			tiff_int(t, be, 2, all[i].tag);
			tiff_int(t, be, 2, all[i].type);
			tiff_int(t, be, big ? 8 : 4, all[i].count);
			if (all[i].tag == 258 && big) {		/* 3 SHORTs fit in 8 bytes */
				for (int k = 0; k < 4; k++)
					tiff_int(t, be, 2, k < 3 ? 8 : 0);
			} else if (all[i].count == 1 && all[i].type == 3 && !big) {
				tiff_int(t, be, 2, v);		/* a SHORT sits at the start */
				tiff_int(t, be, 2, 0);
			} else if (all[i].count == 1 && all[i].type == 3) {
				tiff_int(t, be, 2, v);
				tiff_int(t, be, 6, 0);
			} else if (all[i].count == 1 && all[i].type == 4 && big) {
				tiff_int(t, be, 4, v);
				tiff_int(t, be, 4, 0);
			} else {
				tiff_int(t, be, os, v);
			}
		}
		next_at = t->len;
		tiff_int(t, be, os, 0);
	}
	free(all);
	free(at);
	free(grey);
}

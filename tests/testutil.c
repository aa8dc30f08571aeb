/*
 * testutil.c — see testutil.h.  nginx runs in the foreground as our child
 * ("daemon off") so that a crashed test cannot leave it behind; readiness is
 * awaited by connecting, never by sleeping a fixed time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static int free_port(void)
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
		n->port = free_port();
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

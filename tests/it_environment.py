"""it_environment — what pipelined(8) does with variables of its environment.

Two promises of the man pages, each checked on the real binary:

- Proxy settings (http_proxy, HTTP_PROXY, https_proxy, HTTPS_PROXY,
  ALL_PROXY) are ignored by downloads: the SSRF guard checks the address
  it connects to, and through a proxy it would only ever see the proxy's.
  A real nginx serves the sources on 127.0.0.1 (allow_private = true); a
  listening socket stands in as the proxy and must never be connected to
  (it closes what connects, so a daemon that used it fails fast).
  To show the trap would catch a proxied request, curl(1) — the same
  libcurl — is first run with the same environment and must land in it.
- With no `runtime` setting, $RUNTIME_DIRECTORY (set by systemd for
  RuntimeDirectory=) is where status.json goes; a `runtime` setting wins.

Nothing sleeps to synchronise: each step awaits a file, a log line, a
connection or the process's exit with a bounded timeout.  A few seconds.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

SLOW = 4 if pl.SANITIZE else 1

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY",
              "all_proxy")


class Trap:
    """A listening socket that stands in as the proxy: it counts the
    connections it gets and closes each at once, so a client that uses it
    fails fast instead of waiting for an answer."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.hits = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.close()
            self.hits += 1

    def close(self):
        self._stop = True
        self._thread.join(5)
        self.sock.close()


def t_proxies_ignored():
    if not shutil.which("nginx"):
        pl.skip("nginx is not installed")
    env = pl.Env("proxy")
    nginx = pl.Nginx(env.root, env.images)
    trap = Trap()
    try:
        proxied = dict(os.environ, **{v: trap.url for v in PROXY_VARS})
        proxied.pop("NO_PROXY", None)
        proxied.pop("no_proxy", None)
        port = nginx.start()
        imgs = env.image_set(2)
        url = "http://127.0.0.1:%d/%s" % (port, os.path.basename(imgs[0]))

        # the trap works: libcurl's own tool, same environment, goes there
        if shutil.which("curl"):
            subprocess.run(["curl", "-s", "-o", "/dev/null", "-m", str(10 * SLOW), url],
                           env=proxied, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=20 * SLOW)
            pl.wait_for(lambda: trap.hits, 5 * SLOW, "curl(1) to connect to the proxy")
        before = trap.hits

        text = env.write_config(extra_download="  allow_private = true;")
        text = text.replace('protocols = [ "file" ];', 'protocols = [ "http", "https" ];')
        env.write_file(env.conf, text.replace('  file_root = "%s";\n' % env.images, ""))
        n = 6
        env.submit("proxied", ["http://127.0.0.1:%d/%s item%d"
                               % (port, os.path.basename(imgs[i % 2]), i) for i in range(n)])
        p = subprocess.run([pl.BIN, "-c", env.conf, "--once"], env=proxied,
                           capture_output=True, text=True, timeout=60 * SLOW)
        pl.check(trap.hits == before, "the daemon connected to the proxy of http_proxy & co "
                 "%d times" % (trap.hits - before))
        pl.check(p.returncode == 0, "--once with proxy variables set exited %d: %s"
                 % (p.returncode, p.stderr[-600:]))
        recs = env.records("proxied")
        pl.check(len(recs) == n and all(r["status"] == "ok" for r in recs),
                 "records: %s" % recs)
    finally:
        trap.close()
        nginx.kill()
        env.cleanup()


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def t_runtime_directory():
    with pl.Session("rtdir") as ses:
        env = ses.env
        rtdir = os.path.join(env.root, "systemd-runtime")
        os.mkdir(rtdir)
        text = env.write_config()
        line = 'runtime = "%s";\n' % env.run
        pl.check(line in text, "the test's configuration has no runtime line")
        env.write_file(env.conf, text.replace(line, ""))
        # systemd passes a colon-separated list: the first one counts
        d = ses.start(extra_env={"RUNTIME_DIRECTORY": rtdir + ":" + env.run})
        d.wait_line(r"running: spool", 10 * SLOW)
        d.signal(signal.SIGUSR1)
        path = os.path.join(rtdir, "status.json")
        s = pl.wait_for(lambda: read_json(path), 5 * SLOW, "status.json in $RUNTIME_DIRECTORY")
        pl.check(s["state"] == "running", "state %r" % s.get("state"))
        pl.check(not os.path.exists(os.path.join(env.run, "status.json")),
                 "status.json also in the second directory of the list")
        d.signal(signal.SIGTERM)
        pl.check(d.wait(10 * SLOW) == 0, "exit status after SIGTERM")

        # the setting wins over the environment
        os.unlink(path)
        env.write_file(env.conf, text)
        d = ses.start(extra_env={"RUNTIME_DIRECTORY": rtdir})
        d.wait_line(r"running: spool", 10 * SLOW)
        d.signal(signal.SIGUSR1)
        pl.wait_for(env.status, 5 * SLOW, "status.json in the runtime setting")
        pl.check(not os.path.exists(path), "status.json in $RUNTIME_DIRECTORY despite runtime =")
        d.signal(signal.SIGTERM)
        pl.check(d.wait(10 * SLOW) == 0, "exit status after SIGTERM")


if __name__ == "__main__":
    pl.main([
        ("proxy variables are ignored by downloads", t_proxies_ignored),
        ("status.json in $RUNTIME_DIRECTORY", t_runtime_directory),
    ])

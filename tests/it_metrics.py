#!/usr/bin/python3
"""it_metrics — the Prometheus endpoint against a real Prometheus and
hostile clients.

A Debian `prometheus` server, started here on 127.0.0.1 with a temporary
configuration and data directory, scrapes a running daemon every second
while it processes a job with good and missing sources; its HTTP API must
then report pipelined_items_total equal to the job's result records, and
`promtool check metrics` must pass a scrape without a word.  Then hostile
clients: two that send their requests a byte a second (each cut at its
deadline, never being idle), 1,000 connections at once, and a 1 MB
request line.  While they run, a second job must complete and the daemon's
RSS stay within twice what it was after the first job plus 32 MB; after
them, Prometheus must see the second job too (the endpoint recovered),
and every query of contrib/grafana-pipelined.json must find data there.
With a stream group (a real nats-server), the stream's metrics are there
and add up to the job's items.
"""
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402
import plnats  # noqa: E402

TIMEOUT = 3          # metrics.timeout: a request's deadline, seconds
CONNECTIONS = 16
FLOOD = 1000


def rss_kb(d):
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise pl.Failure("the daemon exited (status %s)" % d.proc.wait(10))


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


class Prometheus:
    def __init__(self, root, target):
        self.dir = os.path.join(root, "prometheus")
        os.makedirs(os.path.join(self.dir, "data"))
        self.conf = os.path.join(self.dir, "prometheus.yml")
        with open(self.conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: pipelined\n"
                    "    static_configs:\n      - targets: [\"%s\"]\n" % target)
        self.port = pl.free_port()
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + self.conf,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.base = "http://127.0.0.1:%d" % self.port
        pl.wait_for(self.ready, 60, "prometheus to be ready", interval=0.2)

    def ready(self):
        if self.proc.poll() is not None:
            raise pl.Failure("prometheus exited %d; see %s/log" % (self.proc.returncode, self.dir))
        try:
            return http_get(self.base + "/-/ready", 1)[0] == 200
        except OSError:
            return False

    def query(self, expr):
        status, body = http_get(self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        doc = json.loads(body)
        pl.check(doc.get("status") == "success", "query %s: %s" % (expr, body[:300]))
        return {tuple(sorted(r["metric"].items())): float(r["value"][1])
                for r in doc["data"]["result"]}

    def items_total(self):
        return {dict(k).get("outcome"): v for k, v in self.query("pipelined_items_total").items()}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()


def outcome_counts(records):
    ok = sum(1 for r in records if r.get("status") == "ok")
    return {"ok": float(ok), "failed": float(len(records) - ok)}


def lines(env, n_ok, n_missing):
    good = env.items(n_ok, env.image_set(n=4))
    bad = ["file://%s/missing%03d.jpg gone%03d" % (env.images, i, i) for i in range(n_missing)]
    return good + bad


def wait_job(env, job, timeout):
    return pl.wait_for(lambda: env.where(job) in ("done", "failed") and env.where(job),
                       timeout, "job %s to finish" % job, interval=0.1)


class SlowClient(threading.Thread):
    """Sends a request one byte a second and never finishes it; when the
    daemon cuts it, counts that and starts again."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop = port, threading.Event()
        self.cut = 0            # connections cut after some bytes: by the deadline,
        self.sent = 0           # as the client was never idle

    def run(self):
        req = b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"a" * 4096
        while not self.stop.is_set():
            sent = 0
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    for b in req:
                        s.sendall(bytes([b]))
                        sent += 1
                        if self.stop.wait(1):
                            return
                        s.setblocking(False)
                        try:
                            if s.recv(1024) == b"":
                                raise ConnectionResetError
                        except BlockingIOError:
                            pass
                        s.setblocking(True)
            except OSError:
                if sent > 1:    # not one refused at the connection limit
                    self.cut += 1
                    self.sent = max(self.sent, sent)
                self.stop.wait(0.2)


def flood(port, n):
    """n connections at once, each sending a request slowly enough to be
    open together; what the daemon refuses is closed by it."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def huge_request_line(port):
    """A 1 MB request line: answered with an error status or cut, never
    buffered whole.  Returns what came back (maybe b"")."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
    return got


def test_metrics():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        pl.skip("prometheus/promtool are not installed (scripts/deps installs them)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 200:
        if hard != resource.RLIM_INFINITY and hard < FLOOD + 200:
            pl.skip("RLIMIT_NOFILE %d is too low for %d connections" % (hard, FLOOD))
        resource.setrlimit(resource.RLIMIT_NOFILE, (FLOOD + 200, hard))
    with pl.Session("metrics") as s:
        env = s.env
        port = pl.free_port()
        env.write_config(workers=(2, 2, 2), extra_top=(
            'metrics = { listen = "127.0.0.1:%d"; connections = %d; timeout = %d; };'
            % (port, CONNECTIONS, TIMEOUT)))
        prom = None
        try:
            d = s.start()
            d.wait_line(r"metrics on http://127\.0\.0\.1:%d/metrics" % port, 20)
            prom = Prometheus(env.root, "127.0.0.1:%d" % port)

            # one job while Prometheus scrapes
            env.submit("one", lines(env, 40, 5))
            wait_job(env, "one", 60)
            want = outcome_counts(env.records("one"))
            pl.check(want == {"ok": 40.0, "failed": 5.0}, "job one's records: %s" % want)
            got = pl.wait_for(lambda: (lambda v: v == want and v)(prom.items_total()), 30,
                              "prometheus to report pipelined_items_total %s" % want, interval=0.5)
            pl.note("prometheus: pipelined_items_total %s" % got)

            # the format, by Prometheus' own linter
            status, text = http_get("http://127.0.0.1:%d/metrics" % port)
            pl.check(status == 200, "scrape: HTTP %d" % status)
            scrape = os.path.join(env.root, "scrape.txt")
            with open(scrape, "w") as f:
                f.write(text)
            p = pl.run(["promtool", "check", "metrics"], stdin=open(scrape))
            pl.check(p.returncode == 0 and not (p.stdout + p.stderr).strip(),
                     "promtool check metrics (exit %d): %s%s" % (p.returncode, p.stdout, p.stderr))
            for name in ("pipelined_stage_items_total", "pipelined_stage_duration_seconds_bucket",
                         "pipelined_jobs_total", "pipelined_spool_items_waiting",
                         "pipelined_downloaded_bytes_total", "pipelined_build_info"):
                pl.check(name in text, "no %s in the scrape" % name)
            pl.check('pipelined_jobs_total{outcome="failed"} 1' in text,
                     "job one is not counted failed:\n" + text)

            # hostile clients while a second job runs
            baseline = rss_kb(d)
            peak = [baseline]
            sampling = threading.Event()

            def sample():
                try:
                    while not sampling.wait(0.05):
                        peak[0] = max(peak[0], rss_kb(d))
                except pl.Failure as e:
                    peak.append(str(e))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            slow = [SlowClient(port) for _ in range(2)]
            for c in slow:
                c.start()
            env.submit("two", lines(env, 60, 0))
            answer = huge_request_line(port)
            pl.check(answer == b"" or answer.startswith(b"HTTP/1.1 4"),
                     "1 MB request line answered: %r" % answer[:80])
            pl.note("1 MB request line: %s" % (answer.split(b"\r\n")[0].decode() or "cut"))
            socks = flood(port, FLOOD)
            wait_job(env, "two", 120)
            pl.check(outcome_counts(env.records("two")) == {"ok": 60.0, "failed": 0.0},
                     "job two's records: %s" % outcome_counts(env.records("two")))
            pl.wait_for(lambda: all(c.cut >= 1 for c in slow), 6 * TIMEOUT + 10,
                        "the slow clients to be cut at their deadline")
            pl.note("slow clients cut after sending %s bytes, one a second"
                    % [c.sent for c in slow])
            for c in slow:
                c.stop.set()
            for c in slow:
                c.join(5)
            for x in socks:
                x.close()
            sampling.set()
            sampler.join(5)
            pl.check(len(peak) == 1, peak[-1])
            limit = 2 * baseline + 32 * 1024
            pl.note("RSS: %d kB after job one, peak %d kB with hostile clients (limit %d kB)"
                    % (baseline, peak[0], limit))
            pl.check(peak[0] < limit, "RSS peaked at %d kB, over %d kB" % (peak[0], limit))

            # the endpoint recovered: Prometheus sees job two too
            want = {"ok": 100.0, "failed": 5.0}
            pl.wait_for(lambda: prom.items_total() == want, 30,
                        "prometheus to report pipelined_items_total %s after the clients" % want,
                        interval=0.5)
            pl.check(d.proc.poll() is None, "the daemon exited")

            # every query of the shipped dashboard parses, and finds data
            # (but the stream's: there is none here)
            with open(os.path.join(pl.SRCDIR, "contrib", "grafana-pipelined.json")) as f:
                dash = json.load(f)
            for panel in dash["panels"]:
                for t in panel["targets"]:
                    expr = t["expr"].replace("$__rate_interval", "10s").replace("$instance", ".*")
                    found = prom.query(expr)
                    pl.check(found or panel["title"] == "Stream",
                             "dashboard panel %r: no data for %s" % (panel["title"], expr))
            d.stop_clean()
        finally:
            if prom:
                prom.stop()


def scrape_values(port):
    """{series: value} of one scrape, and its text."""
    _, text = http_get("http://127.0.0.1:%d/metrics" % port)
    vals = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            vals[k] = float(v)
    return vals, text


def test_stream():
    """With a stream group the stream's figures are there, and add up."""
    plnats.require_server()
    with pl.Session("metrics-stream") as s:
        env = s.env
        srv = plnats.NatsServer(env.root).start()
        try:
            port = pl.free_port()
            env.write_config(extra_top=(
                'stream = { servers = [ "%s" ]; node = "n0"; ack_wait = 30.0; };\n'
                'metrics = { listen = "127.0.0.1:%d"; };' % (srv.url, port)))
            d = s.start()
            d.wait_line(r"stream: consuming", 30)
            env.submit("s1", lines(env, 12, 3))
            wait_job(env, "s1", 60)
            want = {
                "pipelined_stream_connected": 1.0,
                "pipelined_stream_items_pulled_total": 15.0,
                "pipelined_stream_items_acked_total": 15.0,
                "pipelined_stream_items_in_flight": 0.0,
                "pipelined_stream_items_published_total": 15.0,
                'pipelined_stream_results_total{outcome="ok"}': 12.0,
                'pipelined_stream_results_total{outcome="failed"}': 3.0,
                'pipelined_items_total{outcome="ok"}': 12.0,
                'pipelined_items_total{outcome="failed"}': 3.0,
            }

            def matches():
                vals, text = scrape_values(port)
                return all(vals.get(k) == v for k, v in want.items()) and text
            text = pl.wait_for(matches, 30, "the stream's figures %s" % want, interval=0.2)
            p = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True, timeout=30)
            pl.check(p.returncode == 0 and not (p.stdout + p.stderr).strip(),
                     "promtool check metrics (exit %d): %s%s" % (p.returncode, p.stdout, p.stderr))
            d.stop_clean()
        finally:
            srv.kill()


if __name__ == "__main__":
    pl.main([("metrics", test_metrics), ("stream", test_stream)])

"""pltest — shared helpers for pipelined's Python integration tests (tests/it_*.py).

Why: every integration test needs the same scaffolding — a throw-away tree
with a spool, local source images, an output folder and a configuration; a
way to submit jobs the way a producer must (tmp/ then rename into new/); a
daemon started as a real process whose log can be awaited; a NOTIFY_SOCKET
to see what systemd would see; and bounded waits instead of sleeps.  Only
the standard library is used (tests run with Debian's /usr/bin/python3);
images are made with the `vips` command line (libvips-tools).

Import it from a test in tests/ with:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import pltest as pl

API (everything raises pl.Failure with a message naming what failed):

  pl.BIN, pl.SRCDIR, pl.BUILDDIR   from ctest's env PIPELINED, PL_SRCDIR, PL_BUILDDIR
  pl.SANITIZE                      env PL_SANITIZE ("" or "address")
  pl.scaled(n, under_sanitizer)    n normally, the second count under a sanitizer
  pl.fail(msg)                     print "FAIL: msg" and exit 1
  pl.skip(reason)                  this machine cannot run the test: print "SKIP: reason"
                                   and exit 77 (ctest: "Skipped"); with PL_REQUIRE_ALL=1
                                   (scripts/test, CI) fail instead.  A test a build cannot
                                   run by design is not a skip: tests/CMakeLists.txt
                                   registers it disabled there (PL_NOT_UNDER_SANITIZER)
  pl.cannot_unshare_mount()        why a private mount namespace with a tmpfs in it is
  pl.cannot_unshare_net()          impossible here / a network namespace with an address
                                   on lo; "" when it is possible.  The probes are the ones
                                   of tests/lib/common.sh, run through bash, so Python and
                                   shell tests agree:  if (why := pl.cannot_…()): pl.skip(why)
  pl.check(cond, msg)              fail(msg) unless cond
  pl.wait_for(fn, timeout, what)   poll fn() every 20 ms until truthy; return its value,
                                   or fail "timed out after Ns waiting for WHAT"
  pl.make_image(path, w, h, kind)  vips image by extension (.jpg .png .webp …);
                                   kind "noise" | "zone" | "sines"
  pl.run(args, timeout=30, **kw)   subprocess.run with captured text output
  pl.run_on_pty(args, timeout, columns=80)  args with stdin/stdout/stderr on a new pty
                                   of that width → (rc, output)

  env = pl.Env("name")             fresh temp tree (removed by env.cleanup() unless
                                   PL_KEEP=1): env.root, env.images, env.spool,
                                   env.out, env.run, env.conf (path of the config)
  env.write_config(workers=(1,1,1), queues=(16,16,16), log_level="info",
                   variants=None, extra_top="", extra_download="")
                                   writes env.conf with file:// sources below
                                   env.images and file:// outputs in env.out;
                                   returns the text
  env.image_set(n=4, w=64, h=48, ext="jpg")  n distinct images in env.images (cached)
  env.items(count, images)         job lines "file://IMG nameNNNNN", cycling images
  env.submit(job, lines)           write SPOOL/tmp/JOB, rename into new/; returns path
  env.where(job)                   "new" | "cur" | "done" | "failed" | None (job file)
  env.records(job, folder=None)    parsed JOB.result records (folder: where it is)
  env.status()                     parsed RUNTIME/status.json (None if absent)
  env.outputs() / env.temp_outputs()  files in env.out (all / names starting with '.')
  pl.check_lines_once(records, n)  every line 1..n recorded exactly once, all "ok"

  d = pl.Daemon(env, "--once", notify=None, extra_env=None, prefix=())   start pipelined
                                   -c env.conf, after the command prefix (setpriv …)
                                   (NOTIFY_SOCKET is removed from its env unless notify
                                   is given; its stderr is also saved in env.root)
  d.lines                          stderr lines so far (a reader thread collects them)
  d.wait_line(regex, timeout, start=0)  first matching line at index >= start → (index, match)
  d.count(regex)                   how many lines match so far
  d.signal(sig) / d.kill()         send a signal / SIGKILL
  d.wait(timeout)                  exit status, failing if it does not exit in time
  d.stop_clean(timeout=60)         SIGTERM: fail unless it exits 0 with no sanitizer report
  d.stop()                         make sure it is gone (for finally: blocks)

  with pl.Session("name", notify=False) as s:   one test's scaffold: s.env (a fresh Env),
                                   s.notify (a Notify when asked for, else None), and
                                   s.start(*args, **kw) → a Daemon (as pl.Daemon, with
                                   notify=s.notify unless given).  On leaving, every daemon
                                   it started is stopped (SIGKILL if still running), the
                                   notify socket closed and env removed; when the block
                                   failed, each daemon's last log lines go to stderr first
  pl.show_logs(daemons, n=40)      each daemon's last n log lines to stderr
  pl.hooks_built()                 built with -DPL_TEST_HOOKS=ON (the PL_TEST_CRASH hook)
  n = pl.Notify(env)               AF_UNIX datagram socket in env.root; n.path for
                                   NOTIFY_SOCKET; n.messages: list of dicts, one per
                                   datagram ({"READY": "1", …}), in arrival order
  n.wait(pred, timeout, what, start=0)  first message index >= start with pred(msg)
  n.close()

  pl.free_port() / pl.can_connect(port)   a free 127.0.0.1 port / is something listening
  ng = pl.Nginx(root, www, extra="", tls=None)  Debian's nginx serving www/ on 127.0.0.1,
                                   one process in its own session (SIGKILL takes it whole);
                                   extra is pasted into the server block; tls=(cert, key)
                                   serves https;
                                   ng.start(port=None) → port (same port on restart),
                                   ng.kill(); chmod root 0755 first (workers run as nobody)

  pl.main([(name, fn), …])         run the test functions in order, print "--- ok NAME (T s)",
                                   turn the first Failure into "FAIL: NAME: …" and exit 1
"""
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

BIN = os.environ.get("PIPELINED", "")
SRCDIR = os.environ.get("PL_SRCDIR",
                        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("PL_BUILDDIR", "")
SANITIZE = os.environ.get("PL_SANITIZE", "")


class Failure(Exception):
    pass


def scaled(n, under_sanitizer):
    return under_sanitizer if SANITIZE else n


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def skip(reason):
    """The one way out for a test this environment cannot run (see the rule
    in tests/lib/common.sh): exit 77, ctest's SKIP_RETURN_CODE, so it reads
    "Skipped" and never "Passed"; a failure under PL_REQUIRE_ALL=1."""
    print("SKIP: " + reason, flush=True)
    if os.environ.get("PL_REQUIRE_ALL") == "1":
        fail("PL_REQUIRE_ALL=1: every test must run on this machine (PL_REQUIRE_ALL=0 allows skips)")
    sys.exit(77)


def _probe(name):
    """Run the shell probe pl_cannot_NAME of tests/lib/common.sh: its reason,
    or "" when the capability is there."""
    lib = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "common.sh")
    p = run(["/bin/bash", "-c", '. "$1" && pl_cannot_' + name, "probe", lib], timeout=60)
    why = p.stdout.strip()
    if p.returncode == 1 and not why:
        return ""
    if p.returncode == 0 and why:
        return why
    raise Failure("probe pl_cannot_%s: exit %d, output %r, errors %r"
                  % (name, p.returncode, why, p.stderr.strip()))


def cannot_unshare_mount():
    return _probe("unshare_mount")


def cannot_unshare_net():
    return _probe("unshare_net")


def note(msg):
    print("--- " + msg, flush=True)


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def wait_for(fn, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(interval)


def run(args, timeout=30, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def run_on_pty(args, timeout, columns=80):
    """Run args with stdin/stdout/stderr on a new pty; return (rc, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    p = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            p.kill()
            p.wait()
            raise Failure("%s on a pty did not finish in %gs: %r" % (args, timeout, out[-500:]))
        r, _, _ = select.select([master], [], [], min(left, 0.5))
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:     # EIO: every slave end closed, the child is gone
                chunk = b""
            if not chunk:
                break
            out += chunk
    os.close(master)
    return p.wait(10), out.decode("utf-8", "replace")


def make_image(path, w=64, h=48, kind="noise"):
    """A w×h 3-band uchar image; the format follows path's extension."""
    tmp = path + ".v"
    if kind == "noise":
        gen = ["vips", "gaussnoise", tmp, str(w), str(h), "--mean", "128", "--sigma", "40"]
    elif kind == "zone":
        gen = ["vips", "zone", tmp, str(w), str(h)]
    else:
        gen = ["vips", "sines", tmp, str(w), str(h), "--hfreq", "3", "--vfreq", "2"]
    lin = tmp + ".l.v"
    for cmd in (gen, ["vips", "linear", tmp, lin, "100 60 30", "110 90 60", "--uchar"],
                ["vips", "copy", lin, path]):
        p = run(cmd, timeout=60)
        if p.returncode != 0:
            raise Failure("%s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    for f in (tmp, lin):
        os.unlink(f)
    return path



def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Nginx:
    """Debian's nginx as one process (master_process off) in its own
    session, so that SIGKILL takes it down whole, on a port that survives
    restarts.  Readiness is awaited by connecting.  tls=(cert, key) serves
    https instead of http."""

    def __init__(self, root, www, extra="", tls=None):
        self.root, self.www, self.extra, self.port, self.proc = root, www, extra, None, None
        self.tls = tls

    def start(self, port=None):
        for _ in range(5):
            self.port = port or free_port()
            conf = os.path.join(self.root, "nginx.conf")
            r = self.root
            ssl = (" ssl; ssl_certificate %s; ssl_certificate_key %s" % self.tls
                   if self.tls else "")
            with open(conf, "w") as f:
                f.write(f"""daemon off; master_process off;
pid {r}/nginx.pid; error_log {r}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {r}/ngx-body; proxy_temp_path {r}/ngx-proxy;
  fastcgi_temp_path {r}/ngx-fcgi; uwsgi_temp_path {r}/ngx-uwsgi; scgi_temp_path {r}/ngx-scgi;
  types {{ image/jpeg jpg; image/png png; }}
  server {{ listen 127.0.0.1:{self.port}{ssl}; root {self.www};
    {self.extra} }}
}}
""")
            self.proc = subprocess.Popen(["nginx", "-q", "-c", conf, "-p", r],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         start_new_session=True)
            end = time.monotonic() + 10
            while time.monotonic() < end and self.proc.poll() is None:
                if can_connect(self.port):
                    return self.port
                time.sleep(0.01)
            self.kill()
            if port:
                break       # the port must stay the same: no other
        fail(f"nginx did not start (port {port or 'any'})")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait()
        self.proc = None

def check_lines_once(records, n, what="result"):
    lines = [r.get("line") for r in records]
    dup = sorted({x for x in lines if lines.count(x) > 1}) if len(set(lines)) != len(lines) else []
    check(not dup, "%s: lines recorded more than once: %s" % (what, dup[:20]))
    missing = sorted(set(range(1, n + 1)) - set(lines))
    check(not missing, "%s: lines never recorded (%d): %s" % (what, len(missing), missing[:20]))
    extra = sorted(set(lines) - set(range(1, n + 1)), key=str)
    check(not extra, "%s: unexpected line numbers: %s" % (what, extra[:20]))
    bad = [r for r in records if r.get("status") != "ok"]
    check(not bad, "%s: %d items not ok, first: %s" % (what, len(bad), bad[:1]))


class Env:
    FOLDERS = ("new", "cur", "done", "failed")

    def __init__(self, name):
        self.root = tempfile.mkdtemp(prefix="pl-%s-" % name)
        self.images = os.path.join(self.root, "images")
        self.spool = os.path.join(self.root, "spool")
        self.out = os.path.join(self.root, "out")
        self.run = os.path.join(self.root, "run")
        self.conf = os.path.join(self.root, "pipeline.conf")
        for d in (self.images, self.spool, self.out, os.path.join(self.spool, "tmp"),
                  os.path.join(self.spool, "new")):
            os.makedirs(d, exist_ok=True)
        self._sets = {}

    def cleanup(self):
        if os.environ.get("PL_KEEP"):
            note("kept " + self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def write_config(self, workers=(1, 1, 1), queues=(16, 16, 16), log_level="info",
                     variants=None, extra_top="", extra_download=""):
        if variants is None:
            variants = ('{ name = "thumb"; width = 32; height = 32; fit = "inside"; '
                        'format = "jpeg"; quality = 70; }')
        text = """# written by pltest.py
spool = "%(spool)s";
runtime = "%(run)s";
log_level = "%(log_level)s";
%(extra_top)s
download = {
  workers = %(w0)d;
  queue = %(q0)d;
  protocols = [ "file" ];
  file_root = "%(images)s";
  retries = 0;
%(extra_download)s
};

resize = {
  workers = %(w1)d;
  queue = %(q1)d;
  variants = ( %(variants)s );
};

upload = {
  workers = %(w2)d;
  queue = %(q2)d;
  url = "file://%(out)s/{name}-{variant}.{ext}";
};
""" % dict(spool=self.spool, run=self.run, log_level=log_level, extra_top=extra_top,
           images=self.images, out=self.out, variants=variants, extra_download=extra_download,
           w0=workers[0], w1=workers[1], w2=workers[2], q0=queues[0], q1=queues[1], q2=queues[2])
        self.write_file(self.conf, text)
        return text

    @staticmethod
    def write_file(path, text):
        tmp = path + ".tmp~"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)

    def image_set(self, n=4, w=64, h=48, ext="jpg"):
        key = (n, w, h, ext)
        if key not in self._sets:
            kinds = ("noise", "zone", "sines")
            self._sets[key] = [
                make_image(os.path.join(self.images, "img%dx%d-%d.%s" % (w, h, i, ext)), w, h,
                           kinds[i % 3]) for i in range(n)]
        return self._sets[key]

    @staticmethod
    def items(count, images):
        return ["file://%s item%05d" % (images[i % len(images)], i + 1) for i in range(count)]

    def submit(self, job, lines, tmp=None):
        """Write job's lines in tmp/ (or in the file tmp given) and move it into new/."""
        tmp = tmp or os.path.join(self.spool, "tmp", job)
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        dst = os.path.join(self.spool, "new", job)
        os.rename(tmp, dst)
        return dst

    def where(self, job):
        for f in self.FOLDERS:
            if os.path.exists(os.path.join(self.spool, f, job)):
                return f
        return None

    def records(self, job, folder=None):
        folder = folder or self.where(job)
        if folder is None:
            raise Failure("job %s is in none of %s" % (job, self.FOLDERS))
        path = os.path.join(self.spool, folder, job + ".result")
        if not os.path.exists(path):
            return []
        out = []
        with open(path) as f:
            for i, line in enumerate(f, 1):
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise Failure("%s:%d: not JSON (%s): %r" % (path, i, e, line))
        return out

    def status(self):
        path = os.path.join(self.run, "status.json")
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def outputs(self):
        return sorted(os.listdir(self.out))

    def temp_outputs(self):
        return [f for f in self.outputs() if f.startswith(".")]


class Daemon:
    def __init__(self, env, *args, notify=None, extra_env=None, unset=("NOTIFY_SOCKET",),
                 prefix=()):
        e = dict(os.environ)
        for k in unset:
            e.pop(k, None)
        if notify is not None:
            e["NOTIFY_SOCKET"] = notify.path
        e.update(extra_env or {})
        self.cmd = list(prefix) + [BIN, "-c", env.conf] + list(args)
        self.lines = []
        self._cv = threading.Condition()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=e, text=True, errors="replace")
        self._log = open(os.path.join(env.root, "daemon-%d.log" % self.proc.pid), "w")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            self._log.write(line + "\n")
            with self._cv:
                self.lines.append(line)
                self._cv.notify_all()
        self._log.close()

    def wait_line(self, regex, timeout, start=0):
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self._cv:
            i = start
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return i, m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("timed out after %gs waiting for a log line /%s/; last lines:\n  %s"
                                  % (timeout, regex, "\n  ".join(self.lines[-15:])))
                self._cv.wait(min(left, 0.2))

    def matches(self, regex, start=0):
        """The match of regex in each log line (from line start on) that has one."""
        rx = re.compile(regex)
        with self._cv:
            return [m for m in map(rx.search, self.lines[start:]) if m]

    def count(self, regex, start=0):
        return len(self.matches(regex, start))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        self.proc.kill()

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure("pipelined did not exit within %gs; last lines:\n  %s"
                          % (timeout, "\n  ".join(self.lines[-15:])))
        self._reader.join(10)
        return rc

    def stop_clean(self, timeout=60):
        """A graceful stop: exit 0, and under a sanitizer no report (leaks
        included)."""
        self.signal(signal.SIGTERM)
        check(self.wait(timeout) == 0, "exit status after SIGTERM")
        check(self.count(r"AddressSanitizer|LeakSanitizer|runtime error") == 0,
              "sanitizer report")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)


class Notify:
    def __init__(self, env):
        self.path = os.path.join(env.root, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.raw = []
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self):
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            text = data.decode("utf-8", "replace")
            msg = {}
            for kv in text.split("\n"):
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    msg[k] = v
            with self._cv:
                self.raw.append(text)
                self.messages.append(msg)
                self._cv.notify_all()

    def wait(self, pred, timeout, what, start=0):
        deadline = time.monotonic() + timeout
        with self._cv:
            i = start
            while True:
                while i < len(self.messages):
                    if pred(self.messages[i]):
                        return i
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("timed out after %gs waiting for notify %s; got:\n  %s"
                                  % (timeout, what, "\n  ".join(repr(r) for r in self.raw[-15:])))
                self._cv.wait(min(left, 0.2))

    def close(self):
        self._closed = True
        self._thread.join(5)
        self.sock.close()


def hooks_built():
    """The daemon was built with its test-only fault hooks (PL_TEST_CRASH)."""
    try:
        with open(os.path.join(BUILDDIR, "CMakeCache.txt")) as f:
            return "PL_TEST_HOOKS:BOOL=ON" in f.read()
    except OSError:
        return False


def show_logs(daemons, n=40):
    """The last n log lines of each daemon to stderr: after a failure, what
    the daemons said is what tells why."""
    for d in daemons:
        print("--- log of pid %d (%s), last %d of %d lines:\n  %s"
              % (d.proc.pid, " ".join(d.cmd[1:]), min(n, len(d.lines)), len(d.lines),
                 "\n  ".join(d.lines[-n:])), file=sys.stderr, flush=True)


class Session:
    """The scaffold every daemon test repeats: a tree, maybe a notify
    socket, daemons started on it, and — whatever happens — every daemon
    gone and the tree removed afterwards, with the daemons' logs shown when
    the test failed (a failure message alone rarely says why)."""

    def __init__(self, name, notify=False):
        self.env = Env(name)
        self.notify = None
        self.daemons = []
        try:
            self.notify = Notify(self.env) if notify else None
        except BaseException:
            self.env.cleanup()
            raise

    def start(self, *args, **kw):
        if self.notify is not None:
            kw.setdefault("notify", self.notify)
        d = Daemon(self.env, *args, **kw)
        self.daemons.append(d)
        return d

    def __enter__(self):
        return self

    def __exit__(self, etype, evalue, tb):
        for d in self.daemons:
            d.stop()
        if etype is not None:
            show_logs(self.daemons)
        if self.notify is not None:
            self.notify.close()
        self.env.cleanup()
        return False


def main(tests):
    """Run [(name, fn)] in order; each fn takes no argument.  Prints timings;
    exits 1 at the first Failure.  A test may call skip() for the whole file."""
    if not BIN or not os.access(BIN, os.X_OK):
        fail("PIPELINED is not an executable: %r" % BIN)
    t0 = time.monotonic()
    for name, fn in tests:
        t = time.monotonic()
        try:
            fn()
        except Failure as e:
            fail("%s: %s" % (name, e))
        note("ok %s (%.1f s)" % (name, time.monotonic() - t))
    note("all passed in %.1f s" % (time.monotonic() - t0))

#!/usr/bin/python3
"""it_faults.py — the daemon under faults of its peers.

Four scenarios, each against a long-running daemon (never --once), which
must survive every one of them and stop cleanly on SIGTERM (exit 0):

  full disk     the file:// target is a 2 MiB tmpfs in a private mount
                namespace (the scenario runs under `unshare -m`; root only:
                where pl.cannot_unshare_mount() says why not, the other three
                run and the test then skips, exit 77, naming the reason).
                Filled up, uploads fail with ENOSPC after their retries; a
                nearly full disk stores some outputs and not others; once the
                filler is gone new jobs succeed.  A sampler watches the
                output tree throughout: no temp file, no partial file, ever.
  nginx killed  the source server is SIGKILLed mid-run (transfers in
                flight: nginx sends at a limited rate) and restarted a second
                later on the same port: items are retried, and only those
                that spent every retry fail, with a connection reason.
  resets        a server that answers every connection with an RST: the item
                fails with a connection reason after exactly retries+1
                connections; the nginx items of the same job succeed.
  slow loris    a server that sends one byte a second: download's low-speed
                timeout (100 bytes/s for 2 s) catches it, the reason says so.

Graceful and fast stop under load are tests/it_daemon.py's.  Standalone on
purpose: the helpers it needs live in this file.  About 40 s.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402
from pltest import fail  # noqa: E402

DAEMON = os.environ.get("PIPELINED", "build/pipelined")
SLOW = 3 if os.environ.get("PL_SANITIZE") else 1     # timeouts under ASan
T0 = float(os.environ.get("PL_FAULTS_T0", time.monotonic()))   # one clock across the namespace
CONNECTION_REASON = re.compile(r"connection (refused|failed)|cannot connect|reset", re.I)


def log(msg):
    print(f"[{time.monotonic() - T0:7.2f}s] {msg}", flush=True)



def wait_for(cond, timeout, what, step=0.02):
    return pl.wait_for(cond, timeout * SLOW, what, step)




def whole_image(path):
    """The file is whole: its format's start and end markers are there."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".jpg"):
        return data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    if path.endswith(".png"):
        return data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND"
    return False


def make_images(dest):
    work = tempfile.mkdtemp(dir=os.path.dirname(dest))
    names = []
    for i, (name, w, h) in enumerate([("a.jpg", 800, 600), ("b.png", 240, 320),
                                       ("c.jpg", 600, 600), ("d.png", 400, 300)]):
        g, l = os.path.join(work, "g.v"), os.path.join(work, "l.v")
        subprocess.run(["vips", "gaussnoise", g, str(w), str(h), "--sigma", "50"], check=True)
        subprocess.run(["vips", "linear", g, l, "1 0.7 0.4", f"{10 * i} 30 60", "--uchar"],
                       check=True)
        subprocess.run(["vips", "copy", l, os.path.join(dest, name)], check=True)
        names.append(name)
    shutil.rmtree(work)
    return names


class TinyServer:
    """A TCP server with a per-connection behaviour, in threads."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.handler = handler
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.handler, args=(c, self.stop), daemon=True).start()

    def close(self):
        self.stop.set()
        self.sock.close()


def rst_handler(c, stop):
    """Abortive close: SO_LINGER 0 turns close() into an RST."""
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def loris_handler(c, stop):
    """A 200 with a long body, sent one byte a second."""
    try:
        c.settimeout(5)
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                return
            req += d
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
        while not stop.wait(1.0):
            c.sendall(b"x")
    except OSError:
        pass
    finally:
        c.close()


def write_config(path, spool, out, download, upload="", level="info"):
    with open(path, "w") as f:
        f.write(f"""spool = "{spool}";
runtime = "{os.path.dirname(path)}/run";
log_level = "{level}";
download = {{ workers = 3; protocols = [ "http" ]; allow_private = true; {download} }};
resize = {{ workers = 2; variants = (
  {{ name = "thumb"; width = 160; height = 160; fit = "inside"; format = "jpeg"; quality = 85; }},
  {{ name = "mini"; width = 64; height = 64; fit = "cover"; format = "png"; }} ); }};
upload = {{ workers = 3; url = "file://{out}/{{job}}/{{name}}-{{variant}}.{{ext}}"; {upload} }};
""")


class Daemon:
    def __init__(self, conf, logpath):
        self.logpath = logpath
        self.logf = open(logpath, "ab")
        self.proc = subprocess.Popen([DAEMON, "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf)

    def alive(self, when):
        if self.proc.poll() is not None:
            fail(f"the daemon died {when} (status {self.proc.returncode}); see {self.logpath}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("the daemon did not stop on SIGTERM within 60 s")
        self.logf.close()
        if rc != 0:
            fail(f"the daemon exited {rc} on SIGTERM, want 0; see {self.logpath}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")


def make_spool(spool):
    """The spool's folders, made here so that jobs can go in before the
    daemon has started."""
    for sub in ("", "tmp", "new", "cur", "done", "failed"):
        os.mkdir(os.path.join(spool, sub))


def submit(spool, job, lines):
    tmp = os.path.join(spool, "tmp", job)
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(tmp, os.path.join(spool, "new", job))


def await_job(spool, job, timeout, daemon):
    """Wait for the job to finish; its folder and its records by line."""
    def finished():
        daemon.alive(f"while job {job} ran")
        for where in ("done", "failed"):
            if os.path.exists(os.path.join(spool, where, job)):
                return where
        return None
    where = wait_for(finished, timeout, f"job {job} to finish")
    recs = {}
    with open(os.path.join(spool, where, job + ".result")) as f:
        for raw in f:
            rec = json.loads(raw)
            if rec["line"] in recs:
                fail(f"job {job}: line {rec['line']} recorded twice")
            recs[rec["line"]] = rec
    return where, recs


def check_outputs(rec, where):
    for o in rec["outputs"]:
        path = o[len("file://"):] if o.startswith("file://") else o
        if not os.path.isfile(path) or not whole_image(path):
            fail(f"{where}: output {path} of line {rec['line']} is missing or not whole")
    if rec["status"] == "ok" and len(rec["outputs"]) != 2:
        fail(f"{where}: ok item of line {rec['line']} has {len(rec['outputs'])} outputs")


# ---- full disk (runs inside a private mount namespace) ----

class Sampler(threading.Thread):
    """Looks at the output tree over and over: every visible file must be a
    whole image with a final name."""

    def __init__(self, top):
        super().__init__(daemon=True)
        self.top, self.stop, self.bad, self.looks = top, threading.Event(), None, 0

    def run(self):
        while not self.stop.is_set() and not self.bad:
            for d, _, files in os.walk(self.top):
                for n in files:
                    p = os.path.join(d, n)
                    try:
                        ok = not n.startswith(".") and whole_image(p)
                    except FileNotFoundError:
                        continue
                    if not ok:
                        self.bad = p
            self.looks += 1
            time.sleep(0.005)


def fill(path, leave=0):
    """Write a file until the filesystem is full, then give back `leave`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (65536, 4096, 1):       # down to the last byte that fits
            try:
                while os.write(fd, b"\0" * size) > 0:
                    pass
            except OSError as e:
                if e.errno != 28:           # ENOSPC
                    raise
    finally:
        os.close(fd)
    if leave:
        os.truncate(path, max(0, os.path.getsize(path) - leave))


def full_disk_inner(root, port, images):
    mnt = os.path.join(root, "full")
    os.makedirs(mnt, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:       # the probe said this works: not a skip
        fail(f"full disk: cannot mount a tmpfs on {mnt}: {r.stderr.strip()}")
    spool, out = os.path.join(root, "fspool"), os.path.join(mnt, "out")
    make_spool(spool)
    os.mkdir(out)
    conf = os.path.join(root, "full.conf")
    write_config(conf, spool, out, "retries = 2; backoff = 0.1;",
                 "retries = 2; backoff = 0.2;")
    filler = os.path.join(mnt, "filler")
    fill(filler)
    items = [f"http://127.0.0.1:{port}/{images[i % len(images)]} i{i}" for i in range(12)]
    sampler = Sampler(out)
    sampler.start()
    d = Daemon(conf, os.path.join(root, "full.log"))
    try:
        # 1. full: every item fails naming ENOSPC, after retries
        submit(spool, "full1", items)
        where, recs = await_job(spool, "full1", 60, d)
        if where != "failed" or len(recs) != len(items):
            fail(f"full disk: job full1 in {where}/ with {len(recs)} records")
        for rec in recs.values():
            if rec["status"] != "failed" or "No space left on device" not in rec["error"]:
                fail(f"full disk: want an ENOSPC failure, got {rec}")
        retries = len(re.findall(r"upload.*retry \d/2 in \d+ ms: .*No space left", d.text()))
        if retries < len(items):
            fail(f"full disk: only {retries} upload retries logged for {len(items)} items")
        log(f"full disk: 12/12 items failed with ENOSPC after {retries} upload retries")
        # 2. nearly full: some outputs fit, some do not; none is ever partial
        os.unlink(filler)
        fill(filler, leave=48 * 1024)
        submit(spool, "full2", items)
        where, recs = await_job(spool, "full2", 60, d)
        ok = sum(r["status"] == "ok" for r in recs.values())
        if len(recs) != len(items) or where != ("done" if ok == len(items) else "failed"):
            fail(f"nearly full disk: job full2 in {where}/ with {len(recs)} records, {ok} ok")
        for rec in recs.values():
            check_outputs(rec, "nearly full disk")
            if rec["status"] != "ok" and "No space left on device" not in rec["error"]:
                fail(f"nearly full disk: want ok or ENOSPC, got {rec}")
        log(f"nearly full disk (48 KiB free): {ok} ok, {len(recs) - ok} failed with ENOSPC")
        # 3. space back: new jobs succeed, and the daemon never stopped
        os.unlink(filler)
        submit(spool, "full3", items)
        where, recs = await_job(spool, "full3", 60, d)
        if where != "done" or len(recs) != len(items):
            fail(f"after freeing space: job full3 in {where}/ with {len(recs)} records")
        for rec in recs.values():
            check_outputs(rec, "space freed")
        d.alive("after the disk was freed")
        d.stop()
    finally:
        d.kill()
        sampler.stop.set()
        sampler.join()
    if sampler.bad:
        fail(f"a temp or partial file was visible in the output tree: {sampler.bad}")
    log(f"space freed: 12/12 ok; the sampler looked {sampler.looks} times, "
        "never saw a temp or partial file")


def full_disk(root, port, images):
    r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                        os.path.abspath(__file__), "--full-disk", root, str(port)] + images,
                       env=dict(os.environ, PL_FAULTS_T0=str(T0)))
    if r.returncode != 0:
        fail("the full-disk scenario failed (above)")


# ---- nginx killed, resets, slow loris ----

def nginx_killed(root, nginx, images):
    spool, out = os.path.join(root, "kspool"), os.path.join(root, "kout")
    make_spool(spool)
    conf = os.path.join(root, "kill.conf")
    write_config(conf, spool, out, "retries = 4; backoff = 0.5;", level="debug")
    port = nginx.port
    items = [f"http://127.0.0.1:{port}/slow/{images[i % len(images)]} k{i}" for i in range(9)]
    d = Daemon(conf, os.path.join(root, "kill.log"))
    try:
        submit(spool, "k", items)
        # mid-run: some items recorded, the rest downloading at limit_rate
        res = os.path.join(spool, "cur", "k.result")
        wait_for(lambda: os.path.exists(res) and os.path.getsize(res) > 0, 60,
                 "the first record of job k")
        nginx.kill()
        log("nginx SIGKILLed mid-run")
        time.sleep(1.0)     # the outage itself, not a synchronisation
        d.alive("while nginx was down")
        nginx.start(port)
        log(f"nginx back on port {port}")
        where, recs = await_job(spool, "k", 120, d)
        d.alive("after nginx came back")
        text = d.text()
        retry = r"download: attempt \d: {}[^\n]*; retry in"
        cut = len(re.findall(retry.format("connection failed"), text))
        refused = len(re.findall(retry.format("(connection refused|cannot connect)"), text))
        conn_retries = cut + refused
        if len(recs) != len(items):
            fail(f"nginx killed: {len(recs)} records for {len(items)} items")
        failed = [r for r in recs.values() if r["status"] != "ok"]
        for rec in recs.values():
            check_outputs(rec, "nginx killed")
        for rec in failed:
            if not CONNECTION_REASON.search(rec["error"]) or "after 5 attempts" not in rec["error"]:
                fail(f"nginx killed: a failure that is not an exhausted connection retry: {rec}")
        if cut == 0:
            fail("nginx killed: no transfer in flight was cut and retried")
        if (where == "done") != (not failed):
            fail(f"nginx killed: job in {where}/ with {len(failed)} failed items")
        log(f"nginx killed: {len(items) - len(failed)} ok, {len(failed)} failed after 5 "
            f"attempts; retried {cut} cut transfers and {refused} refused connections")
        d.stop()
    finally:
        d.kill()


def resets_and_loris(root, nginx, images):
    spool, out = os.path.join(root, "rspool"), os.path.join(root, "rout")
    make_spool(spool)
    conf = os.path.join(root, "reset.conf")
    write_config(conf, spool, out, "retries = 2; backoff = 0.2; low_speed_limit = 100; "
                 "low_speed_time = 2.0;")
    rst, loris = TinyServer(rst_handler), TinyServer(loris_handler)
    good = [f"http://127.0.0.1:{nginx.port}/{images[i % len(images)]} g{i}" for i in range(6)]
    d = Daemon(conf, os.path.join(root, "reset.log"))
    try:
        t = time.monotonic()
        submit(spool, "rst", good[:3] + [f"http://127.0.0.1:{rst.port}/img.jpg"] + good[3:])
        submit(spool, "loris", good[:3] + [f"http://127.0.0.1:{loris.port}/img.jpg"] + good[3:])
        for job, server in (("rst", rst), ("loris", loris)):
            where, recs = await_job(spool, job, 60, d)
            if where != "failed" or len(recs) != 7:
                fail(f"{job}: job in {where}/ with {len(recs)} records, want failed/ and 7")
            bad = recs[4]
            for line, rec in recs.items():
                if line != 4 and rec["status"] != "ok":
                    fail(f"{job}: a good item failed: {rec}")
                check_outputs(rec, job)
            if bad["status"] != "failed":
                fail(f"{job}: the bad item did not fail: {bad}")
            if job == "rst":
                if not CONNECTION_REASON.search(bad["error"]) or "after 3 attempts" not in bad["error"]:
                    fail(f"resets: want a connection reason after 3 attempts: {bad['error']}")
                if server.accepted != 3:
                    fail(f"resets: {server.accepted} connections, want 3 (retries + 1)")
            elif "too slow: under 100 bytes/s for 2.0 s" not in bad["error"]:
                fail(f"slow loris: want the low-speed timeout as the reason: {bad['error']}")
            log(f"{job}: 6 ok; the bad item failed after {time.monotonic() - t:.1f} s, "
                f"{server.accepted} connections: {bad['error']}")
        d.alive("after the resets and the slow loris")
        d.stop()
    finally:
        d.kill()
        rst.close()
        loris.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--full-disk":
        full_disk_inner(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
        return
    no_full_disk = pl.cannot_unshare_mount()
    root = tempfile.mkdtemp(prefix="pltest-faults-", dir=os.environ.get("TMPDIR", "/tmp"))
    os.chmod(root, 0o755)       # nginx runs as nobody
    www = os.path.join(root, "www")
    os.mkdir(www)
    os.chmod(www, 0o755)
    # /slow/ serves the same files at a limited rate
    nginx = pl.Nginx(root, www, extra=f"location /slow/ {{ alias {www}/; limit_rate 120k; }}")
    ok = False
    try:
        images = make_images(www)
        nginx.start()
        log(f"nginx on port {nginx.port}")
        if no_full_disk:
            log(f"full disk: not run, {no_full_disk}")
        else:
            full_disk(root, nginx.port, images)
        nginx_killed(root, nginx, images)
        resets_and_loris(root, nginx, images)
        ok = True
    finally:
        nginx.kill()
        if ok or os.environ.get("PL_KEEP") is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    if no_full_disk:
        pl.skip(f"full disk scenario not run ({no_full_disk}); the other three passed")
    log("PASS")


if __name__ == "__main__":
    main()

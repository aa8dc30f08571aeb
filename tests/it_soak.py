#!/usr/bin/python3
"""it_soak.py — memory over a long run: RSS must not grow with the items done.

20,000 items (five jobs of 4,000 lines, file:// sources: a few tiny 64x64
images, so the run is about the daemon's own bookkeeping rather than
pixels) go through one long-running daemon (not --once), which is stopped
with SIGTERM at the end and must exit 0 with every item recorded.

VmRSS is sampled every 0.5 s.  The criterion, after a warm-up (the first
20% of the items: libvips' and glibc's caches and arenas fill, the worker
buffers reach their working size):

    max(RSS in the last third) <= max(RSS in the first third) + max(10%, 4 MiB)

Why max and thirds: RSS is a sawtooth (glibc gives memory back in bursts,
libvips' operation cache churns), so single samples and means of short
windows are noisy, while the peak of a third of the run is stable from run
to run.  A leak of 1 KiB per item (a lost item with its strings, a result
record) adds over 5 MiB between the two thirds and fails; the allowance
absorbs allocator noise.  Also printed: the figures, so that runs with
MALLOC_ARENA_MAX=2 (PL_SOAK_ENV="MALLOC_ARENA_MAX=2") can be compared.

Not run under a sanitizer (ASan's allocator makes RSS meaningless):
tests/CMakeLists.txt registers it disabled in such a build, and run by hand
there it skips (exit 77).  About a minute in a normal build.  Standalone:
the helpers live in this file; only the skip rule comes from pltest.py.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

DAEMON = os.environ.get("PIPELINED", "build/pipelined")
JOBS = 5
LINES = int(os.environ.get("PL_SOAK_ITEMS", "20000")) // JOBS   # fewer to try it out
TOTAL = JOBS * LINES
DEADLINE = 330          # s; ctest gives the test 400
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.2f}s] {msg}", flush=True)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def records(spool):
    n = 0
    for sub in ("cur", "done", "failed"):
        d = os.path.join(spool, sub)
        for name in os.listdir(d):
            if name.endswith(".result"):
                try:
                    with open(os.path.join(d, name), "rb") as f:
                        n += f.read().count(b"\n")
                except FileNotFoundError:
                    pass        # moved to done/ meanwhile: counted next time
    return n


def main():
    if os.environ.get("PL_SANITIZE"):
        pl.skip(f"RSS means nothing under a sanitizer (PL_SANITIZE={os.environ['PL_SANITIZE']})")
    root = tempfile.mkdtemp(prefix="pltest-soak-", dir=os.environ.get("TMPDIR", "/tmp"))
    # Outputs are fsync'd twice each: on a tmpfs that costs nothing, and the
    # soak is about memory, not about this disk.
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else root
    outroot = tempfile.mkdtemp(prefix="pltest-soak-out-", dir=shm)
    images, spool, out = (os.path.join(root, d) for d in ("images", "spool", "out"))
    os.mkdir(images)
    for sub in ("", "tmp", "new", "cur", "done", "failed"):
        os.mkdir(os.path.join(spool, sub))
    daemon = None
    try:
        srcs = []
        for i, name in enumerate(("a.jpg", "b.png", "c.jpg", "d.png")):
            v = os.path.join(root, "g.v")
            subprocess.run(["vips", "gaussnoise", v, "64", "64", "--mean", str(80 + 30 * i)],
                           check=True)
            subprocess.run(["vips", "copy", v, os.path.join(images, name)], check=True)
            srcs.append(os.path.join(images, name))
        conf = os.path.join(root, "pipeline.conf")
        with open(conf, "w") as f:
            f.write(f"""spool = "{spool}";
runtime = "{root}/run";
log_level = "notice";
download = {{ workers = 2; protocols = [ "file" ]; file_root = "{images}"; }};
resize = {{ workers = 2; variants = (
  {{ name = "t"; width = 32; height = 32; fit = "inside"; format = "jpeg"; quality = 70; }} ); }};
upload = {{ workers = 2; url = "file://{outroot}/{{job}}/{{name}}.{{ext}}"; }};
""")
        for j in range(JOBS):
            tmp = os.path.join(spool, "tmp", f"soak{j}")
            with open(tmp, "w") as f:
                for k in range(LINES):
                    f.write(f"file://{srcs[k % len(srcs)]} i{k}\n")
            os.rename(tmp, os.path.join(spool, "new", f"soak{j}"))

        env = dict(os.environ)
        for kv in os.environ.get("PL_SOAK_ENV", "").split():
            k, _, v = kv.partition("=")
            env[k] = v
        logf = open(os.path.join(root, "daemon.log"), "wb")
        daemon = subprocess.Popen([DAEMON, "-c", conf], stdin=subprocess.DEVNULL,
                                  stdout=logf, stderr=logf, env=env)
        samples = []            # (seconds, items recorded, RSS KiB)
        start = time.monotonic()
        deadline = start + DEADLINE
        while True:
            if daemon.poll() is not None:
                fail(f"the daemon died (status {daemon.returncode}); see {root}/daemon.log")
            n = records(spool)
            samples.append((time.monotonic() - start, n, rss_kib(daemon.pid)))
            if n >= TOTAL:
                break
            if time.monotonic() > deadline:
                fail(f"only {n} of {TOTAL} items recorded after {DEADLINE} s")
            time.sleep(0.5)
        secs = samples[-1][0]
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=60)
        daemon = None
        logf.close()
        if rc != 0:
            fail(f"the daemon exited {rc} on SIGTERM, want 0")
        done = len([n for n in os.listdir(os.path.join(spool, "done")) if not n.endswith(".result")])
        if done != JOBS:
            fail(f"{done} of {JOBS} jobs in done/")

        warm = [s for s in samples if s[1] >= TOTAL * 0.2]
        if len(warm) < 9:
            fail(f"only {len(warm)} samples after the warm-up: too fast to judge")
        third = len(warm) // 3
        first, last = warm[:third], warm[-third:]
        first_max = max(s[2] for s in first)
        last_max = max(s[2] for s in last)
        allow = max(first_max // 10, 4096)
        peak = max(s[2] for s in samples)
        log(f"{TOTAL} items in {secs:.1f} s ({TOTAL / secs:.0f} items/s), {len(samples)} samples; "
            f"RSS KiB: at warm-up end {warm[0][2]}, max first third {first_max}, "
            f"max last third {last_max} ({last_max - first_max:+d}), peak {peak}, "
            f"allowance {allow}; env {os.environ.get('PL_SOAK_ENV', '(none)')}")
        if last_max > first_max + allow:
            fail(f"RSS climbs: last third peaks at {last_max} KiB, first third at {first_max} KiB")
        log("PASS")
    finally:
        if daemon and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(outroot, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""it_crash.py — crash safety: SIGKILL at any moment loses no item and repeats none.

A running daemon is SIGKILLed at random moments, each kill landing while it
is visibly working (the result files have grown since it was started), and
started again each time; at the end one --once run finishes the spool.  Then
every job must sit in done/ or failed/ next to a complete result file (each
line of the job recorded exactly once: a record written before a crash must
be skipped on resume, never repeated), every successful item must have all
of its outputs, whole and decodable, and no temporary file may be left in
the output tree or in the spool.

The sources are served by Debian's nginx on 127.0.0.1 (real HTTP, real
sockets cut by the kills); some lines are 404s, so jobs end in both done/
and failed/.  Standalone on purpose: the helpers it needs live in this file.

Budget: about a minute in a normal build; under a sanitizer (PL_SANITIZE)
it scales down to 30 jobs and 5 kills.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pltest import Nginx, fail, wait_for  # noqa: E402

DAEMON = os.environ.get("PIPELINED", "build/pipelined")
SANITIZE = os.environ.get("PL_SANITIZE", "")
JOBS, KILLS = (30, 5) if SANITIZE else (200, 20)
ITEMS_PER_JOB = 8
VARIANTS = (("thumb", "jpg"), ("mini", "png"))


def log(msg):
    print(f"[{time.monotonic() - T0:7.2f}s] {msg}", flush=True)



def make_images(dest):
    """A handful of distinct small sources, JPEG and PNG, 200-800 px."""
    specs = [("a.jpg", 800, 600), ("b.png", 200, 300), ("c.jpg", 640, 640),
             ("d.png", 500, 260), ("e.jpg", 300, 800), ("f.jpg", 420, 420)]
    work = tempfile.mkdtemp(dir=os.path.dirname(dest))
    for i, (name, w, h) in enumerate(specs):
        g, l = os.path.join(work, "g.v"), os.path.join(work, "l.v")
        subprocess.run(["vips", "gaussnoise", g, str(w), str(h), "--mean", str(60 + 20 * i),
                        "--sigma", "40"], check=True)
        subprocess.run(["vips", "linear", g, l, "1 0.8 0.5", f"{i * 10} 20 40", "--uchar"],
                       check=True)
        subprocess.run(["vips", "copy", l, os.path.join(dest, name)], check=True)
    shutil.rmtree(work)
    return [s[0] for s in specs]


def write_config(root, spool, out):
    conf = os.path.join(root, "pipeline.conf")
    with open(conf, "w") as f:
        f.write(f"""spool = "{spool}";
runtime = "{root}/run";
log_level = "info";
download = {{ workers = 3; protocols = [ "http" ]; allow_private = true;
  retries = 2; backoff = 0.1; connect_timeout = 5.0; timeout = 20.0; }};
resize = {{ workers = 2; variants = (
  {{ name = "thumb"; width = 160; height = 160; fit = "inside"; format = "jpeg"; quality = 80; }},
  {{ name = "mini"; width = 48; height = 48; fit = "cover"; format = "png"; }} ); }};
upload = {{ workers = 3; url = "file://{out}/{{job}}/{{name}}-{{variant}}.{{ext}}"; }};
""")
    return conf


def submit_jobs(spool, port, images, rng):
    """JOBS jobs, tmp/ → new/ as a producer must; returns {job: [(line, good)]}."""
    jobs = {}
    for j in range(JOBS):
        name = f"job{j:04d}"
        lines, items, lineno = [f"# crash test job {j}"], [], 1
        for k in range(ITEMS_PER_JOB):
            lineno += 1
            if rng.random() < 0.15:
                lines.append(f"http://127.0.0.1:{port}/missing/{j}-{k}.jpg")
                items.append((lineno, False))
            elif k % 2:
                lines.append(f"http://127.0.0.1:{port}/{rng.choice(images)} item{k}")
                items.append((lineno, True))
            else:       # a derived name: must come out the same on resume
                lines.append(f"http://127.0.0.1:{port}/{rng.choice(images)}")
                items.append((lineno, True))
        tmp = os.path.join(spool, "tmp", name)
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(tmp, os.path.join(spool, "new", name))
        jobs[name] = items
    return jobs


def record_bytes(spool):
    """Total size of every result file: grows with each record written."""
    total = 0
    for sub in ("cur", "done", "failed"):
        with os.scandir(os.path.join(spool, sub)) as it:
            for e in it:
                if e.name.endswith(".result"):
                    try:
                        total += e.stat().st_size
                    except FileNotFoundError:
                        pass    # moved meanwhile
    return total


def pending(spool):
    return os.listdir(os.path.join(spool, "new")) or \
        [n for n in os.listdir(os.path.join(spool, "cur")) if not n.endswith(".result")]


def whole_image(path):
    """The file ends as its format says a whole file ends."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".jpg"):
        return data[:2] == b"\xff\xd8" and data.rstrip(b"\0")[-2:] == b"\xff\xd9"
    if path.endswith(".png"):
        return data[:8] == b"\x89PNG\r\n\x1a\n" and data[-12:-8] == b"\0\0\0\0" and \
            data[-8:-4] == b"IEND"
    return False


def vipsheader_all(paths):
    for i in range(0, len(paths), 200):
        chunk = paths[i:i + 200]
        r = subprocess.run(["vipsheader"] + chunk, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"vipsheader cannot read some outputs: {r.stderr.strip()[:500]}")
        if len(r.stdout.splitlines()) != len(chunk):
            fail(f"vipsheader printed {len(r.stdout.splitlines())} headers for {len(chunk)} files")


def check_spool_empty(spool):
    for sub in ("tmp", "new", "cur"):
        left = os.listdir(os.path.join(spool, sub))
        if left:
            fail(f"{sub}/ not empty at the end: {sorted(left)[:10]}")


def check_results(spool, out, jobs):
    outputs = []
    for job, items in jobs.items():
        where = [s for s in ("done", "failed") if os.path.exists(os.path.join(spool, s, job))]
        if len(where) != 1:
            fail(f"job {job} is in {where or 'neither done/ nor failed/'}")
        res = os.path.join(spool, where[0], job + ".result")
        if not os.path.exists(res):
            fail(f"{where[0]}/{job} has no result file")
        with open(res) as f:
            text = f.read()
        if not text.endswith("\n"):
            fail(f"{res} ends with a torn record")
        seen = {}
        for n, raw in enumerate(text.splitlines(), 1):
            try:
                rec = json.loads(raw)
            except ValueError as e:
                fail(f"{res}:{n}: not JSON ({e}): {raw[:200]}")
            if rec["line"] in seen:
                fail(f"{res}: line {rec['line']} recorded twice (records {seen[rec['line']]} and {n})")
            seen[rec["line"]] = n
            good = dict(items).get(rec["line"])
            if good is None:
                fail(f"{res}:{n}: record for line {rec['line']}, which is not an item")
            if good:
                if rec["status"] != "ok":
                    fail(f"{res}:{n}: good item failed: {rec.get('error')}")
                if len(rec["outputs"]) != len(VARIANTS):
                    fail(f"{res}:{n}: {len(rec['outputs'])} outputs, want {len(VARIANTS)}")
                for o in rec["outputs"]:
                    path = o[len("file://"):] if o.startswith("file://") else o
                    if not os.path.isfile(path):
                        fail(f"{res}:{n}: output {path} does not exist")
                    if not whole_image(path):
                        fail(f"{res}:{n}: output {path} is not a whole image")
                    outputs.append(os.path.realpath(path))
            else:
                if rec["status"] != "failed" or "404" not in (rec.get("error") or ""):
                    fail(f"{res}:{n}: a 404 item should fail naming the 404: {raw[:300]}")
        missing = sorted(set(l for l, _ in items) - set(seen))
        if missing:
            fail(f"{res}: lines {missing} have no record")
        want = "done" if all(g for _, g in items) else "failed"
        if where[0] != want:
            fail(f"job {job} is in {where[0]}/, want {want}/")
    vipsheader_all(outputs)
    found = set()
    for d, _, files in os.walk(out):
        for name in files:
            p = os.path.realpath(os.path.join(d, name))
            if name.startswith("."):
                fail(f"temporary file left in the output tree: {p}")
            found.add(p)
    stray = found - set(outputs)
    if stray:
        fail(f"output files no record names: {sorted(stray)[:5]}")
    return len(outputs)


def main():
    global T0
    T0 = time.monotonic()
    seed = int(os.environ.get("PL_SEED", time.time_ns() % 1000000))
    rng = random.Random(seed)
    log(f"seed {seed} (PL_SEED to replay); {JOBS} jobs x {ITEMS_PER_JOB} items, {KILLS} kills")
    root = tempfile.mkdtemp(prefix="pltest-crash-", dir=os.environ.get("TMPDIR", "/tmp"))
    os.chmod(root, 0o755)      # nginx workers run as nobody
    www, spool, out = (os.path.join(root, d) for d in ("www", "spool", "out"))
    for d in (www, spool, out):
        os.mkdir(d)
    os.chmod(www, 0o755)
    nginx = None
    daemon = None
    errlog = open(os.path.join(root, "daemon.log"), "ab")
    ok = False
    try:
        images = make_images(www)
        nginx = Nginx(root, www)
        port = nginx.start()
        conf = write_config(root, spool, out)
        for sub in ("tmp", "new", "cur", "done", "failed"):
            os.mkdir(os.path.join(spool, sub))
        jobs = submit_jobs(spool, port, images, rng)
        log(f"nginx on port {port}; {len(jobs)} jobs submitted")

        kills = 0
        while kills < KILLS and pending(spool):
            before = record_bytes(spool)
            daemon = subprocess.Popen([DAEMON, "-c", conf], stdin=subprocess.DEVNULL,
                                      stdout=errlog, stderr=errlog)
            # Working, not just started: a record was written since the start.
            wait_for(lambda: record_bytes(spool) > before or not pending(spool) or
                     daemon.poll() is not None, 60, "the daemon to record something")
            if daemon.poll() is not None:
                fail(f"the daemon exited by itself with {daemon.returncode}; see {root}/daemon.log")
            if not pending(spool):
                break
            time.sleep(rng.uniform(0.0, 0.5))
            if daemon.poll() is not None:
                fail(f"the daemon exited by itself with {daemon.returncode}; see {root}/daemon.log")
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            daemon = None
            kills += 1
        left = len(os.listdir(os.path.join(spool, "new"))) + \
            len([n for n in os.listdir(os.path.join(spool, "cur")) if not n.endswith(".result")])
        log(f"{kills} kills mid-work; {left} jobs still unfinished; finishing with --once")
        if kills < KILLS:
            fail(f"only {kills} of {KILLS} kills landed before the work ran out")
        errlog.flush()
        r = subprocess.run([DAEMON, "-c", conf, "--once"], stdin=subprocess.DEVNULL,
                           stdout=errlog, stderr=errlog, timeout=300)
        if r.returncode != 1:   # 1: the 404 lines failed, as they must
            fail(f"--once exited {r.returncode}, want 1; see {root}/daemon.log")
        check_spool_empty(spool)
        n = check_results(spool, out, jobs)
        with open(os.path.join(root, "daemon.log"), "rb") as f:
            text = f.read().decode(errors="replace")
        torn = text.count("cutting a torn last record")
        bad = [l for l in text.splitlines() if l.startswith(("<0>", "<1>", "<2>", "<3>"))]
        if bad:
            fail(f"the daemon logged errors: {bad[:5]}")
        done = len(os.listdir(os.path.join(spool, "done"))) // 2
        failed = len(os.listdir(os.path.join(spool, "failed"))) // 2
        log(f"PASS: {done} jobs done, {failed} failed, {n} outputs whole; "
            f"{torn} torn records cut on resume")
        ok = True
    finally:
        if daemon and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if nginx:
            nginx.kill()
        errlog.close()
        if ok or os.environ.get("PL_KEEP") is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")


if __name__ == "__main__":
    main()

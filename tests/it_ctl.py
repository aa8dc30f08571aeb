"""it_ctl — pipelinectl(1) against a real daemon, as a producer uses it.

Each subcommand is run as a separate process on the spool of a running
pipelined: submit (from a file and from stdin, with --wait on a pipe and
on a pty), list, show (records and table), resubmit and status (from the
daemon's READY=1 on, and after a clean stop or a SIGKILL, and a
status.json that is not one: truncated, huge, a symlink, a FIFO); and the
input a producer gets wrong: a missing file, a URL list with bad lines
(each named FILE:LINE, nothing submitted, nothing left in tmp/), an empty
job, one endless line (judged in bounded memory, not copied to tmp/), a
job name that exists, an invalid name.  Permissions: a user the
spool's modes keep out gets exit 77 from every command; as root, the
daemon runs as a user of its own (setpriv, numeric ids, umask 0027 as in
the unit) and a producer whose only link to it is the daemon's group
submits, waits, lists, shows and reads the status, while an outsider
cannot.  Without root that last part cannot run and the test exits 77
after the rest has passed.  Runs in well under a minute.
"""
import fcntl
import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

CTL = os.path.join(os.path.dirname(pl.BIN), "pipelinectl")
SLOW = pl.scaled(1, 4)
# Numeric ids nobody on a test machine uses: setpriv needs no passwd entry.
DAEMON_ID, PRODUCER_ID, OUTSIDER_ID = 47301, 47302, 47304


def ctl(env, *args, stdin=None, prefix=(), timeout=60):
    return pl.run(list(prefix) + [CTL, "-c", env.conf] + list(args), timeout=timeout * SLOW,
                  input=stdin)


def expect(p, rc, what):
    pl.check(p.returncode == rc, "%s: exit %d, expected %d; stdout %r stderr %r"
             % (what, p.returncode, rc, p.stdout[-600:], p.stderr[-600:]))
    return p


def make_folders(env):
    """The folders the daemon makes at its first start, for a spool that
    has not seen one yet."""
    for f in ("tmp", "new", "cur", "done", "failed"):
        os.makedirs(os.path.join(env.spool, f), exist_ok=True)


def job_text(env, names, missing=()):
    imgs = env.image_set(n=3)
    lines = ["# a comment", ""]
    for i, n in enumerate(names):
        lines.append("file://%s %s" % (imgs[i % len(imgs)], n))
    for n in missing:
        lines.append("file://%s/absent-%s.jpg %s" % (env.images, n, n))
    return "\n".join(lines) + "\n"


def tmp_is_empty(env):
    left = os.listdir(os.path.join(env.spool, "tmp"))
    pl.check(not left, "files left in tmp/: %s" % left)


def t_usage():
    with pl.Session("ctl") as s:
        env = s.env
        env.write_config()
        make_folders(env)
        p = expect(pl.run([CTL, "-h"]), 0, "-h")
        pl.check("submit" in p.stdout and "resubmit" in p.stdout, "-h: %r" % p.stdout)
        p = expect(pl.run([CTL, "-V"]), 0, "-V")
        pl.check(p.stdout.startswith("pipelinectl "), "-V: %r" % p.stdout)
        expect(pl.run([CTL]), 2, "no command")
        expect(ctl(env, "frobnicate"), 2, "unknown command")
        expect(ctl(env, "show"), 2, "show without a job")
        expect(ctl(env, "list", "sideways"), 2, "list with an unknown state")
        p = expect(pl.run([CTL, "-c", os.path.join(env.root, "none.conf"), "list"]), 78,
                   "a missing configuration")
        p = expect(ctl(env, "submit", "-n", ".hidden", "/dev/null"), 2, "a name with a dot")
        pl.check("invalid job name" in p.stderr, "invalid name: %r" % p.stderr)
        expect(ctl(env, "submit", "-n", "x.result", "/dev/null"), 2, "a name ending in .result")
        p = expect(ctl(env, "submit", os.path.join(env.root, "no-such-file")), 66, "a missing file")
        pl.check("No such file" in p.stderr, "missing file: %r" % p.stderr)
        expect(ctl(env, "show", "nojob"), 66, "show of a job that does not exist")
        expect(ctl(env, "resubmit", "nojob"), 66, "resubmit of a job that does not exist")


def t_bad_input():
    """Nothing reaches new/ unless every line is one the daemon accepts."""
    with pl.Session("ctl") as s:
        env = s.env
        env.write_config()
        make_folders(env)
        img = env.image_set(n=1)[0]
        path = os.path.join(env.root, "urls.txt")
        with open(path, "w") as f:
            f.write("file://%s one\n"            # 1 good
                    "www.example.com/a.jpg\n"    # 2 no scheme
                    "# fine\n"                   # 3 comment
                    "file://%s one\n"            # 4 duplicate NAME
                    "file://%s two extra\n"      # 5 trailing text
                    "file://%s .dot\n"           # 6 invalid NAME
                    "file://%s\r\n"              # 7 good, CRLF
                    "http://x/%s\n"              # 8 too long
                    % (img, img, img, img, img, "a" * 9000))
        p = expect(ctl(env, "submit", "-n", "bad", path), 65, "a URL list with bad lines")
        for line, why in ((2, "not a URL"), (4, "duplicate NAME"), (5, "trailing text"),
                          (6, "invalid NAME"), (8, "line too long")):
            pl.check(re.search(r"(?m)^%s:%d: %s" % (re.escape(path), line, why), p.stderr),
                     "no '%s:%d: %s' in %r" % (path, line, why, p.stderr))
        for line in (1, 3, 7):
            pl.check(":%d:" % line not in p.stderr, "good line %d reported: %r" % (line, p.stderr))
        pl.check("5 bad lines: nothing submitted" in p.stderr, "no summary: %r" % p.stderr)
        pl.check(env.where("bad") is None, "a refused job is in %s/" % env.where("bad"))
        tmp_is_empty(env)

        p = expect(ctl(env, "submit", "-n", "empty", stdin="# nothing\n\n"), 65, "a job without items")
        pl.check("no items" in p.stderr, "empty job: %r" % p.stderr)
        p = expect(ctl(env, "submit", stdin="not-a-url\n"), 65, "a bad line on stdin")
        pl.check("(stdin):1: not a URL" in p.stderr, "stdin line: %r" % p.stderr)
        tmp_is_empty(env)

        # One endless line (a binary file submitted by mistake) is judged
        # as far as the daemon reads a line: the rest is neither kept in
        # memory nor copied to tmp/.
        big = 256 << 20
        p = subprocess.Popen([CTL, "-c", env.conf, "submit", "-n", "huge"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        chunk = b"a" * (1 << 20)
        try:
            for _ in range(big // len(chunk)):
                p.stdin.write(chunk)
            p.stdin.close()
            err = p.stderr.read().decode(errors="replace")
        finally:
            _, status, use = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        pl.check(p.returncode == 65 and "(stdin):1: line too long" in err,
                 "an endless line: exit %d, %r" % (p.returncode, err[-300:]))
        pl.check(use.ru_maxrss * 1024 < big // 2,
                 "an endless line of %d MB took %d MB" % (big >> 20, use.ru_maxrss >> 10))
        tmp_is_empty(env)
        p = expect(ctl(env, "submit", "-n", "folder", env.root), 74, "a folder given as the job")
        pl.check("%s: Is a directory" % env.root in p.stderr, "a folder: %r" % p.stderr)
        tmp_is_empty(env)

        # Another producer may create anything in tmp/: files planted under
        # the names a submit of a known pid could choose (the old ".NAME.PID",
        # a symlink) do not refuse the job.
        r, w = os.pipe()
        p = subprocess.Popen(["sh", "-c", 'read go <&%d; exec "$0" -c "$1" submit -n planted' % r,
                              CTL, env.conf], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, pass_fds=(r,))
        os.close(r)
        planted = os.path.join(env.spool, "tmp", ".planted.%d" % p.pid)
        os.symlink(os.path.join(env.root, "elsewhere"), planted)
        os.write(w, b"go\n")
        os.close(w)
        out, err = p.communicate(("file://%s\n" % img).encode(), 30 * SLOW)
        pl.check(p.returncode == 0 and out == b"planted\n",
                 "a name planted in tmp/: exit %d, %r" % (p.returncode, err))
        pl.check(env.where("planted") == "new", "the job is not in new/")
        pl.check(not os.path.exists(os.path.join(env.root, "elsewhere")), "the symlink was followed")
        os.unlink(planted)
        tmp_is_empty(env)

        # tmp/'s lock held on purpose by another producer: the submit gives
        # up (75) instead of hanging, and leaves nothing behind.
        held = os.open(os.path.join(env.spool, "tmp"), os.O_RDONLY)
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
            p = expect(ctl(env, "submit", "-n", "locked", stdin="file://%s\n" % img, timeout=30),
                       75, "a submit while tmp/ is locked")
        finally:
            os.close(held)
        pl.check("tmp has been locked for 10 s by another process" in p.stderr,
                 "tmp/ locked: %r" % p.stderr)
        pl.check(env.where("locked") is None, "a job submitted while tmp/ was locked")
        tmp_is_empty(env)

        # A job waited on that leaves the spool otherwise (removed by hand)
        # ends the wait, said so.
        p = subprocess.Popen([CTL, "-c", env.conf, "submit", "-n", "vanish", "-w"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.stdin.write(("file://%s\n" % img).encode())
            p.stdin.close()
            pl.check(p.stdout.readline() == b"vanish\n", "--wait did not name the job first")
            os.unlink(os.path.join(env.spool, "new", "vanish"))
            rc = p.wait(30 * SLOW)
            err = p.stderr.read().decode()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        pl.check(rc == 70 and "job vanish is gone from the spool" in err,
                 "--wait on a job removed: exit %d, %r" % (rc, err))

        # A name in any folder is taken, and so is one whose result is left.
        p = expect(ctl(env, "submit", "-n", "taken", stdin="file://%s\n" % img), 0, "first submit")
        pl.check(p.stdout == "taken\n", "submit printed %r" % p.stdout)
        p = expect(ctl(env, "submit", "-n", "taken", stdin="file://%s\n" % img), 73, "a waiting name")
        pl.check("job taken exists (in new/)" in p.stderr, "taken name: %r" % p.stderr)
        with open(os.path.join(env.spool, "done", "old"), "w") as f:
            f.write("file://%s\n" % img)
        expect(ctl(env, "submit", "-n", "old", stdin="file://%s\n" % img), 73, "a done name")
        with open(os.path.join(env.spool, "failed", "gone.result"), "w") as f:
            f.write("")
        expect(ctl(env, "submit", "-n", "gone", stdin="file://%s\n" % img), 73,
               "a name with a result left in failed/")
        tmp_is_empty(env)
        with open(os.path.join(env.spool, "new", "taken")) as f:
            pl.check(f.read() == "file://%s\n" % img, "the waiting job was changed")

        # Interrupted while the job still comes in: nothing left in tmp/.
        p = subprocess.Popen([CTL, "-c", env.conf, "submit", "-n", "cut"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            p.stdin.write(("file://%s\n" % img).encode())
            p.stdin.flush()
            pl.wait_for(lambda: os.listdir(os.path.join(env.spool, "tmp")), 10 * SLOW,
                        "the job being written in tmp/")
            p.send_signal(signal.SIGINT)
            rc = p.wait(10 * SLOW)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        pl.check(rc == -signal.SIGINT, "interrupted submit exited %d" % rc)
        tmp_is_empty(env)
        pl.check(env.where("cut") is None, "an interrupted job arrived in %s/" % env.where("cut"))


def t_submit_list_show_status():
    with pl.Session("ctl") as s:
        env = s.env
        env.write_config()
        make_folders(env)

        # Before the daemon: waiting, and one left "running" in cur/ by a
        # stop, with one record already.
        path = os.path.join(env.root, "batch.txt")
        with open(path, "w") as f:
            f.write(job_text(env, ["a", "b", "c"]))
        p = expect(ctl(env, "submit", path), 0, "submit without a daemon")
        first = p.stdout.strip()
        pl.check(re.fullmatch(r"batch-\d{8}T\d{6}Z-\d+", first), "default name %r" % first)
        pl.check(env.where(first) == "new", "submitted job is in %s/" % env.where(first))
        mode = os.stat(os.path.join(env.spool, "new", first)).st_mode & 0o7777
        pl.check(mode == 0o640, "job file mode %o, not 640" % mode)
        img = env.image_set(n=3)[0]
        with open(os.path.join(env.spool, "cur", "parked"), "w") as f:
            f.write("file://%s p1\nfile://%s p2\n" % (img, img))
        record = ('{"line":1,"source":"file://%s","name":"p1","status":"ok","outputs":[],'
                  '"error":null,"milliseconds":3}\n' % img)
        with open(os.path.join(env.spool, "cur", "parked.result"), "w") as f:
            f.write(record)
        # back in new/ after a stop, its first record kept in cur/
        with open(os.path.join(env.spool, "new", "resumed"), "w") as f:
            f.write("file://%s p1\nfile://%s p2\n" % (img, img))
        with open(os.path.join(env.spool, "cur", "resumed.result"), "w") as f:
            f.write(record)
        p = expect(ctl(env, "list"), 0, "list")
        rows = [l.split() for l in p.stdout.splitlines()[1:-1]]
        pl.check(["waiting", "3", "0", "0", first] in rows, "list rows %s" % rows)
        pl.check(["waiting", "2", "1", "0", "resumed"] in rows, "list rows %s" % rows)
        pl.check(["running", "2", "1", "0", "parked"] in rows, "list rows %s" % rows)
        pl.check(p.stdout.splitlines()[-1] == "2 waiting, 1 running, 0 done, 0 failed",
                 "list summary %r" % p.stdout)
        p = expect(ctl(env, "show", first), 0, "show of a waiting job")
        pl.check(p.stdout == "" and "no results yet" in p.stderr, "show waiting: %r" % (p,))
        p = expect(ctl(env, "show", "resumed"), 0, "show of a waiting job begun before")
        pl.check(p.stdout == record, "show resumed: %r" % p.stdout)
        expect(ctl(env, "status"), 69, "status with no daemon ever run")

        d = s.start()
        d.wait_line(r"running: spool", 10 * SLOW)
        pl.wait_for(lambda: all(env.where(j) == "done" for j in (first, "parked", "resumed")),
                    30 * SLOW, "the waiting, resumed and parked jobs in done/")
        pl.check(len(env.records("resumed")) == 2, "resumed: %s" % env.records("resumed"))

        # --wait on a pipe: plain lines, exit 0
        p = expect(ctl(env, "submit", "-n", "good", "-w", path), 0, "submit -w, all ok")
        pl.check(p.stdout == "good\n", "submit -w printed %r" % p.stdout)
        pl.check("\r" not in p.stderr and "job good finished: 3 ok, 0 failed; in done/" in p.stderr,
                 "submit -w progress: %r" % p.stderr)
        pl.check(len(env.records("good")) == 3, "good: records %s" % env.records("good"))

        # from stdin, one item failing: exit 1, like --once
        p = expect(ctl(env, "submit", "--wait", stdin=job_text(env, ["x"], missing=["y"])), 1,
                   "submit -w with a failing item")
        bad = p.stdout.strip()
        pl.check(re.fullmatch(r"stdin-\d{8}T\d{6}Z-\d+", bad), "stdin name %r" % bad)
        pl.check(env.where(bad) == "failed", "job %s in %s/" % (bad, env.where(bad)))
        pl.check("1 ok, 1 failed; in failed/" in p.stderr, "submit -w: %r" % p.stderr)

        # show: the records as the daemon wrote them, and the table
        p = expect(ctl(env, "show", "good"), 0, "show")
        with open(os.path.join(env.spool, "done", "good.result")) as f:
            pl.check(p.stdout == f.read(), "show differs from done/good.result: %r" % p.stdout)
        p = expect(ctl(env, "show", "--table", bad), 0, "show --table")
        lines = p.stdout.splitlines()
        pl.check(lines[0].split()[:4] == ["LINE", "STATUS", "MS", "NAME"], "table head %r" % lines[0])
        pl.check(any(re.match(r"\s*3\s+ok\s+\d+\s+x\s+\S+/x-thumb\.jpg$", l) for l in lines),
                 "no ok row for x: %r" % p.stdout)
        pl.check(any(re.match(r"\s*4\s+failed\s+\d+\s+y\s+.*absent-y\.jpg", l) for l in lines),
                 "no failed row for y: %r" % p.stdout)
        pl.check(lines[-1] == "1 ok, 1 failed; job in failed/", "table foot %r" % lines[-1])

        # list, whole and by state
        p = expect(ctl(env, "list"), 0, "list")
        rows = [l.split() for l in p.stdout.splitlines()[1:-1]]
        pl.check(["done", "3", "3", "0", "good"] in rows and ["failed", "2", "1", "1", bad] in rows,
                 "list rows %s" % rows)
        pl.check(p.stdout.splitlines()[-1] == "0 waiting, 0 running, 4 done, 1 failed",
                 "list summary %r" % p.stdout.splitlines()[-1])
        p = expect(ctl(env, "list", "failed"), 0, "list failed")
        pl.check(p.stdout.splitlines()[1:] == [
            "failed         2       1       1  %s" % bad, "1 failed"], "list failed: %r" % p.stdout)

        # resubmit: the failed item under its own name, as JOB-retry
        p = expect(ctl(env, "resubmit", "good"), 65, "resubmit of a done job")
        pl.make_image(os.path.join(env.images, "absent-y.jpg"))
        p = expect(ctl(env, "resubmit", "-w", bad), 0, "resubmit -w")
        pl.check(p.stdout == "%s-retry\n" % bad, "resubmit printed %r" % p.stdout)
        with open(os.path.join(env.spool, "done", bad + "-retry")) as f:
            pl.check(f.read() == "file://%s/absent-y.jpg y\n" % env.images,
                     "the resubmitted job is not the failed item")
        recs = env.records(bad + "-retry")
        pl.check([(r["name"], r["status"]) for r in recs] == [("y", "ok")], "retry records %s" % recs)
        p = expect(ctl(env, "resubmit", bad), 0, "resubmit again")
        pl.check(p.stdout == "%s-retry2\n" % bad, "second resubmit printed %r" % p.stdout)
        expect(ctl(env, "resubmit", "-n", "good", bad), 73, "resubmit under a taken name")

        # status, from status.json, with no signal sent
        n = d.count(r"stage download:")
        pl.wait_for(env.status, 10 * SLOW, "status.json, written within a second of a change")
        p = expect(ctl(env, "status"), 0, "status")
        pl.check(re.match(r"pipelined: running, pid %d, up \d+ s" % d.proc.pid, p.stdout),
                 "status head: %r" % p.stdout)
        for stage in ("download", "resize", "upload"):
            pl.check(re.search(r"(?m)^%s +1 +1 " % stage, p.stdout), "status %s: %r" % (stage, p.stdout))
        pl.check(d.count(r"stage download:") == n, "status made the daemon write a report")
        p = expect(ctl(env, "status", "--json"), 0, "status --json")
        js = json.loads(p.stdout)
        pl.check([st["name"] for st in js["stages"]] == ["download", "resize", "upload"],
                 "status --json: %s" % js)
        d.signal(signal.SIGTERM)
        pl.check(d.wait(30 * SLOW) == 0, "the daemon did not stop cleanly")
        p = expect(ctl(env, "status"), 69, "status after the daemon stopped")
        pl.check(p.stdout.startswith("pipelined: not running: stopped "), "status: %r" % p.stdout)


def t_status_life():
    """status.json through a daemon's life: there when READY=1 is sent (no
    first second without one), left alone by a second daemon the spool's
    lock refuses, "stopped" after a clean stop, and the last state of one
    SIGKILLed is read as a daemon that did not stop cleanly."""
    with pl.Session("ctl", notify=True) as s:
        env = s.env
        env.write_config()
        make_folders(env)
        d = s.start()
        s.notify.wait(lambda m: m.get("READY") == "1", 10 * SLOW, "READY=1")
        pl.check((env.status() or {}).get("state") == "running",
                 "status.json at READY=1: %r" % (env.status(),))
        p = expect(ctl(env, "status"), 0, "status at READY=1")
        pl.check(p.stdout.startswith("pipelined: running, pid %d," % d.proc.pid), "status: %r" % p.stdout)

        with open(os.path.join(env.run, "status.json"), "rb") as f:
            before = f.read()
        other = s.start(notify=None)
        pl.check(other.wait(10 * SLOW) != 0, "a second daemon ran on a locked spool")
        with open(os.path.join(env.run, "status.json"), "rb") as f:
            pl.check(f.read() == before, "a daemon refused the spool rewrote status.json")
        expect(ctl(env, "status"), 0, "status after a refused second daemon")

        d.signal(signal.SIGTERM)
        pl.check(d.wait(30 * SLOW) == 0, "the daemon did not stop cleanly")
        pl.check((env.status() or {}).get("state") == "stopped", "status.json after a stop: %r"
                 % (env.status(),))
        p = expect(ctl(env, "status"), 69, "status after a clean stop")
        pl.check(re.match(r"pipelined: not running: stopped \d+ s ago, after \d+ s up \(pid %d\)\n"
                          % d.proc.pid, p.stdout), "status: %r" % p.stdout)
        for stage in ("download", "resize", "upload"):
            pl.check(re.search(r"(?m)^%s " % stage, p.stdout), "stopped %s: %r" % (stage, p.stdout))
        p = expect(ctl(env, "status", "-j"), 69, "status -j after a clean stop")
        pl.check(json.loads(p.stdout)["state"] == "stopped", "status -j: %r" % p.stdout)

        n = len(s.notify.messages)
        d = s.start()
        s.notify.wait(lambda m: m.get("READY") == "1", 10 * SLOW, "READY=1 again", start=n)
        d.kill()
        d.wait(10 * SLOW)
        p = expect(ctl(env, "status"), 69, "status after SIGKILL")
        pl.check(p.stdout.startswith("pipelined: not running, and did not stop cleanly "
                                     "(status written"), "status: %r" % p.stdout)


def t_status_not_a_status():
    """A status.json that is not one the daemon wrote is refused (65) with
    its reason, without reading it whole: truncated, garbage, far too big,
    a symlink (to /dev/zero), a FIFO (which would block for ever); and the
    strings of one that parses are shown without their control bytes."""
    with pl.Session("ctl") as s:
        env = s.env
        env.write_config()
        make_folders(env)
        os.makedirs(env.run, exist_ok=True)
        path = os.path.join(env.run, "status.json")
        cases = (("truncated", lambda: open(path, "w").write('{"state":"runn'), "premature end"),
                 ("garbage", lambda: open(path, "wb").write(b"\x00\x01\xff"), ""),
                 ("too big", lambda: open(path, "w").write(" " * (2 << 20) + "{}"),
                  "not a status"),
                 ("a symlink", lambda: os.symlink("/dev/zero", path), "not a regular file"),
                 ("a FIFO", lambda: os.mkfifo(path), "not a regular file"))
        for what, make, why in cases:
            if os.path.lexists(path):
                os.unlink(path)
            make()
            p = expect(ctl(env, "status", timeout=10), 65, "status.json %s" % what)
            pl.check(why in p.stderr, "status.json %s: %r" % (what, p.stderr))

        # Its strings reach a terminal without their control bytes.
        os.unlink(path)
        with open(path, "w") as f:
            json.dump({"state": "\x1b[2J\x07", "stages": [{"name": "a\x1b]0;t\x07"}]}, f)
        p = expect(ctl(env, "status"), 69, "status.json with control characters")
        pl.check(not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", p.stdout),
                 "control bytes from status.json shown: %r" % p.stdout)
        pl.check("then ?[2J?;" in p.stdout and "\na?]0;t?    " in p.stdout,
                 "status.json with control characters: %r" % p.stdout)


def t_no_terminal_controls():
    """What a producer may put in the spool reaches a terminal without any
    control: a file name in new/ with C0, C1 (raw, and as UTF-8) and DEL
    bytes, and a record whose strings hold C1 controls and DEL, which JSON
    lets through raw (show escapes them, show -t makes them '?')."""
    with pl.Session("ctl") as s:
        env = s.env
        env.write_config()
        make_folders(env)
        odd = b"x\x1b[2J\x9b2J\xc2\x9b2J\x7f\xff"
        with open(os.path.join(env.spool.encode(), b"new", odd), "w") as f:
            f.write("file:///nothing.jpg\n")
        rec = {"line": 1, "source": "http://x/\u009b2J\u007f", "name": "a", "status": "failed",
               "outputs": [], "error": "e\u0090\u009c", "milliseconds": 3}
        with open(os.path.join(env.spool, "failed", "c1"), "w") as f:
            f.write("http://x/a\n")
        with open(os.path.join(env.spool, "failed", "c1.result"), "wb") as f:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")

        def out(*args, rc=0):
            p = subprocess.run([CTL, "-c", env.conf] + list(args), capture_output=True, timeout=60)
            pl.check(p.returncode == rc, "%s: exit %d, %r" % (args, p.returncode, p.stderr))
            pl.check(not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]", p.stdout),
                     "%s printed a control: %r" % (args, p.stdout))
            p.stdout.decode("utf-8")   # raises on a byte that is not UTF-8
            return p.stdout
        pl.check(b"  x?[2J?2J?2J??\n" in out("list"), "list: the odd name is not there")
        text = out("show", "c1")
        pl.check(json.loads(text) == rec, "show changed the record: %r" % text)
        pl.check("  a  e?? (http://x/?2J?)\n" in out("show", "-t", "c1").decode(),
                 "show -t: the controls are not '?'")
        # A name given on the command line comes back in messages the same way.
        p = subprocess.run([CTL, "-c", env.conf, "show", b"no" + odd], capture_output=True,
                           timeout=60)
        pl.check(p.returncode != 0 and b"no job no" in p.stderr, "show NAME: %r" % p.stderr)
        pl.check(not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]", p.stderr),
                 "a message printed a control: %r" % p.stderr)
        p.stderr.decode("utf-8")


def t_wait_on_a_terminal():
    with pl.Session("ctl") as s:
        env = s.env
        env.write_config()
        make_folders(env)
        s.start().wait_line(r"running: spool", 10 * SLOW)
        path = os.path.join(env.root, "tty.txt")
        with open(path, "w") as f:
            f.write(job_text(env, ["t1", "t2", "t3", "t4"]))
        rc, out = pl.run_on_pty([CTL, "-c", env.conf, "submit", "-n", "tty", "-w", path], 60 * SLOW)
        pl.check(rc == 0, "submit -w on a pty exited %d: %r" % (rc, out[-500:]))
        bars = re.findall(r"\r\[[#.]+\] (\d+)/(\d+), (\d+) failed", out)
        pl.check(bars and bars[-1] == ("4", "4", "0"), "no full bar on the terminal: %r" % out[-500:])
        pl.check("job tty finished: 4 ok, 0 failed; in done/" in out, "no outcome: %r" % out[-500:])


def setpriv(uid, gid, groups=()):
    ids = ["--reuid=%d" % uid, "--regid=%d" % gid]
    ids += ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return ["setpriv"] + ids + ["--"]


def t_no_permission():
    """A user the spool keeps out: as root, one with ids of its own (root
    passes every mode); otherwise this user with the folders closed."""
    with pl.Session("ctl") as s:
        env = s.env
        env.write_config()
        make_folders(env)
        os.chmod(env.root, 0o755)
        os.mkdir(env.run, 0o750)     # as RuntimeDirectoryMode= makes it
        s.start().wait_line(r"running: spool", 10 * SLOW)
        pl.wait_for(env.status, 10 * SLOW, "status.json")
        img = env.image_set(n=1)[0]
        expect(ctl(env, "submit", "-n", "mine", "-w", stdin="file://%s\n" % img), 0, "submit")
        if os.geteuid() == 0:
            who = setpriv(OUTSIDER_ID, OUTSIDER_ID)
        else:
            who = ()
            for f in ("tmp", "new", "cur", "done", "failed"):
                os.chmod(os.path.join(env.spool, f), 0)
            os.chmod(env.run, 0)
        for args in (("submit", "-n", "theirs"), ("list",), ("show", "mine"),
                     ("resubmit", "mine"), ("status",)):
            p = expect(ctl(env, *args, stdin="file://%s\n" % img, prefix=who), 77,
                       "%s by a user without access" % args[0])
            pl.check("Permission denied" in p.stderr, "%s: %r" % (args[0], p.stderr))
        if not who:
            for f in ("tmp", "new", "cur", "done", "failed"):
                os.chmod(os.path.join(env.spool, f), 0o750)
            os.chmod(env.run, 0o750)
        pl.check(env.where("theirs") is None, "a refused job arrived")


def t_group():
    """The shipped unit's arrangement: the daemon as its own user and group
    with umask 0027, a producer in that group (and another primary group),
    an outsider."""
    if os.geteuid() != 0:
        pl.skip("the group case runs the daemon and producers under other uids: needs root")
    with pl.Session("ctl") as s:
        env = s.env
        env.write_config()
        os.chmod(env.root, 0o755)
        for d in (env.spool, env.out, env.run):
            os.makedirs(d, exist_ok=True)
        for top, dirs, files in os.walk(env.spool):
            for n in [top] + [os.path.join(top, x) for x in dirs + files]:
                os.chown(n, DAEMON_ID, DAEMON_ID)
        for d in (env.out, env.run):
            os.chown(d, DAEMON_ID, DAEMON_ID)
            os.chmod(d, 0o750)
        imgs = env.image_set(n=3)
        d = s.start(prefix=setpriv(DAEMON_ID, DAEMON_ID) + ["/bin/sh", "-c", 'umask 027 && exec "$@"', "sh"])
        d.wait_line(r"running: spool", 10 * SLOW)
        for f, want in (("", 0o750), ("tmp", 0o1770), ("new", 0o1770), ("cur", 0o750),
                        ("done", 0o750), ("failed", 0o750)):
            mode = os.stat(os.path.join(env.spool, f)).st_mode & 0o7777
            pl.check(mode == want, "spool/%s has mode %o, not %o" % (f, mode, want))

        producer = setpriv(PRODUCER_ID, PRODUCER_ID + 1, groups=[DAEMON_ID])
        text = "".join("file://%s g%d\n" % (img, i) for i, img in enumerate(imgs))
        p = expect(ctl(env, "submit", "-n", "grp", "-w", stdin=text, prefix=producer), 0,
                   "submit -w by a producer in the daemon's group")
        st = os.stat(os.path.join(env.spool, "done", "grp"))
        pl.check((st.st_uid, st.st_gid, st.st_mode & 0o777) == (PRODUCER_ID, DAEMON_ID, 0o640),
                 "the job file is %d:%d %o" % (st.st_uid, st.st_gid, st.st_mode & 0o777))
        st = os.stat(os.path.join(env.spool, "done", "grp.result"))
        pl.check(st.st_mode & 0o777 == 0o640, "the result is mode %o, not 640" % (st.st_mode & 0o777))
        p = expect(ctl(env, "show", "-t", "grp", prefix=producer), 0, "show by the producer")
        pl.check(p.stdout.splitlines()[-1] == "3 ok, 0 failed; job in done/", "show: %r" % p.stdout)
        p = expect(ctl(env, "list", prefix=producer), 0, "list by the producer")
        pl.check(p.stdout.splitlines()[-1] == "0 waiting, 0 running, 1 done, 0 failed",
                 "list: %r" % p.stdout)
        pl.wait_for(env.status, 10 * SLOW, "status.json")
        p = expect(ctl(env, "status", prefix=producer), 0, "status by the producer")
        pl.check(p.stdout.startswith("pipelined: running, pid %d" % d.proc.pid)
                 or p.stdout.startswith("pipelined: running, pid "), "status: %r" % p.stdout)

        # Another producer cannot touch the first one's waiting job (sticky new/).
        other = setpriv(PRODUCER_ID + 2, PRODUCER_ID + 2, groups=[DAEMON_ID])
        d.signal(signal.SIGTERM)
        pl.check(d.wait(30 * SLOW) == 0, "the daemon did not stop cleanly")
        expect(ctl(env, "submit", "-n", "wait1", stdin=text, prefix=producer), 0, "submit, no daemon")
        p = pl.run(other + ["mv", os.path.join(env.spool, "new", "wait1"),
                            os.path.join(env.spool, "new", "stolen")])
        pl.check(p.returncode != 0 and env.where("wait1") == "new",
                 "another producer could rename a waiting job: %r" % (p.stderr,))

        outsider = setpriv(OUTSIDER_ID, OUTSIDER_ID)
        for args in (("submit", "-n", "out"), ("list",), ("show", "grp"), ("status",)):
            p = expect(ctl(env, *args, stdin=text, prefix=outsider), 77,
                       "%s by a user outside the group" % args[0])


if __name__ == "__main__":
    if not os.access(CTL, os.X_OK):
        pl.fail("pipelinectl is not built next to pipelined: %s" % CTL)
    pl.main([
        ("usage and missing things", t_usage),
        ("bad input: bad lines, empty job, taken names", t_bad_input),
        ("submit, --wait, list, show, resubmit, status against a daemon", t_submit_list_show_status),
        ("status.json from READY=1 to a stop, clean or not", t_status_life),
        ("a status.json that is not one", t_status_not_a_status),
        ("no control reaches a terminal from the spool", t_no_terminal_controls),
        ("--wait draws a bar on a terminal", t_wait_on_a_terminal),
        ("no permission", t_no_permission),
        ("the daemon's group: producers in, others out", t_group),
    ])

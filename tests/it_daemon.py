"""it_daemon — pipelined as a real process under real signals.

Every case starts the daemon binary on a private tree (local file:// sources
made with `vips`, file:// outputs, its own spool and runtime folder), talks
to it only the way systemd and operators do — signals, a NOTIFY_SOCKET, the
spool, status.json, the log on stderr — and checks the promises of
pipelined(8): the notify protocol in order; live stage widths on SIGHUP and
a rejected bad file; graceful stop, fast stop and SIGKILL never losing or
repeating an item (every line 1..N recorded exactly once across runs);
SIGUSR1's report and atomic status.json; SIGUSR2's debug toggle; log_level
changed in the file and applied by SIGHUP, both ways; inotify
intake; an empty --once.  Nothing sleeps to synchronise: each step awaits
a file, a log line or a notify message with a bounded timeout.
Each case runs in a pl.Session, which stops its daemons, shows their logs
when the case failed and removes the tree.

Time: about 40-60 s in a normal build; item counts shrink under a sanitizer.
"""
import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

SLOW = 4 if pl.SANITIZE else 1     # timeouts stretch under ASan


def result_path(env, job, folder):
    return os.path.join(env.spool, folder, job + ".result")


def recorded(env, job, folder="cur"):
    """Records in FOLDER/JOB.result so far (0 if the file is absent)."""
    try:
        with open(result_path(env, job, folder)) as f:
            return sum(1 for line in f if line.endswith("\n"))
    except FileNotFoundError:
        return 0


def fresh_status(env, d, pred=lambda s: True, what="status.json"):
    """Remove status.json, send SIGUSR1, await the new file; again (polling)
    until it satisfies pred.  Returns (status, index of the first log line
    that may belong to that report)."""
    deadline = time.monotonic() + 10 * SLOW
    while True:
        try:
            os.unlink(os.path.join(env.run, "status.json"))
        except FileNotFoundError:
            pass
        mark = len(d.lines)
        d.signal(signal.SIGUSR1)
        s = pl.wait_for(env.status, 5 * SLOW, "status.json after SIGUSR1")
        if pred(s):
            return s, mark
        if time.monotonic() > deadline:
            raise pl.Failure("timed out waiting for %s; last: %s" % (what, s))
        time.sleep(0.05)    # polling interval, not synchronisation


def widths(s):
    return [st["width"] for st in s["stages"]]


def finish_once(ses, job, n, timeout):
    """Run --once to the end; the job must be done with lines 1..n once each.
    Wider stages than the interrupted run (the upload stage waits on fsync),
    which also checks that a resumed job does not depend on the widths."""
    env = ses.env
    env.write_config(workers=(4, 2, 6))
    d = ses.start("--once")
    rc = d.wait(timeout)
    pl.check(rc == 0, "--once rerun exited %d:\n  %s" % (rc, "\n  ".join(d.lines[-10:])))
    pl.check(env.where(job) == "done", "after the rerun the job is in %s" % env.where(job))
    recs = env.records(job, "done")
    pl.check_lines_once(recs, n, "final result of %s" % job)
    return recs, d


# ---- notify protocol -------------------------------------------------------

def t_notify_order():
    with pl.Session("notify", notify=True) as ses:
        env, n = ses.env, ses.notify
        env.write_config(workers=(2, 2, 2))
        imgs = env.image_set(3)
        count = pl.scaled(80, 40)
        env.submit("n1", env.items(count, imgs))
        d = ses.start()
        ready = n.wait(lambda m: m.get("READY") == "1", 10 * SLOW, "READY=1")
        pl.check(n.messages[ready].get("STATUS") == "running",
                 "READY=1 without STATUS=running: %r" % n.raw[ready])
        st = n.wait(lambda m: " done" in m.get("STATUS", ""), 10 * SLOW,
                    "a STATUS= line with 'done'", ready + 1)
        pl.check(re.match(r"\d+ done, \d+ failed, [0-9.]+ items/s", n.messages[st]["STATUS"]),
                 "STATUS line shape: %r" % n.messages[st]["STATUS"])
        pl.wait_for(lambda: env.where("n1") == "done", 30 * SLOW, "job n1 done")

        mark = len(n.messages)
        d.signal(signal.SIGHUP)
        rl = n.wait(lambda m: m.get("RELOADING") == "1", 5 * SLOW, "RELOADING=1", mark)
        pl.check(re.fullmatch(r"\d+", n.messages[rl].get("MONOTONIC_USEC", "")),
                 "RELOADING=1 without MONOTONIC_USEC: %r" % n.raw[rl])
        n.wait(lambda m: m.get("READY") == "1", 5 * SLOW, "READY=1 after the reload", rl + 1)
        pl.check(not any(m.get("READY") for m in n.messages[mark:rl]),
                 "READY=1 came before RELOADING=1")

        mark = len(n.messages)
        d.signal(signal.SIGTERM)
        stop = n.wait(lambda m: m.get("STOPPING") == "1", 5 * SLOW, "STOPPING=1", mark)
        ext = n.wait(lambda m: "EXTEND_TIMEOUT_USEC" in m, 5 * SLOW, "EXTEND_TIMEOUT_USEC", stop)
        pl.check(re.fullmatch(r"\d+", n.messages[ext]["EXTEND_TIMEOUT_USEC"]),
                 "EXTEND_TIMEOUT_USEC: %r" % n.raw[ext])
        rc = d.wait(10 * SLOW)
        pl.check(rc == 0, "exit %d after SIGTERM" % rc)
        pl.check(not any(m.get("READY") for m in n.messages[stop:]), "READY=1 after STOPPING=1")
        pl.check_lines_once(env.records("n1"), count, "n1")


def t_no_notify_socket():
    """Without NOTIFY_SOCKET (and with one naming nothing) the daemon just runs."""
    with pl.Session("nonotify") as ses:
        env = ses.env
        env.write_config(workers=(1, 1, 1))
        imgs = env.image_set(2)
        for i, extra in enumerate(({}, {"NOTIFY_SOCKET": os.path.join(env.root, "nobody")})):
            job = "q%d" % i
            env.submit(job, env.items(10, imgs))
            d = ses.start("--once", extra_env=extra)
            rc = d.wait(30 * SLOW)
            pl.check(rc == 0, "--once with NOTIFY_SOCKET=%r exited %d" % (extra, rc))
            pl.check(env.where(job) == "done", "job %s is in %s" % (job, env.where(job)))


# ---- SIGHUP: live widths, bad file rejected ---------------------------------

def t_hup_widths():
    with pl.Session("hup", notify=True) as ses:
        env, n = ses.env, ses.notify
        env.write_config(workers=(1, 1, 1))
        imgs = env.image_set(4)
        count = pl.scaled(300, 120)
        d = ses.start()
        n.wait(lambda m: m.get("READY") == "1", 10 * SLOW, "READY=1")
        s, _ = fresh_status(env, d)
        pl.check(widths(s) == [1, 1, 1], "initial widths %s" % widths(s))
        env.submit("hup", env.items(count, imgs))
        pl.wait_for(lambda: recorded(env, "hup") >= 10, 20 * SLOW, "10 records of job hup")

        env.write_config(workers=(4, 2, 3))
        d.signal(signal.SIGHUP)
        d.wait_line(r"reloaded: widths download 4, resize 2, upload 3", 5 * SLOW)
        pl.check(env.where("hup") == "cur",
                 "job finished before the reload took effect; the test needs more items")
        s, _ = fresh_status(env, d, lambda s: widths(s) == [4, 2, 3],
                            "status.json with widths 4/2/3")
        names = [st["name"] for st in s["stages"]]
        pl.check(names == ["download", "resize", "upload"], "stage names %s" % names)
        # the pools really grow: their running threads reach the new widths
        fresh_status(env, d, lambda s: [st["running"] for st in s["stages"]] == [4, 2, 3],
                     "running workers 4/2/3")

        # A bad file: rejected with FILE:LINE errors, old widths kept, READY=1 again.
        bad = env.write_config(workers=(2, 2, 2)).replace("upload = {", "upload = {\n  colour = 1;")
        env.write_file(env.conf, bad)
        badline = bad.splitlines().index("  colour = 1;") + 1
        mark = len(n.messages)
        start = len(d.lines)
        d.signal(signal.SIGHUP)
        d.wait_line(r"reload rejected", 5 * SLOW, start)
        d.wait_line(r"^<3>%s:%d: .*colour" % (re.escape(env.conf), badline), 10 * SLOW, start)
        rl = n.wait(lambda m: m.get("RELOADING") == "1", 5 * SLOW, "RELOADING=1", mark)
        n.wait(lambda m: m.get("READY") == "1", 5 * SLOW, "READY=1 after a bad reload", rl + 1)
        s, _ = fresh_status(env, d)
        pl.check(widths(s) == [4, 2, 3], "after a bad reload the widths are %s" % widths(s))

        pl.wait_for(lambda: env.where("hup") == "done", 60 * SLOW, "job hup done")
        pl.check_lines_once(env.records("hup"), count, "hup")
        d.signal(signal.SIGTERM)
        pl.check(d.wait(10 * SLOW) == 0, "exit status after SIGTERM")


# ---- stops ---------------------------------------------------------------------

def t_graceful_stop():
    with pl.Session("term") as ses:
        env = ses.env
        env.write_config(workers=(2, 1, 2))
        imgs = env.image_set(4)
        count = pl.scaled(400, 150)
        env.submit("big", env.items(count, imgs))
        d = ses.start()
        pl.wait_for(lambda: recorded(env, "big") >= 20, 30 * SLOW, "20 records of job big")
        d.signal(signal.SIGTERM)
        d.wait_line(r"graceful stop", 5 * SLOW)
        rc = d.wait(30 * SLOW)
        pl.check(rc == 0, "exit %d after one SIGTERM" % rc)
        pl.check(env.where("big") == "new", "after the stop the job is in %s" % env.where("big"))
        first = env.records("big", "cur")
        k = len(first)
        pl.check(0 < k < count, "%d records after a graceful stop of %d items" % (k, count))
        # everything fed was finished: in feed order, so exactly lines 1..k
        pl.check_lines_once(first, k, "result after the graceful stop")
        pl.check(not env.temp_outputs(), "temp files left: %s" % env.temp_outputs())
        pl.note("graceful stop recorded %d of %d" % (k, count))

        recs, _ = finish_once(ses, "big", count, 60 * SLOW)
        pl.check(recs[:k] == first, "the first run's records were rewritten")
        pl.check(not env.temp_outputs(), "temp files left: %s" % env.temp_outputs())


def t_fast_stop():
    with pl.Session("fast") as ses:
        env = ses.env
        # A slow middle stage (big PNGs decode slowly, one resize worker, a
        # tiny resize queue) behind a long download queue: most fed items sit
        # in the first queue, which a fast stop hands back to the spool.
        env.write_config(workers=(2, 1, 2), queues=(96, 2, 16))
        imgs = env.image_set(3, 1200, 900, "png")
        count = pl.scaled(160, 80)
        env.submit("slow", env.items(count, imgs))
        d = ses.start()
        pl.wait_for(lambda: recorded(env, "slow") >= 2, 30 * SLOW, "2 records of job slow")
        d.signal(signal.SIGTERM)
        d.wait_line(r"graceful stop", 5 * SLOW)
        t = time.monotonic()
        d.signal(signal.SIGTERM)
        _, m = d.wait_line(r"fast stop: (\d+) queued items go back", 5 * SLOW)
        rc = d.wait(10 * SLOW)
        took = time.monotonic() - t
        pl.check(rc == 0, "exit %d after two SIGTERMs" % rc)
        pl.check(int(m.group(1)) > 0, "the fast stop handed back no item: %s" % m.group(0))
        pl.check(took < 5 * SLOW, "fast stop took %.1f s" % took)
        pl.check(env.where("slow") == "new", "after a fast stop the job is in %s"
                 % env.where("slow"))
        first = env.records("slow", "cur")
        lines = [r["line"] for r in first]
        pl.check(len(set(lines)) == len(lines), "records repeated after a fast stop")
        pl.check(all(r["status"] == "ok" for r in first), "failed records after a fast stop")
        pl.check(len(first) < count - int(m.group(1)) + 1,
                 "%d recorded although %s went back" % (len(first), m.group(1)))
        pl.note("fast stop: %d recorded, %s handed back, %.1f s" % (len(first), m.group(1), took))

        recs, _ = finish_once(ses, "slow", count, 120 * SLOW)
        pl.check(recs[:len(first)] == first, "the first run's records were rewritten")


def t_sigkill_restart():
    with pl.Session("kill") as ses:
        env = ses.env
        env.write_config(workers=(2, 2, 2))
        imgs = env.image_set(4)
        count = pl.scaled(300, 120)
        env.submit("k", env.items(count, imgs))
        d = ses.start()
        pl.wait_for(lambda: recorded(env, "k") >= 30, 30 * SLOW, "30 records of job k")
        d.kill()
        pl.check(d.wait(10) == -signal.SIGKILL, "not killed by SIGKILL")
        pl.check(env.where("k") == "cur", "after SIGKILL the job is in %s" % env.where("k"))
        before = env.records("k", "cur")
        pl.check(0 < len(before) < count, "%d records before the restart" % len(before))
        left = env.temp_outputs()

        recs, d2 = finish_once(ses, "k", count, 60 * SLOW)
        d2.wait_line(r"job k claimed", 10 * SLOW)
        pl.check(recs[:len(before)] == before, "the first run's records were rewritten")
        pl.check(not env.temp_outputs(), "temp files in the output folder after the rerun: %s"
                 " (after the kill: %s)" % (env.temp_outputs(), left))
        pl.note("SIGKILL after %d records; temp files left by the kill: %d" % (len(before), len(left)))


# ---- USR1, USR2, intake ----------------------------------------------------------

def t_usr2_debug():
    with pl.Session("usr2") as ses:
        env = ses.env
        env.write_config(workers=(1, 1, 1))
        imgs = env.image_set(2)
        d = ses.start()
        d.wait_line(r"running: spool", 10 * SLOW)
        d.signal(signal.SIGUSR2)
        d.wait_line(r"debug logging on", 5 * SLOW)
        env.submit("dbg1", env.items(5, imgs))
        d.wait_line(r"^<7>.*job dbg1 item \d+.*done in \d+ ms", 10 * SLOW)
        pl.wait_for(lambda: env.where("dbg1") == "done", 10 * SLOW, "job dbg1 done")
        d.signal(signal.SIGUSR2)
        off, _ = d.wait_line(r"debug logging off", 5 * SLOW)
        env.submit("dbg2", env.items(5, imgs))
        pl.wait_for(lambda: env.where("dbg2") == "done", 10 * SLOW, "job dbg2 done")
        d.wait_line(r"job dbg2 finished", 5 * SLOW)
        pl.check(d.count(r"^<7>", off) == 0, "debug lines after the second SIGUSR2:\n  %s"
                 % "\n  ".join(line for line in d.lines[off:] if line.startswith("<7>")))
        pl.check(d.count(r"job dbg1 item .*done in") == 5, "not every dbg1 item logged 'done in'")
        d.signal(signal.SIGTERM)
        pl.check(d.wait(10 * SLOW) == 0, "exit status after SIGTERM")


def t_hup_log_level():
    """log_level is one of the two settings SIGHUP applies live: debug lines
    appear for the items after a reload to "debug" and vanish after one back
    to "info"."""
    with pl.Session("hup-level") as ses:
        env = ses.env
        env.write_config(workers=(1, 1, 1), log_level="info")
        imgs = env.image_set(2)
        d = ses.start()
        d.wait_line(r"running: spool", 10 * SLOW)
        env.submit("lv1", env.items(5, imgs))
        d.wait_line(r"job lv1 finished", 10 * SLOW)
        pl.check(d.count(r"^<7>") == 0, "debug lines at log_level info")

        env.write_config(workers=(1, 1, 1), log_level="debug")
        d.signal(signal.SIGHUP)
        on, _ = d.wait_line(r"reloaded: widths", 5 * SLOW)
        pl.check(d.count(r"settings other than .* changed", on - 1) == 0,
                 "log_level alone counted as a change for the next restart")
        env.submit("lv2", env.items(5, imgs))
        d.wait_line(r"job lv2 finished", 10 * SLOW, on)
        pl.check(d.count(r"^<7>job lv2 item \d+ .*done in \d+ ms", on) == 5,
                 "not every lv2 item logged 'done in' at log_level debug")

        env.write_config(workers=(1, 1, 1), log_level="info")
        d.signal(signal.SIGHUP)
        off, _ = d.wait_line(r"reloaded: widths", 5 * SLOW, on + 1)
        env.submit("lv3", env.items(5, imgs))
        d.wait_line(r"job lv3 finished", 10 * SLOW, off)
        pl.check(d.count(r"^<7>", off) == 0, "debug lines after the reload back to info:\n  %s"
                 % "\n  ".join(line for line in d.lines[off:] if line.startswith("<7>")))
        d.signal(signal.SIGTERM)
        pl.check(d.wait(10 * SLOW) == 0, "exit status after SIGTERM")


def t_usr1_report():
    with pl.Session("usr1") as ses:
        env = ses.env
        env.write_config(workers=(2, 1, 3))
        imgs = env.image_set(2)
        env.submit("r", env.items(20, imgs))
        d = ses.start()
        pl.wait_for(lambda: env.where("r") == "done", 20 * SLOW, "job r done")
        # the job moves to done/ as its last record is written, a moment
        # before the upload pool counts that item as done
        s, start = fresh_status(env, d, lambda s: all(st["done"] == 20 for st in s["stages"]),
                                "status.json with 20 done in every stage")
        for name, w in (("download", 2), ("resize", 1), ("upload", 3)):
            _, m = d.wait_line(r"stage %s: width (\d+) \((\d+) running\), \d+ busy, queue \d+, "
                               r"retrying \d+, in (\d+), done (\d+), failed \d+, latency p50 "
                               r"[0-9.]+ ms p95 [0-9.]+ ms" % name, 5 * SLOW, start)
            pl.check(int(m.group(1)) == w, "%s width %s, expected %d" % (name, m.group(1), w))
            pl.check(int(m.group(3)) == 20 and int(m.group(4)) == 20,
                     "%s in/done: %s" % (name, m.group(0)))
        d.wait_line(r"total: 20 done, 0 failed", 5 * SLOW, start)
        pl.check(s["done"] == 20 and s["failed"] == 0 and s["state"] == "running",
                 "status.json totals: %s" % s)
        for st in s["stages"]:
            for key in ("name", "width", "running", "busy", "queued", "retrying", "in", "done",
                        "failed", "p50_ms", "p95_ms"):
                pl.check(key in st, "status.json stage without %r: %s" % (key, st))
        pl.check(isinstance(s["uptime_s"], (int, float)) and "rate" in s, "status.json: %s" % s)

        # Atomic: a reader polling status.json while reports are written in a
        # burst never sees a missing, empty or partial file.
        bad, reads, stop = [], [0], threading.Event()

        def reader():
            path = os.path.join(env.run, "status.json")
            while not stop.is_set():
                text = ""
                try:
                    with open(path) as f:
                        text = f.read()
                    json.loads(text)
                    reads[0] += 1
                except (OSError, ValueError) as e:
                    bad.append("%s: %r" % (e, text[:200]))
        th = threading.Thread(target=reader)
        th.start()
        try:
            for i in range(30):
                mark = len(d.lines)
                d.signal(signal.SIGUSR1)
                d.wait_line(r"total: ", 5 * SLOW, mark)
        finally:
            stop.set()
            th.join()
        pl.check(not bad, "status.json read as %d bad states, first: %s" % (len(bad), bad[:1]))
        pl.check(reads[0] > 0, "the reader never read status.json")
        # the log line comes before the file is written: the last write may
        # still be under way, but its temp must go
        pl.wait_for(lambda: os.listdir(env.run) == ["status.json"], 5 * SLOW,
                    "only status.json in the runtime folder (temps gone)")
        d.signal(signal.SIGTERM)
        pl.check(d.wait(10 * SLOW) == 0, "exit status after SIGTERM")


def t_empty_once_and_inotify():
    with pl.Session("intake") as ses:
        env = ses.env
        env.write_config(workers=(1, 1, 1))
        t = time.monotonic()
        d = ses.start("--once")
        rc = d.wait(10 * SLOW)
        took = time.monotonic() - t
        pl.check(rc == 0, "empty --once exited %d" % rc)
        pl.check(took < 3 * SLOW, "empty --once took %.1f s" % took)
        pl.check(d.count(r"0 items in") == 1, "no '0 items' summary:\n  %s" % "\n  ".join(d.lines))

        imgs = env.image_set(2)
        d = ses.start()
        d.wait_line(r"running: spool", 10 * SLOW)
        for job in ("ino1", "ino2"):
            t = time.monotonic()
            env.submit(job, env.items(5, imgs))
            # The idle daemon sleeps in poll() on the spool's inotify
            # descriptor, with no timeout and no rescan timer: that the job is
            # claimed at all shows the rename into new/ woke it.  Awaited,
            # not timed.
            d.wait_line(r"job %s claimed" % job, 10 * SLOW)
            pl.wait_for(lambda: env.where(job) == "done", 5 * SLOW, "job %s done" % job)
            pl.note("%s done %.2f s after it was dropped into new/" % (job, time.monotonic() - t))
            pl.check_lines_once(env.records(job), 5, job)
        d.signal(signal.SIGINT)
        pl.check(d.wait(10 * SLOW) == 0, "exit status after SIGINT")


if __name__ == "__main__":
    pl.main([
        ("notify: READY, STATUS, RELOADING/READY, STOPPING in order", t_notify_order),
        ("no NOTIFY_SOCKET", t_no_notify_socket),
        ("SIGHUP: live widths while items flow, bad file rejected", t_hup_widths),
        ("graceful stop under load, then --once", t_graceful_stop),
        ("fast stop, then --once", t_fast_stop),
        ("SIGKILL, then --once", t_sigkill_restart),
        ("SIGUSR2 toggles debug", t_usr2_debug),
        ("SIGHUP applies log_level", t_hup_log_level),
        ("SIGUSR1 report and atomic status.json", t_usr1_report),
        ("empty --once; inotify intake", t_empty_once_and_inotify),
    ])

#!/usr/bin/python3
"""it_spool_guard — what a hostile producer or a crashing item can do to the spool.

pipelined(8) promises: one daemon per spool (a second one, or a --once run,
exits 75 at once and names the holder, while -t still works); anything in
new/ that is not a regular file of its own — a symbolic link, a FIFO, a
directory, a hard link — is moved to failed/ with its reason in
NAME.result, never opened through, and --once counts it as a failure;
dot-files are left alone with one warning; and an item that crashes the
daemon is found and failed alone with "crashed the daemon N times" while
every item that shared the crash completes.  Each is checked here through
the real binary on real files; the crashing item comes from the test-build
fault hook (PL_TEST_CRASH, built with -DPL_TEST_HOOKS=ON as scripts/test
does).
"""
import os
import re
import resource
import signal
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

EX_TEMPFAIL = 75
SECRET = "SECRET-do-not-disclose-42"


def with_env(name, fn):
    env = pl.Env(name)
    try:
        fn(env)
    finally:
        env.cleanup()


def t_one_daemon_per_spool():
    def body(env):
        imgs = env.image_set(2)
        env.write_config()
        first = pl.Daemon(env)
        try:
            first.wait_line(r"running", 30)
            p = pl.run([pl.BIN, "-c", env.conf], timeout=30)
            pl.check(p.returncode == EX_TEMPFAIL,
                     "second daemon: exit %d, want 75; stderr %r" % (p.returncode, p.stderr))
            pl.check(re.search(r"in use by another pipelined \(pid %d\)" % first.proc.pid,
                               p.stderr), "second daemon does not name the holder: %r" % p.stderr)
            p = pl.run([pl.BIN, "-c", env.conf, "--once"], timeout=30)
            pl.check(p.returncode == EX_TEMPFAIL, "--once beside a daemon: exit %d, want 75"
                     % p.returncode)
            p = pl.run([pl.BIN, "-c", env.conf, "-t"], timeout=30)
            pl.check(p.returncode == 0, "-t beside a daemon: exit %d: %r" % (p.returncode, p.stderr))
            # the first daemon is untouched: it still takes and finishes a job
            env.submit("after", env.items(3, imgs))
            pl.wait_for(lambda: env.where("after") == "done", 60, "job after in done/")
            pl.check_lines_once(env.records("after"), 3)
            first.signal(signal.SIGTERM)
            pl.check(first.wait(60) == 0, "first daemon did not stop cleanly")
        finally:
            first.stop()
        # the lock goes with the process: a new one starts
        env.submit("later", env.items(2, imgs))
        p = pl.run([pl.BIN, "-c", env.conf, "--once"], timeout=120)
        pl.check(p.returncode == 0, "--once after the daemon: exit %d: %s"
                 % (p.returncode, p.stderr[-800:]))
    with_env("lock", body)


def t_hostile_entries():
    def body(env):
        imgs = env.image_set(2)
        env.write_config()
        new = os.path.join(env.spool, "new")
        secret = os.path.join(env.root, "secret.txt")
        with open(secret, "w") as f:
            f.write("file://%s %s\n" % (imgs[0], SECRET))
        os.chmod(secret, 0o600)
        os.symlink(secret, os.path.join(new, "link"))
        os.symlink("/dev/zero", os.path.join(new, "zero"))
        os.mkfifo(os.path.join(new, "fifo"))
        os.mkdir(os.path.join(new, "folder"))
        os.link(secret, os.path.join(new, "hardlink"))
        dot = os.path.join(new, ".partial")
        with open(dot, "w") as f:
            f.write("file://%s dotted\n" % imgs[0])
        env.submit("good", env.items(2, imgs))

        p = pl.run([pl.BIN, "-c", env.conf, "--once"], timeout=120)
        pl.check(p.returncode == 1, "--once with hostile entries: exit %d, want 1; %s"
                 % (p.returncode, p.stderr[-1500:]))
        pl.check(SECRET not in p.stderr, "the log quotes the linked file")
        pl.check_lines_once(env.records("good", "done"), 2)
        want = {"link": "symbolic link", "zero": "symbolic link", "fifo": "FIFO",
                "folder": "directory", "hardlink": "hard links"}
        failed = os.path.join(env.spool, "failed")
        for name, why in want.items():
            path = os.path.join(failed, name)
            pl.check(os.path.lexists(path), "%s was not moved to failed/" % name)
            recs = env.records(name, "failed")
            pl.check(len(recs) == 1 and recs[0]["status"] == "failed" and recs[0]["line"] == 0
                     and why in recs[0]["error"], "failed/%s.result: %r" % (name, recs))
            pl.check(re.search(r"new/%s %s.*moved to failed/" % (name, "is a" if why != "hard links"
                                                                 else "has"), p.stderr)
                     or why in p.stderr, "no log line names %s: %s" % (name, p.stderr[-1500:]))
            with open(os.path.join(failed, name + ".result")) as f:
                pl.check(SECRET not in f.read(), "failed/%s.result quotes the linked file" % name)
        pl.check(os.path.islink(os.path.join(failed, "link")), "the link itself was not moved")
        pl.check(stat.S_ISFIFO(os.lstat(os.path.join(failed, "fifo")).st_mode), "fifo moved?")
        pl.check(os.path.exists(dot), "the dot-file was touched")
        pl.check(len(re.findall(r"new/\.partial starts with a dot", p.stderr)) == 1,
                 "the dot-file is not reported exactly once: %s" % p.stderr[-1500:])
        pl.check(re.search(r"5 entries of new/ were not a job", p.stderr),
                 "--once does not sum up the rejected entries: %s" % p.stderr[-800:])
        with open(secret) as f:
            pl.check(SECRET in f.read(), "the linked file changed")
    with_env("hostile", body)


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def t_crash_loop():
    """20 good items and one that aborts the daemon, with wide stages so that
    the crash catches many items in flight.  Restarted after each crash as
    systemd would, the poison item must end failed with its reason after
    PL_CRASHGUARD_LIMIT crashes while it ran alone, and the 20 others ok."""
    if not pl.hooks_built():
        pl.skip("the fault hook is not built (configure with -DPL_TEST_HOOKS=ON)")

    def body(env):
        imgs = env.image_set(4, 400, 300)
        env.write_config(workers=(4, 2, 2), queues=(8, 8, 8))
        lines = env.items(20, imgs)
        poison = "file://%s/poison.jpg poison" % env.images
        lines.insert(6, poison)
        env.submit("job", lines)
        extra = dict(os.environ, PL_TEST_CRASH="poison.jpg")
        extra.pop("NOTIFY_SOCKET", None)
        crashes, logs = 0, []
        for attempt in range(8):
            p = pl.run([pl.BIN, "-c", env.conf, "--once"], timeout=300, env=extra,
                       preexec_fn=no_core)
            logs.append(p.stderr)
            if p.returncode >= 0:
                break
            pl.check(p.returncode == -signal.SIGABRT, "run %d died of signal %d"
                     % (attempt + 1, -p.returncode))
            crashes += 1
        pl.check(p.returncode == 1, "last run: exit %d, want 1 (one item failed): %s"
                 % (p.returncode, p.stderr[-1500:]))
        # one crash with everything in flight, then two alone
        pl.check(crashes == 3, "%d crashes before the poison item was failed, want 3" % crashes)
        recs = env.records("job", "failed")
        pl.check(len(recs) == 21 and len({r["line"] for r in recs}) == 21,
                 "want 21 records, one per line: %r" % [r["line"] for r in recs])
        bad = [r for r in recs if r["status"] != "ok"]
        pl.check(len(bad) == 1 and bad[0]["line"] == 7 and bad[0]["name"] == "poison"
                 and bad[0]["error"] == "crashed the daemon 2 times",
                 "want only line 7 failed with its reason: %r" % bad)
        pl.check(re.search(r"line 7 was running alone when the daemon died", "".join(logs)),
                 "no log line names the suspect")
        left = [f for f in os.listdir(os.path.join(env.spool, "cur"))]
        pl.check(left == [], "cur/ is not empty at the end: %r" % left)
    with_env("crashloop", body)


if __name__ == "__main__":
    pl.main([
        ("one daemon per spool", t_one_daemon_per_spool),
        ("symlinks, FIFOs, folders, hard links and dot-files in new/", t_hostile_entries),
        ("an item that crashes the daemon is failed alone", t_crash_loop),
    ])

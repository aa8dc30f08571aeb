#!/usr/bin/python3
"""it_tmp_sweep — what a killed producer leaves in tmp/ goes after 36 hours.

pipelined(8) promises: a file of tmp/ whose mtime and ctime are both more
than 36 hours old is removed by the daemon that holds the spool, at start
(and every hour after), with one log line naming it; a symbolic link, a
directory, a FIFO, a file with a second name and a file written lately stay;
-t and pipelinectl never sweep.  Checked through the real binaries on real
files.  A file's ctime cannot be set back, so the daemon's sweep clock is
moved on by the test-build hook PL_TEST_SWEEP_AHEAD_S (built with
-DPL_TEST_HOOKS=ON, as scripts/test does) instead: at 37 hours ahead,
every file planted now has a ctime 37 hours old, and its mtime says the
rest.  Nothing waits on time: each run is --once, awaited to its exit.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

SLOW = pl.scaled(1, 4)
HOUR = 3600
AHEAD = {"PL_TEST_SWEEP_AHEAD_S": str(37 * HOUR)}
KILLED = ".job7.4242.0123456789abcdef"   # a killed pipelinectl submit's name


def plant(env):
    """tmp/ as a long-running machine finds it; returns the names kept."""
    tmp = os.path.join(env.spool, "tmp")
    now = time.time()
    old = now - 40 * HOUR

    def put(name, mtime, text="file:///nowhere.jpg\n"):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.utime(path, (mtime, mtime))

    put(KILLED, old)
    put("slow-upload", now + 37 * HOUR - 60)    # written a minute before the moved clock
    target = os.path.join(env.root, "target")
    put("../../target", old)
    os.symlink(target, os.path.join(tmp, "link"))
    os.utime(os.path.join(tmp, "link"), (old, old), follow_symlinks=False)
    os.link(target, os.path.join(tmp, "second-name"))
    os.mkdir(os.path.join(tmp, "folder"))
    put("folder/inside", old)
    os.utime(os.path.join(tmp, "folder"), (old, old))
    os.mkfifo(os.path.join(tmp, "fifo"))
    os.utime(os.path.join(tmp, "fifo"), (old, old))
    return ["fifo", "folder", "link", "second-name", "slow-upload"]


def in_tmp(env):
    return sorted(os.listdir(os.path.join(env.spool, "tmp")))


def run_once(ses, extra_env):
    d = ses.start("--once", extra_env=extra_env)
    rc = d.wait(60 * SLOW)
    pl.check(rc == 0, "--once exited %d:\n  %s" % (rc, "\n  ".join(d.lines[-10:])))
    pl.check(d.count(r"AddressSanitizer|LeakSanitizer|runtime error") == 0, "sanitizer report")
    return d


def t_sweep():
    with pl.Session("tmpsweep") as ses:
        env = ses.env
        env.write_config()
        kept = plant(env)
        everything = sorted(kept + [KILLED])

        # -t reads the configuration only, clock moved on or not
        p = pl.run([pl.BIN, "-c", env.conf, "-t"], timeout=30 * SLOW,
                   env=dict(os.environ, **AHEAD))
        pl.check(p.returncode == 0, "-t exited %d: %s" % (p.returncode, p.stderr))
        pl.check(in_tmp(env) == everything, "-t touched tmp/: %s" % in_tmp(env))

        # by the real clock the old mtime was given to a file just made (its
        # ctime says so): nothing goes
        d = run_once(ses, {})
        pl.check(d.count(r"removed tmp/") == 0, "a sweep by the real clock removed:\n  %s"
                 % "\n  ".join(d.lines))
        pl.check(in_tmp(env) == everything, "tmp/ after the first start: %s" % in_tmp(env))

        # pipelinectl submits through tmp/ (into the spool that start made) and
        # leaves the rest of it alone
        ctl = os.path.join(os.path.dirname(pl.BIN), "pipelinectl")
        imgs = env.image_set(1)
        p = pl.run([ctl, "-c", env.conf, "submit", "-n", "real"], timeout=30 * SLOW,
                   input="file://%s one\n" % imgs[0], env=dict(os.environ, **AHEAD))
        pl.check(p.returncode == 0, "submit exited %d: %s" % (p.returncode, p.stderr))
        pl.check(in_tmp(env) == everything, "pipelinectl touched tmp/: %s" % in_tmp(env))

        # 37 hours on: the killed submit's file goes, named once; the rest stays
        d = run_once(ses, AHEAD)
        lines = [ln for ln in d.lines if "removed tmp/" in ln]
        pl.check(len(lines) == 1 and "removed tmp/%s, 20 bytes untouched for 37 hours" % KILLED
                 in lines[0], "log lines of the sweep: %r" % lines)
        pl.check(in_tmp(env) == kept, "tmp/ after the sweep: %s, expected %s"
                 % (in_tmp(env), kept))
        pl.check(os.path.exists(os.path.join(env.root, "target")), "the link's target is gone")
        pl.check(os.path.exists(os.path.join(env.spool, "tmp", "folder", "inside")),
                 "the folder was emptied")
        pl.check(env.where("real") == "done", "the submitted job is in %s" % env.where("real"))


if __name__ == "__main__":
    if not pl.hooks_built():
        pl.skip("the sweep's clock hook is not built (configure with -DPL_TEST_HOOKS=ON)")
    pl.main([
        ("tmp/: abandoned files go at start, nothing else; -t and pipelinectl never sweep",
         t_sweep),
    ])

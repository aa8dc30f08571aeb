"""it_adapt — adaptive stage widths in the real daemon, against a real
distant source (tests/e2e_server.py's /delay/MS/NAME: every GET answered
200 ms late, as many at once as asked).

With download workers = "adaptive", the download stage holds the pipeline
back (resizing 64×48 images is nothing next to 200 ms), so it must grow:
a notice line says so, STATUS= shows the wider width, and no width ever
passes workers_max.  A SIGHUP with a fixed number pins the width again, and
it stays pinned.  Across the changes every item is recorded exactly once.

Under --once the ordered drain begins when the last item is fed, which
with a download queue that holds the whole job is before the first tick:
the widths must go on adapting through the drain (they once froze there,
at width 3 for the whole run).

Nothing sleeps to synchronise: each step awaits a log line, a notify
message or a file.  Time: about 20 s.
"""
import contextlib
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SLOW = 4 if pl.SANITIZE else 1
N = 150


def config(env, download_workers, log_level="info", queue=16):
    env.write_file(env.conf, """spool = "%(spool)s";
runtime = "%(run)s";
log_level = "%(level)s";
download = { workers = %(w)s; workers_max = 12; allow_private = true; retries = 0;
  queue = %(queue)d; };
resize = { workers = 2;
  variants = ( { name = "thumb"; width = 32; height = 32; fit = "inside";
                 format = "jpeg"; quality = 70; } ); };
upload = { workers = 2; url = "file://%(out)s/{job}-{name}-{variant}.{ext}"; };
""" % dict(spool=env.spool, run=env.run, out=env.out, w=download_workers, level=log_level,
           queue=queue))


@contextlib.contextmanager
def far_job(env, n):
    """A source 200 ms away (e2e_server.py's /delay/200/) and the lines of a
    job of n of its images, while the with block runs."""
    images = env.image_set(4)
    src = subprocess.Popen(['/usr/bin/python3', HERE + '/e2e_server.py', '127.0.0.1',
                            env.images], stdout=subprocess.PIPE, text=True)
    try:
        port = int(src.stdout.readline())
        yield ["http://127.0.0.1:%d/delay/200/%s item%03d"
               % (port, os.path.basename(images[i % 4]), i + 1) for i in range(n)]
    finally:
        src.terminate()
        src.wait()


def widths(d, start=0):
    return [(int(m.group(1)), int(m.group(2))) for line in d.lines[start:]
            for m in [re.search(r"stage download: width (\d+) -> (\d+)", line)] if m]


def test_grows_shows_and_pins():
    with pl.Session("adapt", notify=True) as s:
        env = s.env
        with far_job(env, N) as job:
            config(env, '"adaptive"')
            env.submit("far", job)
            d = s.start()
            # grows: a notice, and the status line shows it
            i, m = d.wait_line(r"<5>stage download: width 3 -> (\d+) \(adaptive, 3\.\.12\)",
                               20 * SLOW)
            grown = int(m.group(1))
            pl.check(3 < grown <= 12, "grew to %d, outside 4..12" % grown)
            s.notify.wait(lambda msg: any(int(w) > 3 for w in re.findall(
                r"download \d+/(\d+) busy", msg.get("STATUS", ""))), 10 * SLOW,
                "STATUS= with a download width above 3")
            # pinned by a reload with a number
            config(env, "2")
            mark = len(d.lines)
            d.signal(signal.SIGHUP)
            d.wait_line(r"reloaded: widths download 2, resize 2, upload 2$",
                        10 * SLOW, mark)
            pinned = len(d.lines)
            pl.wait_for(lambda: env.where("far") == "done", 60 * SLOW, "job far in done/")
            pl.check(all(b <= 12 for _, b in widths(d)),
                     "a width above workers_max: %s" % widths(d))
            pl.check(not widths(d, pinned), "width moved after the pin: %s" % widths(d, pinned))
            pl.check_lines_once(env.records("far"), N)
            d.signal(signal.SIGTERM)
            pl.check(d.wait(30 * SLOW) == 0, "exit status after SIGTERM")


def test_grows_while_draining():
    n = 48
    with pl.Session("adapt-drain") as s:
        env = s.env
        with far_job(env, n) as job:
            # the whole job fits the download queue: fed, and the drain
            # begun, at once
            config(env, '"adaptive"', "debug", queue=n)
            env.submit("far", job)
            d = s.start("--once")
            drain, _ = d.wait_line(r"intake stopped; draining the stages in order", 20 * SLOW)
            i, m = d.wait_line(r"<5>stage download: width 3 -> (\d+) \(adaptive", 20 * SLOW)
            pl.check(i > drain, "the width moved before the drain began: the job was not "
                     "fed at once")
            pl.check(d.wait(60 * SLOW) == 0, "exit status of --once")
            pl.check(all(b <= 12 for _, b in widths(d)),
                     "a width above workers_max: %s" % widths(d))
            pl.check(env.where("far") == "done", "job far in done/")
            pl.check_lines_once(env.records("far"), n)
            pl.check(d.count(r"AddressSanitizer|LeakSanitizer|runtime error") == 0,
                     "sanitizer report")


if __name__ == "__main__":
    pl.main([("grows, shows and pins", test_grows_shows_and_pins),
             ("grows while draining", test_grows_while_draining)])

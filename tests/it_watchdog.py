"""it_watchdog — WATCHDOG=1 only while every stage that has work makes progress.

A daemon with WATCHDOG_USEC=1 s pings every half second while idle and while
items flow.  Then a download hangs on a server that accepts and never
answers: the download stage has work and makes no progress, the daemon logs
that it withholds the ping, and no WATCHDOG=1 arrives.  When the server
drops the connection the item fails, the stage moves again and the pings
come back.  The daemon exits 0 on SIGTERM.

A single stuck worker must not hide behind its siblings: with the test
hook PL_TEST_HANG (a -DPL_TEST_HOOKS=ON build) one download worker never
comes back from its item while two others keep finishing a stream of jobs,
so the stage as a whole moves.  With the stuck limit shortened to 2 s
(PL_TEST_STUCK_S), the daemon must name the stuck stage and the item (job,
line, URL) and withhold WATCHDOG=1, again and again, while the done count
keeps rising.
"""
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402

SLOW = 4 if pl.SANITIZE else 1


class HangServer:
    """Accepts connections and never answers, until close()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.accepted = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.accepted.set()

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def pings(n, start=0):
    return [i for i, m in enumerate(n.messages[start:], start) if m.get("WATCHDOG") == "1"]


def test_watchdog():
    env = pl.Env("watchdog")
    hang = HangServer()
    note = pl.Notify(env)
    d = None
    try:
        text = env.write_config(workers=(1, 1, 1), extra_download=(
            '  allow_private = true;\n  timeout = 300.0;\n  low_speed_limit = 0;\n'))
        text = text.replace('protocols = [ "file" ];', 'protocols = [ "file", "http" ];')
        env.write_file(env.conf, text)
        imgs = env.image_set(n=3)
        d = pl.Daemon(env, notify=note, extra_env={"WATCHDOG_USEC": "1000000"})
        note.wait(lambda m: m.get("READY") == "1", 20, "READY=1")

        # healthy while idle and while items flow
        env.submit("flow", env.items(30, imgs))
        pl.wait_for(lambda: env.where("flow") == "done", 30, "job flow in done/")
        pl.wait_for(lambda: len(pings(note)) >= 3, 10, "three WATCHDOG=1 while healthy")

        # a stuck download: the stage has work and no progress
        env.submit("stuck", ["http://127.0.0.1:%d/never.jpg" % hang.port])
        pl.check(hang.accepted.wait(20), "the download never connected to the hang server")
        i, _ = d.wait_line(r"stage download made no progress .* withholding the watchdog ping", 20)
        last = len(note.messages)
        time.sleep(2.5)   # an observation window: five ping periods must stay silent
        pl.check(not pings(note, last),
                 "WATCHDOG=1 was sent while the download stage was stuck")
        # the once-a-second status timer kept running (sd-event timers are
        # one-shot): the line went from idle to flowing to stuck
        pl.wait_for(lambda: any("download 1/1 busy" in m.get("STATUS", "")
                                for m in note.messages), 5,
                    "a STATUS= line showing the busy download worker")

        # the stage moves again: pings resume
        hang.close()
        pl.wait_for(lambda: env.where("stuck") == "failed", 30, "job stuck in failed/")
        resumed = len(note.messages)
        pl.wait_for(lambda: pings(note, resumed), 10, "WATCHDOG=1 after the stage moved again")

        d.signal(signal.SIGTERM)
        pl.check(d.wait(30) == 0, "the daemon did not exit 0 on SIGTERM")
    finally:
        hang.close()
        if d:
            d.stop()
        note.close()
        env.cleanup()


def done_count(n):
    """The highest "N done" of the STATUS= lines so far."""
    got = [re.match(r"(\d+) done", m.get("STATUS", "")) for m in list(n.messages)]
    return max([int(g.group(1)) for g in got if g] or [0])


def test_stuck_worker_among_progressing_siblings():
    if not pl.hooks_built():
        pl.skip("the fault hooks are not built (configure with -DPL_TEST_HOOKS=ON)")
    env = pl.Env("wdsibling")
    note = pl.Notify(env)
    d = None
    stop = threading.Event()
    feeder = None
    try:
        env.write_config(workers=(3, 1, 1))
        imgs = env.image_set(n=3)
        hang = os.path.join(env.images, "hang-me.jpg")
        shutil.copy(imgs[0], hang)
        d = pl.Daemon(env, notify=note, extra_env={
            "WATCHDOG_USEC": "1000000", "PL_TEST_HANG": "hang-me", "PL_TEST_STUCK_S": "2"})
        note.wait(lambda m: m.get("READY") == "1", 20, "READY=1")
        pl.wait_for(lambda: len(pings(note)) >= 2, 10, "two WATCHDOG=1 while healthy")

        env.submit("hang", ["file://%s stuck" % hang])

        def feed():     # one short job after another, for as long as the test looks
            k = 0
            while not stop.is_set():
                if not os.listdir(os.path.join(env.spool, "new")):
                    k += 1
                    env.submit("flow%d" % k, env.items(20, imgs))
                stop.wait(0.05)
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()

        stuck = r"stage download: a worker has been on one item for .* withholding the watchdog ping"
        i, _ = d.wait_line(stuck, 30 * SLOW)
        # named as any item's trouble is: its job, line and URL
        pl.check("job hang item 1 (file://%s) download: " % hang in d.lines[i],
                 "the stuck-worker line does not name the item: %s" % d.lines[i])
        # detected while the siblings still finish items, and again after more of them
        before = done_count(note)
        pl.wait_for(lambda: done_count(note) >= before + 10, 30 * SLOW,
                    "ten more items done by the siblings of the stuck worker")
        pl.check(env.where("hang") == "cur", "the stuck item's job left cur/: %s"
                 % env.where("hang"))
        since, start = len(note.messages), len(d.lines)
        d.wait_line(stuck, 10 * SLOW, start=start)
        more = done_count(note)
        pl.wait_for(lambda: done_count(note) >= more + 10, 30 * SLOW, "ten more items done")
        d.wait_line(stuck, 10 * SLOW, start=len(d.lines))
        pl.check(not pings(note, since),
                 "WATCHDOG=1 was sent while one download worker was stuck and its "
                 "siblings progressed")
    finally:
        stop.set()
        if feeder:
            feeder.join(10)
        if d:
            d.stop()
        note.close()
        env.cleanup()


def test_no_watchdog_without_usec():
    env = pl.Env("nowatchdog")
    note = pl.Notify(env)
    d = None
    try:
        env.write_config()
        d = pl.Daemon(env, notify=note)
        note.wait(lambda m: m.get("READY") == "1", 20, "READY=1")
        time.sleep(1.5)   # observation window: no watchdog configured, no pings
        pl.check(not pings(note), "WATCHDOG=1 sent although WATCHDOG_USEC is unset")
        d.signal(signal.SIGTERM)
        pl.check(d.wait(30) == 0, "the daemon did not exit 0 on SIGTERM")
    finally:
        if d:
            d.stop()
        note.close()
        env.cleanup()


if __name__ == "__main__":
    pl.main([("watchdog pings only while stages progress", test_watchdog),
             ("one stuck worker stops the pings while its siblings progress",
              test_stuck_worker_among_progressing_siblings),
             ("no pings without WATCHDOG_USEC", test_no_watchdog_without_usec)])

#!/usr/bin/python3
"""it_stream — daemons sharing one NATS JetStream stream (pipelined(8), MANY MACHINES).

Two daemons, each with its own spool, point at one real nats-server: each
publishes its own jobs item by item, both work items from the shared
consumer, and each job's results come back to the daemon that owns it,
which writes JOB.result and moves the job exactly as without the stream.
Checked: every line of both jobs has exactly one record, the work was
shared, a bad line fails at its owner without being published, a message
on the stream that is not an item (published by hand with the test's own
NATS client, as a producer without a filesystem would) is failed to the
owner it names — who has no such job and says so — or dead-lettered when
it names none, never crashes a daemon, and both stop cleanly.

Then forged results (published by hand to a daemon's results subject
while its job is open: one item hangs on a socket that never answers) for
lines the job does not have — past its end, its comment line, line 0 —
are rejected, logged with job, line and reason, and counted in
status.json; JOB.result holds exactly the job's items.

Last, a job name used again at once: the finished job's files removed
and a new job of that name written, on the inode just freed (ext4 hands
it out again at once).  Its items must not look like the old job's to
the server's duplicate window (two minutes), which drops them silently:
the job would wait in cur/ for ever.
"""
import json
import os
import signal
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402
import plnats  # noqa: E402


def t_two_daemons_share_a_stream():
    plnats.require_server()
    root = pl.Env("stream-nats")
    srv = plnats.NatsServer(root.root).start()
    envs, daemons = [], []
    try:
        for k in range(2):
            e = pl.Env("stream%d" % k)
            e.write_config(workers=(2, 2, 2), extra_top=(
                'stream = { servers = [ "%s" ]; node = "n%d"; ack_wait = 10.0; };' % (srv.url, k)))
            envs.append(e)
        imgs = envs[0].image_set(4)
        with open(envs[1].conf) as f:   # both read the same sources
            text = f.read().replace(envs[1].images, envs[0].images)
        pl.Env.write_file(envs[1].conf, text)
        daemons = [pl.Daemon(e) for e in envs]
        for d in daemons:
            d.wait_line(r"stream: consuming", 30)
        envs[0].submit("jobA", ["file://%s a%d" % (imgs[i % 4], i) for i in range(30)])
        envs[1].submit("jobB", ["file://%s b%d" % (imgs[i % 4], i) for i in range(30)]
                       + ["not-a-url"])
        with plnats.Client(srv.url) as cl:   # not items: failed to their owner, or dead
            cl.js_publish("pipelined.items", b'{"job":"jobZ","owner":"n0","line":7}')
            cl.js_publish("pipelined.items", b"\xff not json")
        for e, job, n, where in ((envs[0], "jobA", 30, "done"), (envs[1], "jobB", 31, "failed")):
            pl.wait_for(lambda: e.where(job) == where, 120, "%s in %s/" % (job, where))
            recs = e.records(job)
            lines = sorted(r["line"] for r in recs)
            pl.check(lines == list(range(1, n + 1)), "%s: lines recorded %r" % (job, lines))
            bad = [r for r in recs if r["status"] != "ok"]
            pl.check(len(bad) == (n - 30), "%s: failed records %r" % (job, bad))
        # the item without a source fails to its owner, who has no job jobZ
        daemons[0].wait_line(r"result for job jobZ line 7, which this daemon does not have", 30)
        pl.wait_for(lambda: sum(d.count(r"dead-lettered") for d in daemons) == 1, 30,
                    "the message that is not JSON dead-lettered")
        for d in daemons:
            d.signal(signal.SIGTERM)
        rcs = [d.wait(60) for d in daemons]
        pl.check(rcs == [0, 0], "exit statuses %r" % rcs)
        worked = [int(d.wait_line(r"(\d+) items in", 5)[1].group(1)) for d in daemons]
        pl.check(sum(worked) >= 60 and min(worked) > 0,
                 "the work was not shared: %r items per daemon" % worked)
        for d in daemons:
            pl.check(d.count(r"AddressSanitizer|runtime error") == 0, "sanitizer report")
    finally:
        for d in daemons:
            d.stop()
        srv.kill()
        for e in envs:
            e.cleanup()
        root.cleanup()


def t_results_for_lines_a_job_lacks():
    plnats.require_server()
    env = pl.Env("stream-rej")
    srv = plnats.NatsServer(env.root).start()
    hang = socket.socket()      # accepts (the kernel does) and never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(4)
    d = None
    try:
        text = env.write_config(extra_top=(
            'stream = { servers = [ "%s" ]; node = "n0"; ack_wait = 30.0; };' % srv.url))
        pl.Env.write_file(env.conf, text.replace(
            'protocols = [ "file" ];',
            'protocols = [ "file", "http" ]; allow_private = true; timeout = 120.0; '
            'low_speed_time = 120.0;'))
        imgs = env.image_set(2)
        d = pl.Daemon(env)
        d.wait_line(r"stream: consuming", 30)
        # line 1 a comment, 2-3 items, 4 an item that hangs until the socket closes
        env.submit("jobR", ["# a comment", "file://%s r1" % imgs[0], "file://%s r2" % imgs[1],
                            "http://127.0.0.1:%d/hang.jpg r3" % hang.getsockname()[1]])
        pl.wait_for(lambda: len(env.records("jobR")) == 2, 60, "jobR's two good items recorded")
        pl.check(env.where("jobR") == "cur", "jobR not open in cur/ but in %s" % env.where("jobR"))
        forged = (b'{"line":%d,"source":"file:///x","name":"x","status":"ok","outputs":[],'
                  b'"error":null,"milliseconds":1}\n')
        with plnats.Client(srv.url) as cl:
            for line in (9, 1, 0):
                cl.js_publish("pipelined.results.n0", forged % line, {"Pipelined-Job": "jobR"})
        d.wait_line(r"job jobR: a result for line 9 rejected: the job has \d+ lines?", 30)
        d.wait_line(r"job jobR: a result for line 1 rejected: that line is blank or a comment", 30)
        d.wait_line(r"job jobR: a result for line 0 rejected", 30)
        hang.close()            # the hanging item fails: the job ends
        pl.wait_for(lambda: env.where("jobR") == "failed", 120, "jobR in failed/")
        recs = env.records("jobR")
        pl.check(sorted(r["line"] for r in recs) == [2, 3, 4], "jobR's lines recorded: %r"
                 % sorted(r["line"] for r in recs))
        d.signal(signal.SIGUSR1)
        pl.wait_for(lambda: ((env.status() or {}).get("stream") or {}).get("results_rejected")
                    == 3, 30, "status.json: stream.results_rejected 3")
        d.stop_clean()
    finally:
        hang.close()
        if d:
            d.stop()
        srv.kill()
        env.cleanup()


def file_on_inode(dirpath, inode, tries=20000):
    """A new empty file in dirpath on the free inode given, or None: ext4
    hands a new file the lowest free inode of its directory's group, so
    the free ones below are taken first by placeholders (removed after)."""
    made = []
    try:
        for i in range(tries):
            path = os.path.join(dirpath, ".fill%d" % i)
            open(path, "w").close()
            if os.stat(path).st_ino == inode:
                return path
            made.append(path)
        return None
    finally:
        for path in made:
            os.unlink(path)


def t_job_name_and_inode_reused():
    plnats.require_server()
    env = pl.Env("stream-reuse")
    srv = plnats.NatsServer(env.root).start()
    d = None
    try:
        env.write_config(extra_top='stream = { servers = [ "%s" ]; node = "n0"; };' % srv.url)
        imgs = env.image_set(2)
        d = pl.Daemon(env)
        d.wait_line(r"stream: consuming", 30)
        lines = ["file://%s r1" % imgs[0], "file://%s r2" % imgs[1]]
        inode = os.stat(env.submit("jobS", lines)).st_ino
        pl.wait_for(lambda: env.where("jobS") == "done", 60, "the first jobS in done/")
        for name in ("jobS.result", "jobS"):
            os.unlink(os.path.join(env.spool, "done", name))
        path = file_on_inode(os.path.join(env.spool, "tmp"), inode)
        if path is None:
            pl.skip("cannot place a new file on the inode just freed on this file system")
        env.submit("jobS", lines, tmp=path)
        pl.wait_for(lambda: env.where("jobS") == "done", 60, "the second jobS in done/")
        pl.check_lines_once(env.records("jobS"), 2, "jobS")
        d.stop_clean()
    finally:
        if d:
            d.stop()
        srv.kill()
        env.cleanup()


if __name__ == "__main__":
    pl.main([("two daemons share one stream", t_two_daemons_share_a_stream),
             ("results for lines a job lacks are rejected", t_results_for_lines_a_job_lacks),
             ("a job name used again on the same inode", t_job_name_and_inode_reused)])

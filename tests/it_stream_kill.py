#!/usr/bin/python3
"""it_stream_kill — SIGKILL under daemons sharing one NATS JetStream stream: nothing lost.

pipelined(8) promises at least once and never lost: a daemon killed with
SIGKILL loses nothing (its items are delivered again after ack_wait), and a
NATS cluster that loses its stream leader carries on.  Against real
nats-servers (tests/plnats.py) and real images served by nginx:

  daemon killed   3 daemons, each the owner of a job of 100 items, share the
                  stream; one is SIGKILLed mid-run and restarted.  Every line
                  of every job has exactly one record, every output exists
                  and decodes, and the work done twice (nginx's access log
                  counts the downloads) is printed and no more than the
                  killed daemon could hold: its queues and workers.
  leader killed   2 daemons on a 3-node cluster (stream with 3 replicas, every
                  daemon given all three URLs); the stream's leader is
                  SIGKILLed mid-run: every line of both jobs has exactly one
                  record, and the killed node rejoins.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402
import plnats  # noqa: E402

try:
    from PIL import Image
except ImportError:     # python3-pil, installed by scripts/deps
    Image = None

WORKERS, QUEUES = (2, 2, 2), (4, 4, 4)


def decodes(path):
    if Image is None:
        return pl.run(["vipsheader", path]).returncode == 0
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except (OSError, ValueError):
        return False


def http_items(port, imgs, prefix, n):
    return ["http://127.0.0.1:%d/%s %s%d" % (port, os.path.basename(imgs[i % len(imgs)]),
                                             prefix, i) for i in range(n)]


def recorded(site, jobs):
    total = 0
    for k, job in enumerate(jobs):
        where = site.envs[k].where(job)
        total += len(site.envs[k].records(job)) if where else 0
    return total


def finish(site, jobs, n):
    for k, job in enumerate(jobs):
        env = site.envs[k]
        pl.wait_for(lambda: env.where(job) == "done", 120, "%s in done/" % job)
        pl.check_lines_once(env.records(job), n, job)


def stop_all(site):
    for d in site.daemons:
        d.signal(signal.SIGTERM)
    for d in site.daemons:
        pl.check(d.wait(60) == 0, "exit status")
    for d in site.procs:
        pl.check(d.count(r"AddressSanitizer|runtime error") == 0, "sanitizer report")


def t_daemon_killed():
    plnats.require_server()
    root = pl.Env("sk-nats")
    srv = plnats.NatsServer(root.root).start()
    try:
        with plnats.Site("sk-daemon", srv.url, n=3, workers=WORKERS, queues=QUEUES, http=True,
                         ack_wait=3.0) as site:
            imgs = site.envs[0].image_set(4, 320, 240)
            # a limited rate keeps items in flight long enough to be caught
            port = site.nginx("limit_rate 16k;")
            for k in range(3):
                site.start(k)
            jobs, n = ("jobA", "jobB", "jobC"), 100
            for k, job in enumerate(jobs):
                site.envs[k].submit(job, http_items(port, imgs, job, n))
            pl.wait_for(lambda: recorded(site, jobs) >= 90, 120, "90 items recorded")
            site.daemons[2].kill()
            pl.check(site.daemons[2].wait(10) == -signal.SIGKILL, "node 2 did not die of SIGKILL")
            site.start(2)
            finish(site, jobs, n)
            names = ["%s%d-thumb.jpg" % (job, i) for job in jobs for i in range(n)]
            missing = [f for f in names if not os.path.exists(os.path.join(site.out, f))]
            pl.check(not missing, "%d outputs missing: %s" % (len(missing), missing[:5]))
            bad = [f for f in names if not decodes(os.path.join(site.out, f))]
            pl.check(not bad, "%d outputs do not decode: %s" % (len(bad), bad[:5]))
            twice = site.requests() - 3 * n
            held = sum(WORKERS) + sum(QUEUES)
            pl.note("daemon killed: %d items, %d downloaded twice (node 2 could hold %d)"
                    % (3 * n, twice, held))
            pl.check(0 <= twice <= held, "%d downloads more than items; the killed daemon could "
                     "hold only %d" % (twice, held))
            stop_all(site)
    finally:
        srv.kill()
        root.cleanup()


def t_leader_killed():
    plnats.require_server()
    root = pl.Env("sk-cluster")
    cluster = plnats.NatsCluster(root.root).start()
    try:
        with plnats.Site("sk-leader", cluster.urls, n=2, workers=WORKERS, queues=QUEUES,
                         http=True, ack_wait=5.0, replicas=3) as site:
            imgs = site.envs[0].image_set(4, 320, 240)
            port = site.nginx("limit_rate 32k;")
            for k in range(2):
                site.start(k)
            jobs, n = ("jobA", "jobB"), 80
            for k, job in enumerate(jobs):
                site.envs[k].submit(job, http_items(port, imgs, job, n))
            pl.wait_for(lambda: recorded(site, jobs) >= 40, 120, "40 items recorded")
            leader = pl.wait_for(lambda: cluster.leader_of("PIPELINED"), 30,
                                 "the stream's leader")
            cluster.kill(leader)
            finish(site, jobs, n)
            pl.note("leader %s killed: %d items, %d downloaded twice"
                    % (leader.name, 2 * n, site.requests() - 2 * n))
            cluster.restart(leader)
            stop_all(site)
    finally:
        cluster.stop()
        root.cleanup()


if __name__ == "__main__":
    pl.main([("a daemon SIGKILLed mid-run and restarted", t_daemon_killed),
             ("the stream's leader SIGKILLed mid-run", t_leader_killed)])

#!/usr/bin/python3
"""it_stream_outage — daemons on one NATS JetStream stream while its server is away.

pipelined(8) promises that the daemon keeps running while the server is
away, says so in STATUS= and the log, reconnects by itself and resumes.
Against a real nats-server (tests/plnats.py):

  server restart  two daemons work each other's jobs of slow items (a
                  source that answers after 250 ms) when the server is
                  SIGKILLed mid-run; both say "disconnected" (log, STATUS=),
                  then "connected" once it is back on the same port and
                  store, and finish everything: every line of both jobs has
                  exactly one record.  Work done twice (the source counts
                  its requests) is printed: at least once allows it, the
                  owner records a line once.
  long outage     with items in hand when the server goes, the workers
                  finish them and the results wait for the server: the
                  stages stay free and WATCHDOG=1 keeps coming (a worker
                  waiting to publish counted as stuck, and the service
                  manager killed a daemon after WatchdogSec of outage);
                  once the server is back every line has one record.
  no server yet   a daemon started while nothing listens on its server's
                  port starts anyway, says so, takes a job, keeps retrying,
                  and once the server comes up connects and runs the job.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402
import plnats  # noqa: E402


def slow_items(port, imgs, prefix, n, ms=250):
    return ["http://127.0.0.1:%d/delay/%d/%s %s%d" % (port, ms, os.path.basename(imgs[i % 4]),
                                                     prefix, i) for i in range(n)]


def sources_fetched(site):
    return sum(v for k, v in site.counts().items() if k.startswith("/delay/"))


def status_says(notify, what, start=0):
    return notify.wait(lambda m: what in m.get("STATUS", ""), 30, "STATUS with %r" % what, start)


def t_server_restart():
    plnats.require_server()
    root = pl.Env("so-nats")
    srv = plnats.NatsServer(root.root).start()
    notify = None
    try:
        with plnats.Site("so-restart", srv.url, n=2, http=True, ack_wait=10.0) as site:
            notify = pl.Notify(site.envs[0])
            imgs = site.envs[0].image_set(4)
            port = site.scripted()
            daemons = [site.start(0, notify=notify), site.start(1)]
            n = 60
            for k, job in enumerate(("jobA", "jobB")):
                site.envs[k].submit(job, slow_items(port, imgs, job, n))
            pl.wait_for(lambda: sum(len(site.envs[k].records(j)) for k, j in
                                    ((0, "jobA"), (1, "jobB"))) >= 20, 60, "20 items recorded")
            mark = [len(d.lines) for d in daemons]
            nmark = len(notify.messages)
            srv.kill()
            for d, m in zip(daemons, mark):
                d.wait_line(r"stream: disconnected from the server; reconnecting", 30, m)
            status_says(notify, "stream: no server, retrying", nmark)
            srv.start()
            for d, m in zip(daemons, mark):
                d.wait_line(r"stream: connected to %s" % srv.url, 30, m)
            status_says(notify, "stream %s:" % srv.url, nmark)
            for k, job in enumerate(("jobA", "jobB")):
                pl.wait_for(lambda: site.envs[k].where(job) == "done", 120, "%s in done/" % job)
                pl.check_lines_once(site.envs[k].records(job), n, job)
            pl.note("server restart: %d items, %d fetched twice" % (2 * n,
                                                                    sources_fetched(site) - 2 * n))
            for d in daemons:
                d.stop_clean()
    finally:
        if notify:
            notify.close()
        srv.kill()
        root.cleanup()


def pings(notify, start=0):
    return [m for m in notify.messages[start:] if m.get("WATCHDOG") == "1"]


def t_long_outage():
    plnats.require_server()
    with plnats.serving("so-nats") as srv, \
            plnats.Site("so-long", srv.url, n=1, http=True, workers=(4, 2, 1)) as site:
        env = site.envs[0]
        notify = pl.Notify(env)
        try:
            imgs = env.image_set(4)
            port = site.scripted()
            d = site.start(0, notify=notify, extra_env={"WATCHDOG_USEC": "1000000"})
            n = 30
            env.submit("jobW", slow_items(port, imgs, "w", n))
            pl.wait_for(lambda: len(env.records("jobW")) >= 4, 60, "4 items recorded")
            mark = len(d.lines)
            srv.kill()
            d.wait_line(r"stream: disconnected from the server; reconnecting", 30, mark)
            nmark = len(notify.messages)
            # the stage timeouts and the stuck limit are far away; "no progress
            # with work waiting" is what a worker held by the server trips
            pl.wait_for(lambda: len(pings(notify, nmark)) >= 8, 30,
                        "eight WATCHDOG=1 (4 s) during the outage")
            pl.check(not d.matches(r"withholding the watchdog ping", mark),
                     "the watchdog ping was withheld during the outage")
            pl.check(not d.matches(r"cannot publish its result", mark),
                     "a result was given up during the outage")
            srv.start()
            d.wait_line(r"stream: connected to %s" % srv.url, 30, mark)
            pl.wait_for(lambda: env.where("jobW") == "done", 120, "jobW in done/")
            pl.check_lines_once(env.records("jobW"), n, "jobW")
            d.stop_clean()
        finally:
            notify.close()


def t_no_server_yet():
    plnats.require_server()
    root = pl.Env("so-nats")
    srv = plnats.NatsServer(root.root)      # its ports chosen, nothing listening yet
    notify = None
    try:
        with plnats.Site("so-late", srv.url, n=1) as site:
            env = site.envs[0]
            notify = pl.Notify(env)
            d = site.start(0, notify=notify, wait=False)
            d.wait_line(r"stream: no server reachable yet \(%s\); retrying" % srv.url, 30)
            notify.wait(lambda m: m.get("READY") == "1", 30, "READY=1")
            status_says(notify, "stream: no server, retrying")
            env.submit("jobL", env.items(10, env.image_set(2)))
            d.wait_line(r"job jobL claimed", 30)
            srv.start()
            d.wait_line(r"stream: connected to %s" % srv.url, 30)
            d.wait_line(r"stream: consuming", 30)
            pl.wait_for(lambda: env.where("jobL") == "done", 60, "jobL in done/")
            pl.check_lines_once(env.records("jobL"), 10, "jobL")
            d.stop_clean()
    finally:
        if notify:
            notify.close()
        srv.kill()
        root.cleanup()


if __name__ == "__main__":
    pl.main([("nats-server SIGKILLed and restarted mid-run", t_server_restart),
             ("an outage with items in hand: the watchdog keeps pinging", t_long_outage),
             ("no server at start", t_no_server_yet)])

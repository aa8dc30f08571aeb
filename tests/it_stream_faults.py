#!/usr/bin/python3
"""it_stream_faults — what goes wrong around daemons sharing one NATS JetStream stream.

Against a real nats-server (tests/plnats.py), with real signals:

  graceful stop   two daemons share slow items (a source that answers after 1 s) with
                  an AckWait of 60 s; the one that is not the owner gets
                  SIGTERM while it holds pulled items it has not started.  It
                  gives them back at once (a nak: its log says how many) and
                  finishes only what is inside its stages; the other daemon
                  completes the whole job long before AckWait could have
                  handed anything over, at full speed (a given-back item is
                  a fresh message, no crash suspect that must run alone),
                  and every line has exactly one record.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402
import plnats  # noqa: E402

ACK_WAIT = 60.0


def stream_status(d, env):
    """SIGUSR1, then the daemon's stream counters from status.json once written."""
    before = os.path.getmtime(env.run + "/status.json") if env.status() else 0
    d.signal(signal.SIGUSR1)
    pl.wait_for(lambda: env.status() and os.path.getmtime(env.run + "/status.json") != before,
                10, "status.json after SIGUSR1")
    return env.status().get("stream") or {}


def t_graceful_stop_gives_back():
    plnats.require_server()
    root = pl.Env("sf-nats")
    srv = plnats.NatsServer(root.root).start()
    try:
        # node 0 holds up to 8 waiting items, node 1 (the owner) hardly any
        with plnats.Site("sf-stop", srv.url, n=2, workers=(1, 1, 1), queues=(8, 8, 8),
                         http=True, ack_wait=ACK_WAIT) as site:
            site.config(1, "queue = 8;\n  protocols", "queue = 1;\n  protocols")
            imgs = site.envs[0].image_set(4)
            port = site.scripted()
            stopping = site.start(0)
            owner = site.start(1)
            n = 12
            site.envs[1].submit("jobS", ["http://127.0.0.1:%d/slow/1000/%s s%d"
                                         % (port, os.path.basename(imgs[i % 4]), i)
                                         for i in range(n)])
            pl.wait_for(lambda: stream_status(stopping, site.envs[0]).get("in_flight", 0) >= 4,
                        30, "node 0 to hold at least 4 items")
            stopping.signal(signal.SIGTERM)
            _, m = stopping.wait_line(r"graceful stop: no new items; (\d+) queued items go back "
                                      r"to the stream", 10)
            given = int(m.group(1))
            pl.check(given >= 2, "only %d items given back" % given)
            pl.check(stopping.wait(30) == 0, "node 0's exit status")
            _, m = stopping.wait_line(r"(\d+) items in", 5)
            ran = int(m.group(1))
            pl.check(ran + given >= 4 and ran <= 3, "node 0 ran %d and gave back %d of the 4+ "
                     "it held (at most one item per stage may still run)" % (ran, given))
            # what node 0 gave back is not waiting for AckWait: well within it
            pl.wait_for(lambda: site.envs[1].where("jobS") == "done", ACK_WAIT / 2,
                        "jobS in done/ (AckWait is %g s)" % ACK_WAIT)
            pl.check_lines_once(site.envs[1].records("jobS"), n, "jobS")
            # given back as fresh messages: not suspects, so none ran alone
            pl.check(owner.count(r"running alone") == 0, "node 1 ran given-back items alone")
            owner.signal(signal.SIGTERM)
            pl.check(owner.wait(30) == 0, "node 1's exit status")
            for d in site.procs:
                pl.check(d.count(r"AddressSanitizer|runtime error") == 0, "sanitizer report")
    finally:
        srv.kill()
        root.cleanup()


if __name__ == "__main__":
    pl.main([("a graceful stop gives its waiting items back", t_graceful_stop_gives_back)])

#!/usr/bin/python3
"""it_stream_perms — a NATS user the server denies part of what the stream needs.

Against a real nats-server (tests/plnats.py) whose users have publish
permissions denied on one subject each.  The server drops a denied message
and says so only in an asynchronous -ERR; the publish itself times out, so
without care a denial looks like an outage and is retried for ever.

  items denied    the owner may not publish on pipelined.items: each line
                  of its job is recorded failed with the server's words and
                  the job goes to failed/; one log line names the server,
                  subject and reason; the daemon keeps running, and neither
                  its log nor its status holds the password from the URL.
  results denied  the worker may not publish on pipelined.results.n0: the
                  subject and reason are logged once; each delivery of the
                  item says it will run again after a doubling delay (one
                  attempt a delivery, no tight loop) until max_deliver
                  dead-letters it.
  pull denied     the user may not ask the consumer for messages: the log
                  names the server, the subject of the pull and the reason.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402
import plnats  # noqa: E402


def server(prefix, user, deny):
    """A server whose user `user` may not publish on deny."""
    return plnats.serving(prefix, extra=plnats.users(**{user: {"publish": {"deny": [deny]}}}))


def as_user(srv, user):
    return "nats://%s:%s@127.0.0.1:%d" % (user, user, srv.port)


def t_items_denied():
    plnats.require_server()
    with server("sp-nats", "noitems", "pipelined.items") as srv:
        with plnats.Site("sp-items", as_user(srv, "noitems"), n=1) as site:
            env = site.envs[0]
            d = site.start(0)
            n = 3
            env.submit("jobD", env.items(n, env.image_set(2)))
            pl.wait_for(lambda: env.where("jobD") == "failed", pl.scaled(30, 60), "jobD in failed/")
            recs = env.records("jobD", "failed")
            want = ('the server denies this user publishing on pipelined.items: '
                    'Permissions Violation for Publish to "pipelined.items"')
            pl.check(sorted(r["line"] for r in recs) == list(range(1, n + 1))
                     and all(r["status"] != "ok" and want in r["error"] for r in recs),
                     "want each line failed with the server's reason: %r" % recs)
            pl.check(d.count(r"job jobD item \d+ \(file://[^)]*\): not run: the server denies")
                     == n, "a log line with job, line, URL and reason for each item")
            pl.check(d.count(r"stream: the server nats://127\.0\.0\.1:\d+ denies this user "
                             r"publishing on pipelined\.items: Permissions Violation") == 1,
                     "the denial logged once, naming the server, subject and reason")
            pl.check(d.count("noitems:noitems") == 0, "no password from the URL in the log")
            status = json.dumps(plnats.stream_status(d, env))
            pl.check("noitems" not in status and "127.0.0.1" in status,
                     "no password from the URL in the status: %s" % status)
            pl.check(d.proc.poll() is None, "the daemon keeps running")
            d.stop_clean()


def t_results_denied():
    plnats.require_server()
    with server("sp-nats", "nores", "pipelined.results.n0") as srv:
        with plnats.Site("sp-res", as_user(srv, "nores"), n=1, max_deliver=3) as site:
            env = site.envs[0]
            d = site.start(0)
            env.submit("jobR", env.items(1, env.image_set(1)))
            d.wait_line(r"dead-lettered to pipelined\.dead: delivered 3 times .*or its result "
                        r"could not be stored", pl.scaled(60, 120))
            pl.check(d.count(r"stream: the server \S+ denies this user publishing on "
                             r"pipelined\.results\.n0: "
                             r"Permissions Violation for Publish to") == 1,
                     "the subject and the server's reason logged once")
            ok, delays = plnats.nak_delays(
                d, r"job jobR item 1 .*cannot publish its result: the server denies this user "
                r"publishing on pipelined\.results\.n0: .*will run again in ([0-9.]+) s")
            pl.check(ok, "one try a delivery, each in the second half of a window twice the "
                     "last: %r" % delays)
            pl.check(env.where("jobR") == "cur", "the job waits for its result")
            pl.check(d.proc.poll() is None, "the daemon keeps running")


def t_pull_denied():
    plnats.require_server()
    with server("sp-nats", "nopull", "$JS.API.CONSUMER.MSG.NEXT.>") as srv:
        with plnats.Site("sp-pull", as_user(srv, "nopull"), n=1) as site:
            d = site.start(0)
            d.wait_line(r"stream: the server nats://127\.0\.0\.1:\d+ denies this user publishing "
                        r"on \$JS\.API\.CONSUMER\.MSG\.NEXT\.PIPELINED\.\S+: Permissions "
                        r"Violation for Publish to .*cannot be set up or read", pl.scaled(30, 60))


if __name__ == "__main__":
    pl.main([("items the user may not publish fail their job", t_items_denied),
             ("results the user may not publish come back later", t_results_denied),
             ("a user that may not pull is told", t_pull_denied)])

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
  poison          one item among 24 aborts the daemon (the test-build fault
                  hook PL_TEST_CRASH) while a wide first queue holds most of
                  the job; restarted after each crash, the daemon
                  dead-letters it alone with "crashed the daemon 2 times",
                  failed to its owner, while the 24 good ones complete, each
                  run alone at its second delivery at most: no crash raised
                  the delivery count of an item held behind the poison one.
  forgotten       a job of the poison item alone: once it is dead-lettered
                  the crash guard forgets it, and the next start blames no
                  one ("running alone when the daemon died" every start).
  bad messages    items published by hand that are not JSON, not objects,
                  name no owner or a bad job, line, source or name, are
                  nearly 1 MiB, nested 100000 deep or hold NULs: each is
                  failed with its reason to the owner it names (who has no
                  such job, logs it and drops it) or dead-lettered, and acked;
                  results for a job nobody owns, for the job ".", or that
                  are no results, are logged and dropped; the daemon then
                  runs a job as before.
  refused         a stream already full (max_msgs, discard new) refuses every
                  item of a job: each line is recorded failed with what the
                  server said, and the job goes to failed/ at once instead
                  of waiting in cur/; once there is room, a job runs as before.
  result refused  a stream with room for one message takes an item but not its
                  result: the item comes back after 1 s, 2 s, 4 s (one try a
                  delivery, logged with the server's reason) until max_deliver
                  dead-letters it.
  dead letter refused
                  a message that names no owner, in a stream with no room
                  left for its dead letter: it is given back (it was acked
                  and lost without a trace) and comes again until
                  max_deliver, when it is deleted first and so dead-lettered
                  in the room it made.
  settings        a restart with another ack_wait and max_deliver updates the
                  durable consumer instead of failing to bind to it.
  deleted         the consumers deleted on the server under a running daemon
                  (an operator's mistake), then the server back without its
                  store: the daemon sets the stream and its consumers up
                  again, says so, and runs the next job (it stayed without
                  intake, the job parked in cur/, until a restart).
  many dead       a hundred items that a vanished taker held until
                  max_deliver reach it at one instant: the server's hundred
                  advisories all arrive before the daemon acts on any, and
                  every one is dead-lettered and failed to its owner (the
                  daemon kept only the first 64 and the rest stayed in the
                  stream, undelivered, for ever).
"""
import os
import re
import resource
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pltest as pl  # noqa: E402
import plnats  # noqa: E402

ACK_WAIT = 60.0


stream_status = plnats.stream_status


def t_graceful_stop_gives_back():
    plnats.require_server()
    with plnats.serving("sf-nats") as srv:
        # node 0 holds up to 8 waiting items, node 1 (the owner) hardly any
        with plnats.Site("sf-stop", srv.url, n=2, workers=(1, 1, 1), queues=(8, 8, 8),
                         http=True, ack_wait=ACK_WAIT) as site:
            site.config(1, "queue = 8;\n  protocols", "queue = 1;\n  protocols")
            imgs = site.envs[0].image_set(4)
            port = site.scripted()
            stopping = site.start(0)
            owner = site.start(1)
            n = 12
            site.envs[1].submit("jobS", ["http://127.0.0.1:%d/delay/1000/%s s%d"
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


def dead_letters(url, subject="pipelined.dead", stream="PIPELINED"):
    """Every dead letter on the stream, read with a consumer of the test's own
    (a work-queue stream takes one more whose subject no other consumer has)."""
    with plnats.Client(url) as cl:
        cl.js_api("CONSUMER.DURABLE.CREATE.%s.deadcheck" % stream, {
            "stream_name": stream, "config": {"durable_name": "deadcheck",
                                              "ack_policy": "explicit",
                                              "filter_subject": subject}})
        return cl.fetch(stream, "deadcheck", batch=100, timeout=1)


def t_poison_crashes_alone():
    """24 good items and one that aborts the daemon (the test-build fault
    hook), a first queue wide enough for the whole job so that the first
    crash takes it all, and a supervisor that restarts the daemon after each
    crash as systemd would.  The server raises the delivery count of
    everything a dead daemon held, and counts a delivery whether the item
    runs or not: a restarted daemon that held redelivered items behind the
    poison one, while that ran alone, would have each crash raise theirs
    (they ran alone at their third or fourth delivery, and with one crash
    more, reached max_deliver 4 and were dead-lettered).  It must pull them
    one at a time instead, so that each good item runs at its second
    delivery at most, and the poison item crashes twice in a row alone."""
    plnats.require_server()
    if not pl.hooks_built():
        pl.skip("the fault hook is not built (configure with -DPL_TEST_HOOKS=ON)")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # the aborts dump no core
    with plnats.serving("sf-nats") as srv:
        with plnats.Site("sf-poison", srv.url, n=1, workers=(4, 2, 2), queues=(32, 8, 8),
                         ack_wait=2.0, max_deliver=4) as site:
            env = site.envs[0]
            good, poison = 24, 7
            lines = env.items(good, env.image_set(4))
            lines.insert(poison - 1, "file://%s/poison.jpg poison" % env.images)
            env.submit("jobP", lines)
            crashes = 0
            for attempt in range(8):
                d = site.start(0, "--once", extra_env={"PL_TEST_CRASH": "poison.jpg"})
                rc = d.wait(120)
                if rc >= 0:
                    break
                pl.check(rc == -signal.SIGABRT, "run %d died of signal %d" % (attempt + 1, -rc))
                crashes += 1
            pl.check(rc == 1, "last run: exit %d, want 1 (one item failed)" % rc)
            # one crash with the batch in flight, then twice while it ran alone
            pl.check(crashes == 3, "%d crashes before the poison item was dead-lettered, "
                     "want 3" % crashes)
            recs = env.records("jobP", "failed")
            pl.check(sorted(r["line"] for r in recs) == list(range(1, good + 2)),
                     "want one record per line 1..%d: %r" % (good + 1,
                                                             sorted(r["line"] for r in recs)))
            bad = [r for r in recs if r["status"] != "ok"]
            pl.check(len(bad) == 1 and bad[0]["line"] == poison
                     and bad[0]["error"] == "crashed the daemon 2 times",
                     "want only line %d failed with its reason: %r" % (poison, bad))
            dead = dead_letters(srv.url)
            pl.check(len(dead) == 1 and b"poison.jpg" in dead[0].data
                     and dead[0].headers.get("Pipelined-Reason") == "crashed the daemon 2 times",
                     "want the poison item as the one dead letter: %r" % (dead,))
            pl.check(any(p.count(r"running alone when the daemon died") for p in site.procs),
                     "no log line names the suspect")
            # which delivery of which line ran alone, over all the runs
            rx = re.compile(r"job jobP item (\d+) \(.*\): delivery (\d+) of stream sequence")
            alone = {}
            for p in site.procs:
                for line in p.lines:
                    m = rx.search(line)
                    if m:
                        alone.setdefault(int(m.group(1)), []).append(int(m.group(2)))
            pl.check(alone.get(poison) == [2, 3], "the poison item ran alone at deliveries %r, "
                     "want [2, 3]" % alone.get(poison))
            late = {k: v for k, v in alone.items() if k != poison and v != [2]}
            pl.check(not late, "good items ran alone at later deliveries (a crash raised their "
                     "count while they were held): %r" % late)
            pl.check(len(alone) > 2, "only %d items came again after the first crash: the "
                     "test does not test what it should" % len(alone))


def t_condemned_forgotten():
    """A job of the poison item alone: once it is dead-lettered, the crash
    guard must forget it, or every later start blames it again (and, with a
    stream made again, its sequence number names an innocent item)."""
    plnats.require_server()
    if not pl.hooks_built():
        pl.skip("the fault hook is not built (configure with -DPL_TEST_HOOKS=ON)")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with plnats.serving("sf-nats") as srv:
        with plnats.Site("sf-forget", srv.url, n=1, ack_wait=2.0, max_deliver=10) as site:
            env = site.envs[0]
            env.submit("jobP", ["file://%s/poison.jpg poison" % env.images])
            for attempt in range(6):
                d = site.start(0, "--once", extra_env={"PL_TEST_CRASH": "poison.jpg"})
                rc = d.wait(120)
                if rc >= 0:
                    break
            pl.check(rc == 1 and d.count(r"dead-lettered .*crashed the daemon 2 times") == 1,
                     "the poison item was not dead-lettered (exit %d)" % rc)
            env.submit("jobG", env.items(2, env.image_set(2)))
            d = site.start(0, "--once")
            pl.check(d.wait(120) == 0, "the good job's run failed")
            pl.check(not d.matches(r"running alone when the daemon died"),
                     "a start after the poison item was dead-lettered still blamed it")


def runs_a_job_and_stops(d, env, n):
    """After what went wrong, daemon d still runs a job of n good lines, then
    stops cleanly."""
    env.submit("jobG", env.items(n, env.image_set(2)))
    pl.wait_for(lambda: env.where("jobG") == "done", 60, "jobG in done/")
    pl.check_lines_once(env.records("jobG"), n, "jobG")
    d.stop_clean()


def consumer_empty(cl, durable):
    """Check that the stream's consumer durable has nothing left: no message
    pending, none waiting for an ack.  Its info."""
    info = cl.js_api("CONSUMER.INFO.PIPELINED." + durable)
    pl.check(info["num_pending"] == 0 and info["num_ack_pending"] == 0,
             "consumer %s: %d pending, %d unacknowledged" % (
                 durable, info["num_pending"], info["num_ack_pending"]))
    return info


def t_bad_messages():
    """Messages no daemon of ours sent, straight onto the stream."""
    plnats.require_server()
    with plnats.serving("sf-nats") as srv:
        with plnats.Site("sf-bad", srv.url, n=1) as site:
            env = site.envs[0]
            d = site.start(0)
            bad_items = [   # (message, names an owner)
                (b"\xff\xfe not JSON", False),
                (b'["an", "array"]', False),
                (b'{"job":"jobX","line":1,"source":"file:///a.jpg"}', False),
                (b'{"job":"jobX","owner":"n0","line":2}', True),
                (b'{"job":"jobX","owner":"n0","line":"three","source":"file:///a.jpg"}', False),
                (b'{"job":"jobX","owner":"n0","line":4,"source":"file:///a.jpg","name":7}', True),
                (b'{"job":"jobX","owner":"n0","line":5,"source":"file:///a.jpg","name":"../x"}',
                 True),
                (b'{"job":"../jobX","owner":"n0","line":6,"source":"file:///a.jpg"}', False),
                (b'{"job":"jobX","owner":"n0","line":7,"source":"' + b"x" * 9000 + b'"}', True),
                # a huge body (just under the server's 1 MiB max_payload, so that
                # its dead letter with two headers still fits), deep nesting, NULs
                (b'{"job":"jobX","owner":"n0","line":8,"source":"' + b"x" * 1000000 + b'"}',
                 True),
                (b"\x00\x01" * 500000, False),
                (b'{"job":"jobX","owner":"n0","line":9,"source":"file:///a.jpg","name":'
                 + b"[" * 100000 + b"]" * 100000 + b"}", False),
                (b'{"job":"jobX","owner":"n0","line":10,"source":"file:///a\x00.jpg"}', False),
                (b'{"job":"jobX","owner":"n0","line":11,"source":"file:///a\\u0000.jpg"}', False),
                (b'{"job":"jobX\x00","owner":"n0","line":12,"source":"file:///a.jpg"}', False),
            ]
            forged_result = (b'{"line":1,"source":"file:///x","name":"x","status":"ok",'
                             b'"outputs":[],"error":null,"milliseconds":1}\n')
            with plnats.Client(srv.url) as cl:
                for data, _ in bad_items:
                    cl.js_publish("pipelined.items", data)
                # results for a job nobody here owns, and what is no result at all
                cl.js_publish("pipelined.results.n0", forged_result, {"Pipelined-Job": "ghost"})
                cl.js_publish("pipelined.results.n0", b"not a result", {"Pipelined-Job": "ghost"})
                cl.js_publish("pipelined.results.n0", forged_result)
                # "." is in every new/: it must not look like a job still to come
                cl.js_publish("pipelined.results.n0", forged_result, {"Pipelined-Job": "."})
            owned = sum(1 for _, o in bad_items if o)
            # each failed to its owner with a reason, or dead-lettered: never run
            for line in (2, 4, 5, 7, 8):
                d.wait_line(r"stream: job jobX line %d from n0: \S" % line, 30)
            pl.wait_for(lambda: d.count(r"result for job jobX line \d+, which this daemon does "
                                        r"not have") == owned, 30,
                        "the %d failures of jobX dropped by their owner, who has no jobX" % owned)
            d.wait_line(r"result for job ghost line 1, which this daemon does not have", 30)
            pl.wait_for(lambda: d.count(r"a message on pipelined.results.n0 is not a result") == 3,
                        30, "three messages that are not results dropped")
            pl.wait_for(lambda: d.count(r"dead-lettered") == len(bad_items) - owned, 30,
                        "%d dead letters" % (len(bad_items) - owned))
            dead = dead_letters(srv.url)
            reasons = [m.headers.get("Pipelined-Reason") or "" for m in dead]
            pl.check(len(dead) == len(bad_items) - owned and all(
                r and r.isprintable() for r in reasons), "dead letters' reasons: %r" % reasons)
            pl.check(any("depth" in r for r in reasons), "no reason names the nesting depth: %r"
                     % reasons)
            pl.check(d.count(r"line 8 from n0: line too long") == 1, "the 1 MB item's reason")
            # every one acked: nothing left for anyone, nothing waiting for AckWait
            with plnats.Client(srv.url) as cl:
                consumer_empty(cl, "pipelined")
                info = consumer_empty(cl, "results-n0")
                # a result waits for its job as long as it takes: no delivery limit
                pl.check(info["config"].get("max_deliver", -1) == -1,
                         "the results consumer gives up after %s deliveries"
                         % info["config"].get("max_deliver"))
            # and the daemon goes on working
            runs_a_job_and_stops(d, env, 5)


def small_stream(url, max_msgs, fillers=0):
    """The stream made beforehand with room for max_msgs messages (discard
    new), fillers of them taken by messages no consumer reads; its config."""
    conf = {"name": "PIPELINED", "subjects": ["pipelined.>"], "retention": "workqueue",
            "storage": "file", "max_msgs": max_msgs, "discard": "new"}
    with plnats.Client(url) as cl:
        cl.js_api("STREAM.CREATE.PIPELINED", conf)
        for i in range(fillers):
            cl.js_publish("pipelined.filler", b"%d" % i)
    return conf


def t_publish_refused():
    """A stream made beforehand with room for 3 messages, filled by messages
    no consumer takes: the server refuses each item the owner publishes."""
    plnats.require_server()
    with plnats.serving("sf-nats") as srv:
        conf = small_stream(srv.url, 3, fillers=3)
        with plnats.Site("sf-refused", srv.url, n=1) as site:
            env = site.envs[0]
            d = site.start(0)
            n = 4
            env.submit("jobR", env.items(n, env.image_set(2)))
            pl.wait_for(lambda: env.where("jobR") == "failed", 30, "jobR in failed/")
            recs = env.records("jobR", "failed")
            pl.check(sorted(r["line"] for r in recs) == list(range(1, n + 1))
                     and all(r["status"] != "ok" and "the stream refused it: " in r["error"]
                             and "maximum messages" in r["error"] for r in recs),
                     "want each line failed with the server's reason: %r" % recs)
            pl.check(d.count(r"job jobR item \d+ \(file://[^)]*\): not run: the stream refused "
                             r"it: maximum messages") == n, "a log line with job, line, URL "
                     "and reason for each item")
            # room again: the same daemon runs the next job
            with plnats.Client(srv.url) as cl:
                cl.js_api("STREAM.UPDATE.PIPELINED", dict(conf, max_msgs=-1))
            runs_a_job_and_stops(d, env, 3)


def t_result_refused():
    plnats.require_server()
    with plnats.serving("sf-nats") as srv:
        small_stream(srv.url, 1)
        with plnats.Site("sf-resref", srv.url, n=1, max_deliver=3) as site:
            env = site.envs[0]
            d = site.start(0)
            env.submit("jobQ", env.items(1, env.image_set(1)))
            d.wait_line(r"dead-lettered to pipelined\.dead: delivered 3 times", pl.scaled(60, 120))
            ok, delays = plnats.nak_delays(
                d, r"job jobQ item 1 .*cannot publish its result: the stream refused it: maximum "
                r"messages .*will run again in ([0-9.]+) s")
            pl.check(ok, "one try a delivery, each in the second half of a window twice the "
                     "last, with the server's reason: %r" % delays)
            pl.check(d.count(r"cannot publish its result") == 3, "no other try")


def t_dead_letter_refused():
    plnats.require_server()
    with plnats.serving("sf-nats") as srv:
        small_stream(srv.url, 2, fillers=1)
        with plnats.Site("sf-dlref", srv.url, n=1, max_deliver=3) as site:
            d = site.start(0)
            with plnats.Client(srv.url) as cl:
                # the stream is full with it: no room for its dead letter
                cl.js_publish("pipelined.items", b'{"job":"jobZ","line":1}')
            d.wait_line(r"stays in the stream: neither its failure nor its dead letter could "
                        r"be stored; it comes again in [0-9.]+ s", 30)
            d.wait_line(r"dead-lettered to pipelined\.dead: delivered 3 times", pl.scaled(30, 60))
            dead = dead_letters(srv.url)
            pl.check(len(dead) == 1 and b"jobZ" in dead[0].data, "want the message as the one "
                     "dead letter: %r" % (dead,))
            pl.check(d.count(r"stays in the stream") == 3, "given back at each of its three "
                     "deliveries")
            with plnats.Client(srv.url) as cl:
                consumer_empty(cl, "pipelined")
            d.stop_clean()


def t_settings_changed():
    """The fleet's consumer settings changed (ack_wait, max_deliver) and a
    daemon restarted with the new ones: libnats refuses to bind to a durable
    consumer made with others, so the daemon updates it instead of staying
    without intake."""
    plnats.require_server()
    with plnats.serving("sf-nats") as srv:
        with plnats.Site("sf-change", srv.url, n=1, ack_wait=30, max_deliver=5) as site:
            env = site.envs[0]
            d = site.start(0)
            env.submit("jobA", env.items(2, env.image_set(2)))
            pl.wait_for(lambda: env.where("jobA") == "done", 60, "jobA in done/")
            d.stop_clean()
            site.config(0, "ack_wait = 30;", "ack_wait = 45;")
            site.config(0, "max_deliver = 5;", "max_deliver = 7;")
            d = site.start(0)
            pl.check(d.count(r"consumer \S+ had ack_wait 30 s, max_deliver 5, .*updating it to "
                             r"this daemon's \(45 s, 7,") == 1, "the update logged once")
            with plnats.Client(srv.url) as cl:
                names = cl.js_api("CONSUMER.NAMES.PIPELINED").get("consumers") or []
                infos = [cl.js_api("CONSUMER.INFO.PIPELINED." + n)["config"] for n in names]
            items = [c for c in infos if c.get("max_deliver") == 7]
            pl.check(len(items) == 1 and items[0]["ack_wait"] == 45 * 10**9,
                     "the items consumer has the new settings: %r" % infos)
            runs_a_job_and_stops(d, env, 3)


def t_deleted_on_server():
    plnats.require_server()
    with plnats.serving("sf-nats") as srv:
        with plnats.Site("sf-gone", srv.url, n=1) as site:
            env = site.envs[0]
            d = site.start(0)
            imgs = env.image_set(2)
            for k, gone in enumerate(("consumers", "store")):
                mark = len(d.lines)
                if gone == "store":
                    # a single server back without its store (deleting the stream
                    # instead races nats-server 2.9's own removal of its files)
                    srv.kill()
                    shutil.rmtree(srv.store)
                    srv.start()
                    d.wait_line(r"stream: stream PIPELINED is gone from the server; creating "
                                r"it again", 30, mark)
                else:
                    with plnats.Client(srv.url) as cl:
                        for durable in ("pipelined", "results-n0"):
                            cl.js_api("CONSUMER.DELETE.PIPELINED." + durable)
                for durable in ("pipelined", "results-n0"):
                    d.wait_line(r"stream: consumer %s is gone from the server; making it again"
                                % durable, 30, mark)
                job = "job%d" % k
                env.submit(job, env.items(3, imgs))
                pl.wait_for(lambda: env.where(job) == "done", 60,
                            "%s in done/ after the %s went" % (job, gone))
                pl.check_lines_once(env.records(job), 3, job)
            d.stop_clean()


def t_many_past_max_deliver():
    plnats.require_server()
    n = 100
    with plnats.serving("sf-nats") as srv:
        with plnats.Site("sf-many", srv.url, n=1, ack_wait=4.0, max_deliver=2) as site:
            d = site.start(0)       # the stream and the consumer, then away
            d.stop_clean()
            with plnats.Client(srv.url) as cl:
                for i in range(1, n + 1):
                    cl.js_publish("pipelined.items", (
                        '{"job":"jobM","owner":"elsewhere","line":%d,'
                        '"source":"file:///a.jpg","name":"m%d"}' % (i, i)).encode())
                # a taker that vanishes twice: both deliveries spent
                for k in (1, 2):
                    got = cl.fetch("PIPELINED", "pipelined", batch=n, timeout=20)
                    pl.check(len(got) == n, "delivery %d: %d of %d items" % (k, len(got), n))
            d = site.start(0)
            pl.wait_for(lambda: d.count(r"dead-lettered to pipelined.dead: delivered 2 times") >= n,
                        60, "%d items dead-lettered past max_deliver" % n)
            pl.check(d.count(r"dead-lettered") == n, "each dead-lettered once")
            with plnats.Client(srv.url) as cl:
                consumer_empty(cl, "pipelined")
            d.stop_clean()


if __name__ == "__main__":
    pl.main([("a graceful stop gives its waiting items back", t_graceful_stop_gives_back),
             ("an item that crashes the daemon is dead-lettered alone", t_poison_crashes_alone),
             ("malformed messages and results for no one's job", t_bad_messages),
             ("items the stream refuses fail their job at once", t_publish_refused),
             ("a result the stream refuses comes back later", t_result_refused),
             ("a dead letter the stream refuses: the message stays", t_dead_letter_refused),
             ("changed consumer settings are applied at a restart", t_settings_changed),
             ("a hundred items past max_deliver at once", t_many_past_max_deliver),
             ("a dead-lettered poison item is no suspect after", t_condemned_forgotten),
             ("consumers deleted, a server back without its store", t_deleted_on_server)])

"""core_py.py — the no-op 3-stage pipeline of bench/core in Python.

The baseline pipelined's core is compared with: Effective Python's
ClosableQueue / StoppableWorker (item 55 in the 2nd edition), written out here
as the book does it.  A ClosableQueue is a queue.Queue whose close() puts a
SENTINEL and whose __iter__ stops on it; each StoppableWorker thread iterates
its input queue and puts results on its output queue.  stop_threads() closes
a stage's queue once per worker (one SENTINEL each), joins the queue, then
joins the threads, stage by stage.

Usage: core_py.py ITEMS W1 W2 W3 CAPACITY
Prints "items=N seconds=S rate=R"; exits 1 unless every item came out once.
Run it with Debian's /usr/bin/python3.
"""
import sys
import time
import os
from queue import Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from effective_pipeline import ClosableQueue, start_threads, stop_threads  # noqa: E402


def noop(item):
    return item


def main():
    if len(sys.argv) != 6:
        sys.exit("usage: core_py.py ITEMS W1 W2 W3 CAPACITY")
    n, w1, w2, w3, cap = (int(a) for a in sys.argv[1:])
    q1, q2, q3 = ClosableQueue(cap), ClosableQueue(cap), ClosableQueue(cap)
    done = Queue()  # unbounded: the book's done_queue
    t0 = time.monotonic()
    t1s = start_threads(w1, noop, q1, q2)
    t2s = start_threads(w2, noop, q2, q3)
    t3s = start_threads(w3, noop, q3, done)
    for i in range(n):
        q1.put(i)
    stop_threads(q1, t1s)
    stop_threads(q2, t2s)
    stop_threads(q3, t3s)
    t1 = time.monotonic()
    got = done.qsize()
    if got != n:
        sys.exit("core_py: %d items fed, %d done" % (n, got))
    print("items=%d seconds=%.3f rate=%.0f" % (n, t1 - t0, n / (t1 - t0)))


if __name__ == "__main__":
    main()

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
from queue import Queue
from threading import Thread


class ClosableQueue(Queue):
    SENTINEL = object()

    def close(self):
        self.put(self.SENTINEL)

    def __iter__(self):
        while True:
            item = self.get()
            try:
                if item is self.SENTINEL:
                    return  # Cause the thread to exit
                yield item
            finally:
                self.task_done()


class StoppableWorker(Thread):
    def __init__(self, func, in_queue, out_queue):
        super().__init__()
        self.func = func
        self.in_queue = in_queue
        self.out_queue = out_queue

    def run(self):
        for item in self.in_queue:
            result = self.func(item)
            self.out_queue.put(result)


def start_threads(count, *args):
    threads = [StoppableWorker(*args) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def stop_threads(closable_queue, threads):
    for _ in threads:
        closable_queue.close()
    closable_queue.join()
    for thread in threads:
        thread.join()


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

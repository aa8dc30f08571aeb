"""effective_pipeline.py — Effective Python's thread pipeline (item 55 of the
2nd edition), written out once as the book does it, for the two Python
baselines the benchmarks compare pipelined with (core_py.py, e2e_pillow.py).

A ClosableQueue is a queue.Queue whose close() puts a SENTINEL and whose
__iter__ stops on it; each StoppableWorker thread iterates its input queue
and puts each result on its output queue (a func returning None drops the
item: the e2e baseline counts failures itself).  stop_threads() closes a
stage's queue once per worker (one SENTINEL each), joins the queue, then
joins the threads; call it stage by stage.
"""
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
            if result is not None:
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

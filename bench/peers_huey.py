"""huey (`SqliteHuey`, process workers), the best Python peer, driven like jobq.

huey keeps its library defaults (WAL, SQLite's default synchronous=FULL, poll 0.1 s with ×1.15
backoff up to 10 s); only `workers=4, worker_type='process'` is asked for.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any


def available() -> str | None:
    """None if huey can be imported, else why not."""
    try:
        import huey  # noqa: F401
    except ImportError:
        return "huey is not installed (pip install huey)"
    return None


def make_huey(workdir: str, counter: Any = None, last: Any = None) -> tuple[Any, dict[str, Any]]:
    from huey import SqliteHuey
    from huey.signals import SIGNAL_COMPLETE

    h = SqliteHuey(name="bench", filename=os.path.join(workdir, "huey.db"))

    @h.task(name="noop")
    def noop(payload: dict[str, Any]) -> None:
        pass

    @h.task(name="stamp")
    def stamp(payload: dict[str, Any]) -> None:
        started = time.monotonic()
        out = os.path.join(payload["out"], f"stamp-{os.getpid()}.txt")
        with open(out, "a") as f:
            f.write(f"{payload['i']} {started - payload['t']:.6f}\n")

    if counter is not None:
        # runs in the worker process after huey's own bookkeeping for the task
        @h.signal(SIGNAL_COMPLETE)
        def completed(sig: Any, task: Any) -> None:
            with counter.get_lock():
                counter.value += 1
                last.value = time.monotonic()

    return h, {"noop": noop, "stamp": stamp}


class Producer:
    """Enqueue through huey's normal API: calling a task enqueues it."""

    def __init__(self, workdir: str) -> None:
        self.huey, self.tasks = make_huey(workdir)
        _ = self.huey.storage.conn  # connect now, outside any timing

    def enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        self.tasks[kind](payload)

    def close(self) -> None:
        self.huey.storage.close()


def _consumer_main(workdir: str, workers: int, counter: Any, last: Any) -> None:
    h, _ = make_huey(workdir, counter, last)
    h.create_consumer(workers=workers, worker_type="process").run()


def start_consumer(
    workdir: str, workers: int, counter: Any = None, last: Any = None
) -> multiprocessing.Process:
    # huey's consumer forks its own workers, so it is not daemonic
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_consumer_main, args=(workdir, workers, counter, last))
    p.start()
    return p


def stop_consumer(p: multiprocessing.Process) -> None:
    if p.is_alive() and p.pid is not None:
        os.kill(p.pid, signal.SIGINT)  # huey's graceful stop
        p.join(10)
    if p.is_alive():
        p.kill()
        p.join(5)


def drain(workdir: str, n: int, workers: int = 4, timeout: float = 300) -> float:
    """Jobs/s: n pre-filled no-op tasks, time from starting the consumer to the n-th completion."""
    prod = Producer(workdir)
    for i in range(n):
        prod.enqueue("noop", {"i": i})
    prod.close()
    ctx = multiprocessing.get_context("fork")
    counter, last = ctx.Value("q", 0), ctx.Value("d", 0.0)
    t0 = time.monotonic()
    p = start_consumer(workdir, workers, counter, last)
    try:
        while counter.value < n and p.is_alive() and time.monotonic() - t0 < timeout:
            time.sleep(0.002)
    finally:
        stop_consumer(p)
    if counter.value < n:
        raise RuntimeError(f"huey completed only {counter.value} of {n} tasks")
    return n / (last.value - t0)

"""What lifecycle events cost a drain: the same drains with the event triggers and without
(dropped after the prefill), alternating, in three measures that load affects differently.

    .venv/bin/python bench/events_cost.py [--jobs 5000] [--rounds 10]

- drain span: jobs/s from the first start to the last end, as the file records them (the drain
  part's metric); on a loaded machine its noise is larger than the effect;
- drain CPU: user+system seconds of the whole pool (supervisor and children) per 1,000 jobs,
  from getrusage: what the events cost in work, whatever else runs on the machine;
- store loop: one process claims 10 and completes them in one transaction, as a child does,
  until 5,000 jobs are done, in jobs per CPU second of that process;
- enqueue_many: 50,000 jobs in one transaction into an empty file (the `created` trigger is on
  the bulk path too: one more row per job).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import paired_ratio, run_burst
from drain import in_file_span, prefill

import jobq
from jobq.store import Store


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def drain(wd: str, n: int, events: bool) -> tuple[float, float]:
    """(jobs/s first start→last end, pool CPU seconds per 1,000 jobs, start-up included) of
    one `--burst` drain."""
    path = os.path.join(wd, f"drain-{time.monotonic_ns()}.db")
    prefill(path, n, events)
    cpu = children_cpu()
    run_burst(path, 4, wd)
    return n / in_file_span(path, n), (children_cpu() - cpu) / n * 1000


def store_loop(wd: str, n: int, events: bool) -> float:
    """Jobs per CPU second of claim 10 + complete 10 in one process (CPU time: the work, not
    the wait for a core on a busy machine)."""
    path = os.path.join(wd, f"loop-{time.monotonic_ns()}.db")
    prefill(path, n, events)
    s = Store(path)
    try:
        done = 0
        t0 = time.process_time()
        while done < n:
            jobs = s.claim("bench/1", time.time(), 30, limit=10)
            s.complete_many([(j.id, j.lease_token or "", None, None) for j in jobs], time.time())
            done += len(jobs)
        return n / (time.process_time() - t0)
    finally:
        s.close()


def enqueue_many(wd: str, n: int, events: bool) -> float:
    """Jobs per CPU second of one enqueue_many of n tiny jobs into an empty queue file."""
    path = os.path.join(wd, f"enq-{time.monotonic_ns()}.db")
    prefill(path, 0, events)
    items = [("noop", {"i": i}) for i in range(n)]
    with jobq.Queue(path) as q:
        t0 = time.process_time()
        q.enqueue_many(items)
        return n / (time.process_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--drain-only", action="store_true", help="skip the in-process measures")
    args = ap.parse_args()
    got: dict[str, dict[bool, list[float]]] = {m: {True: [], False: []}
                                               for m in ("span", "cpu", "loop", "enq")}  # fmt: skip
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="jobq-events-cost-") as wd:
        for r in range(args.rounds):
            for events in (True, False) if r % 2 == 0 else (False, True):
                span, cpu = drain(wd, args.jobs, events)
                got["span"][events].append(span)
                got["cpu"][events].append(cpu)
                if not args.drain_only:
                    got["loop"][events].append(store_loop(wd, args.jobs, events))
                    got["enq"][events].append(enqueue_many(wd, 50_000, events))
    load1 = os.getloadavg()[0]
    print(f"{args.jobs:,} no-op jobs, work -c 4, {args.rounds} alternating rounds; "
          f"load average {load0:.1f} → {load1:.1f}")  # fmt: skip
    for name, unit, best in (("span", "jobs/s", max), ("cpu", "CPU s/1k jobs", min),
                             ("loop", "jobs/CPU s", max), ("enq", "jobs/CPU s", max)):  # fmt: skip
        on, off = got[name][True], got[name][False]
        if not on:
            continue
        ratio = paired_ratio(on, off)
        print(f"{name:5} with events: median {statistics.median(on):9.3f} best {best(on):9.3f}"
              f" | without: median {statistics.median(off):9.3f} best {best(off):9.3f} {unit}"
              f" | paired ratio {ratio:.3f}, best/best {best(on) / best(off):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

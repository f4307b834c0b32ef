"""Delayed and retried jobs start on time: lateness (started_at − run_at, from the file) of
`--delay` jobs and of backed-off retries on an idle `work -c 4`, against a bare Python timer
sleeping to the same deadlines in the same run (the machine's own wake-up lateness); and the
pool's idle CPU while jobs wait for their time."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time

from common import (
    Config,
    Row,
    cpu_seconds,
    descendants,
    percentile,
    start_pool,
    stat,
    stop_pool,
    wait_until,
    work_available,
    workdir,
)

import jobq

MEDIAN_GOAL_MS = 10.0
P99_GOAL_MS = 50.0


def timer_lateness(deadlines: list[float]) -> list[float]:
    """How late a plain `time.sleep` wakes for each wall-clock deadline (seconds)."""
    out = []
    for d in sorted(deadlines):
        left = d - time.time()
        if left > 0:
            time.sleep(left)
        out.append(time.time() - d)
    return out


def lateness(path: str, ids: list[int]) -> list[float]:
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT started_at - run_at FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
        " AND state = 'succeeded'",
        (str(ids),),
    ).fetchall()
    conn.close()
    return [r[0] for r in rows]


def run(cfg: Config) -> list[Row]:
    work_available()
    n = cfg.pick(40, 200)
    spread = cfg.pick(4.0, 20.0)
    flaky_n = cfg.pick(10, 40)
    rows: list[Row] = []
    with workdir(cfg, "schedule") as wd:
        path = os.path.join(wd, "schedule.db")
        q = jobq.Queue(path)
        pool = start_pool(path, 4, log=os.path.join(wd, "pool.log"))
        try:
            warm = q.enqueue("noop", {})
            if not wait_until(lambda: q.get(warm).state.value == "succeeded", 60):  # type: ignore[union-attr]
                raise RuntimeError("the pool never ran the warm-up job")
            time.sleep(1.0)
            # delayed jobs: each enqueued at a random moment for a random delay; a timer thread
            # sleeps to the same deadlines meanwhile
            rng = random.Random(7)
            delays = [0.3 + rng.random() * spread for _ in range(n)]
            t0 = time.time()
            deadlines = [t0 + d for d in delays]
            base: list[float] = []
            timer = threading.Thread(target=lambda: base.extend(timer_lateness(deadlines)))
            timer.start()
            ids = [q.enqueue("noop", {"i": i}, run_at=d) for i, d in enumerate(deadlines)]
            retry_ids = [q.enqueue("flaky", {"i": i}) for i in range(flaky_n)]
            # idle CPU while everything waits for its time (after the first attempts failed)
            time.sleep(0.5)
            pids = descendants(pool.pid)
            c0, w0 = cpu_seconds(pids), time.monotonic()
            timer.join()
            done = lambda: all(  # noqa: E731
                j.state.value == "succeeded" for j in q.backend.get_many(ids + retry_ids)
            )
            if not wait_until(done, 60):
                raise RuntimeError("delayed or retried jobs did not all succeed")
            busy_cpu = 100 * (cpu_seconds(pids) - c0) / (time.monotonic() - w0)
        finally:
            stop_pool(pool)
            q.close()
        late = [x * 1000 for x in lateness(path, ids)]
        late_retry = [x * 1000 for x in lateness(path, retry_ids)]
    floor = [x * 1000 for x in base]
    for label, values in (("`--delay` jobs", late), ("backed-off retries", late_retry)):
        for name, p, goal in (("median", 50, MEDIAN_GOAL_MS), ("p99", 99, P99_GOAL_MS)):
            mine, theirs = percentile(values, p), percentile(floor, p)
            rows.append(
                Row(
                    f"{label} start after run_at, {name}",
                    stat([mine]),
                    "ms",
                    "time.sleep to the same deadlines" if label.startswith("`") else "",
                    stat([theirs]) if label.startswith("`") else None,
                    mine / theirs if theirs and label.startswith("`") else None,
                    f"≤ {goal:g} ms",
                    met=mine <= goal,
                    note=f"{len(values)} jobs, started_at − run_at from the file"
                    + (f"; run_at spread over {spread:g} s" if label.startswith("`") else
                       "; first attempt failed, retry after the 5 s backoff"),
                )
            )
    rows.append(
        Row(
            "CPU of work -c 4 while those jobs wait and start",
            stat([busy_cpu]),
            "% of a core",
            goal="≤ 1 % idle",
            note=f"{n + flaky_n} jobs starting over {spread:g} s; utime+stime from /proc "
            "(the latency part measures the idle pool)",
        )
    )
    return rows

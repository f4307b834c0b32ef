"""History size: claim cost with 0 … 1,000,000 finished jobs in the file (should stay flat)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

from common import Config, Row, Skip, alternate, paired_ratio, percentile, stat, workdir
from drain import prefill

import jobq
from jobq.store import Store

# The bench may write with sqlite3 directly: only jobq's own package is held to the store seam.
ADD_HISTORY = """
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n)
INSERT INTO jobs (type, queue, payload, priority, state, run_at, attempts, created_at,
                  started_at, finished_at, worker_id)
SELECT 'noop', 'default', '{"i": ' || i || '}', 0, 'succeeded', :t - :n + i, 1, :t - :n + i,
       :t - :n + i, :t - :n + i + 0.001, 'bench-history'
FROM s
"""
ADD_ATTEMPTS = """
INSERT INTO attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
SELECT id, 1, worker_id, started_at, finished_at, 'succeeded' FROM jobs WHERE id > :after
"""


def add_history(path: str, n: int) -> None:
    """n succeeded jobs, each with its attempt row, in one fast transaction."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous = OFF")
    after = conn.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()[0]
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(ADD_HISTORY, {"n": n, "t": time.time() - 86_400})
    conn.execute(ADD_ATTEMPTS, {"after": after})
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


class ClaimLoop:
    """Claim and complete k fresh jobs one at a time through jobq's Store."""

    def __init__(self, path: str, k: int) -> None:
        self.path, self.k = path, k
        self.latencies_us: list[float] = []

    def __call__(self) -> float:
        prefill(self.path, self.k)
        store = Store(self.path)
        done = 0
        t0 = time.perf_counter()
        while True:
            c0 = time.perf_counter()
            jobs = store.claim("bench-claimer", time.time(), 300.0)
            self.latencies_us.append((time.perf_counter() - c0) * 1e6)
            if not jobs:
                break
            store.complete_many(
                [(j.id, j.lease_token or "", None, None) for j in jobs], time.time()
            )
            done += len(jobs)
        dt = time.perf_counter() - t0
        store.close()
        if done != self.k:
            raise RuntimeError(f"claimed {done} of {self.k}")
        return done / dt


def drain_rate(path: str, k: int, wd: str) -> float | None:
    """`work -c 4 --burst` over k fresh jobs, first start→last end; None if `work` is missing."""
    from common import run_burst, work_available

    try:
        work_available()
    except Skip:
        return None
    conn = sqlite3.connect(path)
    before = conn.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()[0]
    conn.close()
    prefill(path, k)
    run_burst(path, 4, wd)
    conn = sqlite3.connect(path)
    first, last, n = conn.execute(
        "SELECT min(started_at), max(finished_at), count(*) FROM jobs"
        " WHERE id > ? AND state = 'succeeded'",
        (before,),
    ).fetchone()
    conn.close()
    if n != k:
        raise RuntimeError(f"only {n} of {k} jobs succeeded")
    return k / (last - first)


def run(cfg: Config) -> list[Row]:
    sizes = cfg.pick((0, 10_000, 200_000), (0, 10_000, 100_000, 1_000_000))
    k = cfg.pick(2000, 10_000)
    with workdir(cfg, "scale") as wd:
        paths, build = {}, {}
        for size in sizes:
            paths[size] = os.path.join(wd, f"history-{size}.db")
            jobq.Queue(paths[size]).close()
            t0 = time.perf_counter()
            if size:
                add_history(paths[size], size)
            build[size] = time.perf_counter() - t0
        # one file per size, measured in rotation so that noise hits every size alike
        loops = {size: ClaimLoop(paths[size], k) for size in sizes}
        r = alternate({str(size): loops[size] for size in sizes}, cfg.repeats)

        def drain_at(size: int) -> Callable[[], float]:
            return lambda: drain_rate(paths[size], k, wd) or float("nan")

        drains = alternate({str(size): drain_at(size) for size in sizes}, cfg.pick(1, 2))
    empty, big = r["0"], r[str(sizes[-1])]
    ratio = paired_ratio(big, empty)
    rows = [
        Row(
            f"claim+complete with {sizes[-1]:,} finished jobs in the file",
            stat(big),
            "jobs/s",
            "empty history",
            stat(empty),
            ratio,
            "≥ 0.9× empty",
            met=ratio is not None and ratio >= 0.9,
            note=f"Store.claim + complete_many, 1 job at a time, {k:,} jobs × {cfg.repeats}; "
            f"history (a job and an attempt row each) built in {build[sizes[-1]]:.1f} s",
        )
    ]
    for size in sizes:
        lat = loops[size].latencies_us
        d = [x for x in drains[str(size)] if x == x]
        rows.append(
            Row(
                f"at {size:,} jobs in the file: claim+complete",
                stat(r[str(size)]),
                "jobs/s",
                "empty file" if size else "",
                stat(empty) if size else None,
                paired_ratio(r[str(size)], empty) if size else None,
                note=f"claim p50 {percentile(lat, 50):.0f} µs, p99 {percentile(lat, 99):.0f} µs; "
                + (
                    f"drain -c 4 (first start→last end) {stat(d)['median']:,.0f} jobs/s"
                    if d
                    else "drain skipped: `jobq work` missing"
                ),
                extra={
                    "claim_latency_us": {"p50": percentile(lat, 50), "p99": percentile(lat, 99)},
                    "drain_jobs_per_s": d,
                },
            )
        )
    return rows

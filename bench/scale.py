"""History size: claim cost with 0 … 1,000,000 finished jobs in the file (should stay flat)."""

from __future__ import annotations

import os
import sqlite3
import time

from common import Config, Row, Skip, alternate, paired_ratio, percentile, stat, workdir
from drain import in_file_span, prefill

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
    big = cfg.pick(200_000, 1_000_000)
    k = cfg.pick(2000, 10_000)
    rows: list[Row] = []
    with workdir(cfg, "scale") as wd:
        empty, full = os.path.join(wd, "empty.db"), os.path.join(wd, "history.db")
        jobq.Queue(empty).close()
        jobq.Queue(full).close()
        t0 = time.perf_counter()
        add_history(full, big)
        build = time.perf_counter() - t0
        e, f = ClaimLoop(empty, k), ClaimLoop(full, k)
        r = alternate({"empty": e, "full": f}, cfg.repeats)
        ratio = paired_ratio(r["full"], r["empty"])
        rows.append(
            Row(
                f"claim+complete, {big:,} finished jobs in the file",
                stat(r["full"]),
                "jobs/s",
                "empty history",
                stat(r["empty"]),
                ratio,
                "≥ 0.9× empty",
                met=ratio is not None and ratio >= 0.9,
                note=f"Store.claim + complete_many, 1 job at a time, {k:,} jobs × {cfg.repeats}; "
                f"claim p50 {percentile(f.latencies_us, 50):.0f} µs vs "
                f"{percentile(e.latencies_us, 50):.0f} µs; history built in {build:.1f} s",
            )
        )
        # the same file grown step by step: cost at 10k, 100k (and 1M) jobs
        sizes = cfg.pick((10_000, 100_000), (10_000, 100_000, 1_000_000))
        path = os.path.join(wd, "steps.db")
        jobq.Queue(path).close()
        have, base_rate = 0, None
        for size in sizes:
            add_history(path, size - have)
            have = size
            loop = ClaimLoop(path, k)
            rate = loop()
            dr = drain_rate(path, k, wd)
            base_rate = base_rate or rate
            rows.append(
                Row(
                    f"claim+complete at {size:,} jobs in the file",
                    stat([rate]),
                    "jobs/s",
                    f"at {sizes[0]:,}" if size != sizes[0] else "",
                    stat([base_rate]) if size != sizes[0] else None,
                    rate / base_rate if size != sizes[0] else None,
                    note=f"claim p50 {percentile(loop.latencies_us, 50):.0f} µs, "
                    f"p99 {percentile(loop.latencies_us, 99):.0f} µs; drain -c 4 "
                    + (f"{dr:,.0f} jobs/s" if dr else "skipped: `jobq work` missing"),
                    extra={"drain_jobs_per_s": dr},
                )
            )
    return rows


__all__ = ["in_file_span", "run"]

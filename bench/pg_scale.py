"""PostgreSQL history size: jobq's claim cost with 0 … 1,000,000 finished jobs in its tables
(should stay flat: the claim walks the partial index over pending rows), as scale.py does for
the SQLite file. Each size is a schema of its own (`?schema=`) in one database."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pg_common
from common import (
    Config,
    Row,
    Skip,
    alternate,
    paired_ratio,
    percentile,
    run_burst,
    stat,
    work_available,
    workdir,
)

import jobq
from jobq.backend import Role, open_backend

# The bench may write jobq's tables directly: only jobq's own package is held to the store seam.
# (quick, full); tests/test_bench_pg.py shrinks them
SIZES = {
    "history": ((0, 10_000, 200_000), (0, 10_000, 100_000, 1_000_000)),
    "claims": (1000, 5000),
    "drains": (1, 2),
}

ADD_HISTORY = """
INSERT INTO {s}.jobs (type, queue, payload, priority, state, run_at, attempts, created_at,
                      started_at, finished_at, worker_id)
SELECT 'noop', 'default', json_build_object('i', i), 0, 'succeeded', t, 1, t, t,
       t + interval '1 millisecond', 'bench-history'
FROM generate_series(1, %(n)s) AS i,
     LATERAL (SELECT to_timestamp(%(t)s - %(n)s + i) AS t) AS x
"""
ADD_ATTEMPTS = """
INSERT INTO {s}.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
SELECT id, 1, worker_id, started_at, finished_at, 'succeeded' FROM {s}.jobs WHERE id > %(after)s
"""


def add_history(dbname: str, schema: str, n: int) -> None:
    """n succeeded jobs, each with its attempt row, in one transaction; then VACUUM ANALYZE
    (what autovacuum would have done by the time such a history had accumulated)."""
    with pg_common.connect(dbname, autocommit=False) as c:
        c.execute("SET synchronous_commit = off")  # the build is not what is measured
        after = c.execute(f"SELECT coalesce(max(id), 0) FROM {schema}.jobs").fetchone()[0]
        c.execute(ADD_HISTORY.format(s=schema), {"n": n, "t": time.time() - 86_400})
        c.execute(ADD_ATTEMPTS.format(s=schema), {"after": after})
        c.commit()
    with pg_common.connect(dbname) as c:
        c.execute(f"VACUUM ANALYZE {schema}.jobs")
        c.execute(f"VACUUM ANALYZE {schema}.attempts")


class ClaimLoop:
    """Claim and complete k fresh jobs one at a time through jobq's backend (a worker's role)."""

    def __init__(self, loc: str, k: int) -> None:
        self.loc, self.k = loc, k
        self.latencies_us: list[float] = []

    def __call__(self) -> float:
        with jobq.Queue(self.loc) as q:
            q.enqueue_many([("noop", {"i": i}) for i in range(self.k)])
        backend: Any = open_backend(self.loc, Role.WORKER)
        done = 0
        t0 = time.perf_counter()
        while True:
            c0 = time.perf_counter()
            jobs = backend.claim("bench-claimer", time.time(), 300.0)
            self.latencies_us.append((time.perf_counter() - c0) * 1e6)
            if not jobs:
                break
            backend.complete_many(
                [(j.id, j.lease_token or "", None, None) for j in jobs], time.time()
            )
            done += len(jobs)
        dt = time.perf_counter() - t0
        backend.close()
        if done != self.k:
            raise RuntimeError(f"claimed {done} of {self.k}")
        return done / dt


def drain_rate(dbname: str, schema: str, k: int, wd: str) -> float:
    """`work -c 4 --burst` over k fresh jobs, first start→last end from the tables."""
    loc = pg_common.url(dbname, schema=schema)
    with pg_common.connect(dbname) as c:
        before = c.execute(f"SELECT coalesce(max(id), 0) FROM {schema}.jobs").fetchone()[0]
    with jobq.Queue(loc) as q:
        q.enqueue_many([("noop", {"i": i}) for i in range(k)])
    run_burst(loc, 4, wd)
    with pg_common.connect(dbname) as c:
        n, first, last = c.execute(
            f"SELECT count(*), extract(epoch FROM min(started_at))::float8,"
            f" extract(epoch FROM max(finished_at))::float8 FROM {schema}.jobs"
            " WHERE id > %s AND state = 'succeeded'",
            (before,),
        ).fetchone()
    if n != k:
        raise RuntimeError(f"only {n} of {k} jobs succeeded")
    return float(k / (last - first))


def run(cfg: Config) -> list[Row]:
    pg_common.server()
    work_available()
    missing = pg_common.jobq_pg_missing(pool=True)
    if missing:
        raise Skip(missing)
    sizes = cfg.pick(*SIZES["history"])
    k = cfg.pick(*SIZES["claims"])
    build: dict[int, float] = {}
    with pg_common.database("scale") as db, workdir(cfg, "pgscale") as wd:
        locs = {}
        for size in sizes:
            schema = f"h{size}"
            locs[size] = pg_common.url(db, schema=schema)
            jobq.Queue(locs[size]).close()
            t0 = time.perf_counter()
            if size:
                add_history(db, schema, size)
            build[size] = time.perf_counter() - t0
        loops = {size: ClaimLoop(locs[size], k) for size in sizes}
        r = alternate({str(size): loops[size] for size in sizes}, cfg.repeats)

        def drain_at(size: int) -> Callable[[], float]:
            return lambda: drain_rate(db, f"h{size}", k, wd)

        drains = alternate(
            {str(size): drain_at(size) for size in sizes}, cfg.pick(*SIZES["drains"])
        )
    empty, big = r["0"], r[str(sizes[-1])]
    ratio = paired_ratio(big, empty)
    rows = [
        Row(
            f"PG claim+complete with {sizes[-1]:,} finished jobs",
            stat(big),
            "jobs/s",
            "empty history",
            stat(empty),
            ratio,
            "≥ 0.9× empty (flat)",
            met=ratio is not None and ratio >= 0.9,
            note=f"backend claim + complete_many, 1 job at a time, {k:,} jobs × {cfg.repeats}; "
            f"history (a job and an attempt row each) built in {build[sizes[-1]]:.1f} s, "
            f"then VACUUM ANALYZE; {pg_common.facts_note()}",
        )
    ]
    for size in sizes:
        lat = loops[size].latencies_us
        d = drains[str(size)]
        rows.append(
            Row(
                f"PG at {size:,} finished jobs: claim+complete",
                stat(r[str(size)]),
                "jobs/s",
                "empty" if size else "",
                stat(empty) if size else None,
                paired_ratio(r[str(size)], empty) if size else None,
                note=f"claim p50 {percentile(lat, 50):.0f} µs, p99 {percentile(lat, 99):.0f} µs; "
                f"drain -c 4 (first start→last end) {stat(d)['median']:,.0f} jobs/s",
                extra={
                    "claim_latency_us": {"p50": percentile(lat, 50), "p99": percentile(lat, 99)},
                    "drain_jobs_per_s": d,
                },
            )
        )
    return rows

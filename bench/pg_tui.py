"""The dashboard benchmark's big PostgreSQL queue, built in SQL: the same mix of jobs as
tui_bench.seed_bulk writes through the Backend verbs (90 % succeeded with their attempts, 0.5 %
failed for good with a traceback, the rest pending), in a few statements instead of 400 claim
and complete transactions per 1,000 jobs (12 min for 1M on this machine; this takes ~1 min).

The bench may write jobq's tables directly (as pg_scale.py does): only jobq's own package is held
to the store seam. jobq's triggers still run, so the events feed holds what a real history of that
size would hold.
"""

from __future__ import annotations

import time

import pg_common

from jobq import Queue

# i in 1..n; the batch structure of seed_bulk (5,000 per batch) decides each job's state
JOBS = """
INSERT INTO jobq.jobs (type, queue, payload, priority, state, run_at, attempts, max_attempts,
                       result, last_error, created_at, started_at, finished_at, worker_id)
SELECT (ARRAY['email.send', 'images.resize', 'webhook.deliver', 'report.build'])[1 + i * 7 %% 4],
       (ARRAY['mail', 'images', 'default'])[1 + i * 5 %% 3],
       json_build_object('n', i - 1, 'user', 'u' || (1 + i * 37 %% 9999)),
       (ARRAY[-10, 0, 0, 10])[1 + i * 3 %% 4],
       s.state, t, CASE WHEN s.state = 'pending' THEN 0 ELSE 1 END,
       CASE WHEN s.state = 'failed' THEN 1 END,
       CASE WHEN s.state = 'succeeded' THEN 'true'::json END,
       CASE WHEN s.state = 'failed' THEN 'ValueError: bad input' END,
       t, CASE WHEN s.state <> 'pending' THEN t END, CASE WHEN s.state <> 'pending' THEN t END,
       CASE WHEN s.state <> 'pending' THEN 'bench/1' END
FROM generate_series(1, %(n)s) AS i,
     LATERAL (SELECT to_timestamp(%(t0)s + i * 0.001) AS t) AS x,
     LATERAL (SELECT CASE
         WHEN ((i - 1) / 5000 + 1) * 5000 <= %(n)s * 0.9 THEN 'succeeded'
         WHEN ((i - 1) / 5000 + 1) * 5000 <= %(n)s * 0.95 AND (i - 1) %% 5000 < 500 THEN 'failed'
         ELSE 'pending' END AS state) AS s
ORDER BY i
"""
ATTEMPTS = """
INSERT INTO jobq.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error,
                           traceback)
SELECT id, 1, worker_id, started_at, finished_at, state, last_error,
       CASE WHEN state = 'failed' THEN 'Traceback…' || chr(10) || 'ValueError: bad input' END
FROM jobq.jobs WHERE state IN ('succeeded', 'failed') ORDER BY id
"""


def seed(dbname: str, n: int) -> float:
    """Build the queue in database `dbname` (schema `jobq`); return the seconds it took."""
    t0 = time.perf_counter()
    Queue(pg_common.url(dbname)).close()  # jobq creates its schema, as any first use does
    with pg_common.connect(dbname, autocommit=False) as c:
        c.execute("SET synchronous_commit = off")  # the build is not what is measured
        c.execute(JOBS, {"n": n, "t0": time.time() - n * 0.001 - 60})
        c.execute(ATTEMPTS)
        c.commit()
    with pg_common.connect(dbname) as c:
        c.execute("VACUUM ANALYZE")  # what autovacuum would have done by then
    return time.perf_counter() - t0

"""Contention: 4 workers and 20 `jobq enqueue` loops on one file: no enqueue fails, claims spread
over the children, the WAL stays small."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from jobq.store import Store
from tests.conftest import SLOW
from tests.helpers import kill_all, start_work, wait_until, wal_size


@pytest.mark.slow
@pytest.mark.timeout(300 if SLOW else 90)
def test_enqueue_loops_and_workers_contend_without_a_failure(
    tmp_path: Path, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
):
    """0 failed enqueues; claims spread evenly over the worker children; the WAL stays small."""
    import threading

    seconds = 60.0 if SLOW else 8.0
    Store(db_path).close()
    pool = start_work(jobq_cmd, jobq_env, tmp_path / "pool.log", "-c", "4")
    payload = json.dumps({"seconds": 0.01})
    failures: list[str] = []
    enqueued = [0] * 20
    wal_max = [0]
    stop = threading.Event()

    def loop(k: int) -> None:
        while not stop.is_set():
            r = subprocess.run(
                [*jobq_cmd, "enqueue", "chaos.sleep", "--payload", payload],
                env=jobq_env,
                capture_output=True,
                timeout=120,
            )
            if r.returncode != 0 or not r.stdout.strip().isdigit():
                failures.append(f"rc={r.returncode}: {r.stderr.decode().strip()}")
            else:
                enqueued[k] += 1

    def sample() -> None:
        while not stop.is_set():
            wal_max[0] = max(wal_max[0], wal_size(db_path))
            time.sleep(0.1)

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(20)]
    threads.append(threading.Thread(target=sample))
    store = Store(db_path)
    try:
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(150)
        total = sum(enqueued)
        wait_until(lambda: store.counts()["succeeded"] == total, 60, 0.1, what="pool drains")
    finally:
        stop.set()
        kill_all([pool])
    assert failures == [], failures[:5]
    per_worker: Counter[str] = Counter()
    for job_id in range(1, total + 1):
        for a in store.attempts(job_id):
            per_worker[a.worker_id or "?"] += 1
    counts = sorted(per_worker.values())
    mean = sum(counts) / len(counts)
    spread = (counts[0] / mean - 1, counts[-1] / mean - 1)
    print(
        f"\ncontention: {total} enqueues in {seconds:.0f}s by 20 loops, 0 failed; claims per "
        f"child {counts} (mean {mean:.0f}, {spread[0]:+.0%}/{spread[1]:+.0%}); "
        f"WAL max {wal_max[0] / 2**20:.1f} MiB"
    )
    assert wal_max[0] < 64 * 2**20
    assert len(per_worker) == 4, per_worker  # no child was replaced: none crashed
    if SLOW:
        assert spread[0] >= -0.3 and spread[1] <= 0.3, counts
    store.close()

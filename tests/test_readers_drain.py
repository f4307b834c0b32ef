"""Readers must not slow the workers: `jobq wait` processes cost next to nothing per commit.

Before, every commit woke every waiter, which then read its jobs (and parsed every inotify event
of the busy directory): 8 waiters used about as much CPU as the pool draining the file. Now a
waiter reads at most a few times a second while commits keep coming, whatever their number.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from jobq import Queue
from jobq.basics import JobState
from tests.helpers import descendants, proc_stat, wait_until
from tests.workerapp import Pools

WAITERS = 8
JOBS = 6000


def _cpu(pids: list[int]) -> float:
    """utime + stime of these processes (seconds), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _settled(pids: list[int]) -> bool:
    """Every process is asleep and used no CPU over the last 0.2 s (start-up is over)."""
    before = _cpu(pids)
    time.sleep(0.2)
    asleep = all((s := proc_stat(p)) is not None and s[1] == "S" for p in pids)
    return asleep and _cpu(pids) == before


def test_eight_waiters_cost_a_small_fraction_of_the_drain(
    pools: Pools, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    with Queue(db_path) as q:
        ids = q.enqueue_many([("noop", {}) for _ in range(JOBS)])
        q.pause("held")
        held = q.enqueue("noop", {}, queue="held")  # never runs: the waiters outlive the drain
    argv = [*jobq_cmd, "wait", str(ids[-1]), str(ids[len(ids) // 2]), str(held)]
    waiters = [
        subprocess.Popen(argv, env=jobq_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(WAITERS)
    ]
    try:
        pids = [w.pid for w in waiters]
        wait_until(lambda: _settled(pids), 60, interval=0.05, what="the waiters started")
        w0 = _cpu(pids)
        pool = pools.start(concurrency=4, burst=True)
        p0 = time.monotonic()
        pool_cpu = 0.0
        while pool.proc.poll() is None:  # the pool's CPU, read while its processes exist
            pool_cpu = max(pool_cpu, _cpu([pool.pid, *descendants(pool.pid)]))
            time.sleep(0.05)
            assert time.monotonic() - p0 < 120, "the drain did not finish"
        assert pool.proc.returncode == 0, pool.log()
        waiters_cpu = _cpu(pids) - w0
        assert all(w.poll() is None for w in waiters), "a waiter left before its job finished"
    finally:
        for w in waiters:
            w.kill()
            w.wait(10)
    with Queue(db_path) as q:
        assert q.count(JobState.SUCCEEDED.value) == JOBS
    # before: about 1x the pool's CPU; now a few percent
    assert waiters_cpu <= 0.15 * pool_cpu + 0.05, (waiters_cpu, pool_cpu)


def test_a_waiter_returns_soon_after_its_job_finishes(
    pools: Pools, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str], tmp_path: Path
) -> None:
    with Queue(db_path) as q:
        busy = q.enqueue_many([("noop", {}) for _ in range(3000)])
        job = q.enqueue("sleep", {"seconds": 1.5, "ledger": str(tmp_path / "ledger")})
    waiter = subprocess.Popen([*jobq_cmd, "wait", str(job)], env=jobq_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    pools.start(concurrency=2)
    rc = waiter.wait(60)
    returned = time.time()
    assert rc == 0, waiter.stderr.read() if waiter.stderr else ""
    with Queue(db_path) as q:
        done = q.get(job)
        assert q.get(busy[-1]).state is JobState.SUCCEEDED
    assert done.finished_at is not None
    # the file was busy while the job ran (3,000 jobs drained beside it): the waiter still
    # noticed the end within its longest coalescing step (0.25 s) and a loaded machine's slack
    assert returned - done.finished_at < 1.5, returned - done.finished_at

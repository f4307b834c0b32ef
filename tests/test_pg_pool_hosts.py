"""Pools on several hosts against one server. Each "host" is a pool started with the test-only
JOBQ_TEST_HOST (jobq.lifecycle): its own host key and host name, so that other pools judge it
as a remote one (heartbeat staleness, lease expiry), never by pid.

- A pool cut off by SIGSTOP: its heartbeat stops, another host rescues its jobs once their lease
  expires, and when it resumes its writes are fenced: nothing is recorded twice.
- Chaos: SIGKILLs of children and supervisors on two hosts while a few hundred jobs drain, and a
  `pg_ctl restart -m fast` of the test's own server in the middle: every job succeeds exactly once
  in its history, and every extra run in the ledger is explained by a kill.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_pg_pool import pg_backend_ready

import jobq
from jobq import JobState
from tests.helpers import gone, ledger_runs, pool_children, wait_until, worker_children
from tests.pgserver import PgServer, ServerUnavailable, start_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    if not pg_backend_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")
    try:
        server = start_server()
    except ServerUnavailable as e:
        pytest.skip(str(e))
    yield server
    server.destroy()


class HostPool:
    """`jobq work --app tests.chaosapp` as a pool of host `host`, the URL in JOBQ_DB."""

    def __init__(self, loc: str, host: str, log: Path, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), JOBQ_DB=loc, JOBQ_TEST_HOST=host)
        env.pop("NOTIFY_SOCKET", None)
        self.host = host
        self.log = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobq", "work", "--app", "tests.chaosapp", *args],
            env=env, stdout=self._log, stderr=self._log, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self, n: int) -> list[int]:
        kids: list[int] = []

        def up() -> bool:
            nonlocal kids
            kids = worker_children(self.pid)
            return len(kids) >= n

        wait_until(up, 30, 0.05, what=f"{n} worker children of {self.pid}")
        return kids

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def test_a_stopped_pool_of_another_host_is_rescued_and_fenced(
    own_server: PgServer, tmp_path: Path
) -> None:
    loc = own_server.location()
    ledger = tmp_path / "ledger"
    pools: list[HostPool] = []
    try:
        with jobq.Queue(loc) as q:
            job_id = q.enqueue("chaos.sleep", {"ledger": str(ledger), "seconds": 4})
            other = HostPool(loc, "other", tmp_path / "other.log", "-c", "1", "--lease", "2s")
            pools.append(other)
            wait_until(lambda: len(ledger_runs(ledger)) == 1, timeout=30, what="started")
            (first,) = ledger_runs(ledger)
            assert first[0] == job_id
            rows = [w for w in q.workers() if w.pid == other.pid]
            assert len(rows) == 1 and rows[0].host == "other"
            beat = rows[0].heartbeat_at
            os.killpg(other.pid, signal.SIGSTOP)  # the whole pool: supervisor and children
            stopped = time.monotonic()
            here = HostPool(loc, "here", tmp_path / "here.log", "-c", "1", "--lease", "2s")
            pools.append(here)
            # rescued once its lease expired (2 s), run again by the pool of the other host
            wait_until(lambda: q.get(job_id).state is JobState.SUCCEEDED, timeout=30,
                       what="rescued and run elsewhere")  # fmt: skip
            took = time.monotonic() - stopped
            runs = ledger_runs(ledger)
            assert len(runs) == 2 and runs[1][2] != first[2]
            # the cut-off pool's heartbeat did not move while it was stopped (> HEARTBEAT_EVERY)
            time.sleep(max(0.0, 6 - (time.monotonic() - stopped)))
            assert next(w for w in q.workers() if w.pid == other.pid).heartbeat_at == beat
            os.killpg(other.pid, signal.SIGCONT)
            # its child finishes its sleep and tries to record a success: fenced, 0 rows
            wait_until(lambda: "lease lost" in other.text(), timeout=30, what="fenced write")
            time.sleep(1.0)
            job = q.get(job_id)
            history = q.attempts(job_id)
            assert job.state is JobState.SUCCEEDED
            assert [h.outcome.value for h in history] == ["crashed", "succeeded"], history
            assert history[0].worker_id.startswith("other:")
            assert history[1].worker_id.startswith("here:")
            assert isinstance(job.result, dict) and job.result["pid"] == runs[1][2]
            assert len(ledger_runs(ledger)) == 2  # nobody ran it a third time
        for p in pools:
            assert "Traceback" not in p.text()
        print(f"rescued by the other host {took:.1f}s after the SIGSTOP (lease 2s)")
    finally:
        for p in pools:
            p.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kills_on_two_hosts_and_a_server_restart_lose_nothing(
    own_server: PgServer, tmp_path: Path
) -> None:
    # every job sleeps: the drain must outlast the restart and both pool kills (a faster pool
    # drained 300 half-instant jobs before the second kill, failing the test's own premise)
    n_jobs, child_kills, slow = 400, 10, 0.06
    loc = own_server.location()
    ledger = tmp_path / "ledger"
    with jobq.Queue(loc) as q:
        ids = q.enqueue_many(
            [{"type": "chaos.ledger", "max_attempts": 1000,
              "payload": {"ledger": str(ledger), "sleep": slow}}
             for i in range(n_jobs)]
        )  # fmt: skip
    rng = random.Random(12)
    pools: dict[str, HostPool] = {}
    started: list[HostPool] = []
    killed_children: set[int] = set()
    killed_pools: dict[int, list[int]] = {}
    restarted = False
    resume = 0.0

    def start(host: str) -> HostPool:
        # lease 5 s: a restart's outage stays well inside it, so leases survive the restart
        p = HostPool(loc, host, tmp_path / f"{host}-{len(started)}.log", "-c", "2",
                     "--lease", "5s")  # fmt: skip
        started.append(p)
        pools[host] = p
        return p

    def done_count() -> int:
        try:
            with jobq.Queue(loc) as q:
                return sum(1 for j in q.backend.get_many(ids) if j.state is JobState.SUCCEEDED)
        except jobq.JobqError:
            return -1  # the server is restarting

    t_start = time.monotonic()
    try:
        for host in ("h1", "h2"):
            start(host).ready(2)
        kills = 0
        while (n := done_count()) != n_jobs:
            time.sleep(rng.uniform(0.2, 0.6))
            if not restarted and n >= n_jobs // 3:
                t0 = time.monotonic()
                own_server.restart()
                restarted = True
                before = len(ledger_runs(ledger))
                wait_until(lambda b=before: len(ledger_runs(ledger)) > b + 5, timeout=60,
                           what="the pools resume after the restart")  # fmt: skip
                resume = time.monotonic() - t0
                continue
            host = rng.choice(["h1", "h2"])
            pool = pools[host]
            if kills in (3, 6) and len(killed_pools) < 2:
                kids = pool_children(pool.pid)
                killed_pools[pool.pid] = kids
                os.kill(pool.pid, signal.SIGKILL)
                pool.proc.wait(5)
                wait_until(lambda k=kids: all(gone(p) for p in k), 5.0, 0.01)
                start(host).ready(2)
                kills += 1
                continue
            kids = worker_children(pool.pid)
            if kids and len(killed_children) < child_kills:
                victim = rng.choice(kids)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                    killed_children.add(victim)
            kills += 1
            if time.monotonic() - t_start > 240:
                pytest.fail(f"not done after 240 s: {done_count()} of {n_jobs}")
        assert restarted and len(killed_pools) == 2 and len(killed_children) >= 3
        for p in pools.values():
            p.proc.send_signal(signal.SIGTERM)
            assert p.proc.wait(60) == 0, p.text()
    finally:
        for p in started:
            p.stop()

    runs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for job_id, attempt, pid in ledger_runs(ledger):
        runs[job_id].append((attempt, pid))
    assert sorted(runs) == sorted(ids), "a job never ran"
    doomed = killed_children | {p for kids in killed_pools.values() for p in kids}
    unexplained = []
    duplicates = 0
    with jobq.Queue(loc) as q:
        assert all(j.state is JobState.SUCCEEDED for j in q.backend.get_many(ids))
        for job_id, job_runs in runs.items():
            history = q.attempts(job_id)
            final = [h.attempt for h in history if h.outcome.value == "succeeded"]
            assert len(final) == 1, (job_id, history)
            success = max(k for k, (a, _p) in enumerate(job_runs) if a == final[0])
            for k, (attempt, pid) in enumerate(job_runs):
                if k == success:
                    continue
                duplicates += 1
                ended = [
                    h for h in history if h.attempt == attempt and h.outcome.value != "succeeded"
                ]
                if pid in doomed and any(h.outcome.value == "crashed" for h in ended):
                    continue
                told = [(h.attempt, h.outcome.value, h.error) for h in history]
                unexplained.append((job_id, attempt, pid, pid in doomed, told))
    assert unexplained == [], f"{len(unexplained)} duplicate runs not explained by a kill: " + (
        "; ".join(map(str, unexplained[:10]))
    )
    for p in started:
        assert "Traceback" not in p.text(), p.text()[-3000:]
    print(f"\nhosts chaos: {n_jobs} jobs, {len(killed_children)} child kills, "
          f"{len(killed_pools)} supervisor kills, 1 server restart (resumed after {resume:.2f}s), "
          f"{duplicates} duplicate runs, {time.monotonic() - t_start:.1f}s")  # fmt: skip

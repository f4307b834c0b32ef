"""The worker pool on both backends: delayed jobs start on time, NOTIFY wakes idle workers, the
pool's connections are bounded, and a pool goes on across a server restart.

Tests that stop or restart a PostgreSQL server use one of their own (never the session's).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import backend_location, need_backend
from workerapp import PoolProcess, Pools, pools_for

import jobq
from jobq import JobState
from tests.helpers import ledger_runs, wait_until
from tests.pgserver import PgServer, ServerUnavailable, start_server

KINDS = ["sqlite", "postgresql"]


def pg_backend_ready() -> bool:
    """Whether this jobq serves postgresql:// locations (the store may land after the pool)."""
    from jobq.backend import supported
    from jobq.errors import InvalidInput

    try:
        supported("postgresql:///jobq")
    except InvalidInput:
        return False
    return True


@pytest.fixture(params=KINDS)
def loc(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh queue on each backend."""
    if request.param == "postgresql" and not pg_backend_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")
    need_backend(request.param, request)
    return backend_location(request.param, tmp_path)


@pytest.fixture
def lpools(loc: str, tmp_path: Path) -> Iterator[Pools]:
    with pools_for(loc, tmp_path) as p:
        yield p


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server this test may restart (never the session's)."""
    if not pg_backend_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")
    try:
        server = start_server()
    except ServerUnavailable as e:
        pytest.skip(str(e))
    yield server
    server.destroy()


def _ready(pool: PoolProcess, q: jobq.Queue, n: int) -> None:
    """Wait until the pool has registered and its children run (they have claimed once)."""
    wait_until(lambda: len(pool.children()) == n, timeout=30, what="children started")
    wait_until(lambda: any(w.status == "running" for w in q.workers()), timeout=30)
    probe = q.enqueue("noop")
    wait_until(lambda: q.get(probe).state is JobState.SUCCEEDED, timeout=30, what="pool runs")


def test_delayed_jobs_start_on_time(loc: str, lpools: Pools) -> None:
    """An idle pool sleeps until the next run_at, not until its fallback poll (5 s here)."""
    with jobq.Queue(loc) as q:
        pool = lpools.start(concurrency=2)
        _ready(pool, q, 2)
        late = []
        for delay in (1.0, 1.6):
            job_id = q.enqueue("noop", delay=delay)
            job = q.get(job_id)
            wait_until(lambda j=job_id: q.get(j).state is JobState.SUCCEEDED, timeout=15)
            started = q.attempts(job_id)[0].started_at
            late.append(started - job.run_at)
        assert all(0 <= d < 0.5 for d in late), late


def test_an_enqueue_wakes_an_idle_pool_at_once(loc: str, lpools: Pools) -> None:
    """No polling: an idle pool starts a job within well under its 5 s fallback poll."""
    with jobq.Queue(loc) as q:
        pool = lpools.start(concurrency=2)
        _ready(pool, q, 2)
        time.sleep(0.5)  # let the children go back to an idle wait (nothing to await here)
        lags = []
        for _ in range(5):
            t0 = time.time()
            job_id = q.enqueue("noop")
            wait_until(lambda j=job_id: q.get(j).state is JobState.SUCCEEDED, timeout=10)
            lags.append(q.attempts(job_id)[0].started_at - t0)
        assert max(lags) < 0.5, lags


def _backends_of(server: PgServer, app: str = "jobq") -> int:
    with psycopg.connect(server.url("postgres"), autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'jobq'"
            " AND application_name LIKE %s",
            (app + "%",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_pool_uses_two_connections_per_child_plus_one(
    own_server: PgServer, tmp_path: Path
) -> None:
    """N children: 2N + 1 connections (each child: its store, its LISTEN; the supervisor: one)."""
    loc = own_server.location()
    with jobq.Queue(loc) as q, pools_for(loc, tmp_path) as pools:
        pool = pools.start(concurrency=3)
        _ready(pool, q, 3)
        q.close()
        # every child up (each ran a probe job, or waits on its LISTEN): count for a while
        time.sleep(2.0)
        seen = []
        for _ in range(10):
            seen.append(_backends_of(own_server))
            time.sleep(0.1)
        assert set(seen) == {7}, seen


def test_a_pool_goes_on_across_a_server_restart(own_server: PgServer, tmp_path: Path) -> None:
    """`pg_ctl restart -m fast` in the middle of a drain: the pool reconnects and finishes; every
    job succeeds exactly once, except re-runs a lost success explains (none expected here: the
    children retry recording a success until the server is back)."""
    loc = own_server.location()
    ledger = tmp_path / "ledger"
    with jobq.Queue(loc) as q, pools_for(loc, tmp_path) as pools:
        ids = q.enqueue_many([("chaos.ledger", {"ledger": str(ledger), "sleep": 0.02})
                              for _ in range(300)])  # fmt: skip
        pool = pools.start(concurrency=3, apps=["tests.chaosapp"])
        wait_until(lambda: len(ledger_runs(ledger)) > 60, timeout=60, what="a third drained")
        t0 = time.monotonic()
        own_server.restart()
        restarted = time.monotonic()
        before = len(ledger_runs(ledger))
        wait_until(lambda: len(ledger_runs(ledger)) > before + 10, timeout=30, what="resumed")
        resumed = time.monotonic()
        q.close()
        with jobq.Queue(loc) as q2:
            wait_until(lambda: all(j.state is JobState.SUCCEEDED for j in q2.backend.get_many(ids)),
                       timeout=120, what="all succeeded")  # fmt: skip
        runs = ledger_runs(ledger)
        assert {r[0] for r in runs} == set(ids)
        assert pool.proc.poll() is None, "the pool must not exit"
        log = pool.log()
        assert "Traceback" not in log
        print(f"restart took {restarted - t0:.2f}s; resumed {resumed - restarted:.2f}s later")


# ---- the queue away while a child dies (a unit test: time and health are given) -------------


class _DeadProc:
    """A child process that exited on SIGKILL."""

    exitcode = -9
    pid = None

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: float | None = None) -> None:
        return None


class _Away:
    """A backend that fails with a temporary error while `away` is set."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.away = False

    def __getattr__(self, name: str) -> object:
        from jobq.errors import DatabaseBusy

        if self.away and name in ("running_of", "end_attempt"):
            raise DatabaseBusy("the queue is away")
        return getattr(self.inner, name)


def test_a_dead_childs_jobs_are_ended_once_the_queue_is_back(tmp_path: Path) -> None:
    """A child dies while the queue does not answer: its jobs are ended by a later reap, from
    what its slot said when it died (a new child in its place resets the slot meanwhile). No
    rescuer would ever take them back: pools never rescue their own jobs."""
    import multiprocessing

    from jobq.pool.children import ChildHandle, Children
    from jobq.pool.settings import PoolSettings
    from jobq.pool.slots import JOB
    from jobq.store import Store
    from tests.factories import LEASE, T0, enqueue, history

    store = Store(str(tmp_path / "q.db"))
    pool = "host:1:abcd"
    running, waiting = enqueue(store, type="t"), enqueue(store, type="t")
    got = store.claim(f"{pool}/1", T0, LEASE, limit=2, types=["t"])
    assert sorted(j.id for j in got) == [running, waiting]
    away = _Away(store)
    ctx = multiprocessing.get_context("spawn")
    settings = PoolSettings(db_path=str(tmp_path / "q.db"), concurrency=1, lease_seconds=LEASE)
    kids = Children(away, settings, ctx, settings.db_path, pool)  # type: ignore[arg-type]
    stop_r, stop_w = ctx.Pipe()
    try:
        kids.by_index[0] = ChildHandle(0, f"{pool}/1", _DeadProc(), stop_w, started=0.0)  # type: ignore[arg-type]
        kids.slot(kids.by_index[0]).set(JOB, float(running))
        away.away = True
        kids.reap()  # no exception: the ending waits
        assert not kids.by_index and store.get(running).state is JobState.RUNNING  # type: ignore[union-attr]
        kids.shared.array[JOB] = 999.0  # a new child in place 0 writes its own slot
        kids.reap()
        assert store.get(running).state is JobState.RUNNING  # type: ignore[union-attr]
        away.away = False
        kids.reap()
        assert history(store, running) == ["crashed"]  # it ran: charged
        assert history(store, waiting) == ["interrupted"]  # never started: released
        assert not kids.unended
    finally:
        stop_r.close()
        kids.shared.unlink()
        store.close()


def test_an_idle_pool_on_a_server_stays_idle(pg_server: PgServer, tmp_path: Path) -> None:
    """No wake-up storm: an idle pool's empty claims and heartbeats wake nobody (a NOTIFY for a
    write that changed nothing would wake every idle child, whose empty claims would wake the
    others, for ever), and nothing polls faster than the fallback."""
    from test_worker_service import IDLE_SHARE, accounting_noise, cpu_seconds

    if not pg_backend_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")
    loc = backend_location("postgresql", tmp_path)
    with jobq.Queue(loc) as q, pools_for(loc, tmp_path) as pools:
        pool = pools.start(concurrency=4)
        _ready(pool, q, 4)
        pids = [pool.pid, *pool.children()]

        def settled() -> bool:
            before = cpu_seconds(pids)
            time.sleep(0.5)
            return cpu_seconds(pids) - before < 0.02

        wait_until(settled, timeout=20, what="start-up finished")
        before, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(5.0)  # measuring, not synchronising
        share = (cpu_seconds(pids) - before) / (time.monotonic() - t0)
        print(f"\nidle pool on PostgreSQL (supervisor + 4 children): {share * 100:.3f}% of a core")
        assert share <= IDLE_SHARE + accounting_noise(pids) / 5.0

"""The supervisor's chores in isolation: time is an argument (plain numbers for `now` and the
monotonic clock), the store is real, and a child is a handle whose health a test decides.
Real processes and signals are covered by test_worker_*.py, test_lifecycle_faults.py and
test_chaos.py."""

from __future__ import annotations

import logging
import multiprocessing
import secrets
import socket
from collections.abc import Iterator

import pytest

from jobq import lifecycle
from jobq.errors import JobqError
from jobq.model import JobState
from jobq.pool.children import MAX_START_FAILURES, ChildHandle, Children, StartFailures
from jobq.pool.maintenance import (
    Every,
    Heartbeat,
    PoolCounts,
    Pruner,
    Renewer,
    Rescuer,
    SystemdStatus,
)
from jobq.pool.settings import PoolSettings
from jobq.pool.slots import JOB
from jobq.pool.systemd import Notifier
from jobq.store import Store
from tests.factories import LEASE, T0, enqueue, history, make_job

POOL = "host:1234:abcd"


@pytest.fixture
def logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """Capture jobq.pool's log lines (a pool run in this process turns propagation off)."""
    monkeypatch.setattr(logging.getLogger("jobq"), "propagate", True)
    caplog.set_level(logging.INFO, logger="jobq.pool")
    return caplog


def claim(store: Store, worker: str, *job_ids: int, now: float = T0) -> None:
    """Claim exactly `job_ids` (each of type "t") for `worker` in one claim."""
    got = store.claim(worker, now, LEASE, limit=len(job_ids), types=["t"])
    assert sorted(j.id for j in got) == sorted(job_ids)


# ---- Every ---------------------------------------------------------------------------------------


def test_every_fires_once_per_period_on_the_clock_it_is_given() -> None:
    every = Every(2.0, last=10.0)
    assert [every.due(m) for m in (11.0, 11.99, 12.0, 13.0, 14.5, 14.6)] == [
        False, False, True, False, True, False,
    ]  # fmt: skip


# ---- renew ---------------------------------------------------------------------------------------


def test_renew_extends_only_the_leases_of_healthy_children(store: Store) -> None:
    a, b = enqueue(store, type="t"), enqueue(store, type="t")
    claim(store, f"{POOL}/1", a)
    claim(store, f"{POOL}/2", b)
    renewer = Renewer(store, LEASE)

    asked = renewer.renew(store.running_of(POOL + "/"), {f"{POOL}/1"}, T0 + 10)

    assert asked == 1
    job_a, job_b = store.get(a), store.get(b)
    assert job_a is not None and job_a.lease_until == T0 + 10 + LEASE
    assert job_b is not None and job_b.lease_until == T0 + LEASE  # stopped child: not renewed
    assert renewer.every.period == LEASE / 3


def test_renew_says_lease_lost_when_a_job_was_taken_over(
    store: Store, logs: pytest.LogCaptureFixture
) -> None:
    a, b = enqueue(store, type="t"), enqueue(store, type="t")
    claim(store, f"{POOL}/1", a, b)
    rows = store.running_of(POOL + "/")
    token_of = {r[0]: r[1] for r in rows}
    assert store.renew([(a, token_of[a])], T0 + 100) == 1
    # another pool's rescuer took `b` back after its lease expired, and another pool runs it
    assert (b, JobState.PENDING) in store.rescue(T0 + LEASE + 1)
    claim(store, "other:1:ffff/1", b, now=T0 + LEASE + 1)

    Renewer(store, LEASE).renew(rows, {f"{POOL}/1"}, T0 + LEASE + 2)

    assert "lease lost: 1 of 2 lease(s) were no longer ours" in logs.messages


# ---- rescue --------------------------------------------------------------------------------------


def test_rescue_takes_back_expired_leases_of_other_pools_never_its_own(
    store: Store, logs: pytest.LogCaptureFixture
) -> None:
    mine = make_job(store, "running", now=T0, lease_until=T0 - 1, worker=f"{POOL}/1")
    theirs = make_job(store, "running", now=T0, lease_until=T0 - 1, worker="other:1:ffff/1")
    rescuer = Rescuer(store, lifecycle.host_key(), POOL, LEASE)

    rescuer.rescue(T0)

    assert store.get(mine.id).state is JobState.RUNNING  # type: ignore[union-attr]
    assert store.get(theirs.id).state is JobState.PENDING  # type: ignore[union-attr]
    assert f"rescued job {theirs.id} from a dead or silent pool -> pending" in logs.messages
    assert rescuer.every.period == min(2.0, LEASE / 2)


# ---- heartbeat and prune -------------------------------------------------------------------------


def test_heartbeat_writes_status_and_jobs_done(store: Store) -> None:
    store.register_worker(POOL, name="n", host="h", pid=1, concurrency=1, queues=[], types=["t"],
                          type_globs=[], now=T0, proc_key=None)  # fmt: skip
    Heartbeat(store, POOL).beat(T0 + 5, 7, "stopping")
    (pool,) = [p for p in store.workers() if p.id == POOL]
    assert (pool.heartbeat_at, pool.jobs_done, pool.status) == (T0 + 5, 7, "stopping")


def test_prune_deletes_what_finished_before_the_retention_and_never_runs_without_one(
    store: Store, logs: pytest.LogCaptureFixture
) -> None:
    old = make_job(store, "succeeded", now=T0, finished_at=T0 - 100)
    recent = make_job(store, "succeeded", now=T0, finished_at=T0 - 10)
    assert not Pruner(store, None).due(1e9)
    pruner = Pruner(store, 50.0)
    pruner.every.last = 0.0
    assert not pruner.due(59.0) and pruner.due(60.0)

    assert pruner.prune(T0) == 1
    assert store.get(old.id) is None and store.get(recent.id) is not None
    assert "pruned 1 finished job(s) older than 50s" in logs.messages


# ---- a stopped child -----------------------------------------------------------------------------


class FakeProc:
    """What `Children.check_stopped` asks of a process: its health comes from the probe."""

    def __init__(self) -> None:
        self.running = True


@pytest.fixture
def children(store: Store, db_path: str) -> Iterator[Children]:
    """The children of pool POOL: one handle, place 0, whose health the test sets."""
    settings = PoolSettings(db_path=db_path, concurrency=1, lease_seconds=LEASE)
    ctx = multiprocessing.get_context("spawn")
    kids = Children(store, settings, ctx, db_path, POOL, probe=lambda p: p.running)  # type: ignore[attr-defined]
    stop_r, stop_w = ctx.Pipe()
    kids.by_index[0] = ChildHandle(0, f"{POOL}/1", FakeProc(), stop_w, started=0.0)  # type: ignore[arg-type]
    yield kids
    stop_r.close()
    stop_w.close()


def test_a_stopped_child_loses_its_jobs_after_a_whole_lease(
    store: Store, children: Children, logs: pytest.LogCaptureFixture
) -> None:
    running, waiting = enqueue(store, type="t"), enqueue(store, type="t")
    claim(store, f"{POOL}/1", running, waiting)
    (child,) = children.by_index.values()
    children.slot(child).set(JOB, float(running))
    child.proc.running = False  # type: ignore[attr-defined]  # SIGSTOPped

    assert children.healthy() == set()
    for mono in (100.0, 100.0 + LEASE - 0.1):
        children.check_stopped(mono, T0 + 1)
        assert store.get(running).state is JobState.RUNNING  # type: ignore[union-attr]
    children.check_stopped(100.0 + LEASE, T0 + 2)

    ran, never_started = store.get(running), store.get(waiting)
    assert ran is not None and ran.state is JobState.PENDING and ran.attempts == 1
    assert never_started is not None and never_started.state is JobState.PENDING
    assert never_started.attempts == 0
    assert history(store, running) == ["crashed"]
    assert history(store, waiting) == ["interrupted"]
    assert f"worker {POOL}/1 stopped for 30s: took back its 2 job(s)" in logs.messages


def test_a_child_that_resumes_starts_its_lease_of_grace_again(
    store: Store, children: Children
) -> None:
    job = enqueue(store, type="t")
    claim(store, f"{POOL}/1", job)
    (child,) = children.by_index.values()
    children.slot(child).set(JOB, float(job))
    proc = child.proc

    proc.running = False  # type: ignore[attr-defined]
    children.check_stopped(100.0, T0)
    proc.running = True  # type: ignore[attr-defined]  # SIGCONT before a whole lease
    children.check_stopped(120.0, T0)
    assert children.healthy() == {f"{POOL}/1"}
    proc.running = False  # type: ignore[attr-defined]
    children.check_stopped(125.0, T0)
    children.check_stopped(100.0 + LEASE + 1, T0)  # a lease after the first stop, not the second
    assert store.get(job).state is JobState.RUNNING  # type: ignore[union-attr]
    children.check_stopped(125.0 + LEASE, T0)
    assert store.get(job).state is JobState.PENDING  # type: ignore[union-attr]


# ---- start failures ------------------------------------------------------------------------------


def test_the_start_failure_counter_resets_when_a_child_that_got_ready_exits() -> None:
    failures = StartFailures()
    for _ in range(MAX_START_FAILURES - 1):
        failures.record(1, was_ready=False, on_purpose=False, message="ImportError: no app")
    assert (failures.count, failures.error) == (MAX_START_FAILURES - 1, "ImportError: no app")
    failures.check()  # not yet

    failures.record(-9, was_ready=True, on_purpose=False, message="")
    assert failures.count == 0


def test_only_a_child_exiting_on_its_own_before_ready_counts_as_a_start_failure() -> None:
    failures = StartFailures()
    failures.record(-9, was_ready=False, on_purpose=False, message="")  # someone's signal
    failures.record(1, was_ready=False, on_purpose=True, message="")  # the supervisor killed it
    failures.record(0, was_ready=False, on_purpose=False, message="")  # a clean exit
    assert failures.count == 0
    for _ in range(MAX_START_FAILURES):
        failures.record(3, was_ready=False, on_purpose=False, message="")
    with pytest.raises(JobqError) as e:
        failures.check()
    assert str(e.value) == (
        f"worker children keep failing at start-up ({MAX_START_FAILURES} in a row): "
        "a worker child exited (status 3) before it was ready"
    )


# ---- systemd -------------------------------------------------------------------------------------


@pytest.fixture
def systemd() -> Iterator[tuple[SystemdStatus, socket.socket]]:
    """A SystemdStatus whose notifier sends to a real datagram socket (abstract namespace)."""
    name = f"jobq-test-{secrets.token_hex(6)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    notifier = Notifier("@" + name, watchdog_usec=10_000_000)  # a ping every 5 s
    yield SystemdStatus(notifier), sock
    notifier.close()
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Datagrams sent so far."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_systemd_ready_once_every_child_is_ready_then_watchdog_and_status_on_cadence(
    systemd: tuple[SystemdStatus, socket.socket],
) -> None:
    status, sock = systemd
    status.rate_mark = (100.0, 0)
    status.watchdog_at = 100.0
    counts = PoolCounts(children=2, running=1, done=0, stopping=False)

    status.tick(100.0, counts, all_ready=False)
    assert received(sock) == ["STATUS=2 children, 1 running, 0 done, 0.0 jobs/s"]
    status.tick(101.0, counts, all_ready=True)
    assert received(sock) == ["READY=1\nSTATUS=2 children, 1 running, 0 done, 0.0 jobs/s"]
    status.tick(102.0, PoolCounts(2, 2, 20, False), all_ready=True)
    assert received(sock) == []  # READY once; STATUS restarted its period with it
    assert status.watchdog_left(102.0) == pytest.approx(3.0)
    status.tick(104.5, PoolCounts(2, 2, 35, True), all_ready=True)
    assert received(sock) == [
        "WATCHDOG=1",
        "STATUS=stopping, 2 children, 2 running, 35 done, 10.0 jobs/s",
    ]

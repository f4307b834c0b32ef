"""Giving back claimed jobs that never started (`Backend.release_many`), on every backend.

A stopping child gives back the rest of its batch claim (up to MAX_BATCH jobs), and the
supervisor gives back a dead or killed child's: in one transaction, each job left exactly as
`end_attempt(..., Ending.RELEASE, reason)` leaves it, fenced on its lease token.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import backend_location, need_backend

from jobq.backend import ClaimFilter, Ending, Role, open_backend
from jobq.basics import JobState, NewJob
from jobq.model import EventKind
from tests.factories import LEASE, T0, enqueue, history, new_job
from tests.helpers import wait_until
from tests.workerapp import pools_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

REASON = "not started: worker stopping"
ALL_KINDS = [k.value for k in EventKind]


def released_events(b: Backend, mark: int) -> list[int]:
    """Job ids of the `released` events after `mark`, in order."""
    return [e.job_id for e in b.events(after=mark, kinds=["released"])]


@contextmanager
def twin(backend_kind: str, tmp_path: Path) -> Iterator[Backend]:
    """A second fresh queue on the same backend."""
    (tmp_path / "twin").mkdir()
    b = open_backend(backend_location(backend_kind, tmp_path / "twin"), Role.PRODUCER)
    try:
        yield b
    finally:
        b.close()


def held_batch(b: Backend) -> tuple[list[tuple[int, str]], int]:
    """Five jobs claimed in one batch claim at T0, the third asked to cancel meanwhile (a
    requested cancel wins over a release): their leases in claim order (not id order), and
    the id of the one asked to cancel."""
    ids = [enqueue(b, T0 - 10, type="t", priority=i % 2) for i in range(5)]
    jobs = b.claim("host:1:ab/1", T0, LEASE, ClaimFilter(types=("t",)), limit=5)
    assert sorted(j.id for j in jobs) == ids
    b.cancel([ids[2]], T0 + 1)
    return [(j.id, j.lease_token or "") for j in jobs], ids[2]


def count_transactions(b: Backend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the write transactions `b` opens from now on (one element per transaction)."""
    opened: list[int] = []
    write = b._write  # type: ignore[attr-defined]

    def counting(*args: object, **kwargs: object) -> object:
        opened.append(1)
        return write(*args, **kwargs)

    monkeypatch.setattr(b, "_write", counting)
    return opened


def snapshot(b: Backend, ids: list[int]) -> list[tuple[object, ...]]:
    """Everything recorded about the jobs: the job rows, their attempts, their events (without
    the ids and event times that differ between two queues by construction)."""
    out: list[tuple[object, ...]] = []
    for job_id in ids:
        job = b.get(job_id)
        assert job is not None
        attempts = [dataclasses.replace(a, id=0) for a in b.attempts(job_id)]
        out.append((job, attempts))
    events = [(e.kind, e.job_id, e.attempt, e.type, e.queue, e.error, e.worker_id)
              for e in b.events(after=0, kinds=ALL_KINDS) if e.job_id in ids]  # fmt: skip
    out.append(tuple(sorted(events)))  # released in id order: compared per job, not by order
    return out


def test_release_many_records_what_end_attempt_release_records_per_job(
    backend: Backend, backend_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Released together in one transaction, each job ends exactly as on a twin queue where
    each was released on its own: back to pending, attempt not used up, an `interrupted`
    attempt with the reason, one `released` event; the cancel-requested one ends cancelled."""
    with twin(backend_kind, tmp_path) as other:
        (leases, cancel), (twin_leases, _) = held_batch(backend), held_batch(other)
        assert [i for i, _ in leases] == [i for i, _ in twin_leases]
        ids = [i for i, _ in leases]
        mark = backend.last_event_id()
        opened = count_transactions(backend, monkeypatch)
        states = backend.release_many(leases, T0 + 2, REASON)
        assert len(opened) == 1
        one_by_one = [other.end_attempt(i, t, T0 + 2, Ending.RELEASE, REASON)
                      for i, t in twin_leases]  # fmt: skip
        assert states == one_by_one
        assert states == [JobState.CANCELLED if i == cancel else JobState.PENDING for i in ids]
        assert snapshot(backend, ids) == snapshot(other, ids)
    for job_id in ids:
        job = backend.get(job_id)
        assert job is not None and job.attempts == 0 and job.lease_token is None
        assert history(backend, job_id) == (["cancelled"] if job_id == cancel else ["interrupted"])
    assert sorted(released_events(backend, mark)) == sorted(i for i in ids if i != cancel)


def test_release_many_is_fenced_on_each_token(backend: Backend) -> None:
    """A stale or wrong token changes nothing (None for it); the others are released."""
    leases, cancel = held_batch(backend)
    (a, ta), (b, tb), (c, tc) = [lease for lease in leases if lease[0] != cancel][:3]
    before = backend.get(b)
    mark = backend.last_event_id()
    assert backend.release_many([(a, ta)], T0 + 2, REASON) == [JobState.PENDING]
    # a's lease is spent; b's token is wrong; c's is good
    got = backend.release_many([(a, ta), (b, "not-" + tb), (c, tc)], T0 + 3, REASON)
    assert got == [None, None, JobState.PENDING]
    assert backend.get(b) == before and history(backend, b) == []
    assert history(backend, a) == ["interrupted"] and history(backend, c) == ["interrupted"]
    assert released_events(backend, mark) == [a, c]
    assert backend.release_many([], T0 + 4, REASON) == []


# ---- a pool stopping with a batch claim ------------------------------------------------------

KINDS = ["sqlite", "postgresql"]
TINY = 3000  # enough no-op jobs for each child's batch claim to grow to MAX_BATCH
SLOW = 300


@pytest.fixture(params=KINDS)
def loc(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh queue on each backend."""
    need_backend(request.param, request)
    return backend_location(request.param, tmp_path)


def transactions_of(store: Backend, ids: list[int]) -> int:
    """PostgreSQL: how many transactions last wrote these job rows (their xmin)."""
    conn = store._live()  # type: ignore[attr-defined]
    row = conn.execute("SELECT count(DISTINCT xmin::text) FROM jobs WHERE id = ANY(%s)", (ids,))
    return int(row.fetchone()[0])


@pytest.mark.parametrize(
    ("seconds", "shutdown", "ran", "reason"),
    [
        # the running jobs finish; each child then gives back the rest of its batch itself
        (1.0, 60.0, "succeeded", REASON),
        # the running jobs are interrupted; the supervisor gives back the killed children's
        (120.0, 0.5, "interrupted", "interrupted: shutdown timeout reached"),
    ],
    ids=["drain", "interrupt"],
)
def test_a_pool_holding_a_batch_claim_stops_at_once_on_sigterm(
    loc: str, tmp_path: Path, seconds: float, shutdown: float, ran: str, reason: str
) -> None:
    """SIGTERM to a pool whose children hold many claimed, never-started jobs: it exits within
    10 s (the running job's second, or the half-second shutdown timeout, plus one transaction
    per child), every unstarted job back to pending with its attempt not used up and one
    `released` event, the running ones drained or interrupted as before."""
    ledger = tmp_path / "ledger"
    store = open_backend(loc, Role.PRODUCER)
    try:
        store.enqueue([_job("noop", {}) for _ in range(TINY)], time.time())
        slow = store.enqueue([_job("sleep", {"seconds": seconds, "ledger": str(ledger)})
                              for _ in range(SLOW)], time.time())  # fmt: skip
        with pools_for(loc, tmp_path) as pools:
            pool = pools.start(concurrency=2, shutdown_timeout=shutdown)

            def holding() -> bool:
                # How many slow jobs the children's last batches take depends on where those
                # batches met the end of the no-op jobs (and on how big a stall on this loaded
                # machine let them grow): 4 or more, each child running one and holding the rest
                held = [j for j in store.get_many(slow) if j.state is JobState.RUNNING]
                return len(held) >= 4

            wait_until(holding, timeout=120, interval=0.1, what="batch claims holding 4 slow jobs")
            wait_until(lambda: _started(ledger), what="the slow jobs start")
            mark = store.last_event_id()
            held = [j.id for j in store.get_many(slow) if j.state is JobState.RUNNING]
            t0 = time.monotonic()
            pool.signal(signal.SIGTERM)
            assert pool.wait(60) == 0
            elapsed = time.monotonic() - t0
        started = _started(ledger)  # a child may have begun its next job before the signal
        unstarted = [i for i in held if i not in started]
        assert len(unstarted) >= 2 and elapsed <= 10.0, (len(unstarted), elapsed)
        for job in store.get_many(unstarted):
            assert job.state is JobState.PENDING and job.attempts == 0, job
            assert [(a.outcome.value, a.error) for a in store.attempts(job.id)] == [
                ("interrupted", reason)
            ]
        for job_id in started:
            assert history(store, job_id) == [ran]
        events = released_events(store, mark)
        assert sorted(i for i in events if i in unstarted) == sorted(unstarted)
        if loc.startswith("postgresql"):
            # one transaction per child that held them, not one per job
            assert transactions_of(store, unstarted) <= 2
    finally:
        store.close()


def _job(type_: str, payload: dict[str, object]) -> NewJob:
    return new_job(type=type_, payload_json=json.dumps(payload))


def _started(ledger: Path) -> set[int]:
    """Ids of the slow jobs whose handler started."""
    if not ledger.exists():
        return set()
    return {int(line.split()[0]) for line in ledger.read_text().splitlines() if "start" in line}

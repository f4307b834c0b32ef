"""Factories that build jobs in a given state through the Backend API (no raw SQL), so that
the contract tests run unchanged on every backend.

`make_job(backend, "running", now=T, lease_until=T - 1, attempts=3)` enqueues a job and drives
it through claim / end_attempt / complete / cancel until it is where the test wants it. Time is
always explicit: every operation runs at a time derived from `now`. (`raw_row` alone reads a
SQLite file directly, for the SQLite-only tests.)
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence

from jobq.backend import ActionResult, ClaimFilter, Ending
from jobq.model import Job, JobState, NewJob

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend as Store  # every factory takes any backend

T0 = 1_700_000_000.0  # a fixed "now" for tests that do not care which
LEASE = 30.0
WORKER = "pool-a/1"
STALE_TOKEN = "0000000000000000"
_SERIAL = itertools.count(1)


def new_job(
    type: str = "t",
    payload_json: str = "{}",
    *,
    queue: str = "default",
    priority: int = 0,
    run_at: float | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    unique_key: str | None = None,
) -> NewJob:
    """A NewJob with defaults for every field."""
    return NewJob(
        type=type,
        payload_json=payload_json,
        queue=queue,
        priority=priority,
        run_at=run_at,
        max_attempts=max_attempts,
        timeout=timeout,
        unique_key=unique_key,
    )


def enqueue(store: Store, now: float = T0, **fields: object) -> int:
    """Enqueue one job (fields of `new_job`) at `now`; return its id."""
    return store.enqueue([new_job(**fields)], now)[0]  # type: ignore[arg-type]


def claim_one(
    store: Store,
    job_id: int,
    now: float,
    *,
    worker: str = WORKER,
    lease: float = LEASE,
    handler_max: int | None = None,
) -> Job:
    """Claim exactly `job_id` (it must be the only due job of its type) and return it;
    `handler_max` is its handler's max_attempts, as a pool's claim passes it."""
    job = store.get(job_id)
    assert job is not None
    limits = {job.type: (handler_max, None)} if handler_max is not None else None
    only = ClaimFilter(types=(job.type,), queues=(job.queue,))
    claimed = store.claim(worker, now, lease, only, limits=limits)
    assert [j.id for j in claimed] == [job_id], f"expected to claim {job_id}, got {claimed}"
    return claimed[0]


def make_job(
    store: Store,
    state: str | JobState = "pending",
    *,
    now: float = T0,
    attempts: int = 0,
    max_attempts: int | None = None,
    lease_until: float | None = None,
    cancel_requested: bool = False,
    finished_at: float | None = None,
    worker: str = WORKER,
    type: str | None = None,
    handler_max: int | None = None,
    **fields: object,
) -> Job:
    """Build a job in `state` through real store operations and return it as stored.

    - pending: `attempts` earlier attempts each ended by a crash (due again at once);
    - running: claimed, with `attempts` counted (default 1) and `lease_until` (default now+30);
      `cancel_requested` asks for a cancel;
    - succeeded / failed / cancelled: finished at `finished_at` (default now - 1); failed uses
      up every attempt (`attempts` defaults to max_attempts, or 4).

    Each job gets its own type (unless given) so claims in the factory never touch other jobs.
    `handler_max` is the max_attempts of its handler, given to every claim.
    """
    state = JobState(state)
    type_ = type if type is not None else f"t{next(_SERIAL)}"
    start = min(now, lease_until if lease_until is not None else now, finished_at or now) - 1000
    job_id = enqueue(store, start, type=type_, max_attempts=max_attempts, **fields)
    limit = max_attempts if max_attempts is not None else (handler_max or 4)
    t = start

    def earlier_attempts(n: int) -> None:
        nonlocal t
        for _ in range(n):
            t += 1
            lease = claim_one(store, job_id, t, worker=worker, handler_max=handler_max)
            token = lease.lease_token or ""
            assert store.end_attempt(job_id, token, t, Ending.CRASH, "factory crash") is not None

    if state is JobState.PENDING:
        assert attempts < limit, "a pending job has attempts left"
        earlier_attempts(attempts)
    elif state is JobState.RUNNING:
        n = max(attempts, 1)
        assert n <= limit
        earlier_attempts(n - 1)
        until = lease_until if lease_until is not None else now + LEASE
        claim_one(store, job_id, until - LEASE, worker=worker, handler_max=handler_max)
        if cancel_requested:
            got = store.cancel([job_id], until - LEASE)[job_id]
            assert got.result is ActionResult.CANCEL_REQUESTED
    else:
        end = finished_at if finished_at is not None else now - 1
        if state is JobState.SUCCEEDED:
            earlier_attempts(max(attempts, 1) - 1)
            lease = claim_one(store, job_id, end, worker=worker, handler_max=handler_max)
            assert store.complete_many([(job_id, lease.lease_token or "", '"ok"', None)], end)
        elif state is JobState.FAILED:
            n = attempts or limit
            earlier_attempts(n - 1)
            lease = claim_one(store, job_id, end, worker=worker, handler_max=handler_max)
            token = lease.lease_token or ""
            ended = store.end_attempt(job_id, token, end, Ending.FAIL, "boom", retryable=False)
            assert ended is JobState.FAILED
        else:
            earlier_attempts(attempts)
            assert store.cancel([job_id], end)[job_id].result is ActionResult.CANCELLED
    job = store.get(job_id)
    assert job is not None and job.state is state, (job, state)
    return job


def raw_row(path: str, job_id: int) -> tuple[object, ...] | None:
    """The job's full row read by a separate plain connection (SQLite-only tests)."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        conn.close()
    return None if row is None else tuple(row)


def history(store: Store, job_id: int) -> list[str]:
    """Outcomes of a job's finished attempts, oldest first."""
    return [a.outcome.value for a in store.attempts(job_id)]


def ids(jobs: Sequence[Job]) -> list[int]:
    """The ids of `jobs`, in order."""
    return [j.id for j in jobs]

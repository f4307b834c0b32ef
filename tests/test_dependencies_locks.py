"""Dependencies on PostgreSQL, where an enqueue with `after` locks the jobs it goes after until
it commits, and an ending locks its job and then the job's dependents:

- both lock in id order, so that neither waits for the other in a cycle (the server would
  break it after deadlock_timeout by failing one: an enqueue exits 75, a worker retries);
- an ending that waited for such an enqueue sees the new job's links: a dependent of a failed
  job is cancelled, never left blocked for good.

Each test makes one interleaving happen for sure, with real processes: the test holds one
job's row, starts the writes one by one, each once the ones before it wait for a lock, and
lets go. (SQLite has no row locks: its writers take turns. tests/test_dependencies_race.py
runs races of the same kind on both backends.)
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobq import JobState, Queue
from jobq.backend import ClaimFilter, Ending, Role, open_backend
from tests.factories import new_job
from tests.helpers import wait_until
from tests.pgserver import PgServer
from tests.test_dependencies_race import Children, hold_row, report, waiting_on_locks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

LEASE = 600.0
FAN_OUT = 300  # dependents of one job: enough for the planner to scan the table


@pytest.fixture
def location(pg_server: PgServer) -> str:
    """A fresh queue in the session's server."""
    return pg_server.location()


def _end(location: str, job_id: int, token: str, how: str, n: int, out: object) -> None:
    def work() -> object:
        b = open_backend(location, Role.WORKER)
        try:
            if how == "succeed":
                return b.complete(job_id, token, time.time(), None, None)
            return b.end_attempt(job_id, token, time.time(), Ending.FAIL, "boom",
                                 retryable=False)  # fmt: skip
        finally:
            b.close()

    report(out, n, None, work)


def _enqueue_after(location: str, after: list[int], n: int, out: object) -> None:
    def work() -> int:
        with Queue(location) as q:
            return q.enqueue("v", after=after)

    report(out, n, None, work)


def _in_turn(location: str, held: int, *writes: tuple[Any, ...]) -> list[Any]:
    """Hold job `held`'s row; start each write (target, *args) in a process of its own, in
    turn, each once the ones before it wait for a lock; let go. Return what they returned."""
    release = hold_row(location, held)
    children = Children()
    try:
        for n, (target, *args) in enumerate(writes, 1):
            children.start(target, location, *args)
            last = children.procs[-1]  # a write that does not wait is done before we let go
            wait_until(lambda n=n, last=last: waiting_on_locks(location) >= n
                       or last.exitcode is not None, timeout=60,
                       what=f"{n} writes wait for a lock")  # fmt: skip
    finally:
        release()
    return children.results()


def _ending_then_enqueue(
    location: str, held: int, job_id: int, token: str, how: str, after: list[int]
) -> tuple[object, int]:
    """End `job_id` (`how`) once it waits for `held`, then enqueue a job after `after` (see
    `_in_turn`): what the ending returned, and the new job's id."""
    ended, made = _in_turn(location, held, (_end, job_id, token, how), (_enqueue_after, after))
    return ended, made


def _running(b: Backend, job_id: int) -> str:
    (job,) = b.claim("main/1", time.time(), LEASE, ClaimFilter(types=("x",)), limit=1)
    assert job.id == job_id
    return job.lease_token or ""


def _claim_ids(b: Backend, type: str) -> list[int]:
    jobs = b.claim("main/1", time.time(), LEASE, ClaimFilter(types=(type,)), limit=1000)
    return sorted(j.id for j in jobs)


def test_an_enqueue_after_a_job_and_its_dependent_while_the_job_succeeds(location: str) -> None:
    """The enqueue after [x, y] locked y first (where its row lies in the table: behind x's
    claimed version) and waited for x, while x's success waited for y to unblock it."""
    b = open_backend(location, Role.WORKER)
    try:
        (x,) = b.enqueue([new_job("x")], time.time())
        (y,) = b.enqueue([new_job("y")._replace(after=(x,))], time.time())
        token = _running(b, x)
        ended, v = _ending_then_enqueue(location, x, x, token, "succeed", [x, y])
        assert ended is True
        assert b.dependencies([v]) == {v: [(x, JobState.SUCCEEDED), (y, JobState.PENDING)]}
        assert _claim_ids(b, "v") == [] and _claim_ids(b, "y") == [y]
        b.complete(y, _token(b, y), time.time(), None, None)
        assert _claim_ids(b, "v") == [v]
    finally:
        b.close()


def _token(b: Backend, job_id: int) -> str:
    job = b.get(job_id)
    assert job is not None and job.lease_token is not None
    return job.lease_token


def _maintain(location: str, command: str) -> None:
    """VACUUM or ANALYZE the jobs tables, as autovacuum would in time."""
    import psycopg

    from jobq.store.postgres.connection import split_url

    url, schema = split_url(location)
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f'{command} "{schema}".jobs, "{schema}".job_deps')


def test_an_enqueue_after_two_dependents_of_a_job_while_the_job_succeeds(location: str) -> None:
    """x has many dependents, so that its success unblocks them in the order of a scan of the
    whole table, where y2 lies before y1 (it took the room of deleted jobs): the success held
    y2 and waited for y1 while the enqueue after [y1, y2] held y1 and waited for y2."""
    b = open_backend(location, Role.WORKER)
    try:
        room = b.enqueue([new_job("f")] * FAN_OUT, time.time())
        (x,) = b.enqueue([new_job("x")], time.time())
        (y1,) = b.enqueue([new_job("y")._replace(after=(x,))], time.time())
        b.delete(room, force=True)
        _maintain(location, "VACUUM")
        ys = [y1, *b.enqueue([new_job("y")._replace(after=(x,))] * FAN_OUT, time.time())]
        y2 = ys[1]
        token = _running(b, x)
        _maintain(location, "ANALYZE")
        ended, v = _ending_then_enqueue(location, y2, x, token, "succeed", [y1, y2])
        assert ended is True
        assert b.dependencies([v]) == {v: [(y1, JobState.PENDING), (y2, JobState.PENDING)]}
        assert _claim_ids(b, "y") == sorted(ys)  # every one unblocked, once
        b.complete_many([(y, _token(b, y), None, None) for y in (y1, y2)], time.time())
        assert _claim_ids(b, "v") == [v]
    finally:
        b.close()


def test_an_enqueue_after_jobs_of_a_tree_while_its_root_fails(location: str) -> None:
    """d1 and d2 wait for x, e for d1 (ids: d1 < e < d2). The failure of x cancelled d1 and d2,
    then e, while the enqueue after [e, d2] held e and waited for d2."""
    b = open_backend(location, Role.WORKER)
    try:
        (x,) = b.enqueue([new_job("x")], time.time())
        (d1,) = b.enqueue([new_job("d")._replace(after=(x,))], time.time())
        (e,) = b.enqueue([new_job("e")._replace(after=(d1,))], time.time())
        (d2,) = b.enqueue([new_job("d")._replace(after=(x,))], time.time())
        token = _running(b, x)
        ended, v = _ending_then_enqueue(location, d2, x, token, "fail", [e, d2])
        assert ended is JobState.FAILED
        for job_id, why in ((d1, f"{x} failed"), (d2, f"{x} failed"), (e, f"{d1} cancelled"),
                            (v, f"{e} cancelled")):  # fmt: skip
            job = b.get(job_id)
            assert job is not None
            assert (job.state, job.last_error) == (JobState.CANCELLED, f"dependency job {why}")
        assert b.counts()["pending"] == 0
    finally:
        b.close()


def test_an_enqueue_after_a_dependent_of_a_job_that_fails_meanwhile(location: str) -> None:
    """y waits for x. The enqueue of z after [y, h] held y (and waited for h) while x failed:
    the cancel of x's dependents read the links before it waited for y, and left z pending,
    waiting for y (cancelled) for good."""
    b = open_backend(location, Role.WORKER)
    try:
        (x,) = b.enqueue([new_job("x")], time.time())
        (y,) = b.enqueue([new_job("y")._replace(after=(x,))], time.time())
        (h,) = b.enqueue([new_job("h")], time.time())
        token = _running(b, x)
        z, ended = _in_turn(location, h, (_enqueue_after, [y, h]), (_end, x, token, "fail"))
        assert ended is JobState.FAILED
        for job_id, why in ((y, f"{x} failed"), (z, f"{y} cancelled")):
            job = b.get(job_id)
            assert job is not None
            assert (job.state, job.last_error) == (JobState.CANCELLED, f"dependency job {why}")
        assert _claim_ids(b, "h") == [h] and b.counts()["pending"] == 0
    finally:
        b.close()


def _complete_many(location: str, leases: list[tuple[int, str]], n: int, out: object) -> None:
    def work() -> list[bool]:
        b = open_backend(location, Role.WORKER)
        try:
            return b.complete_many([(i, t, None, None) for i, t in leases], time.time())
        finally:
            b.close()

    report(out, n, None, work)


def test_an_enqueue_after_two_jobs_while_a_worker_records_both_successes(location: str) -> None:
    """A worker records its successes in batches, in the order they ended (x2 before x1), and
    with many jobs running the server walks the batch in that order: it held x2 and waited for
    x1 while the enqueue after [x1, x2] held x1 and waited for x2."""
    b = open_backend(location, Role.WORKER)
    try:
        b.enqueue([new_job("r")] * FAN_OUT, time.time())
        b.claim("other/1", time.time(), LEASE, ClaimFilter(types=("r",)), limit=FAN_OUT)
        x1, x2 = b.enqueue([new_job("x"), new_job("x")], time.time())
        jobs = b.claim("main/1", time.time(), LEASE, ClaimFilter(types=("x",)), limit=2)
        tokens = {j.id: j.lease_token or "" for j in jobs}
        _maintain(location, "ANALYZE")
        oks, v = _in_turn(location, x2, (_complete_many, [(x2, tokens[x2]), (x1, tokens[x1])]),
                          (_enqueue_after, [x1, x2]))  # fmt: skip
        assert oks == [True, True]
        assert b.dependencies([v]) == {v: [(x1, JobState.SUCCEEDED), (x2, JobState.SUCCEEDED)]}
        assert _claim_ids(b, "v") == [v]
    finally:
        b.close()


def _retry(location: str, job_id: int, n: int, out: object) -> None:
    def work() -> str:
        b = open_backend(location, Role.PRODUCER)
        try:
            return str(b.retry([job_id], time.time())[job_id])
        finally:
            b.close()

    report(out, n, None, work)


def test_a_retry_of_a_dependent_while_its_dependency_succeeds(location: str) -> None:
    """j waits for d and was cancelled. d's success (held up by its other dependent k) had
    found j cancelled, while the retry counted d as running (not committed yet): j was left
    pending, waiting for a job that had succeeded, for good."""
    b = open_backend(location, Role.WORKER)
    try:
        (d,) = b.enqueue([new_job("x")], time.time())
        k, j = b.enqueue([new_job("k")._replace(after=(d,)), new_job("j")._replace(after=(d,))],
                         time.time())  # fmt: skip
        assert b.cancel([j], time.time())[j].done
        token = _running(b, d)
        ended, retried = _in_turn(location, k, (_end, d, token, "succeed"), (_retry, j))
        assert (ended, retried) == (True, "retried")
        assert _claim_ids(b, "j") == [j] and _claim_ids(b, "k") == [k]
    finally:
        b.close()

"""Lifecycle events on every backend (the `backend` contract fixture): each transition of the
state machine writes the right event, in the transaction of the change; filters, cursors,
pruning."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobq.backend import Ending
from jobq.model import Event, EventKind
from tests.factories import LEASE, T0, claim_one, enqueue, make_job, new_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

ALL = [k.value for k in EventKind]


def kinds_since(b: Backend, mark: int) -> list[tuple[str, int, int]]:
    """(kind, job id, attempt) of every event after `mark`, in id order."""
    return [(e.kind.value, e.job_id, e.attempt) for e in b.events(after=mark, kinds=ALL)]


def running(b: Backend, **fields: object) -> tuple[int, str]:
    """A job claimed at T0 (attempt 1 counted): (id, lease token)."""
    job_id = enqueue(b, T0 - 10, **fields)
    job = claim_one(b, job_id, T0)
    return job_id, job.lease_token or ""


def last_attempt(b: Backend, max_attempts: int = 2) -> tuple[int, str]:
    """A running job on its last attempt (earlier ones crashed)."""
    job = make_job(b, "running", now=T0, attempts=max_attempts, max_attempts=max_attempts)
    return job.id, job.lease_token or ""


Action = Callable[["Backend", int, str], object]
# (name, how the job is set up, the action, the kinds it writes with the attempt of each)
CASES: list[tuple[str, Callable[[Backend], tuple[int, str]], Action, list[tuple[str, int]]]] = [
    ("complete", running, lambda b, i, t: b.complete_many([(i, t, None, None)], T0 + 2),
     [("succeeded", 1)]),
    ("fail, attempts left", running,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.FAIL, "E"), [("retrying", 1)]),
    ("fail, last attempt", last_attempt,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.FAIL, "E"), [("failed", 2)]),
    ("fail, not retryable", running,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.FAIL, "E", retryable=False),
     [("failed", 1)]),
    ("timeout, attempts left", running,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.TIMEOUT), [("retrying", 1)]),
    ("timeout, last attempt", last_attempt,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.TIMEOUT), [("failed", 2)]),
    ("crash, attempts left", running,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.CRASH, "E"), [("crashed", 1)]),
    ("crash, last attempt (poison pill)", last_attempt,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.CRASH, "E"), [("failed", 2)]),
    ("cancel a running job", running,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.CANCEL), [("cancelled", 1)]),
    ("a requested cancel wins over a retry", running,
     lambda b, i, t: (b.cancel([i], T0 + 1), b.end_attempt(i, t, T0 + 2, Ending.FAIL, "E")),
     [("cancelled", 1)]),
    ("interrupt (shutdown)", running,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.INTERRUPT), [("released", 1)]),
    ("release (never started)", running,
     lambda b, i, t: b.end_attempt(i, t, T0 + 2, Ending.RELEASE), [("released", 1)]),
    ("rescue of an expired lease", running, lambda b, i, t: b.rescue(T0 + LEASE + 5),
     [("crashed", 1)]),
    ("rescue on the last attempt", last_attempt, lambda b, i, t: b.rescue(T0 + LEASE + 5),
     [("failed", 2)]),
    ("operator cancels a pending job", lambda b: (enqueue(b, T0 - 10), ""),
     lambda b, i, t: b.cancel([i], T0 + 2), [("cancelled", 0)]),
    ("operator retries a failed job",
     lambda b: (make_job(b, "failed", now=T0, max_attempts=1).id, ""),
     lambda b, i, t: b.retry([i], T0 + 2), [("retried", 0)]),
    ("operator retries a cancelled job", lambda b: (make_job(b, "cancelled", now=T0).id, ""),
     lambda b, i, t: b.retry([i], T0 + 2), [("retried", 0)]),
    ("claim", lambda b: (enqueue(b, T0 - 10), ""), lambda b, i, t: claim_one(b, i, T0 + 2),
     [("started", 1)]),
    # what changes no state in the lifecycle writes nothing
    ("cancel requested (the attempt's end tells)", running, lambda b, i, t: b.cancel([i], T0 + 2),
     []),
    ("renew", running, lambda b, i, t: b.renew([(i, t)], T0 + 60), []),
    ("set priority", running, lambda b, i, t: b.set_priority([i], 5), []),
    ("a stale worker's write", running,
     lambda b, i, t: b.end_attempt(i, "0" * 16, T0 + 2, Ending.FAIL, "E"), []),
    ("retry of a succeeded job", lambda b: (make_job(b, "succeeded", now=T0).id, ""),
     lambda b, i, t: b.retry([i], T0 + 2), []),
    ("retry refused: its unique key is held",
     lambda b: (make_job(b, "failed", now=T0, max_attempts=1, unique_key="k", type="u").id, ""),
     lambda b, i, t: (enqueue(b, T0, type="u", unique_key="k"), b.retry([i], T0 + 2)),
     [("created", 0)]),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "action", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_each_transition_writes_its_event(
    backend: Backend,
    setup: Callable[[Backend], tuple[int, str]],
    action: Action,
    expected: list[tuple[str, int]],
) -> None:
    job_id, token = setup(backend)
    mark = backend.last_event_id()
    action(backend, job_id, token)
    got = kinds_since(backend, mark)
    assert [(k, a) for k, _j, a in got] == expected
    assert all(j == job_id for k, j, _a in got if k != "created")


def test_event_fields(backend: Backend) -> None:
    job_id = enqueue(backend, T0, type="mail.send", queue="q1")
    job = claim_one(backend, job_id, T0 + 1, worker="pool-x/2")
    backend.end_attempt(job_id, job.lease_token or "", T0 + 3.5, Ending.FAIL,
                        "ValueError: bad\n  more\n", rand=0.5)  # fmt: skip
    created, started, retrying = backend.events(kinds=ALL)
    assert (created.kind, created.at, created.job_id, created.type, created.queue) == (
        EventKind.CREATED, T0, job_id, "mail.send", "q1")  # fmt: skip
    assert (created.attempt, created.error, created.duration, created.worker_id) == (
        0, None, None, None)  # fmt: skip
    assert (started.kind, started.at, started.attempt, started.worker_id) == (
        EventKind.STARTED, T0 + 1, 1, "pool-x/2")  # fmt: skip
    assert (retrying.kind, retrying.at, retrying.attempt) == (EventKind.RETRYING, T0 + 3.5, 1)
    assert retrying.error == "ValueError: bad"  # the first line only
    assert retrying.duration == pytest.approx(2.5)
    assert retrying.worker_id == "pool-x/2"
    assert created.id < started.id < retrying.id
    assert retrying.to_dict() == {
        "id": retrying.id, "kind": "retrying", "at": "2023-11-14T22:13:23.500000Z",
        "job_id": job_id, "type": "mail.send", "queue": "q1", "attempt": 1,
        "error": "ValueError: bad", "duration": 2.5, "worker_id": "pool-x/2",
    }  # fmt: skip


def test_a_long_error_is_cut_to_one_bounded_line(backend: Backend) -> None:
    job_id, token = running(backend)
    backend.end_attempt(job_id, token, T0 + 1, Ending.FAIL, "x" * 5000, retryable=False)
    (ev,) = backend.events(kinds=["failed"])
    assert ev.error == "x" * 1000


def test_bulk_enqueue_writes_one_created_per_job_in_id_order(backend: Backend) -> None:
    ids = backend.enqueue_runs([(new_job("bulk"), '[{"a":1},[2],{"b":3}]', 3)], T0)
    ids += backend.enqueue([new_job("one"), new_job("two", unique_key="k")], T0 + 1)
    evs = backend.events(kinds=["created"])
    assert [e.job_id for e in evs] == ids
    assert [e.type for e in evs] == ["bulk", "bulk", "bulk", "one", "two"]


def _fire_schedule(b: Backend) -> list[int]:
    from jobq.schedules import Schedule

    b.put_schedule(
        Schedule(
            name="s",
            cron="* * * * *",
            tz="UTC",
            type="cron",
            queue="default",
            payload_json="{}",
            priority=0,
            paused=False,
            next_at=T0,
        ),
        T0 - 1,
    )
    return [job_id for _name, job_id in b.fire_schedules(T0 + 1, lambda s, now: now + 60)]


def _after_a_failed_job(b: Backend) -> list[int]:
    failed = make_job(b, "failed", now=T0 - 5, max_attempts=1).id
    mark = b.last_event_id()
    ids = b.enqueue([new_job("after")._replace(after=(failed,))], T0)
    # created first, then the cancel its dead dependency causes at once
    assert [k for k, _j, _a in kinds_since(b, mark)] == ["created", "cancelled"]
    return ids


# Every way jobq makes a job writes its `created` event (SQLite since schema 12 by the statement
# after the insert; PostgreSQL by a trigger per statement): once per job, in id order.
MAKERS: list[tuple[str, Callable[[Backend], list[int]]]] = [
    ("one job", lambda b: b.enqueue([new_job("one")], T0)),
    (
        "a batch of plain jobs",
        lambda b: b.enqueue([new_job("a"), new_job("a", "[1]"), new_job("b")], T0),
    ),
    (
        "a batch with a unique key",
        lambda b: b.enqueue([new_job("a"), new_job("u", unique_key="k"), new_job("a")], T0),
    ),
    ("enqueue_unique", lambda b: [b.enqueue_unique(new_job("u", unique_key="k"), T0)[0]]),
    (
        "runs",
        lambda b: b.enqueue_runs(
            [(new_job("r"), '[{"a":1},[2]]', 2), (new_job("s"), "[{}]", 1)], T0
        ),
    ),
    (
        "after a pending job",
        lambda b: b.enqueue([new_job("after")._replace(after=(enqueue(b, T0 - 1),))], T0),
    ),
    ("after a failed job: cancelled at once", _after_a_failed_job),
    ("a schedule firing", _fire_schedule),
]


@pytest.mark.parametrize("make", [m[1] for m in MAKERS], ids=[m[0] for m in MAKERS])
def test_every_way_of_making_a_job_writes_one_created_event(
    backend: Backend, make: Callable[[Backend], list[int]]
) -> None:
    ids = make(backend)
    assert ids
    created = backend.events(kinds=["created"])
    mine = [e for e in created if e.job_id in ids]
    assert [e.job_id for e in mine] == sorted(ids)
    for e in mine:
        job = backend.get(e.job_id)
        assert job is not None
        assert (e.at, e.type, e.queue, e.attempt) == (job.created_at, job.type, job.queue, 0)


def test_a_unique_enqueue_that_returns_the_existing_job_writes_nothing(backend: Backend) -> None:
    backend.enqueue_unique(new_job("u", unique_key="k"), T0)
    mark = backend.last_event_id()
    backend.enqueue_unique(new_job("u", unique_key="k"), T0 + 1)
    assert kinds_since(backend, mark) == []


def _history(b: Backend) -> list[Event]:
    """Two jobs of two types in two queues, with every kind of event at known times."""
    a = enqueue(b, T0, type="email.send", queue="mail")  # created T0
    c = enqueue(b, T0 + 10, type="resize", queue="images")  # created T0+10
    ja = claim_one(b, a, T0 + 20)  # started T0+20
    b.end_attempt(a, ja.lease_token or "", T0 + 30, Ending.FAIL, "E", retryable=False)
    b.cancel([c], T0 + 40)
    return b.events(kinds=ALL)


def test_filters(backend: Backend) -> None:
    evs = _history(backend)
    assert [e.kind.value for e in evs] == ["created", "created", "started", "failed", "cancelled"]

    def ids(**kw: object) -> list[int]:
        return [e.id for e in backend.events(**kw)]  # type: ignore[arg-type]

    assert ids(kinds=["failed", "cancelled"]) == [evs[3].id, evs[4].id]
    assert ids(type_glob="email.*") == [evs[0].id, evs[2].id, evs[3].id]
    assert ids(type_glob="[r]esiz?") == [evs[1].id, evs[4].id]
    assert ids(type_glob="EMAIL.*") == []  # GLOB is case-sensitive
    assert ids(queue="images") == [evs[1].id, evs[4].id]
    assert ids(since=T0 + 20) == [e.id for e in evs[2:]]
    assert ids(queue="mail", kinds=["created", "failed"], since=T0) == [evs[0].id, evs[3].id]
    # cursors: after / until, the oldest or the newest page
    assert ids(after=evs[1].id, limit=2) == [evs[2].id, evs[3].id]
    assert ids(after=evs[0].id, until=evs[2].id) == [evs[1].id, evs[2].id]
    assert ids(limit=2, newest=True) == [evs[3].id, evs[4].id]
    assert ids(limit=2, newest=True, until=evs[2].id) == [evs[1].id, evs[2].id]
    assert backend.last_event_id() == evs[-1].id


def test_prune_events_by_age_and_by_cap(backend: Backend) -> None:
    evs = _history(backend)
    assert backend.prune_events(T0 + 15) == 2  # the two created before T0+15
    assert [e.id for e in backend.events(kinds=ALL)] == [e.id for e in evs[2:]]
    assert backend.prune_events(None, keep=2) == 1
    assert [e.id for e in backend.events(kinds=ALL)] == [e.id for e in evs[3:]]
    # everything is older, yet the newest event stays: ids are never reused, so a follower's
    # cursor stays valid after any prune
    assert backend.prune_events(T0 + 1000) == 1
    assert backend.prune_events(None, keep=0) == 0
    assert [e.id for e in backend.events(kinds=ALL)] == [evs[-1].id]
    enqueue(backend, T0 + 50)
    assert backend.events(kinds=ALL)[-1].id == evs[-1].id + 1

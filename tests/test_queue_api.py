"""The Python API (`jobq.Queue`) as a user calls it, on every backend (`q`); durability and
backup of a queue file on SQLite only (`sq`)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import jobq
from jobq import InvalidInput, JobNotFound, JobState, WaitTimeout
from jobq.backend import ClaimFilter, Ending, Role, open_backend
from jobq.store.sqlite.testhooks import synchronous
from tests.conftest import wait_until
from tests.factories import LEASE, claim_one, make_job


@pytest.fixture
def q(location: str) -> Iterator[jobq.Queue]:
    """A jobq.Queue on a fresh queue of each backend in turn."""
    with jobq.Queue(location) as queue:
        yield queue


@pytest.fixture
def sq(db_path: str) -> Iterator[jobq.Queue]:
    """A jobq.Queue on a fresh queue file (SQLite only)."""
    with jobq.Queue(db_path) as queue:
        yield queue


def _rows(q: jobq.Queue, table: str = "jobs") -> int:
    """Rows of the jobs table, or of the attempts table, through the Backend API."""
    ids = q.backend.matching_ids(time.time())
    if table == "jobs":
        return len(ids)
    return sum(len(q.backend.attempts(i)) for i in ids)


def _need_waker(q: jobq.Queue) -> None:
    if q.location.startswith("postgres"):
        pytest.importorskip("jobq.store.postgres.waker", reason="the LISTEN waker (pgpool)")


# ---- enqueue ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("low", -10), ("normal", 0), ("high", 10), ("critical", 20), ("HIGH", 10), (7, 7),
     (-3, -3), ("15", 15), ("-2", -2)],
)  # fmt: skip
def test_enqueue_priority(q: jobq.Queue, given: int | str, stored: int) -> None:
    assert q.get(q.enqueue("t", priority=given)).priority == stored


@pytest.mark.parametrize("bad", ["urgent", "", 2**40, True, 1.5, None])
def test_enqueue_bad_priority_writes_nothing(q: jobq.Queue, bad: object) -> None:
    with pytest.raises(InvalidInput):
        q.enqueue("t", priority=bad)  # type: ignore[arg-type]
    assert _rows(q) == 0


def test_enqueue_stores_every_field(q: jobq.Queue) -> None:
    before = time.time()
    job = q.get(
        q.enqueue(
            "resize",
            {"path": "a.jpg"},
            priority="high",
            delay=30,
            max_attempts=5,
            timeout="1m",
            queue="images",
            unique_key="a.jpg",
        )
    )
    assert (job.type, job.payload, job.queue, job.unique_key) == (
        "resize",
        {"path": "a.jpg"},
        "images",
        "a.jpg",
    )
    assert (job.max_attempts, job.timeout, job.state, job.attempts) == (
        5,
        60.0,
        JobState.PENDING,
        0,
    )
    assert before + 30 <= job.run_at <= time.time() + 30
    assert job.view(time.time()) == "scheduled"
    default = q.get(q.enqueue("t"))
    assert (default.payload, default.priority, default.queue) == ({}, 0, "default")
    assert (default.max_attempts, default.timeout) == (None, None)
    assert default.tries() == "0/?", "the limit is fixed by the first claim"
    # no handler limits
    claimed = q.backend.claim("pool/1", time.time(), 30, ClaimFilter(types=("t",)))
    assert [(j.max_attempts, j.timeout, j.tries()) for j in claimed] == [(4, 300.0, "1/4")]


@pytest.mark.parametrize(
    ("kwargs", "run_at"),
    [
        ({"run_at": "2030-01-01T00:00:00Z"}, 1893456000.0),
        ({"run_at": "2030-01-01T01:00:00+01:00"}, 1893456000.0),
        ({"run_at": "2030-01-01T00:00:00"}, 1893456000.0),  # naive means UTC
        ({"run_at": 1893456000}, 1893456000.0),
    ],
)
def test_enqueue_run_at(q: jobq.Queue, kwargs: dict[str, object], run_at: float) -> None:
    assert q.get(q.enqueue("t", **kwargs)).run_at == run_at  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay": 5, "run_at": 1893456000},
        {"delay": "soon"},
        {"delay": -1},
        {"run_at": "tomorrow"},
        {"max_attempts": 0},
        {"timeout": "forever"},
        {"unique_key": ""},
        {"queue": "with space"},
    ],
)
def test_enqueue_bad_arguments_write_nothing(q: jobq.Queue, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        q.enqueue("t", **kwargs)  # type: ignore[arg-type]
    assert _rows(q) == 0


def test_enqueue_unique_key(q: jobq.Queue) -> None:
    first = q.enqueue("t", unique_key="k")
    assert q.enqueue("t", {"other": 1}, unique_key="k") == first
    q.cancel(first)
    assert q.enqueue("t", unique_key="k") != first


def test_enqueue_many_in_order(q: jobq.Queue) -> None:
    ids = q.enqueue_many(
        [("a", {"n": 1}), {"type": "b", "payload": [1], "priority": "high", "delay": "1h"},
         ("c", None)]
    )  # fmt: skip
    assert ids == sorted(ids) and len(ids) == 3
    jobs = [q.get(i) for i in ids]
    assert [(j.type, j.payload, j.priority) for j in jobs] == [
        ("a", {"n": 1}, 0),
        ("b", [1], 10),
        ("c", {}, 0),
    ]
    assert jobs[1].view(time.time()) == "scheduled"
    assert q.enqueue_many([]) == []


@pytest.mark.parametrize(
    "bad",
    [
        ("bad type", {}),
        ("t", {"x": float("nan")}),
        {"type": "t", "priority": "urgent"},
        {"type": "t", "colour": "red"},
        {"payload": {}},
        "not-a-job",
        (["a", "list"], {}),  # unhashable: once a TypeError traceback
        {"type": "t", "queue": {"an": "object"}},
    ],
)
def test_enqueue_many_is_all_or_nothing(q: jobq.Queue, bad: object) -> None:
    items: list[Any] = [("t", {"n": n}) for n in range(5)]
    items.insert(3, bad)
    with pytest.raises(InvalidInput, match=r"^job 4: "):
        q.enqueue_many(items)
    assert _rows(q) == 0


# ---- reads ------------------------------------------------------------------------------------


def test_get_missing_job(q: jobq.Queue) -> None:
    with pytest.raises(JobNotFound, match="no job 99"):
        q.get(99)


def test_list_filters_and_views(q: jobq.Queue) -> None:
    due = q.enqueue("email.send", {"to": "a@example.com"})
    scheduled = q.enqueue("email.bounce", delay=3600, queue="mail")
    resize = q.enqueue("resize", {"path": "100%_done.jpg"}, queue="images")
    other = q.enqueue("resize", {"path": "100x_done.jpg"}, queue="images")
    now = time.time()
    store = q.backend
    lease = claim_one(store, resize, now)
    store.end_attempt(resize, lease.lease_token or "", now, Ending.FAIL, "disk 50% full_",
                      rand=0.0)  # retrying  # fmt: skip
    lease = claim_one(store, other, now)

    def listed(state: str | None = None, **kw: Any) -> list[int]:
        return sorted(j.id for j in q.list(state, **kw))

    assert listed() == sorted([due, scheduled, resize, other])
    assert listed("pending") == sorted([due, scheduled, resize])
    assert listed("running") == [other]
    assert listed("scheduled") == [scheduled]
    assert listed("retrying") == [resize]
    assert listed(type="email.*") == sorted([due, scheduled])
    assert listed(queue="images") == sorted([resize, other])
    assert listed("pending", queue="images") == [resize]
    # search: payload and last error, with % and _ taken literally
    assert listed(search="a@example") == [due]
    assert listed(search="100%_") == [resize]
    assert listed(search="100%") == [resize]
    assert listed(search="_done") == sorted([resize, other])
    assert listed(search="50% full_") == [resize]
    assert listed(search="%") == [resize]
    assert listed(search="_") == sorted([resize, other])  # not "any one character"
    assert q.count("pending") == 3 and q.count(search="50% full_") == 1
    with pytest.raises(InvalidInput, match="unknown state"):
        q.list("finished")


def test_keyset_pagination_returns_every_row_once(q: jobq.Queue) -> None:
    n = 1000
    now = time.time()
    items = [
        {"type": "t", "payload": {"n": i}, "priority": (i * 7) % 5 - 2,
         "run_at": now - 1000 + (i * 13) % 17}
        for i in range(n)
    ]  # fmt: skip
    ids = q.enqueue_many(items)
    for order in ("newest", "claim"):
        seen: list[int] = []
        after: Any = None
        pages = 0
        while True:
            page = q.list(limit=37, order=order, after=after)
            if not page:
                break
            pages += 1
            seen.extend(j.id for j in page)
            last = page[-1]
            after = last.id if order == "newest" else (last.priority, last.run_at, last.id)
        assert sorted(seen) == sorted(ids) and len(seen) == n, order
        assert pages == -(-n // 37)
        full = q.list(limit=n + 1, order=order)
        assert seen == [j.id for j in full], f"pages follow the {order} order"
    claim_order = [j.id for j in q.list(limit=n, order="claim")]
    jobs = {j.id: j for j in q.list(limit=n)}
    assert claim_order == sorted(
        jobs, key=lambda i: (-jobs[i].priority, jobs[i].run_at, jobs[i].id)
    )


def test_stats_and_counts(q: jobq.Queue) -> None:
    store = q.backend
    now = time.time()
    make_job(store, "succeeded", now=now, type="a")
    make_job(store, "failed", now=now, type="a", queue="q2")
    make_job(store, "running", now=now, type="b")
    q.enqueue("b", delay=60)
    q.enqueue("c")
    q.pause("q2")
    assert q.counts() == {
        "pending": 2, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 0,
    }  # fmt: skip
    stats = q.stats()
    assert stats.by_state == q.counts()
    assert (stats.scheduled, stats.retrying) == (1, 0)
    assert stats.by_type["a"] == {"succeeded": 1, "failed": 1}
    assert stats.by_queue["q2"] == {"failed": 1}
    assert stats.paused_queues == ("q2",)
    assert stats.finished_last_minute == 2 and stats.failed_last_minute == 1
    assert set(stats.to_dict()) >= {"by_state", "scheduled", "retrying", "paused_queues"}


def test_prune(q: jobq.Queue) -> None:
    store = q.backend
    old = time.time() - 8 * 86400
    old_ok = make_job(store, "succeeded", now=old, attempts=2)
    old_failed = make_job(store, "failed", now=old)
    old_cancelled = make_job(store, "cancelled", now=old)
    recent = make_job(store, "succeeded", now=time.time())
    running = make_job(store, "running", now=old)
    assert _rows(q, "attempts") == 2 + 4 + 0 + 1
    with pytest.raises(InvalidInput, match="finished"):
        q.prune("7d", states=["running"])
    assert q.prune("7d", states=["failed"]) == 1
    assert q.prune("7d") == 2
    assert q.prune("7d") == 0
    left = {j.id for j in q.list(limit=100)}
    assert left == {recent.id, running.id}
    assert not {old_ok.id, old_failed.id, old_cancelled.id} & left
    assert _rows(q, "attempts") == 1, "attempts go with their job"
    assert q.attempts(old_ok.id) == []


def test_pause_and_resume(q: jobq.Queue) -> None:
    job_id = q.enqueue("t", queue="images")
    q.pause("images")
    q.pause("images")  # twice is fine
    assert q.paused_queues() == ["images"]
    assert q.backend.claim("w", time.time(), LEASE) == []
    q.resume("images")
    assert q.paused_queues() == []
    assert [j.id for j in q.backend.claim("w", time.time(), LEASE)] == [job_id]
    with pytest.raises(InvalidInput):
        q.pause("")


def test_retry_cancel_set_priority(q: jobq.Queue) -> None:
    store = q.backend
    failed = make_job(store, "failed", now=time.time())
    q.retry(failed.id)
    assert q.get(failed.id).state is JobState.PENDING
    with pytest.raises(jobq.InvalidTransition, match="it is pending"):
        q.retry(failed.id)
    assert q.cancel(failed.id) == "cancelled"
    running = make_job(store, "running", now=time.time())
    assert q.cancel(running.id) == "cancel requested"
    done = make_job(store, "succeeded", now=time.time())
    with pytest.raises(jobq.InvalidTransition, match="it is succeeded"):
        q.cancel(done.id)
    with pytest.raises(JobNotFound):
        q.cancel(12345)
    q.set_priority(running.id, "critical")
    assert q.get(running.id).priority == 20
    with pytest.raises(JobNotFound):
        q.set_priority(12345, 1)
    with pytest.raises(InvalidInput):
        q.set_priority(running.id, "asap")


# ---- wait -------------------------------------------------------------------------------------


def test_wait_returns_when_another_thread_finishes_the_job(q: jobq.Queue, location: str) -> None:
    _need_waker(q)
    job_id = q.enqueue("t")
    other = q.enqueue("t")

    def worker() -> None:
        store = open_backend(location, Role.WORKER)
        try:
            time.sleep(0.2)
            for job in store.claim("w", time.time(), LEASE, limit=2):
                store.complete_many([(job.id, job.lease_token or "", '"done"', None)], time.time())
        finally:
            store.close()

    thread = threading.Thread(target=worker)
    thread.start()
    started = time.monotonic()
    jobs = q.wait([job_id, other], timeout=10)
    thread.join()
    assert [j.id for j in jobs] == [job_id, other]
    assert all(j.state is JobState.SUCCEEDED and j.result == "done" for j in jobs)
    assert time.monotonic() - started < 5


def finish_later(location: str, job_id: int, delay: float) -> None:
    """Child process: fail a job for good after `delay` seconds."""
    time.sleep(delay)
    store = open_backend(location, Role.WORKER)
    lease = claim_one(store, job_id, time.time())
    store.end_attempt(job_id, lease.lease_token or "", time.time(), Ending.FAIL, "nope",
                      retryable=False)  # fmt: skip
    store.close()


@pytest.mark.timeout(60)
def test_wait_returns_when_another_process_finishes_the_job(q: jobq.Queue, location: str) -> None:
    _need_waker(q)
    job_id = q.enqueue("t")
    proc = multiprocessing.get_context("spawn").Process(
        target=finish_later, args=(location, job_id, 0.3)
    )
    proc.start()
    [job] = q.wait(job_id, timeout=30)
    proc.join(10)
    assert job.state is JobState.FAILED and job.last_error == "nope"


def test_wait_times_out(q: jobq.Queue) -> None:
    _need_waker(q)
    job_id = q.enqueue("t")
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=str(job_id)):
        q.wait(job_id, timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 3
    with pytest.raises(JobNotFound):
        q.wait([job_id, 999], timeout=1)


# ---- errors feed and workers ------------------------------------------------------------------


def test_errors_feed(q: jobq.Queue) -> None:
    store = q.backend
    now = time.time()
    a = make_job(store, "running", now=now, type="a", queue="qa")
    store.end_attempt(a.id, a.lease_token or "", now, Ending.FAIL, "first", traceback="tb1")
    b = make_job(store, "running", now=now, type="b")
    store.end_attempt(b.id, b.lease_token or "", now, Ending.CRASH, "worker exited: signal 9")
    c = make_job(store, "running", now=now)
    store.end_attempt(c.id, c.lease_token or "", now, Ending.INTERRUPT)  # not an error
    errors = q.errors()
    assert [(e.type, e.queue, e.attempt.error) for e in errors] == [
        ("b", "default", "worker exited: signal 9"),
        ("a", "qa", "first"),
    ]
    assert errors[1].attempt.traceback == "tb1"
    newest = errors[0].attempt.id
    assert q.errors(after=newest) == []
    d = make_job(store, "running", now=now, type="d")
    store.end_attempt(d.id, d.lease_token or "", now, Ending.FAIL, "later")
    assert [e.type for e in q.errors(after=newest)] == ["d"]
    assert len(q.errors(limit=1)) == 1


def test_workers_show_their_current_jobs(q: jobq.Queue) -> None:
    store = q.backend
    now = time.time()
    store.register_worker("pool-a", name="a", host="h", pid=1, concurrency=2,
                          queues=["default"], types=["t*"], now=now)  # fmt: skip
    store.register_worker("pool-b", name="b", host="h", pid=2, concurrency=1,
                          queues=[], types=[], now=now + 1)  # fmt: skip
    one = make_job(store, "running", now=now, worker="pool-a/1")
    two = make_job(store, "running", now=now, worker="pool-a/2")
    make_job(store, "running", now=now, worker="pool-c/1")  # an unregistered pool
    workers = {w.id: w for w in q.workers()}
    assert workers["pool-a"].current_jobs == (one.id, two.id)
    assert workers["pool-b"].current_jobs == ()
    assert workers["pool-a"].queues == ("default",) and workers["pool-a"].types == ("t*",)
    store.worker_heartbeat("pool-a", now + 5, jobs_done=3, status="stopping")
    a = next(w for w in q.workers() if w.id == "pool-a")
    # time.time() has digits below a microsecond, which timestamptz (PostgreSQL) rounds away
    assert a.heartbeat_at == pytest.approx(now + 5, abs=1e-6)
    assert (a.jobs_done, a.status) == (3, "stopping")
    # no process identity recorded (another host): alive while it heartbeats, dead 30 s after
    assert a.alive(now + 6) and a.status_at(now + 6) == "stopping"
    assert not a.alive(now + 60) and a.status_at(now + 60) == "dead"


# ---- durability and backup --------------------------------------------------------------------


def test_enqueue_commits_with_synchronous_full_and_claims_with_normal(sq: jobq.Queue) -> None:
    q = sq
    q.enqueue("t")
    assert synchronous(q.backend) == 2
    q.backend.claim("w", time.time(), LEASE)
    assert synchronous(q.backend) == 1
    q.enqueue_many([("t", None)])
    assert synchronous(q.backend) == 2


def keep_writing(db_path: str, stop: Any, counter: Any) -> None:
    """Child process: enqueue and complete jobs until told to stop."""
    with jobq.Queue(db_path) as queue:
        while not stop.is_set():
            queue.enqueue_many([("bg", {"n": i}) for i in range(20)])
            for job in queue.backend.claim("bg/1", time.time(), LEASE, limit=10):
                queue.backend.complete(job.id, job.lease_token or "", time.time(), None, None)
            with counter.get_lock():
                counter.value += 1


@pytest.mark.timeout(60)
def test_backup_is_consistent_while_another_process_writes(
    sq: jobq.Queue, db_path: str, tmp_path: Any
) -> None:
    q = sq
    q.enqueue_many([("seed", {"n": i}) for i in range(500)])
    ctx = multiprocessing.get_context("spawn")
    stop, counter = ctx.Event(), ctx.Value("i", 0)
    proc = ctx.Process(target=keep_writing, args=(db_path, stop, counter))
    proc.start()
    try:
        wait_until(lambda: counter.value >= 3, timeout=30, what="the writer got going")
        for n in range(3):
            out = str(tmp_path / f"backup{n}.db")
            q.backend.backup(out)
            with jobq.Queue(out) as copy:
                assert copy.backend.doctor()["integrity"] == "ok"
                assert copy.count(type="seed") == 500
                assert copy.count() >= 500
    finally:
        stop.set()
        proc.join(20)
    assert proc.exitcode == 0

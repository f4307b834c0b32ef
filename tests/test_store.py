"""Store behaviour beyond single transitions: fencing, claim order and filters, unique keys,
retry policy, attempt history and the claim's query plan. Every test that uses the Backend API
only runs on every backend (`store` is the `backend` fixture here); those that reach into the
SQLite file (its query plan, its pages, its PRAGMAs) take `sqlite_store`."""

from __future__ import annotations

import sqlite3

import pytest

from jobq import lifecycle, retry
from jobq.backend import ActionResult, ClaimFilter, Ending
from jobq.basics import NewJob
from jobq.errors import CorruptFile
from jobq.model import JobState
from jobq.store import Store
from jobq.store.sqlite.testhooks import claim_plan
from tests.factories import (
    LEASE,
    T0,
    claim_one,
    enqueue,
    history,
    ids,
    make_job,
    new_job,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from jobq.backend import Backend

NOW = T0


@pytest.fixture
def store(backend: Backend) -> Backend:
    """A fresh queue on each backend in turn."""
    return backend


@pytest.fixture
def sqlite_store(db_path: str) -> Iterator[Store]:
    """A SQLite Store on a fresh queue file, for the tests that look inside the file."""
    s = Store(db_path)
    yield s
    s.close()


# ---- fencing ----------------------------------------------------------------------------------

STALE_WRITES = {
    "renew": lambda s, i, t: s.renew([(i, t)], NOW + 500),
    "complete_many": lambda s, i, t: s.complete_many([(i, t, '"late"', "out")], NOW + 5),
    **{
        how.value: lambda s, i, t, how=how: s.end_attempt(i, t, NOW + 5, how, f"late {how}")
        for how in Ending
    },
}
NOTHING = {"renew": 0, "complete_many": [False]}


@pytest.mark.parametrize("write", STALE_WRITES)
@pytest.mark.parametrize("then", ["reclaimed", "reclaimed-and-finished", "rescued-only"])
def test_a_stale_token_changes_nothing(store: Backend, write: str, then: str) -> None:
    # worker A's lease expires, a rescuer ends its attempt, worker B may claim the job again
    a = make_job(store, "running", now=NOW, lease_until=NOW - 1, worker="pool-a/1")
    assert store.rescue(NOW) == [(a.id, JobState.PENDING)]
    if then != "rescued-only":
        b = claim_one(store, a.id, NOW + 1, worker="pool-b/1")
        assert b.lease_token != a.lease_token
        if then == "reclaimed-and-finished":
            assert store.complete_many([(b.id, b.lease_token or "", '"b"', None)], NOW + 2)
    before_row = store.get(a.id)
    before_history = store.attempts(a.id)

    returned = STALE_WRITES[write](store, a.id, a.lease_token)

    assert returned == NOTHING.get(write)
    assert store.get(a.id) == before_row
    assert store.attempts(a.id) == before_history


def test_complete_many_fences_each_job_on_its_own(store: Backend) -> None:
    live = make_job(store, "running", now=NOW)
    lost = make_job(store, "running", now=NOW, lease_until=NOW - 1)
    store.rescue(NOW)
    done = store.complete_many(
        [
            (live.id, live.lease_token or "", '"a"', "printed"),
            (lost.id, lost.lease_token or "", None, None),
        ],
        NOW,
    )
    assert done == [True, False]
    assert store.get(live.id).result == "a"  # type: ignore[union-attr]
    assert [a.output for a in store.attempts(live.id)] == ["printed"]
    assert store.get(live.id).state is JobState.SUCCEEDED  # type: ignore[union-attr]
    assert store.get(lost.id).state is JobState.PENDING  # type: ignore[union-attr]


# ---- claim order and filters -----------------------------------------------------------------


def test_claim_order_is_priority_desc_then_run_at_then_id(store: Backend) -> None:
    spec = [  # (priority, run_at offset)
        (0, -10), (10, -5), (0, -20), (10, -5), (-10, -30), (20, -1), (0, -20),
    ]  # fmt: skip
    made = [enqueue(store, NOW - 100, priority=p, run_at=NOW + dt) for p, dt in spec]
    expected = [
        made[i] for i in sorted(range(len(spec)), key=lambda i: (-spec[i][0], spec[i][1], made[i]))
    ]
    one_by_one = [store.claim("w", NOW, LEASE)[0].id for _ in made]
    assert one_by_one == expected
    assert store.claim("w", NOW, LEASE) == []


def test_claim_batch_returns_jobs_in_claim_order(store: Backend) -> None:
    made = [enqueue(store, NOW - 100, priority=p) for p in (0, 5, 0, 5, 1)]
    batch = store.claim("w", NOW, LEASE, limit=3)
    assert ids(batch) == [made[1], made[3], made[4]]
    assert all(j.state is JobState.RUNNING and j.attempts == 1 for j in batch)
    assert len({j.lease_token for j in batch}) == 1, "one claim, one token"
    assert ids(store.claim("w", NOW, LEASE, limit=10)) == [made[0], made[2]]


def test_run_at_in_the_future_is_not_claimed_until_due(store: Backend) -> None:
    later = enqueue(store, NOW, run_at=NOW + 30)
    assert store.claim("w", NOW + 29.999, LEASE) == []
    assert ids(store.claim("w", NOW + 30, LEASE)) == [later]


def test_paused_queue_is_skipped_until_resumed(store: Backend) -> None:
    paused = enqueue(store, NOW, queue="images", priority=20)
    other = enqueue(store, NOW, queue="default")
    store.set_paused("images", True, NOW)
    assert store.paused_queues() == ["images"]
    assert ids(store.claim("w", NOW, LEASE, limit=5)) == [other]
    assert store.claim("w", NOW, LEASE, ClaimFilter(queues=("images",))) == []
    store.set_paused("images", False, NOW + 1)
    assert store.paused_queues() == []
    assert ids(store.claim("w", NOW + 1, LEASE)) == [paused]


def test_pausing_does_not_touch_running_jobs(store: Backend) -> None:
    job = make_job(store, "running", now=NOW, queue="images")
    store.set_paused("images", True, NOW)
    assert store.complete(job.id, job.lease_token or "", NOW, None, None)


@pytest.mark.parametrize(
    ("kwargs", "claimed"),
    [
        ({}, ["email.send", "email.bounce", "resize", "resize@img"]),
        ({"types": ["resize"]}, ["resize", "resize@img"]),
        ({"types": ["resize", "email.send"]}, ["email.send", "resize", "resize@img"]),
        ({"types": []}, []),
        ({"type_globs": ["email.*"]}, ["email.send", "email.bounce"]),
        ({"type_globs": ["*.bounce", "resize"]}, ["email.bounce", "resize", "resize@img"]),
        ({"type_globs": ["Email.*"]}, []),  # GLOB is case-sensitive
        ({"queues": ["img"]}, ["resize@img"]),
        ({"queues": ["default", "img"]}, ["email.send", "email.bounce", "resize", "resize@img"]),
        ({"queues": ["nope"]}, []),
        ({"types": ["resize"], "queues": ["img"]}, ["resize@img"]),
        ({"type_globs": ["email.*"], "queues": ["img"]}, []),
    ],
)
def test_claim_restrictions(
    store: Backend, kwargs: dict[str, list[str]], claimed: list[str]
) -> None:
    for label in ["email.send", "email.bounce", "resize", "resize@img"]:
        type_, _, queue = label.partition("@")
        enqueue(store, NOW, type=type_, queue=queue or "default")
    only = ClaimFilter(**{k: tuple(v) for k, v in kwargs.items()})
    jobs = store.claim("w", NOW, LEASE, only, limit=10)
    assert [j.type + ("@img" if j.queue == "img" else "") for j in jobs] == claimed


def test_claim_takes_a_glob_literally_only_where_it_has_no_metacharacters(store: Backend) -> None:
    enqueue(store, NOW, type="a[1]")
    enqueue(store, NOW, type="a1")
    only = ClaimFilter(types=("a[1]",))
    assert [j.type for j in store.claim("w", NOW, LEASE, only, limit=5)] == ["a[1]"]


# ---- unique keys ------------------------------------------------------------------------------


def test_unique_key_returns_the_active_job(store: Backend) -> None:
    first = enqueue(store, NOW, type="u", unique_key="k")
    assert enqueue(store, NOW + 1, type="u", unique_key="k") == first  # pending
    claim_one(store, first, NOW + 2)
    assert enqueue(store, NOW + 3, type="u", unique_key="k") == first  # running
    assert store.counts()["pending"] + store.counts()["running"] == 1
    other = enqueue(store, NOW + 3, type="u", unique_key="other")
    assert other != first


def test_unique_key_is_free_again_once_the_job_finished(store: Backend) -> None:
    done = make_job(store, "succeeded", now=NOW, unique_key="k")
    again = enqueue(store, NOW, unique_key="k")
    assert again != done.id


def test_unique_key_within_one_batch(store: Backend) -> None:
    got = store.enqueue([new_job(unique_key="k"), new_job(), new_job(unique_key="k")], NOW)
    assert got[0] == got[2] != got[1]
    assert store.count_jobs(NOW) == 2


def test_retry_reports_a_duplicate_unique_key(store: Backend) -> None:
    failed = make_job(store, "failed", now=NOW, type="u", unique_key="k")
    active = enqueue(store, NOW, type="u", unique_key="k")  # keys are per type
    assert active != failed.id
    before = store.get(failed.id)
    assert store.retry([failed.id], NOW) == {failed.id: ActionResult.DUPLICATE_UNIQUE_KEY}
    assert store.get(failed.id) == before
    store.cancel([active], NOW)
    assert store.retry([failed.id], NOW) == {failed.id: ActionResult.RETRIED}


def test_batch_ids_are_in_order_and_never_reused_after_prune(store: Backend) -> None:
    first = store.enqueue([new_job() for _ in range(3)], NOW)
    assert first == sorted(first) and len(set(first)) == 3
    for job_id in first:
        store.cancel([job_id], NOW)
    assert store.prune(NOW + 1, ["cancelled"]) == 3
    second = store.enqueue([new_job() for _ in range(3)], NOW + 2)
    assert min(second) > max(first)
    assert [j.id for j in store.get_many(second)] == second


# ---- retry policy -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "base"),
    [(0, 5.0), (1, 5.0), (2, 25.0), (3, 125.0), (4, 625.0), (5, 3125.0), (6, 3600.0),
     (7, 3600.0), (1000, 3600.0), (10**9, 3600.0)],
)  # fmt: skip
def test_backoff(attempt: int, base: float) -> None:
    assert retry.backoff(attempt, 0.5) == pytest.approx(base)
    assert retry.backoff(attempt, 0.0) == pytest.approx(base * 0.9)
    assert retry.backoff(attempt, 0.999999) == pytest.approx(base * 1.1, rel=1e-5)
    assert retry.backoff(attempt, 0.999999) <= base * 1.1
    for _ in range(50):
        assert base * 0.9 <= retry.backoff(attempt) <= base * 1.1


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999999])
def test_fail_schedules_the_backoff(store: Backend, rand: float) -> None:
    job = make_job(store, "running", now=NOW, attempts=2)
    got = store.end_attempt(job.id, job.lease_token or "", NOW, Ending.FAIL, "e", rand=rand)
    assert got is JobState.PENDING
    after = store.get(job.id)
    assert after is not None
    assert after.run_at == pytest.approx(NOW + retry.backoff(2, rand))
    assert after.view(NOW) == "retrying"
    assert after.view(after.run_at) == "pending"


def test_not_retryable_fails_at_once(store: Backend) -> None:
    job = make_job(store, "running", now=NOW)
    got = store.end_attempt(job.id, job.lease_token or "", NOW, Ending.FAIL, retryable=False)
    assert got is JobState.FAILED


@pytest.mark.parametrize(
    ("job_max", "handler_max", "attempts", "end"),
    [
        (None, None, 3, JobState.PENDING),
        (None, None, 4, JobState.FAILED),  # no job or handler value: the default, 4
        (None, 2, 2, JobState.FAILED),  # the handler's applies to jobs without their own
        (None, 6, 4, JobState.PENDING),
        (6, 2, 2, JobState.PENDING),  # the job's own max_attempts wins over the handler's
        (6, 2, 6, JobState.FAILED),
        (1, 4, 1, JobState.FAILED),
    ],
)
def test_max_attempts_per_job_then_handler_then_default_fixed_at_claim(
    store: Backend, job_max: int | None, handler_max: int | None, attempts: int, end: JobState
) -> None:
    job = make_job(
        store, "running", now=NOW, attempts=attempts, max_attempts=job_max, handler_max=handler_max
    )
    effective = job_max or handler_max or 4
    assert job.max_attempts == effective, "the claim writes the limit that applies on the job"
    assert store.end_attempt(job.id, job.lease_token or "", NOW, Ending.FAIL, "e") is end


@pytest.mark.parametrize(
    ("job_timeout", "handler_timeout", "effective"),
    [(None, None, 300.0), (None, 12.5, 12.5), (3.0, 12.5, 3.0), (3.0, None, 3.0)],
)
def test_timeout_per_job_then_handler_then_default_fixed_at_claim(
    store: Backend, job_timeout: float | None, handler_timeout: float | None, effective: float
) -> None:
    job_id = enqueue(store, NOW, type="slow", timeout=job_timeout)
    enqueue(store, NOW, type="other", timeout=None)  # another type's handler limit
    limits = {"slow": (None, handler_timeout), "other": (9, 99.0)}
    (job,) = store.claim("w", NOW, LEASE, ClaimFilter(types=("slow",)), limits=limits)
    assert (job.id, job.timeout, job.max_attempts) == (job_id, effective, 4)
    assert store.get(job_id).timeout == effective  # type: ignore[union-attr]


# ---- history ----------------------------------------------------------------------------------


def test_attempt_history_over_a_whole_life(store: Backend) -> None:
    job_id = enqueue(store, NOW)
    t = NOW
    lease = claim_one(store, job_id, t, worker="p/1")
    store.end_attempt(job_id, lease.lease_token or "", t + 1, Ending.FAIL, "ValueError: x",
                      traceback="Traceback…", output="printed", rand=0.0)  # fmt: skip
    t = store.get(job_id).run_at  # type: ignore[union-attr]
    lease = claim_one(store, job_id, t, worker="p/2")
    store.end_attempt(job_id, lease.lease_token or "", t + 2, Ending.CRASH,
                      "worker exited: signal 9", output="tail")  # fmt: skip
    lease = claim_one(store, job_id, t + 2, worker="p/3")
    store.end_attempt(job_id, lease.lease_token or "", t + 3, Ending.INTERRUPT)
    lease = claim_one(store, job_id, t + 3, worker="p/4")
    store.complete_many([(job_id, lease.lease_token or "", '{"n":1}', "done")], t + 4)

    rows = store.attempts(job_id)
    assert [(a.attempt, a.outcome.value, a.worker_id) for a in rows] == [
        (1, "failed", "p/1"),
        (2, "crashed", "p/2"),
        (3, "interrupted", "p/3"),
        (3, "succeeded", "p/4"),
    ]
    assert (rows[0].error, rows[0].traceback, rows[0].output) == (
        "ValueError: x",
        "Traceback…",
        "printed",
    )
    assert (rows[0].started_at, rows[0].finished_at) == (NOW, NOW + 1)
    assert rows[1].output == "tail"
    assert rows[3].output == "done"
    final = store.get(job_id)
    assert final is not None
    assert (final.state, final.attempts, final.result) == (JobState.SUCCEEDED, 3, {"n": 1})
    assert final.last_error == "interrupted by shutdown"
    assert history(store, job_id)[-1] == "succeeded"
    errors = store.errors()
    assert [(e.attempt.outcome.value, e.type) for e in errors] == [
        ("crashed", "t"),
        ("failed", "t"),
    ]
    assert store.errors(after=errors[0].attempt.id) == []


# ---- the claim's query plan -------------------------------------------------------------------


def _assert_indexed(plan: list[str]) -> None:
    assert any("jobs_pending" in line for line in plan), plan
    for line in plan:
        assert not (line.startswith("SCAN jobs") and "USING INDEX" not in line), plan
        assert "TEMP B-TREE" not in line, plan


def test_claim_plan_uses_the_partial_index(sqlite_store: Store) -> None:
    _assert_indexed(claim_plan(sqlite_store))


def test_claim_plan_is_the_same_with_100k_finished_rows(sqlite_store: Store) -> None:
    store = sqlite_store
    empty_plan = claim_plan(store)
    n = 100_000
    store.enqueue([new_job("old") for _ in range(n)], NOW - 100)
    batch = store.claim("w", NOW - 50, LEASE, limit=n)
    store.complete_many([(j.id, j.lease_token or "", None, None) for j in batch], NOW - 40)
    store.enqueue([new_job("new") for _ in range(10)], NOW)
    store._conn.execute("ANALYZE")  # planner statistics must not change the plan either
    full_plan = claim_plan(store)
    _assert_indexed(full_plan)
    assert full_plan == empty_plan
    assert [j.type for j in store.claim("w", NOW, LEASE, limit=20)] == ["new"] * 10


def test_a_job_that_completes_despite_a_cancel_request_is_left_without_one(store: Backend) -> None:
    """Found by the Hypothesis model: complete() must clear cancel_requested like every other
    end of an attempt, or a finished job would still show a pending cancel."""
    job_id = enqueue(store, NOW)
    job = claim_one(store, job_id, NOW + 1)
    assert store.cancel([job_id], NOW + 2) == {job_id: ActionResult.CANCEL_REQUESTED}
    assert job.lease_token is not None
    assert store.complete_many([(job_id, job.lease_token, None, None)], NOW + 3) == [True]
    done = store.get(job_id)
    assert done is not None and done.state is JobState.SUCCEEDED
    assert done.cancel_requested is False


# ---- per-id answers of the operator writes, and the pools' bookkeeping ------------------------


def test_each_id_gets_its_own_answer(store: Backend) -> None:
    pending = enqueue(store, NOW)
    running = make_job(store, "running", now=NOW).id
    done = make_job(store, "succeeded", now=NOW).id

    def words(outcomes: dict[int, object]) -> dict[int, str]:
        return {k: str(v) for k, v in outcomes.items()}

    assert words(store.cancel([pending, running, done, 999], NOW)) == {
        pending: "cancelled",
        running: "cancel requested",
        done: "succeeded",
        999: "not found",
    }
    failed = make_job(store, "failed", now=NOW).id
    assert words(store.retry([pending, failed, done, 999], NOW)) == {
        pending: "retried",  # cancelled just above
        failed: "retried",
        done: "succeeded",
        999: "not found",
    }
    answers = words(store.set_priority([done, 999, failed], 5))
    assert answers == {done: "ok", 999: "not found", failed: "ok"}
    assert [j.priority for j in store.get_many([done, failed])] == [5, 5]


def test_retry_reports_a_duplicate_unique_key_of_a_cancelled_job(store: Backend) -> None:
    cancelled = enqueue(store, NOW, unique_key="k")
    store.cancel([cancelled], NOW)
    enqueue(store, NOW, unique_key="k")
    assert {k: str(v) for k, v in store.retry([cancelled], NOW).items()} == {
        cancelled: "duplicate unique key"
    }


def test_renew_counts_the_leases_still_held(store: Backend) -> None:
    jobs = [make_job(store, "running", now=NOW) for _ in range(3)]
    leases = [(j.id, j.lease_token or "") for j in jobs]
    assert store.renew([], NOW + 100) == 0
    assert store.renew(leases, NOW + 100) == 3
    store.end_attempt(jobs[1].id, jobs[1].lease_token or "", NOW, Ending.INTERRUPT)
    assert store.renew(leases, NOW + 200) == 2
    assert [j.lease_until for j in store.get_many([jobs[0].id, jobs[2].id])] == [NOW + 200] * 2


def test_prune_works_through_every_batch(store: Backend) -> None:
    ids_ = store.enqueue([new_job() for _ in range(5)], NOW)
    store.cancel(ids_, NOW)
    keep = make_job(store, "failed", now=NOW + 10).id
    assert store.prune(NOW + 1, ["cancelled", "failed"], batch=2) == 5
    assert store.get_many(ids_) == [] and store.get(keep) is not None


def test_running_of_a_pool(store: Backend) -> None:
    mine = [make_job(store, "running", now=NOW, worker=w).id for w in ("p/1", "p/2")]
    make_job(store, "running", now=NOW, worker="p2/1")  # a pool whose id extends ours
    make_job(store, "running", now=NOW, worker="o/1")
    make_job(store, "pending", now=NOW)
    store.cancel([mine[1]], NOW)
    got = store.running_of("p/")
    assert sorted(r[0] for r in got) == mine
    for job_id, token, worker, started_at, timeout, cancel, attempts in got:
        job = store.get(job_id)
        assert job is not None
        assert (token, worker, started_at, timeout, attempts) == (
            job.lease_token, job.worker_id, job.started_at, job.timeout, job.attempts
        )  # fmt: skip
        assert cancel is (job_id == mine[1])
    assert store.running_of("zzz/") == []


def test_running_of_a_damaged_file_names_the_file_and_the_fault(db_path: str) -> None:
    store = Store(db_path)
    for i in range(50):
        make_job(store, "running", now=NOW, worker=f"p/{i}")
    store.close()
    conn = sqlite3.connect(db_path)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = conn.execute(  # the pages that RUNNING_OF reads whatever index it picks
        "SELECT rootpage FROM sqlite_schema WHERE tbl_name = 'jobs' AND rootpage > 1"
    ).fetchall()
    conn.close()
    with open(db_path, "r+b") as f:
        for (root,) in roots:
            f.seek((root - 1) * page)
            f.write(bytes(range(256)) * (page // 256))  # not a b-tree page
    store = Store(db_path)  # the header and the schema are intact: the read fails
    try:
        with pytest.raises(CorruptFile) as e:
            store.running_of("p/")
    finally:
        store.close()
    assert str(e.value) == (
        f"{db_path} is damaged (database disk image is malformed); run `jobq doctor`, "
        "restore a backup"
    )


def test_enqueue_unique_commits_with_synchronous_full(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    seen: list[int] = []
    original = Store._insert_one

    def spy(conn: sqlite3.Connection, j: NewJob, now: float) -> tuple[int, str | None]:
        seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        return original(conn, j, now)

    monkeypatch.setattr(Store, "_insert_one", staticmethod(spy))
    first, existing = store.enqueue_unique(new_job("a", unique_key="k"), NOW)
    assert existing is None
    assert store.enqueue_unique(new_job("a", unique_key="k"), NOW) == (first, "pending")
    assert seen == [2, 2]  # FULL: the WAL is fsynced at commit, as for every enqueue


def test_register_worker_keeps_its_type_globs(store: Backend) -> None:
    for pool, globs in (("a", ["img:*", "mail"]), ("b", []), ("c", None)):
        store.register_worker(pool, name=pool, host="h", pid=1, concurrency=1, queues=[],
                              types=["t"], type_globs=globs, now=NOW, proc_key=None)  # fmt: skip
    got = {w.id: w.type_globs for w in store.workers()}
    assert got == {"a": ("img:*", "mail"), "b": (), "c": None}


def test_a_pools_names_come_back_exactly_in_order(store: Backend) -> None:
    # the SQLite store unpacks these JSON lists in SQL (no json import for `jobq ls`)
    names = ['q"uote', "back\\slash", "é✓", "z", "a", "[x]*", "\\u0041"]
    store.register_worker("p", name="p", host="h", pid=1, concurrency=1, queues=names,
                          types=names[::-1], type_globs=names[2:], now=NOW)  # fmt: skip
    (w,) = store.workers()
    assert (w.queues, w.types, w.type_globs) == (tuple(names), tuple(names[::-1]), tuple(names[2:]))


def test_a_silent_pools_batch_with_its_progress_releases_what_did_not_start(store: Backend) -> None:
    # a pool whose process this host cannot see (another boot id) and whose heartbeat stopped
    store.register_worker("quiet", name="quiet", host="h", pid=1, concurrency=1, queues=[],
                          types=[], now=NOW - lifecycle.STALE_AFTER - 1,
                          proc_key="otherboot:pid:[9]:123:456")  # fmt: skip
    ids = [enqueue(store, NOW - 10, type="batch", priority=3 - i) for i in range(3)]
    claimed = store.claim("quiet/1", NOW - 5, 3600, ClaimFilter(types=("batch",)), limit=3)
    assert [j.id for j in claimed] == ids
    asked: list[str] = []

    def progress(pool: str) -> lifecycle.Progress:
        asked.append(pool)
        return {"quiet/1": (ids[0], frozenset())}  # it was running the first, no other started

    got = store.rescue(NOW, here="boot:pid:[1]", progress=progress)
    assert asked == ["quiet"]
    assert sorted(got) == [(i, JobState.PENDING) for i in ids]
    assert [store.get(i).attempts for i in ids] == [1, 0, 0]  # type: ignore[union-attr]
    assert [w.status for w in store.workers()] == ["dead"]


def test_worker_heartbeat_records_count_status_and_time(store: Backend) -> None:
    store.register_worker("pool", name="n", host="h", pid=42, concurrency=3, queues=["q"],
                          types=["t"], now=NOW, proc_key="k")  # fmt: skip
    store.worker_heartbeat("pool", NOW + 5, 17, "stopping")
    (w,) = store.workers()
    assert (w.id, w.name, w.host, w.pid, w.concurrency, w.queues, w.types, w.proc_key) == (
        "pool", "n", "h", 42, 3, ("q",), ("t",), "k"
    )  # fmt: skip
    assert (w.started_at, w.heartbeat_at, w.jobs_done, w.status) == (NOW, NOW + 5, 17, "stopping")
    store.worker_heartbeat("pool", NOW + 6, 18)
    assert [(w.heartbeat_at, w.jobs_done, w.status) for w in store.workers()] == [
        (NOW + 6, 18, "running")
    ]

"""The rescuer, River-style: a table of fixtures (lease expired or not × attempts left × state),
each row naming the state the job ends in after `rescue(NOW)`. A contract test: it runs on every
backend (the `backend` fixture) through the Backend API only."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from jobq import lifecycle
from jobq.backend import ClaimFilter
from jobq.model import JobState
from tests.factories import LEASE, T0, claim_one, enqueue, history, make_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

NOW = T0


@dataclass(frozen=True)
class Fixture:
    name: str
    state: str
    end: str
    attempts: int  # after the rescue
    setup: dict[str, object] = field(default_factory=dict)

    @property
    def rescued(self) -> bool:
        return self.state == "running" and self.end != "running"


TABLE = [
    Fixture("expired, attempts left", "running", "pending", 1, {"lease_until": NOW - 1}),
    Fixture("expired long ago", "running", "pending", 1, {"lease_until": NOW - 86_400}),
    Fixture("expired, last attempt left", "running", "pending", 3,
            {"lease_until": NOW - 1, "attempts": 3}),
    Fixture("expired, attempts used up", "running", "failed", 4,
            {"lease_until": NOW - 1, "attempts": 4}),
    Fixture("expired, max_attempts=1", "running", "failed", 1,
            {"lease_until": NOW - 1, "max_attempts": 1}),
    Fixture("expired, own max_attempts above default", "running", "pending", 5,
            {"lease_until": NOW - 1, "attempts": 5, "max_attempts": 9}),
    Fixture("expired, cancel requested", "running", "cancelled", 1,
            {"lease_until": NOW - 1, "cancel_requested": True}),
    Fixture("lease ends exactly now", "running", "running", 1, {"lease_until": NOW}),
    Fixture("lease live", "running", "running", 1, {"lease_until": NOW + 1}),
    Fixture("lease live, attempts used up", "running", "running", 4,
            {"lease_until": NOW + 1, "attempts": 4}),
    Fixture("pending", "pending", "pending", 0),
    Fixture("pending after a crash", "pending", "pending", 2, {"attempts": 2}),
    Fixture("succeeded", "succeeded", "succeeded", 1),
    Fixture("failed", "failed", "failed", 4),
    Fixture("cancelled", "cancelled", "cancelled", 0),
]  # fmt: skip


@pytest.mark.parametrize("fx", TABLE, ids=lambda fx: fx.name)
def test_rescue(backend: Backend, fx: Fixture) -> None:
    store = backend
    job = make_job(store, fx.state, now=NOW, **fx.setup)  # type: ignore[arg-type]
    before = store.get(job.id)
    n_history = len(history(store, job.id))

    rescued = store.rescue(NOW)

    after = store.get(job.id)
    assert after is not None
    assert (after.state.value, after.attempts) == (fx.end, fx.attempts)
    if fx.rescued:
        assert rescued == [(job.id, JobState(fx.end))]
        outcome = "cancelled" if fx.end == "cancelled" else "crashed"
        assert history(store, job.id)[n_history:] == [outcome]
        assert after.lease_token is None and after.lease_until is None
        assert after.last_error is not None and job.worker_id in after.last_error
        if fx.end == "pending":
            assert after.run_at == NOW, "a rescued job is due again at once"
    else:
        assert rescued == []
        assert store.get(job.id) == before
    assert store.rescue(NOW) == [], "a second rescue finds nothing"


def test_rescue_takes_every_expired_lease_oldest_first(backend: Backend) -> None:
    store = backend
    late = make_job(store, "running", now=NOW, lease_until=NOW - 1)
    early = make_job(store, "running", now=NOW, lease_until=NOW - 50)
    live = make_job(store, "running", now=NOW, lease_until=NOW + 50)
    assert store.rescue(NOW) == [(early.id, JobState.PENDING), (late.id, JobState.PENDING)]
    assert store.get(live.id).state is JobState.RUNNING  # type: ignore[union-attr]


def test_a_renewed_lease_is_not_rescued(backend: Backend) -> None:
    store = backend
    job = make_job(store, "running", now=NOW, lease_until=NOW + 1)
    assert store.renew([(job.id, job.lease_token or "")], NOW + LEASE) == 1
    assert store.rescue(NOW + 10) == []


def test_a_rescued_job_is_claimed_again_with_a_new_token(backend: Backend) -> None:
    store = backend
    job = make_job(store, "running", now=NOW, lease_until=NOW - 1)
    store.rescue(NOW)
    again = claim_one(store, job.id, NOW, worker="pool-b/1")
    assert again.attempts == 2
    assert again.lease_token != job.lease_token


# ---- pools: dead at once on this host, silent on another, never our own or a live one ---------

HERE = "boot:pid:[1]"


def _held_batch(store: Backend, n: int, worker: str, lease: float) -> list[int]:
    """Claim `n` jobs of one type in one claim (one token): a worker's batch."""
    ids = [enqueue(store, NOW - 10, type="batch", priority=n - i) for i in range(n)]
    claimed = store.claim(worker, NOW - 5, lease, ClaimFilter(types=("batch",)), limit=n)
    assert [j.id for j in claimed] == ids and len({j.lease_token for j in claimed}) == 1
    return ids


def _register(store: Backend, pool: str, proc: str | None, beat: float = NOW) -> None:
    store.register_worker(pool, name=pool, host="h", pid=1, concurrency=1, queues=[], types=[],
                          now=beat, proc_key=proc)  # fmt: skip


def _gone_proc_key() -> str:
    """The identity of a process that has exited (pid reuse cannot revive it: start ticks)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    key = lifecycle.proc_key(proc.pid)
    proc.wait()
    assert key is not None
    return key


@pytest.mark.skipif(lifecycle.host_key() is None, reason="needs /proc (Linux)")
def test_a_dead_pools_batch_charges_exactly_the_jobs_its_worker_started(backend: Backend) -> None:
    store = backend
    _register(store, "dead", _gone_proc_key())
    ids = _held_batch(store, 5, "dead/1", lease=3600)  # lease far from expired
    asked: list[str] = []

    def progress(pool: str) -> lifecycle.Progress:
        asked.append(pool)
        # the worker ran ids[0] and ids[1] (successes unrecorded) and was running ids[2]
        return {"dead/1": (ids[2], frozenset(ids[:2]))}

    got = store.rescue(NOW, here=lifecycle.host_key(), progress=progress)
    assert asked == ["dead"]
    assert sorted(got) == [(i, JobState.PENDING) for i in ids]
    jobs = [store.get(i) for i in ids]
    assert [j.attempts for j in jobs if j] == [1, 1, 1, 0, 0]
    assert [history(store, i) for i in ids] == [["crashed"]] * 3 + [["interrupted"]] * 2
    assert "died (its process is gone)" in (jobs[0].last_error or "")  # type: ignore[union-attr]
    for j in jobs[3:]:
        assert j is not None and j.last_error is not None
        assert j.last_error.startswith("not started: worker pool dead died")
    assert [j.run_at for j in jobs if j] == [NOW] * 5, "due again at once"
    assert [w.status for w in store.workers()] == ["dead"]
    assert store.rescue(NOW, here=lifecycle.host_key()) == []


@pytest.mark.skipif(lifecycle.host_key() is None, reason="needs /proc (Linux)")
def test_a_dead_pools_batch_without_its_progress_is_charged_whole(backend: Backend) -> None:
    store = backend
    _register(store, "dead", _gone_proc_key())
    ids = _held_batch(store, 3, "dead/1", lease=3600)
    store.rescue(NOW, here=lifecycle.host_key(), progress=lambda pool: None)
    assert [store.get(i).attempts for i in ids] == [1, 1, 1]  # type: ignore[union-attr]
    assert [history(store, i) for i in ids] == [["crashed"]] * 3


@pytest.mark.skipif(lifecycle.host_key() is None, reason="needs /proc (Linux)")
def test_a_live_pool_on_this_host_keeps_expired_leases_whatever_the_clock(backend: Backend) -> None:
    store = backend
    _register(store, "live", lifecycle.proc_key())  # this very process: alive
    ids = _held_batch(store, 2, "live/1", lease=1)  # expired long before NOW
    assert store.rescue(NOW + 3600, here=lifecycle.host_key()) == []
    assert all(store.get(i).state is JobState.RUNNING for i in ids)  # type: ignore[union-attr]


def test_own_pool_is_never_rescued(backend: Backend) -> None:
    store = backend
    ids = _held_batch(store, 2, "mine/1", lease=1)
    assert store.rescue(NOW + 3600, here=HERE, own_pool="mine") == []
    assert store.rescue(NOW + 3600, here=HERE) != [], "another pool would take them"
    assert all(store.get(i).state is JobState.PENDING for i in ids)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("beat", "lease", "rescued"),
    [
        (NOW - 1, 3600, False),  # fresh heartbeat, live lease: left alone
        (NOW - 1, 1, True),  # fresh heartbeat but the lease expired: the backstop
        (NOW - lifecycle.STALE_AFTER - 1, 3600, True),  # silent pool: dead at once
    ],
)
def test_a_pool_on_another_host_by_heartbeat_and_lease(
    backend: Backend, beat: float, lease: float, rescued: bool
) -> None:
    store = backend
    _register(store, "remote", "otherboot:pid:[9]:123:456", beat=beat)
    ids = _held_batch(store, 2, "remote/1", lease=lease)
    got = store.rescue(NOW, here=HERE)
    assert bool(got) is rescued
    if rescued:  # nobody here can tell what it started: each job may have
        assert [store.get(i).attempts for i in ids] == [1, 1]  # type: ignore[union-attr]
    silent = beat < NOW - lifecycle.STALE_AFTER
    assert [w.status for w in store.workers()] == ["dead" if silent else "running"]


def test_lifecycle_status_words() -> None:
    here = "b:ns"
    assert lifecycle.pool_status("stopped", None, NOW, NOW, here) == "stopped"
    assert lifecycle.pool_status("running", None, NOW - 1, NOW, here) == "running"
    assert lifecycle.pool_status("stopping", None, NOW - 1, NOW, here) == "stopping"
    assert lifecycle.pool_status("running", None, NOW - 31, NOW, here) == "dead"
    assert lifecycle.pool_status("running", "x:y:1:2", NOW - 31, NOW, here) == "dead"

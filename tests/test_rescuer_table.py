"""The rescuer, table-driven: lease × owner pool × attempts × cancel × state → end state; and the
owner of a rescued lease can write nothing afterwards."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from jobq.model import JobState
from jobq.store import Store
from tests.factories import T0, make_job, raw_row
from tests.helpers import integrity

NOW = T0
POOL = "pool-a"


@dataclass(frozen=True)
class RescueCase:
    state: str
    lease: str  # "expired", "boundary" (lease_until == now), "live", or "-" (not running)
    owner: str  # "alive" (fresh heartbeat), "dead" (stale heartbeat), "gone" (no workers row)
    attempts: str  # "left" or "used"
    cancel: bool
    expect: str  # end state
    expect_outcome: str | None  # history row the rescue writes, None: nothing changes

    @property
    def id(self) -> str:
        c = "cancel" if self.cancel else "-"
        return f"{self.state}/{self.lease}/{self.owner}/{self.attempts}/{c}"


def _rescue_cases() -> list[RescueCase]:
    cases = []
    for owner in ("alive", "dead", "gone"):
        for attempts in ("left", "used"):
            for cancel in (False, True):
                for lease in ("expired", "boundary", "live"):
                    # A pool with no process identity here (another host) whose heartbeat is
                    # stale is dead: its jobs are rescued at once, whatever their lease. Else
                    # the lease decides: a pool alive but letting its lease lapse (a stopped
                    # child, a stalled supervisor) is rescued too, and fencing makes its late
                    # writes change nothing.
                    if lease == "expired" or owner == "dead":
                        if cancel:
                            expect, outcome = "cancelled", "cancelled"
                        elif attempts == "used":
                            expect, outcome = "failed", "crashed"
                        else:
                            expect, outcome = "pending", "crashed"
                    else:
                        expect, outcome = "running", None
                    cases.append(
                        RescueCase("running", lease, owner, attempts, cancel, expect, outcome)
                    )
            for state in ("pending", "succeeded", "failed", "cancelled"):
                if state == "failed" and attempts == "left":
                    continue  # a failed job has used its attempts (retry resets them)
                cases.append(RescueCase(state, "-", owner, attempts, False, state, None))
    return cases


RESCUE_CASES = _rescue_cases()
MAX = 3


def _build(store: Store, case: RescueCase):
    pool = f"{POOL}-{case.owner}"  # one pool per owner kind, so one file can hold every case
    if case.owner != "gone":
        heartbeat = NOW - 1 if case.owner == "alive" else NOW - 3600
        store.register_worker(
            pool, name="a", host="h", pid=1, concurrency=1, queues=[], types=[], now=heartbeat
        )
    attempts = MAX if case.attempts == "used" else 1
    kwargs: dict[str, object] = {"now": NOW, "max_attempts": MAX, "worker": f"{pool}/1"}
    if case.state == "running":
        lease_until = {"expired": NOW - 5, "boundary": NOW, "live": NOW + 5}[case.lease]
        return make_job(
            store,
            "running",
            attempts=attempts,
            lease_until=lease_until,
            cancel_requested=case.cancel,
            **kwargs,
        )
    if case.state in ("pending", "cancelled"):
        # a job with every attempt crashed is failed, not pending or cancellable
        return make_job(store, case.state, attempts=min(attempts, MAX - 1), **kwargs)
    return make_job(store, case.state, attempts=attempts, **kwargs)


def _snapshot(store: Store, path: str, job_ids: list[int]) -> dict[int, tuple[object, ...]]:
    return {i: (raw_row(path, i), len(store.attempts(i))) for i in job_ids}


@pytest.mark.parametrize("case", RESCUE_CASES, ids=[c.id for c in RESCUE_CASES])
def test_rescue_ends_each_row_in_its_expected_state_and_is_idempotent(
    store: Store, db_path: str, case: RescueCase
):
    """Each fixture row ends in its expected state; a second pass changes nothing."""
    job = _build(store, case)
    before = raw_row(db_path, job.id)
    history_before = len(store.attempts(job.id))

    rescued = store.rescue_expired(NOW)

    after = store.get(job.id)
    assert after is not None
    assert after.state.value == case.expect
    if case.expect_outcome is None:
        assert rescued == []
        assert raw_row(db_path, job.id) == before
        assert len(store.attempts(job.id)) == history_before
    else:
        assert rescued == [(job.id, JobState(case.expect))]
        last = store.attempts(job.id)[-1]
        assert last.outcome.value == case.expect_outcome
        assert last.attempt == job.attempts
        assert after.attempts == job.attempts  # the lost attempt is counted
        assert after.lease_token is None and after.lease_until is None
        if case.expect == "pending":
            assert after.run_at == NOW  # due again at once
        else:
            assert after.finished_at == NOW
    snap = _snapshot(store, db_path, [job.id])
    assert store.rescue_expired(NOW) == []
    assert _snapshot(store, db_path, [job.id]) == snap


def test_rescue_of_every_row_in_one_file_gives_the_same_end_states(store: Store, db_path: str):
    """Every fixture in one file, one pass: the same end states; the second pass is a no-op;
    later time only rescues what has expired by then."""
    built = [(case, _build(store, case)) for case in RESCUE_CASES]
    rescued = dict(store.rescue_expired(NOW))
    for case, job in built:
        got = store.get(job.id)
        assert got is not None
        assert got.state.value == case.expect, case.id
        assert (job.id in rescued) == (case.expect_outcome is not None), case.id
    ids = [job.id for _, job in built]
    snap = _snapshot(store, db_path, ids)
    assert store.rescue_expired(NOW) == []
    assert _snapshot(store, db_path, ids) == snap
    # later, every remaining lease (boundary and live: NOW and NOW+5) has expired too
    later = dict(store.rescue_expired(NOW + 6))
    still_running = {job.id for case, job in built if case.expect == "running"}
    assert set(later) == still_running
    assert store.counts()["running"] == 0
    assert integrity(db_path) == "ok"


def test_the_owner_of_a_rescued_lease_cannot_write(store: Store):
    """The pool whose lease was rescued writes nothing afterwards: every fenced write is a no-op."""
    job = make_job(store, "running", now=NOW, lease_until=NOW - 1, attempts=1)
    token = job.lease_token or ""
    assert store.rescue_expired(NOW) == [(job.id, JobState.PENDING)]
    row = store.get(job.id)
    assert not store.complete(job.id, token, NOW, '"late"', None)
    assert store.fail(job.id, token, NOW, "late") is None
    assert store.crash(job.id, token, NOW, "late") is None
    assert store.release(job.id, token, NOW) is None
    assert store.finish_cancelled(job.id, token, NOW) is None
    assert store.renew([(job.id, token)], NOW + 100) == 0
    assert store.get(job.id) == row

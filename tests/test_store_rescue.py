"""The rescuer, River-style: a table of fixtures (lease expired or not × attempts left × state),
each row naming the state the job ends in after `rescue_expired(NOW)`."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from jobq.model import JobState
from jobq.store import Store
from tests.factories import LEASE, T0, claim_one, history, make_job, raw_row

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
def test_rescue(store: Store, fx: Fixture) -> None:
    job = make_job(store, fx.state, now=NOW, **fx.setup)  # type: ignore[arg-type]
    before = raw_row(store.path, job.id)
    n_history = len(history(store, job.id))

    rescued = store.rescue_expired(NOW)

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
        assert raw_row(store.path, job.id) == before
    assert store.rescue_expired(NOW) == [], "a second rescue finds nothing"


def test_rescue_takes_every_expired_lease_oldest_first(store: Store) -> None:
    late = make_job(store, "running", now=NOW, lease_until=NOW - 1)
    early = make_job(store, "running", now=NOW, lease_until=NOW - 50)
    live = make_job(store, "running", now=NOW, lease_until=NOW + 50)
    assert store.rescue_expired(NOW) == [(early.id, JobState.PENDING), (late.id, JobState.PENDING)]
    assert store.get(live.id).state is JobState.RUNNING  # type: ignore[union-attr]


def test_a_renewed_lease_is_not_rescued(store: Store) -> None:
    job = make_job(store, "running", now=NOW, lease_until=NOW + 1)
    assert store.renew([(job.id, job.lease_token or "")], NOW + LEASE) == 1
    assert store.rescue_expired(NOW + 10) == []


def test_a_rescued_job_is_claimed_again_with_a_new_token(store: Store) -> None:
    job = make_job(store, "running", now=NOW, lease_until=NOW - 1)
    store.rescue_expired(NOW)
    again = claim_one(store, job.id, NOW, worker="pool-b/1")
    assert again.attempts == 2
    assert again.lease_token != job.lease_token

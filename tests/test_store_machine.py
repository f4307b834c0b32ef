"""The job state machine, one table row per (state, action) pair, with an explicit `now`: a
contract test, run on every backend (the `backend` fixture) through the Backend API only.

Each row builds a job in a state (through real backend operations), applies one action at NOW,
and names the end state, the attempts count, the history row written (if any) and what the
action returned. Actions that need a lease use the job's own token when it is running and a
stale token otherwise; a row that expects no change compares the whole job as read back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from jobq import retry
from jobq.backend import ActionOutcome, ActionResult, ClaimFilter, Ending
from jobq.model import Job, JobState
from tests.factories import LEASE, STALE_TOKEN, T0, history, make_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

NOW = T0
S = JobState
STATES = [s.value for s in JobState]


def _token(job: Job) -> str:
    return job.lease_token if job.state is S.RUNNING and job.lease_token else STALE_TOKEN


Action = Callable[["Backend", Job], object]


def _end(how: Ending, error: str | None = None, **kw: object) -> Action:
    return lambda s, j: s.end_attempt(j.id, _token(j), NOW, how, error, **kw)  # type: ignore[arg-type]


ACTIONS: dict[str, Action] = {
    "claim": lambda s, j: [
        c.id for c in s.claim("pool-b/1", NOW, LEASE, ClaimFilter(types=(j.type,)))
    ],
    "renew": lambda s, j: s.renew([(j.id, _token(j))], NOW + 60),
    "complete": lambda s, j: s.complete_many([(j.id, _token(j), '{"ok":1}', "out")], NOW),
    "fail": _end(Ending.FAIL, "boom", traceback="tb", rand=0.5),
    "timeout": _end(Ending.TIMEOUT, "timed out after 5s", rand=0.5),
    "crash": _end(Ending.CRASH, "worker exited: signal 9"),
    "interrupt": _end(Ending.INTERRUPT),
    "release": _end(Ending.RELEASE, "not started: worker stopping"),
    "cancel_running": _end(Ending.CANCEL),
    "cancel": lambda s, j: s.cancel([j.id], NOW)[j.id],
    "retry": lambda s, j: s.retry([j.id], NOW)[j.id],
    "set_priority": lambda s, j: s.set_priority([j.id], 7)[j.id],
    "rescue": lambda s, j: s.rescue(NOW),
    "prune": lambda s, j: s.prune(NOW, ["succeeded", "failed", "cancelled"]),
}

A = ActionResult
OK = ActionOutcome(A.OK)
CANCELLED = ActionOutcome(A.CANCELLED)
RETRIED = ActionOutcome(A.RETRIED)


def W(state: str) -> ActionOutcome:
    """WRONG_STATE: the job is in `state`."""
    return ActionOutcome(A.WRONG_STATE, JobState(state))


@dataclass(frozen=True)
class Row:
    """One transition: build `state` with `setup`, apply `action` at NOW, expect the rest."""

    state: str
    action: str
    end: str | None  # None: the job is gone (pruned)
    attempts: int
    returns: object
    history: str | None = None  # outcome of the history row this action writes, if any
    setup: dict[str, object] = field(default_factory=dict)
    check: Callable[[Job], bool] | None = None  # extra condition on the job afterwards
    id: str = ""

    @property
    def unchanged(self) -> bool:
        # rows with a `check` change something in place (lease, priority, cancel request)
        return (
            self.end == self.state
            and self.history is None
            and self.check is None
            and self.action != "set_priority"
        )


def _same(state: str, attempts: int, returns: object) -> list[Row]:
    """Rows for every lease-taking action on a job that holds no lease: nothing changes."""
    nothing: dict[str, object] = {
        "renew": 0,
        "complete": [False],
        "fail": None,
        "timeout": None,
        "crash": None,
        "interrupt": None,
        "release": None,
        "cancel_running": None,
        "claim": [],
        "rescue": [],
    }
    out = [Row(state, a, state, attempts, r) for a, r in nothing.items()]
    if returns is not None:
        out.append(Row(state, "cancel", state, attempts, returns))
        out.append(Row(state, "retry", state, attempts, returns))
    return out


EXPIRED = {"lease_until": NOW - 1}
USED_UP = {"attempts": 4}

TABLE: list[Row] = [
    # ---- pending ---------------------------------------------------------------------------
    Row("pending", "claim", "running", 1, ["<id>"],
        check=lambda j: j.lease_token is not None and j.lease_until == NOW + LEASE
        and j.worker_id == "pool-b/1" and j.started_at == NOW),
    Row("pending", "claim", "running", 2, ["<id>"], setup={"attempts": 1}, id="after-a-crash"),
    *[r for r in _same("pending", 0, None) if r.action != "claim"],
    Row("pending", "cancel", "cancelled", 0, CANCELLED, check=lambda j: j.finished_at == NOW),
    Row("pending", "retry", "pending", 0, W("pending")),
    Row("pending", "set_priority", "pending", 0, OK, check=lambda j: j.priority == 7),
    Row("pending", "prune", "pending", 0, 0),
    # ---- running ---------------------------------------------------------------------------
    Row("running", "claim", "running", 1, []),
    Row("running", "renew", "running", 1, 1, check=lambda j: j.lease_until == NOW + 60),
    Row("running", "renew", "running", 1, 1, setup=EXPIRED, id="expired-not-yet-rescued",
        check=lambda j: j.lease_until == NOW + 60),
    Row("running", "complete", "succeeded", 1, [True], "succeeded",
        check=lambda j: j.result == {"ok": 1} and j.finished_at == NOW and j.lease_token is None),
    Row("running", "fail", "pending", 1, S.PENDING, "failed", id="attempts-left",
        check=lambda j: j.run_at == NOW + retry.backoff(1, 0.5) and j.last_error == "boom"
        and j.finished_at is None and j.lease_token is None),
    Row("running", "fail", "pending", 3, S.PENDING, "failed", setup={"attempts": 3},
        id="third-attempt", check=lambda j: j.run_at == NOW + 125.0),
    Row("running", "fail", "failed", 4, S.FAILED, "failed", setup=USED_UP, id="used-up",
        check=lambda j: j.finished_at == NOW and j.last_error == "boom"),
    Row("running", "fail", "failed", 2, S.FAILED, "failed", setup={"attempts": 2,
        "max_attempts": 2}, id="per-job-max"),
    Row("running", "fail", "cancelled", 1, S.CANCELLED, "cancelled",
        setup={"cancel_requested": True}, id="cancel-requested"),
    Row("running", "timeout", "pending", 1, S.PENDING, "timeout", id="attempts-left",
        check=lambda j: j.run_at == NOW + retry.backoff(1, 0.5)
        and j.last_error == "timed out after 5s"),
    Row("running", "timeout", "failed", 4, S.FAILED, "timeout", setup=USED_UP, id="used-up"),
    Row("running", "timeout", "cancelled", 1, S.CANCELLED, "cancelled",
        setup={"cancel_requested": True}, id="cancel-requested"),
    Row("running", "crash", "pending", 1, S.PENDING, "crashed", id="attempts-left",
        check=lambda j: j.run_at == NOW and j.last_error == "worker exited: signal 9"),
    Row("running", "crash", "failed", 4, S.FAILED, "crashed", setup=USED_UP, id="poison-pill"),
    Row("running", "crash", "cancelled", 1, S.CANCELLED, "cancelled",
        setup={"cancel_requested": True}, id="cancel-requested"),
    Row("running", "interrupt", "pending", 0, S.PENDING, "interrupted",
        check=lambda j: j.run_at == NOW and j.finished_at is None
        and j.last_error == "interrupted by shutdown"),
    Row("running", "interrupt", "pending", 3, S.PENDING, "interrupted", setup=USED_UP,
        id="last-attempt-not-used-up"),
    Row("running", "release", "pending", 0, S.PENDING, "interrupted",
        check=lambda j: j.run_at == NOW and j.last_error == "not started: worker stopping"),
    Row("running", "release", "pending", 3, S.PENDING, "interrupted", setup=USED_UP,
        id="last-attempt-not-used-up"),
    Row("running", "cancel_running", "cancelled", 1, S.CANCELLED, "cancelled",
        check=lambda j: j.finished_at == NOW),
    Row("running", "cancel", "running", 1, ActionOutcome(A.CANCEL_REQUESTED),
        check=lambda j: j.cancel_requested),
    Row("running", "retry", "running", 1, W("running")),
    Row("running", "set_priority", "running", 1, OK, check=lambda j: j.priority == 7),
    Row("running", "rescue", "running", 1, [], id="lease-live"),
    Row("running", "rescue", "running", 1, [], setup={"lease_until": NOW},
        id="lease-ends-now"),
    Row("running", "rescue", "pending", 1, [("<id>", S.PENDING)], "crashed",
        setup=EXPIRED, id="expired", check=lambda j: j.run_at == NOW),
    Row("running", "rescue", "failed", 4, [("<id>", S.FAILED)], "crashed",
        setup={**EXPIRED, **USED_UP}, id="expired-used-up"),
    Row("running", "prune", "running", 1, 0),
    # ---- succeeded -------------------------------------------------------------------------
    *_same("succeeded", 1, W("succeeded")),
    Row("succeeded", "set_priority", "succeeded", 1, OK),
    Row("succeeded", "prune", None, 1, 1),
    Row("succeeded", "prune", "succeeded", 1, 0, setup={"finished_at": NOW}, id="too-recent"),
    # ---- failed ----------------------------------------------------------------------------
    *[r for r in _same("failed", 4, W("failed")) if r.action != "retry"],
    Row("failed", "retry", "pending", 0, RETRIED,
        check=lambda j: j.run_at == NOW and j.finished_at is None and j.result is None),
    Row("failed", "set_priority", "failed", 4, OK),
    Row("failed", "prune", None, 4, 1),
    # ---- cancelled -------------------------------------------------------------------------
    *[r for r in _same("cancelled", 0, CANCELLED) if r.action != "retry"],
    Row("cancelled", "retry", "pending", 0, RETRIED),
    Row("cancelled", "set_priority", "cancelled", 0, OK),
    Row("cancelled", "prune", None, 0, 1),
]  # fmt: skip


def _row_id(row: Row) -> str:
    return f"{row.state}-{row.action}" + (f"-{row.id}" if row.id else "")


def test_table_covers_every_state_action_pair() -> None:
    covered = {(r.state, r.action) for r in TABLE}
    assert covered == set(itertools.product(STATES, ACTIONS)), (
        set(itertools.product(STATES, ACTIONS)) - covered
    )
    assert len({_row_id(r) for r in TABLE}) == len(TABLE), "row ids must be unique"


def _fill(expected: object, job_id: int) -> object:
    if expected == "<id>":
        return job_id
    if isinstance(expected, list):
        return [_fill(x, job_id) for x in expected]
    if isinstance(expected, tuple):
        return tuple(_fill(x, job_id) for x in expected)
    return expected


@pytest.mark.parametrize("row", TABLE, ids=_row_id)
def test_transition(backend: Backend, row: Row) -> None:
    store = backend
    job = make_job(store, row.state, now=NOW, **row.setup)  # type: ignore[arg-type]
    before = store.get(job.id)
    before_history = history(store, job.id)

    returned = ACTIONS[row.action](store, job)

    assert returned == _fill(row.returns, job.id)
    after = store.get(job.id)
    if row.end is None:
        assert after is None
        assert store.attempts(job.id) == [], "attempts are deleted with their job"
        return
    assert after is not None
    assert after.state.value == row.end
    assert after.attempts == row.attempts
    new_history = history(store, job.id)[len(before_history) :]
    assert new_history == ([row.history] if row.history else [])
    assert (after.state is S.RUNNING) == (after.lease_token is not None)
    if row.unchanged:
        assert after == before
    if row.check is not None:
        assert row.check(after), after


@pytest.mark.parametrize(
    "action",
    ["complete", "fail", "timeout", "crash", "interrupt", "release", "cancel_running", "rescue"],
)
def test_history_row_records_the_attempt(backend: Backend, action: str) -> None:
    store = backend
    setup = EXPIRED if action == "rescue" else {}
    job = make_job(store, "running", now=NOW, attempts=2, worker="pool-z/3", **setup)  # type: ignore[arg-type]
    ACTIONS[action](store, job)
    last = store.attempts(job.id)[-1]
    assert last.attempt == 2
    assert last.worker_id == "pool-z/3"
    assert last.started_at == job.started_at
    assert last.finished_at == NOW
    if action == "fail":
        assert (last.error, last.traceback) == ("boom", "tb")
    if action == "complete":
        assert (last.error, last.output) == (None, "out")
    if action == "cancel_running":
        assert last.error == "cancelled while running"
    if action == "release":
        assert (last.error, last.output) == ("not started: worker stopping", None)
    if action == "rescue":
        assert last.error is not None and "lease expired" in last.error
    if action != "complete":  # a success keeps the last error of an earlier attempt
        after = store.get(job.id)
        assert after is not None and after.last_error == last.error

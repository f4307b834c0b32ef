"""A model-based test: hypothesis drives a backend with a fake clock and checks it against a
plain-Python model of the state machine after every step. A contract test: it runs on every
backend in tests.conftest.BACKENDS, through the Backend API only."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobq import retry
from jobq.backend import ActionOutcome, ActionResult, Ending, Role, open_backend
from jobq.limits import make_limit
from jobq.model import DEFAULT_MAX_ATTEMPTS, FINISHED_STATES, JobState
from tests.conftest import BACKENDS, backend_location, need_backend
from tests.factories import T0, new_job

LEASE = 30.0
RAND = 0.5  # fixed jitter, so the model knows each run_at exactly
S = JobState


@dataclass
class ModelJob:
    id: int
    priority: int
    max_attempts: int | None
    run_at: float
    state: JobState = S.PENDING
    attempts: int = 0
    token: str | None = None
    lease_until: float | None = None
    cancel_requested: bool = False
    ended: int = 0  # attempts that ended (history rows)
    after: tuple[int, ...] = ()  # the jobs it runs after (`enqueue --after`)
    reasons: frozenset[str] = frozenset()  # last_error it may have if a dependency cancelled it

    @property
    def limit(self) -> int:
        return self.max_attempts if self.max_attempts is not None else DEFAULT_MAX_ATTEMPTS


class StoreMachine(RuleBasedStateMachine):
    kind = "sqlite"  # which backend; set per run by test_backend_matches_the_model

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="jobq-hyp-")
        self.store = open_backend(backend_location(self.kind, Path(self.dir)), Role.WORKER)
        self.now = T0
        self.jobs: dict[int, ModelJob] = {}
        self.old_tokens: dict[int, list[str]] = {}
        # a limit across pools on the jobs' one type (jobq.limits): (concurrency, rate
        # interval) and the rate's GCRA time; None: no limit
        self.cap: tuple[int | None, float | None] | None = None
        self.tat = 0.0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- helpers ------------------------------------------------------------------------------

    def _pick(self, n: int, states: tuple[JobState, ...] | None = None) -> ModelJob | None:
        pool = [j for j in self.jobs.values() if states is None or j.state in states]
        return pool[n % len(pool)] if pool else None

    def _end(self, job: ModelJob, *, count: bool, retry_at: float | None) -> JobState:
        """What the store does when an attempt ends (fail, crash, release, rescue)."""
        job.ended += 1
        job.reasons = frozenset()
        if not count:
            job.attempts -= 1
        if job.cancel_requested:
            job.state = S.CANCELLED
        elif retry_at is not None and (job.attempts < job.limit or not count):
            job.state, job.run_at = S.PENDING, retry_at
        else:
            job.state = S.FAILED
        self._drop_lease(job)
        if job.state in (S.FAILED, S.CANCELLED):
            self._cascade(job)
        return job.state

    def _cascade(self, ended: ModelJob) -> None:
        """A job failed for good or was cancelled: its pending dependents are cancelled, theirs
        too, each naming a dependency that took it down."""
        todo, doomed = [ended], set()
        while todo:
            cause = todo.pop()
            reason = f"dependency job {cause.id} " + (
                ended.state.value if cause is ended else "cancelled"
            )
            for dep in self.jobs.values():
                if cause.id not in dep.after:
                    continue
                if dep.state is S.PENDING:
                    dep.state, dep.reasons = S.CANCELLED, frozenset({reason})
                    doomed.add(dep.id)
                    todo.append(dep)
                elif dep.id in doomed:  # more than one path led here: either cause may be named
                    dep.reasons |= {reason}

    def _unblocked(self, job: ModelJob) -> bool:
        return all(self.jobs[a].state is S.SUCCEEDED for a in job.after)

    def _drop_lease(self, job: ModelJob) -> None:
        assert job.token is not None
        self.old_tokens.setdefault(job.id, []).append(job.token)
        job.token, job.lease_until, job.cancel_requested = None, None, False

    def _lease(self, n: int, stale: bool) -> tuple[ModelJob | None, int, str]:
        """(running job, its id, its token); when `stale`: (None, id, a token that job lost).

        The id is 0 when there is no such job."""
        if stale:
            lost = [self.jobs[i] for i, tokens in self.old_tokens.items() if tokens]
            if not lost:
                return None, 0, ""
            job = lost[n % len(lost)]
            return None, job.id, self.old_tokens[job.id][-1]
        running = self._pick(n, (S.RUNNING,))
        if running is None:
            return None, 0, ""
        return running, running.id, running.token or ""

    # ---- rules --------------------------------------------------------------------------------

    @rule(
        priority=st.sampled_from([-10, 0, 0, 10]),
        max_attempts=st.sampled_from([None, None, 1, 2, 3]),
        delay=st.sampled_from([0.0, 0.0, 20.0]),
    )
    def enqueue(self, priority: int, max_attempts: int | None, delay: float) -> None:
        run_at = self.now + delay
        [job_id] = self.store.enqueue(
            [new_job(priority=priority, max_attempts=max_attempts, run_at=run_at)], self.now
        )
        assert job_id not in self.jobs
        self.jobs[job_id] = ModelJob(job_id, priority, max_attempts, run_at)

    @rule(
        n=st.integers(0, 50),
        m=st.integers(0, 50),
        two=st.booleans(),
        priority=st.sampled_from([0, 20]),
        delay=st.sampled_from([0.0, 0.0, 20.0]),
    )
    def enqueue_after(self, n: int, m: int, two: bool, priority: int, delay: float) -> None:
        # mostly after jobs that have not ended yet (the interesting case), sometimes any job;
        # with none yet, after a new one
        first = self._pick(n, (S.PENDING, S.RUNNING)) or self._pick(n)
        if first is None:
            self.enqueue(0, None, 0.0)
            first = self._pick(n)
        second = self._pick(m)
        assert first is not None and second is not None
        after = tuple(sorted({first.id, second.id} if two else {first.id}))
        run_at = self.now + delay
        [job_id] = self.store.enqueue(
            [new_job(priority=priority, run_at=run_at)._replace(after=after)], self.now
        )
        job = ModelJob(job_id, priority, None, run_at, after=after)
        dead = [a for a in after if self.jobs[a].state in (S.FAILED, S.CANCELLED)]
        if dead:  # created cancelled, naming the first dependency that already ended so
            job.state = S.CANCELLED
            job.reasons = frozenset({f"dependency job {dead[0]} {self.jobs[dead[0]].state}"})
        self.jobs[job_id] = job

    @rule(limit=st.integers(1, 3))
    def claim(self, limit: int) -> None:
        due = [j for j in self.jobs.values() if j.state is S.PENDING and j.run_at <= self.now
               and self._unblocked(j)]  # fmt: skip
        due.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        claimed = self.store.claim("w/1", self.now, LEASE, limit=limit)
        take = limit
        if self.cap is not None:
            concurrency, interval = self.cap
            if concurrency is not None:
                running = sum(1 for j in self.jobs.values() if j.state is S.RUNNING)
                take = min(take, max(concurrency - running, 0))
            if interval is not None:
                take = min(take, 1 if self.now >= self.tat else 0)  # no burst
                if take and due:
                    self.tat = max(self.tat, self.now) + interval
        assert [c.id for c in claimed] == [j.id for j in due[:take]]
        for c in claimed:
            job = self.jobs[c.id]
            assert self._unblocked(job), f"job {job.id} ran before its dependencies succeeded"
            job.state, job.attempts = S.RUNNING, job.attempts + 1
            job.token, job.lease_until, job.cancel_requested = c.lease_token, c.lease_until, False

    @rule(
        concurrency=st.sampled_from([None, 1, 2]),
        rate=st.sampled_from([None, None, "6/min"]),
    )
    def set_limit(self, concurrency: int | None, rate: str | None) -> None:
        if concurrency is None and rate is None:
            self.store.remove_limit("t")
            self.cap = None
            return
        self.store.put_limit(make_limit("t", concurrency, rate), self.now)
        self.cap, self.tat = (concurrency, None if rate is None else 10.0), 0.0

    @rule()
    def run_next(self) -> None:
        """A worker's cycle in one step: claim the next job and complete it (so that jobs
        succeed often enough for their dependents to become claimable)."""
        before = {j.id for j in self.jobs.values() if j.state is S.RUNNING}
        self.claim(1)
        for job in self.jobs.values():
            if job.state is S.RUNNING and job.id not in before:
                assert job.token is not None
                assert self.store.complete_many([(job.id, job.token, "1", None)], self.now)
                job.state, job.ended = S.SUCCEEDED, job.ended + 1
                self._drop_lease(job)

    @rule(n=st.integers(0, 50), stale=st.booleans())
    def complete(self, n: int, stale: bool) -> None:
        job, job_id, token = self._lease(n, stale)
        if not job_id:
            return
        [ok] = self.store.complete_many([(job_id, token, "1", None)], self.now)
        assert ok == (job is not None)
        if job is not None:
            job.state, job.ended = S.SUCCEEDED, job.ended + 1
            self._drop_lease(job)

    @rule(n=st.integers(0, 50), stale=st.booleans())
    def fail(self, n: int, stale: bool) -> None:
        job, job_id, token = self._lease(n, stale)
        if not job_id:
            return
        got = self.store.end_attempt(job_id, token, self.now, Ending.FAIL, "boom", rand=RAND)
        if job is None:
            assert got is None
            return
        retry_at = self.now + retry.backoff(job.attempts, RAND)
        assert got is self._end(job, count=True, retry_at=retry_at)

    @rule(n=st.integers(0, 50))
    def crash(self, n: int) -> None:
        job, _, token = self._lease(n, False)
        if job is not None:
            got = self.store.end_attempt(job.id, token, self.now, Ending.CRASH, "signal 9")
            assert got is self._end(job, count=True, retry_at=self.now)

    @rule(n=st.integers(0, 50))
    def release(self, n: int) -> None:
        job, _, token = self._lease(n, False)
        if job is not None:
            got = self.store.end_attempt(job.id, token, self.now, Ending.INTERRUPT)
            assert got is self._end(job, count=False, retry_at=self.now)

    @rule(n=st.integers(0, 50))
    def cancel(self, n: int) -> None:
        job = self._pick(n)
        if job is None:
            return
        got = self.store.cancel([job.id], self.now)[job.id]
        if job.state in (S.PENDING, S.CANCELLED):
            assert got == ActionOutcome(ActionResult.CANCELLED)
            was = job.state
            job.state = S.CANCELLED
            if was is S.PENDING:
                job.reasons = frozenset()
                self._cascade(job)
        elif job.state is S.RUNNING:
            assert got == ActionOutcome(ActionResult.CANCEL_REQUESTED)
            job.cancel_requested = True
        else:
            assert got == ActionOutcome(ActionResult.WRONG_STATE, job.state)

    @rule(n=st.integers(0, 50))
    def retry(self, n: int) -> None:
        job = self._pick(n)
        if job is None:
            return
        got = self.store.retry([job.id], self.now)[job.id]
        if job.state in (S.FAILED, S.CANCELLED):
            assert got == ActionOutcome(ActionResult.RETRIED)
            job.state, job.attempts, job.run_at = S.PENDING, 0, self.now
            job.reasons = frozenset()
        else:
            assert got == ActionOutcome(ActionResult.WRONG_STATE, job.state)

    @rule(n=st.integers(0, 50), priority=st.sampled_from([-10, 0, 20]))
    def set_priority(self, n: int, priority: int) -> None:
        job = self._pick(n)
        if job is not None:
            assert self.store.set_priority([job.id], priority) == {job.id: ActionResult.OK}
            job.priority = priority

    @rule()
    def rescue(self) -> None:
        expired = [
            j
            for j in self.jobs.values()
            if j.state is S.RUNNING and j.lease_until is not None and j.lease_until < self.now
        ]
        expired.sort(key=lambda j: (j.lease_until, j.id))
        got = self.store.rescue(self.now)
        assert sorted(got) == sorted(
            (j.id, self._end(j, count=True, retry_at=self.now)) for j in expired
        )

    @rule(n=st.integers(0, 50))
    def renew(self, n: int) -> None:
        job, _, token = self._lease(n, False)
        if job is not None:
            assert self.store.renew([(job.id, token)], self.now + LEASE) == 1
            job.lease_until = self.now + LEASE

    @rule(dt=st.sampled_from([0.5, 5.0, 31.0, 200.0, 4000.0]))
    def advance_clock(self, dt: float) -> None:
        self.now += dt

    # ---- invariants ---------------------------------------------------------------------------

    @precondition(lambda self: bool(self.jobs))
    @invariant()
    def store_matches_model(self) -> None:
        stored = {j.id: j for j in self.store.get_many(list(self.jobs))}
        assert set(stored) == set(self.jobs)
        history: dict[int, int] = {}
        for job_id in self.jobs:
            history[job_id] = len(self.store.attempts(job_id))
        for job_id, model in self.jobs.items():
            job = stored[job_id]
            assert job.state is model.state, (job, model)
            assert job.attempts == model.attempts, (job, model)
            assert (job.state is S.RUNNING) == (job.lease_token is not None)
            assert job.lease_token == model.token
            assert 0 <= job.attempts <= (job.max_attempts or 4)
            assert job.cancel_requested == model.cancel_requested
            assert history[job_id] == model.ended
            if job.state in FINISHED_STATES:
                assert job.finished_at is not None and job.lease_until is None
            if job.state is S.PENDING:
                assert job.run_at == model.run_at
                assert job.attempts < (job.max_attempts or 4)
            if model.reasons and job.state is S.CANCELLED:
                assert job.last_error in model.reasons, (job, model)
            if job.state in (S.RUNNING, S.SUCCEEDED):  # never ran before its dependencies
                assert self._unblocked(model), (job, model)
        # a job is claimable exactly when it is due and every job it runs after succeeded
        ready = [m for m in self.jobs.values() if m.state is S.PENDING and self._unblocked(m)]
        assert self.store.has_claimable(self.now) == any(m.run_at <= self.now for m in ready)
        assert self.store.next_run_at() == min((m.run_at for m in ready), default=None)
        assert self.store.counts() == {
            s.value: sum(1 for m in self.jobs.values() if m.state is s) for s in JobState
        }


SETTINGS = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("kind", BACKENDS)
def test_backend_matches_the_model(kind: str, request: pytest.FixtureRequest) -> None:
    need_backend(kind, request)
    machine = type(f"{kind.title()}Machine", (StoreMachine,), {"kind": kind})
    run_state_machine_as_test(machine, settings=SETTINGS)

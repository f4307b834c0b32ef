"""Fail now, snooze and a handler's own backoff (jobq.control): in the store on every backend,
and through real pools for Python and command handlers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jobq import JobState, Queue
from jobq.backend import Ending
from jobq.basics import Outcome
from jobq.control import MAX_SNOOZES, Snooze, backoff_delay, check_backoff
from jobq.errors import HandlerError
from tests.conftest import ROOT
from tests.factories import new_job
from tests.helpers import wait_until
from tests.workerapp import Pools

T0 = 1_800_000_000.0

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend


def _claimed(b: Backend, now: float, **fields: object) -> tuple[int, str]:
    b.enqueue([new_job(**fields)], now)  # type: ignore[arg-type]
    (job,) = b.claim("pool-a/1", now, 60)
    return job.id, job.lease_token or ""


# ---- the store, on every backend -------------------------------------------------------------


def test_a_snooze_gives_the_attempt_back_and_sets_the_delay(backend: Backend) -> None:
    job_id, token = _claimed(backend, T0, max_attempts=1)
    state = backend.end_attempt(job_id, token, T0 + 2, Ending.SNOOZE, "snoozed for 30s",
                                delay=30)  # fmt: skip
    assert state is JobState.PENDING
    job = backend.get(job_id)
    assert job is not None
    assert (job.attempts, job.run_at) == (0, T0 + 32)
    (a,) = backend.attempts(job_id)
    assert (a.outcome, a.error) == (Outcome.INTERRUPTED, "snoozed for 30s")
    assert backend.claim("pool-a/1", T0 + 31, 60) == []
    (again,) = backend.claim("pool-a/1", T0 + 32, 60)
    assert again.attempts == 1  # the snooze did not use up the only attempt


def test_a_requested_cancel_wins_over_a_snooze(backend: Backend) -> None:
    job_id, token = _claimed(backend, T0)
    backend.cancel([job_id], T0 + 1)
    assert backend.end_attempt(job_id, token, T0 + 2, Ending.SNOOZE, delay=5) is JobState.CANCELLED


def test_a_job_cannot_snooze_for_ever(backend: Backend) -> None:
    now = T0
    job_id, token = _claimed(backend, now, max_attempts=2)
    for _ in range(MAX_SNOOZES):
        assert backend.end_attempt(job_id, token, now, Ending.SNOOZE, delay=0) is JobState.PENDING
        now += 1
        (job,) = backend.claim("pool-a/1", now, 60)
        token = job.lease_token or ""
        assert job.attempts == 1
    # the next snooze counts as a failed attempt: one of two used, retried after backoff
    assert backend.end_attempt(job_id, token, now, Ending.SNOOZE, delay=0) is JobState.PENDING
    job = backend.get(job_id)
    assert job is not None and job.attempts == 1
    assert job.last_error is not None and "snoozed 100 times" in job.last_error
    assert job.run_at > now + 4  # the default backoff (5 s ± 10 %), not the snooze's 0 s
    history = backend.attempts(job_id)
    assert [a.outcome for a in history[-2:]] == [Outcome.INTERRUPTED, Outcome.FAILED]
    # an operator's retry starts the count over
    (job,) = backend.claim("pool-a/1", job.run_at, 60)
    backend.end_attempt(job_id, job.lease_token or "", job.run_at, Ending.FAIL, retryable=False)
    backend.retry([job_id], job.run_at + 1)
    (job,) = backend.claim("pool-a/1", job.run_at + 1, 60)
    assert backend.end_attempt(job_id, job.lease_token or "", job.run_at + 1, Ending.SNOOZE,
                               delay=0) is JobState.PENDING  # fmt: skip
    assert backend.attempts(job_id)[-1].outcome is Outcome.INTERRUPTED


def test_a_failure_with_a_delay_is_retried_exactly_then(backend: Backend) -> None:
    job_id, token = _claimed(backend, T0, max_attempts=3)
    assert backend.end_attempt(job_id, token, T0 + 1, Ending.FAIL, "x", delay=7) is JobState.PENDING
    job = backend.get(job_id)
    assert job is not None and job.run_at == T0 + 8  # no jitter on a handler's own backoff


def test_fail_now_ends_the_job_failed_with_attempts_left(backend: Backend) -> None:
    job_id, token = _claimed(backend, T0, max_attempts=5)
    assert backend.end_attempt(job_id, token, T0 + 1, Ending.FAIL, "too large",
                               retryable=False) is JobState.FAILED  # fmt: skip


# ---- the rules, as functions -----------------------------------------------------------------


def test_backoff_forms() -> None:
    assert backoff_delay(check_backoff("30s", "h"), 1) == 30
    steps = check_backoff(["10s", 60, "10m"], "h")
    assert [backoff_delay(steps, n) for n in (1, 2, 3, 4, 9)] == [10, 60, 600, 600, 600]
    assert backoff_delay(check_backoff(lambda n: 2.0**n, "h"), 3) == 8
    assert backoff_delay(check_backoff(lambda n: 1 / 0, "h"), 3) is None  # the default then
    assert backoff_delay(None, 3) is None
    for bad in ("soon", -1, [], True, ["1s", "x"], float("nan"), 10**9):
        with pytest.raises(HandlerError, match=r"^h: "):
            check_backoff(bad, "h")
    for bad_snooze in (-1, float("nan"), float("inf"), "5", True):
        with pytest.raises(ValueError, match=r"jobq\.Snooze needs"):
            Snooze(bad_snooze)  # type: ignore[arg-type]


# ---- real pools ------------------------------------------------------------------------------


def _final(q: Queue, job_id: int, states: tuple[JobState, ...]) -> JobState:
    def ended() -> JobState | None:
        job = q.get(job_id)
        return job.state if job.state in states else None

    state = wait_until(ended, timeout=30, what=f"job {job_id} ended")
    assert isinstance(state, JobState)
    return state


def test_a_python_handler_raising_fail_fails_at_once(
    pools: Pools, queue: Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("fail_now", {"ledger": str(ledger)})
    pools.start()
    assert _final(queue, job_id, (JobState.FAILED,)) is JobState.FAILED
    job = queue.get(job_id)
    assert (job.attempts, job.last_error) == (1, "image too large: 90000x90000")
    assert len(ledger.read_text().splitlines()) == 1


def test_a_python_handler_snoozing_runs_again_without_using_its_attempt(
    pools: Pools, queue: Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("snooze_then_ok", {"ledger": str(ledger), "snoozes": 2,
                                              "seconds": 0.3})  # fmt: skip
    pools.start(poll_interval=0.1)  # a delayed job's start is #15's business, not this test's
    assert _final(queue, job_id, (JobState.SUCCEEDED, JobState.FAILED)) is JobState.SUCCEEDED
    job = queue.get(job_id)
    assert job.attempts == 1  # max_attempts=1: the two snoozes were not counted
    history = queue.attempts(job_id)
    assert [a.outcome for a in history] == [Outcome.INTERRUPTED, Outcome.INTERRUPTED,
                                            Outcome.SUCCEEDED]  # fmt: skip
    assert history[0].error == "snoozed for 0.3s"
    gap = history[1].started_at - history[0].finished_at
    assert 0.3 <= gap < 3, gap


def test_a_handlers_own_backoff_spaces_its_retries(
    pools: Pools, queue: Queue, tmp_path: Path
) -> None:
    job_id = queue.enqueue("backoff_list", {"ledger": str(tmp_path / "ledger")})
    pools.start(poll_interval=0.1)
    assert _final(queue, job_id, (JobState.FAILED,)) is JobState.FAILED
    a = queue.attempts(job_id)
    assert len(a) == 3
    gaps = [a[1].started_at - a[0].finished_at, a[2].started_at - a[1].finished_at]
    # 0.3 s and 0.6 s, where the default would wait 5 s and 25 s
    assert 0.3 <= gaps[0] < 3 and 0.6 <= gaps[1] < 3, gaps


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "handler.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_command_exiting_100_fails_now_and_101_snoozes(
    pools: Pools, queue: Queue, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-once"
    fail = _script(tmp_path, "echo 'refused: bad input' >&2\nexit 100\n")
    snooze = tmp_path / "snooze.sh"
    snooze.write_text(f"#!/bin/sh\nif [ -e {marker} ]; then echo done; exit 0; fi\n"
                      f": > {marker}\necho 0.4\nexit 101\n")  # fmt: skip
    snooze.chmod(0o755)
    failing = queue.enqueue("cmd_fail", {}, max_attempts=5)
    snoozing = queue.enqueue("cmd_snooze", {}, max_attempts=1)
    pools.start(apps=[], execs=[("cmd_fail", fail), ("cmd_snooze", str(snooze))], poll_interval=0.1)
    assert _final(queue, failing, (JobState.FAILED,)) is JobState.FAILED
    job = queue.get(failing)
    assert job.attempts == 1
    assert job.last_error == "command exited with status 100: refused: bad input"
    assert _final(queue, snoozing, (JobState.SUCCEEDED, JobState.FAILED)) is JobState.SUCCEEDED
    history = queue.attempts(snoozing)
    assert [a.outcome for a in history] == [Outcome.INTERRUPTED, Outcome.SUCCEEDED]
    assert history[0].error == "snoozed for 0.4s"
    assert history[1].started_at - history[0].finished_at >= 0.4


def test_a_bad_backoff_in_a_handlers_file_is_one_line_and_exit_2(
    tmp_path: Path, db_path: str
) -> None:
    toml = tmp_path / "handlers.toml"
    toml.write_text('[handlers.resize]\ncommand = "true"\nbackoff = ["10s", "soon"]\n')
    r = subprocess.run([sys.executable, "-m", "jobq", "--db", db_path, "work", "--handlers",
                        str(toml)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "[handlers.resize]: bad backoff 'soon'" in r.stderr
    assert "Traceback" not in r.stderr

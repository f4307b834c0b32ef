"""Crashes, signals, timeouts and cancellations of worker pools, with real processes."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import wait_until
from workerapp import Pools, alive, ledger_lines

import jobq
from jobq import JobState

pytestmark = pytest.mark.timeout(60)


def started_pid(ledger: Path, job_id: int, attempt: int = 1) -> int:
    """The pid that logged the start of `attempt` of `job_id` (waits for it)."""

    def find() -> int:
        for line in ledger_lines(ledger):
            if line[0] == str(job_id) and line[2] == str(attempt) and line[3:] == ["start"]:
                return int(line[1])
        return 0

    return int(wait_until(find, timeout=20, what=f"job {job_id} attempt {attempt} started"))


def test_sigkill_of_a_child_mid_job_is_released_at_once_and_rerun(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 30, "once": True})
    pool = pools.start(concurrency=2)
    pid = started_pid(ledger, job_id)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    wait_until(lambda: queue.attempts(job_id), timeout=5, what="crash recorded")
    assert time.monotonic() - t0 < 2.0
    crashed = queue.attempts(job_id)[0]
    assert crashed.outcome.value == "crashed"
    assert crashed.error == "worker exited: signal 9"
    wait_until(lambda: queue.get(job_id).state is JobState.SUCCEEDED, what="rerun")
    job = queue.get(job_id)
    assert job.attempts == 2
    assert isinstance(job.result, dict) and job.result["pid"] != pid
    wait_until(lambda: len(pool.children()) == 2, what="child respawned")
    assert "exited (signal 9) running job" in pool.log()


def test_sigkill_of_the_supervisor_children_exit_and_another_pool_rescues(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 30, "once": True})
    first = pools.start(concurrency=2, lease_seconds=60)
    wait_until(lambda: len(first.children()) == 2, what="children up")
    children = first.children()
    started_pid(ledger, job_id)
    first.signal(signal.SIGKILL)
    first.wait(5)
    # orphans never go on claiming: they die with their supervisor
    wait_until(lambda: not any(alive(p) for p in children), timeout=5, what="orphans exit")
    assert queue.get(job_id).state is JobState.RUNNING  # nobody has noticed yet...
    t0 = time.monotonic()
    pools.start(concurrency=1, lease_seconds=60)
    # ...until the next pool on this host sees the dead supervisor's process gone: at once,
    # not when the (here one-minute) lease runs out
    wait_until(lambda: queue.attempts(job_id), timeout=10, what="rescue")
    assert time.monotonic() - t0 < 2.0 + 1.0  # + the new pool's start-up
    wait_until(lambda: queue.get(job_id).state is JobState.SUCCEEDED, timeout=20, what="rerun")
    history = queue.attempts(job_id)
    assert [a.outcome.value for a in history] == ["crashed", "succeeded"]
    assert "died (its process is gone)" in (history[0].error or "")


def test_sigstop_past_the_lease_is_rescued_and_the_late_completion_changes_nothing(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 1.0})
    pool = pools.start(concurrency=2, lease_seconds=1.0)
    stopped = started_pid(ledger, job_id)
    os.kill(stopped, signal.SIGSTOP)
    try:
        wait_until(lambda: queue.get(job_id).state is JobState.SUCCEEDED, timeout=20,
                   what="completed by another child")  # fmt: skip
        job = queue.get(job_id)
        assert isinstance(job.result, dict) and job.result["pid"] != stopped
        result_before = job.result_json
    finally:
        os.kill(stopped, signal.SIGCONT)
    wait_until(lambda: "lease lost" in pool.log(), timeout=10, what="'lease lost' logged")
    job = queue.get(job_id)
    assert job.state is JobState.SUCCEEDED and job.result_json == result_before
    assert [a.outcome.value for a in queue.attempts(job_id)] == ["crashed", "succeeded"]


def test_poison_pill_fails_after_max_attempts_and_the_pool_goes_on(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    pill = queue.enqueue("suicide", {"ledger": str(ledger)})  # handler: max_attempts=3
    others = queue.enqueue_many([("record", {"ledger": str(ledger)}) for _ in range(30)])
    pool = pools.start(concurrency=2)
    wait_until(lambda: queue.get(pill).state is JobState.FAILED, timeout=30, what="pill failed")
    history = queue.attempts(pill)
    assert [a.outcome.value for a in history] == ["crashed"] * 3
    assert all(a.error == "worker exited: signal 9" for a in history)
    wait_until(lambda: all(queue.get(i).state is JobState.SUCCEEDED for i in others),
               what="the other jobs ran")  # fmt: skip
    late = queue.enqueue("record", {"ledger": str(ledger)})
    wait_until(lambda: queue.get(late).state is JobState.SUCCEEDED, what="pool still works")
    assert pool.proc.poll() is None


def test_sigterm_lets_the_running_job_finish_and_claims_nothing_more(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    running = queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 1.0})
    waiting = queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 1.0})
    pool = pools.start(concurrency=1, shutdown_timeout=20)
    started_pid(ledger, running)
    pool.signal(signal.SIGTERM)
    assert pool.wait(20) == 0
    assert queue.get(running).state is JobState.SUCCEEDED
    job = queue.get(waiting)
    assert job.state is JobState.PENDING and job.attempts == 0
    assert queue.workers()[0].status == "stopped"


def test_drain_timeout_interrupts_jobs_without_using_an_attempt(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    ids = [queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 30}) for _ in range(2)]
    pool = pools.start(concurrency=2, shutdown_timeout=0.5)
    for job_id in ids:
        started_pid(ledger, job_id)
    children = pool.children()
    t0 = time.monotonic()
    pool.signal(signal.SIGINT)
    assert pool.wait(10) == 0
    assert time.monotonic() - t0 < 5
    for job_id in ids:
        job = queue.get(job_id)
        assert job.state is JobState.PENDING and job.attempts == 0
        assert [a.outcome.value for a in queue.attempts(job_id)] == ["interrupted"]
    assert not any(alive(p) for p in children)


def test_second_signal_stops_at_once(pools: Pools, queue: jobq.Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 30})
    pool = pools.start(concurrency=1, shutdown_timeout=60)
    started_pid(ledger, job_id)
    pool.signal(signal.SIGTERM)
    wait_until(lambda: "stopping" in pool.log(), what="first signal seen")
    pool.signal(signal.SIGTERM)
    assert pool.wait(10) == 0
    job = queue.get(job_id)
    assert job.state is JobState.PENDING and job.attempts == 0


def test_cancel_of_a_running_job_stops_it(pools: Pools, queue: jobq.Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 30})
    pool = pools.start(concurrency=1)
    pid = started_pid(ledger, job_id)
    assert queue.cancel(job_id) == "cancel requested"
    t0 = time.monotonic()
    wait_until(lambda: queue.get(job_id).state is JobState.CANCELLED, timeout=5, what="cancel")
    assert time.monotonic() - t0 < 2.0
    assert [a.outcome.value for a in queue.attempts(job_id)] == ["cancelled"]
    wait_until(lambda: not alive(pid), what="worker killed")
    after = queue.enqueue("noop")
    wait_until(lambda: queue.get(after).state is JobState.SUCCEEDED, what="pool goes on")
    assert pool.proc.poll() is None


def test_python_handler_timeout(pools: Pools, queue: jobq.Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("short_timeout", {"ledger": str(ledger)})  # handler: 0.5 s, 1 attempt
    pool = pools.start(concurrency=1, burst=True)
    assert pool.wait(20) == 0
    job = queue.get(job_id)
    assert job.state is JobState.FAILED
    attempt = queue.attempts(job_id)[0]
    assert attempt.outcome.value == "timeout" and attempt.error == "timed out after 0.5s"
    assert attempt.finished_at - attempt.started_at < 2.0


def test_command_timeout_kills_the_whole_process_group(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    path = tmp_path / "spawner.py"
    path.write_text(
        textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(pidfile)!r}, "w").write(str(p.pid))
        time.sleep(300)
    """)
    )
    job_id = queue.enqueue("spawner", max_attempts=1, timeout=1)
    pool = pools.start(apps=[], execs=[["spawner", f"{sys.executable} {path}"]], burst=True)
    grandchild = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), what="spawned"))
    assert alive(grandchild)
    assert pool.wait(20) == 0
    job = queue.get(job_id)
    assert job.state is JobState.FAILED
    assert queue.attempts(job_id)[0].outcome.value == "timeout"
    wait_until(lambda: not alive(grandchild), timeout=5, what="grandchild killed")


def test_jobs_that_ran_before_their_batch_was_recorded_are_not_called_unstarted(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    """A child claims batches of 1, 2, 4, 8, 16 instant jobs; the poison pill (job 21) shares
    a batch with jobs 16-20, whose successes are not committed when it kills the child."""
    ledger = tmp_path / "ledger"
    marks = queue.enqueue_many([("record", {"ledger": str(ledger)}) for _ in range(20)])
    pill = queue.enqueue("suicide", {"ledger": str(ledger)})
    pools.start(concurrency=1)
    wait_until(lambda: queue.get(pill).state is JobState.FAILED, timeout=30, what="pill done")
    wait_until(lambda: all(queue.get(i).state is JobState.SUCCEEDED for i in marks), what="ran")
    for job_id in marks:
        history = queue.attempts(job_id)
        assert not any("not started" in (a.error or "") for a in history)
        assert [a.attempt for a in history] == list(range(1, len(history) + 1))

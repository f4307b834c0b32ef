"""Every attempt counts once, whatever ends it; dead pools, bursts and clock jumps, with real
processes and real signals (the lifecycle module's promises, end to end)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import wait_until
from workerapp import Pools, alive, ledger_lines

import jobq
from jobq import JobState

pytestmark = pytest.mark.timeout(90)


def runs(ledger: Path, job_id: int) -> int:
    """How many times the ledger says `job_id` started."""
    return sum(1 for line in ledger_lines(ledger) if line[0] == str(job_id) and "end" not in line)


def start_pid(ledger: Path, job_id: int) -> int:
    """The pid that logged the first start of `job_id` (waits for it)."""

    def find() -> int:
        return next((int(ln[1]) for ln in ledger_lines(ledger) if ln[0] == str(job_id)), 0)

    return int(wait_until(find, timeout=20, what=f"job {job_id} started"))


# ---- 1. any BaseException is a failed attempt, never a free one -----------------------------


@pytest.mark.parametrize(
    "kind", ["KeyboardInterrupt", "GeneratorExit", "CancelledError", "SystemExit", "CustomStop"]
)
def test_a_handler_raising_any_base_exception_fails_its_attempt(
    pools: Pools, queue: jobq.Queue, tmp_path: Path, kind: str
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("raise_base", {"kind": kind, "ledger": str(ledger)}, delay=0)
    pool = pools.start(concurrency=1)
    wait_until(lambda: queue.get(job_id).state is JobState.FAILED, timeout=30, what="failed")
    job = queue.get(job_id)
    assert (job.attempts, job.max_attempts) == (2, 2)
    history = queue.attempts(job_id)
    assert [a.outcome.value for a in history] == ["failed", "failed"]
    name = "CustomStop" if kind == "CustomStop" else kind
    assert all(name in (a.error or "") for a in history), [a.error for a in history]
    assert runs(ledger, job_id) == 2, "each attempt ran once, and each counted"
    assert len(pool.children()) == 1, "the child survived its handler"


def test_a_handler_that_exits_the_process_is_a_poison_pill_that_ends_failed(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("exit_now", {"ledger": str(ledger)})
    pools.start(concurrency=1)
    wait_until(lambda: queue.get(job_id).state is JobState.FAILED, timeout=30, what="failed")
    assert [a.outcome.value for a in queue.attempts(job_id)] == ["crashed", "crashed"]
    assert runs(ledger, job_id) == 2


# ---- 2/3. dead pools: noticed at once, by the next pool and by a burst run ------------------


def _kill_supervisor(pools: Pools, queue: jobq.Queue, ledger: Path, job_type: str) -> int:
    job_id = queue.enqueue(job_type, {"ledger": str(ledger), "seconds": 30, "once": True})
    first = pools.start(concurrency=1, lease_seconds=120)
    start_pid(ledger, job_id)
    children = first.children()
    first.signal(signal.SIGKILL)
    first.wait(5)
    wait_until(lambda: not any(alive(p) for p in children), timeout=5, what="children exit")
    return job_id


def test_workers_say_dead_at_once_when_a_supervisor_is_killed(
    pools: Pools, queue: jobq.Queue, tmp_path: Path, jobq_env: dict[str, str]
) -> None:
    _kill_supervisor(pools, queue, tmp_path / "ledger", "sleep")
    out = subprocess.run(
        [sys.executable, "-m", "jobq", "workers", "--json"],
        env=jobq_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    [pool] = json.loads(out.stdout)
    assert (pool["status"], pool["alive"]) == ("dead", False)
    table = subprocess.run(
        [sys.executable, "-m", "jobq", "workers"],
        env=jobq_env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert " dead " in table


def test_a_burst_run_after_a_killed_pool_rescues_and_runs_its_job(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = _kill_supervisor(pools, queue, ledger, "sleep")
    assert queue.get(job_id).state is JobState.RUNNING
    burst = pools.start(concurrency=1, burst=True, lease_seconds=120)
    assert burst.wait(30) == 0
    job = queue.get(job_id)
    assert job.state is JobState.SUCCEEDED, "burst exited before the dead pool's job ran"
    assert [a.outcome.value for a in queue.attempts(job_id)] == ["crashed", "succeeded"]


def test_a_burst_run_takes_over_an_expired_lease_of_an_unknown_pool(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    # a lease held by a pool that left no record (another host, or a wiped workers table)
    job_id = queue.enqueue("record", {"ledger": str(tmp_path / "ledger")})
    [held] = queue.backend.claim("elsewhere:1:ab/1", time.time(), -100, types=["record"])
    assert held.id == job_id and queue.get(job_id).state is JobState.RUNNING
    burst = pools.start(concurrency=1, burst=True)
    assert burst.wait(30) == 0
    assert queue.get(job_id).state is JobState.SUCCEEDED
    assert "lease expired" in (queue.attempts(job_id)[0].error or "")


def test_a_rescued_job_keeps_its_handlers_max_attempts(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = _kill_supervisor(pools, queue, ledger, "sleep_once")  # handler: max_attempts=1
    assert queue.get(job_id).max_attempts == 1, "the claim wrote the handler's limit"
    burst = pools.start(concurrency=1, burst=True)
    assert burst.wait(30) == 0
    job = queue.get(job_id)
    assert (job.state, job.attempts) == (JobState.FAILED, 1)
    assert runs(ledger, job_id) == 1, "a max_attempts=1 job ran a second time after a rescue"


def test_show_and_json_tell_the_limits_that_apply(
    pools: Pools, queue: jobq.Queue, jobq_env: dict[str, str]
) -> None:
    job_id = queue.enqueue("limits")
    pool = pools.start(concurrency=1, burst=True)
    assert pool.wait(30) == 0
    job = queue.get(job_id)
    assert job.result == {"max_attempts": 5, "timeout": 60.0}
    shown = subprocess.run(
        [sys.executable, "-m", "jobq", "show", str(job_id)],
        env=jobq_env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "1/5" in shown and "60s" in shown and "(default)" not in shown
    out = subprocess.run(
        [sys.executable, "-m", "jobq", "show", str(job_id), "--json"],
        env=jobq_env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    assert (data["max_attempts"], data["timeout"]) == (5, 60.0)


def test_a_whole_pool_killed_mid_batch_is_rescued_exactly(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    """One child claims batches of instant jobs (1, 2, 4, 8, 16 …); job 21 kills the whole pool
    while jobs of its batch ran before it (successes unrecorded) and others wait after it. The
    next pool reads what the dead one's child was doing: whatever ran is charged (crashed),
    whatever never started goes back uncharged, and no history says a job that ran never did."""
    ledger = tmp_path / "ledger"
    ids = queue.enqueue_many([("record", {"ledger": str(ledger)}) for _ in range(20)])
    killer = queue.enqueue("kill_supervisor", {"ledger": str(ledger)})
    after = queue.enqueue_many([("record", {"ledger": str(ledger)}) for _ in range(10)])
    first = pools.start(concurrency=1, lease_seconds=120)
    assert first.wait(30) != 0  # SIGKILLed by its own job
    assert queue.get(killer).state is JobState.RUNNING
    burst = pools.start(concurrency=1, burst=True)
    assert burst.wait(30) == 0
    runs: dict[int, list[int]] = {}
    for line in ledger_lines(ledger):
        runs.setdefault(int(line[0]), []).append(int(line[2]))
    for job_id in [*ids, killer, *after]:
        job = queue.get(job_id)
        assert job.state is JobState.SUCCEEDED, job
        history = queue.attempts(job_id)
        ran = runs[job_id]
        charged = [a for a in history if a.outcome.value != "interrupted"]
        # every run is a charged attempt; an uncharged release never hides a run
        assert len(ran) == len(charged) == job.attempts, (job_id, ran, history)
        assert sorted(ran) == [a.attempt for a in charged], (job_id, ran, history)
    assert [a.outcome.value for a in queue.attempts(killer)] == ["crashed", "succeeded"]
    released = [j for j in after if queue.attempts(j)[0].outcome.value == "interrupted"]
    assert released, "no job of the killer's batch waited after it: the scenario did not happen"
    for j in released:
        assert queue.get(j).attempts == 1, "a job that never started was charged an attempt"


# ---- 6. the wall clock moves under a running pool --------------------------------------------

SITECUSTOMIZE = """
import os, time
_spec = os.environ.get("JOBQ_TEST_CLOCK_JUMP")
if _spec:
    _offset, _, _flag = _spec.partition("@")
    _offset = float(_offset)
    _real = time.time
    def _shifted():
        return _real() + (_offset if os.path.exists(_flag) else 0.0)
    time.time = _shifted
"""


def _clock_env(tmp_path: Path, offset: float) -> tuple[dict[str, str], Path]:
    """An environment whose Python processes see time.time() move by `offset` seconds from the
    moment the returned flag file exists (every process at once)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    flag = tmp_path / "clock-jumped"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
    env["JOBQ_TEST_CLOCK_JUMP"] = f"{offset}@{flag}"
    env.pop("NOTIFY_SOCKET", None)
    return env, flag


@pytest.mark.parametrize("offset", [60.0, -60.0])
def test_a_clock_jump_never_makes_a_pool_rescue_or_rerun_its_own_jobs(
    pools: Pools, queue: jobq.Queue, tmp_path: Path, offset: float
) -> None:
    ledger = tmp_path / "ledger"
    ids = [
        queue.enqueue("sleep", {"ledger": str(ledger), "seconds": 3}, max_attempts=1, timeout=10)
        for _ in range(3)
    ]
    env, flag = _clock_env(tmp_path, offset)
    pool = pools.start(concurrency=3, lease_seconds=3, env=env)
    for i in ids:
        start_pid(ledger, i)
    flag.touch()  # every job runs; now the wall clock jumps
    wait_until(lambda: all(queue.get(i).state is JobState.SUCCEEDED for i in ids), timeout=30,
               what=f"all succeeded, log: {pool.log()[-2000:]}")  # fmt: skip
    for i in ids:
        assert runs(ledger, i) == 1, f"job {i} ran twice"
        assert [a.outcome.value for a in queue.attempts(i)] == ["succeeded"]
    assert "rescued" not in pool.log() and "lease lost" not in pool.log()


def test_a_backward_clock_jump_does_not_postpone_a_timeout(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue(
        "sleep", {"ledger": str(ledger), "seconds": 30}, max_attempts=1, timeout=2
    )
    env, flag = _clock_env(tmp_path, -3600.0)
    pools.start(concurrency=1, env=env)
    start_pid(ledger, job_id)
    t0 = time.monotonic()
    flag.touch()
    wait_until(lambda: queue.get(job_id).state is JobState.FAILED, timeout=20, what="timed out")
    assert time.monotonic() - t0 < 2 + 3, "the timeout followed the wall clock back"
    assert [a.outcome.value for a in queue.attempts(job_id)] == ["timeout"]


# ---- 15. children that can never start --------------------------------------------------------

BAD_CHILD_APP = """
import multiprocessing
import jobq

if multiprocessing.parent_process() is not None:
    raise RuntimeError("this module refuses to load in a worker child")

@jobq.handler("noop")
def noop(payload, job):
    return None
"""


def test_a_pool_whose_children_cannot_start_exits_with_their_error(
    pools: Pools, tmp_path: Path, db_path: str
) -> None:
    (tmp_path / "badchildapp.py").write_text(BAD_CHILD_APP)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    pool = pools.start(concurrency=2, apps=["badchildapp"], env=env)
    code = pool.wait(30)
    assert code != 0
    log = pool.log()
    assert "keep failing at start-up" in log
    assert "refuses to load in a worker child" in log.splitlines()[-1], log[-1500:]

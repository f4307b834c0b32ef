"""Worker pools in real processes, on each backend: draining, retries, handlers, filters,
recycling."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SLOW, set_run_at
from workerapp import Pools, ledger_lines, pools_for

import jobq

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pools(location: str, tmp_path: Path) -> Iterator[Pools]:
    """Pools on the test's queue (each backend in turn); every pool is killed at teardown."""
    with pools_for(location, tmp_path) as p:
        yield p


@pytest.fixture
def queue(location: str) -> Iterator[jobq.Queue]:
    with jobq.Queue(location) as q:
        yield q


def attempts_per_job(queue: jobq.Queue, ids: list[int]) -> Counter[int]:
    return Counter({i: len(queue.attempts(i)) for i in ids})


@pytest.mark.parametrize("n", [2000, pytest.param(20000, marks=pytest.mark.slow)])
def test_burst_drain_runs_each_job_exactly_once(
    pools: Pools, queue: jobq.Queue, tmp_path: Path, n: int
) -> None:
    if n > 2000 and not SLOW:
        pytest.skip("full size with JOBQ_SLOW=1")
    ledger = tmp_path / "ledger"
    ids = queue.enqueue_many([("record", {"ledger": str(ledger)}) for _ in range(n)])
    t0 = time.monotonic()
    pool = pools.start(concurrency=4, burst=True)
    assert pool.wait(50) == 0
    elapsed = time.monotonic() - t0
    print(f"\nburst drain of {n} jobs with -c 4: {elapsed:.2f}s ({n / elapsed:,.0f} jobs/s)")
    assert queue.counts()["succeeded"] == n
    runs = Counter(int(line[0]) for line in ledger_lines(ledger))
    assert set(runs) == set(ids)
    assert max(runs.values()) == 1
    assert set(attempts_per_job(queue, ids).values()) == {1}
    assert queue.count() == n  # no job but these
    assert "Traceback" not in pool.log()


def test_retries_with_backoff_then_failed_with_history(
    pools: Pools, queue: jobq.Queue, location: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    job_id = queue.enqueue("boom", {"ledger": str(ledger)})  # handler: max_attempts=3
    for attempt in (1, 2, 3):
        # burst exits while the retry waits for its backoff: it does not wait for it
        assert pools.start(burst=True).wait(30) == 0
        job = queue.get(job_id)
        assert job.attempts == attempt
        history = queue.attempts(job_id)
        assert [a.outcome.value for a in history] == ["failed"] * attempt
        last = history[-1]
        assert last.error == f"ValueError: boom on attempt {attempt}"
        assert last.traceback is not None and "raise ValueError" in last.traceback
        assert last.output == f"attempt {attempt} about to fail\n"
        if attempt < 3:
            assert job.state is jobq.JobState.PENDING
            delay = job.run_at - last.finished_at
            expected = 5.0 * 5 ** (attempt - 1)
            assert expected * 0.89 <= delay <= expected * 1.11
            # time travel instead of waiting 5 s / 25 s for the backoff
            set_run_at(location, job_id, 0)
    assert queue.get(job_id).state is jobq.JobState.FAILED
    assert len(ledger_lines(ledger)) == 3


def test_python_results_output_and_bad_return_values(pools: Pools, queue: jobq.Queue) -> None:
    echo = queue.enqueue("echo", {"a": [1, 2, {"b": None}]})
    chatty = queue.enqueue("chatty")
    bad = queue.enqueue("unserialisable", max_attempts=1)
    assert pools.start(burst=True).wait(30) == 0
    assert queue.get(echo).result == {"a": [1, 2, {"b": None}]}
    job = queue.get(chatty)
    assert job.result == 42
    out = queue.attempts(chatty)[0].output or ""
    assert "hello from print" in out and "to stderr" in out and "a warning from logging" in out
    job = queue.get(bad)
    assert job.state is jobq.JobState.FAILED
    assert "not JSON-serialisable" in (job.last_error or "")


def test_unknown_types_stay_pending_and_burst_still_exits(pools: Pools, queue: jobq.Queue) -> None:
    unknown = queue.enqueue("nobody.handles.this")
    other_queue = queue.enqueue("noop", queue="elsewhere")
    filtered = queue.enqueue("echo", {"x": 1})
    known = queue.enqueue("noop")
    future = queue.enqueue("noop", delay=3600)
    pool = pools.start(burst=True, queues=["default"], type_globs=["no*"])
    assert pool.wait(30) == 0
    assert queue.get(known).state is jobq.JobState.SUCCEEDED
    for job_id in (unknown, other_queue, filtered, future):
        job = queue.get(job_id)
        assert job.state is jobq.JobState.PENDING and job.attempts == 0


def test_max_jobs_per_child_recycles_children(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    ids = queue.enqueue_many([("record", {"ledger": str(ledger)}) for _ in range(20)])
    pool = pools.start(concurrency=1, burst=True, max_jobs_per_child=5)
    assert pool.wait(40) == 0
    per_pid = Counter(line[1] for line in ledger_lines(ledger))
    assert sum(per_pid.values()) == 20
    assert len(per_pid) >= 4 and max(per_pid.values()) <= 5
    worker_ids = {queue.attempts(i)[0].worker_id for i in ids}
    assert len(worker_ids) >= 4  # each child has its own worker id: pool/1, pool/2, ...
    assert len({w.split("/")[0] for w in worker_ids if w}) == 1


def write_script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return f"{sys.executable} {path}"


def test_command_handlers_through_the_pool(pools: Pools, queue: jobq.Queue, tmp_path: Path) -> None:
    ok = write_script(
        tmp_path,
        "ok.py",
        """
        import json, os, sys
        payload = json.load(sys.stdin)
        env = {k: v for k, v in os.environ.items() if k.startswith("JOBQ_") and k != "JOBQ_DB"}
        print(json.dumps({"payload": payload, "env": env, "db": os.environ["JOBQ_DB"]}))
    """,
    )
    fail = write_script(
        tmp_path,
        "fail.py",
        """
        import sys
        print("partial output")
        print("warming up", file=sys.stderr)
        print("fatal: the widget is broken", file=sys.stderr)
        sys.exit(4)
    """,
    )
    handlers = tmp_path / "handlers.toml"
    handlers.write_text(f"[handlers.cmd_fail]\ncommand = {json.dumps(fail)}\nmax_attempts = 1\n")
    good = queue.enqueue("cmd_ok", {"name": "a b; rm -rf ~"})
    bad = queue.enqueue("cmd_fail")
    pool = pools.start(apps=[], execs=[["cmd_ok", ok]], handlers_file=str(handlers), burst=True)
    assert pool.wait(30) == 0
    job = queue.get(good)
    assert job.state is jobq.JobState.SUCCEEDED
    assert job.result == {
        "payload": {"name": "a b; rm -rf ~"},
        "env": {
            "JOBQ_JOB_ID": str(good),
            "JOBQ_JOB_TYPE": "cmd_ok",
            "JOBQ_ATTEMPT": "1",
            "JOBQ_PROGRESS_FD": "3",
        },
        "db": queue.path,
    }
    job = queue.get(bad)
    assert job.state is jobq.JobState.FAILED
    assert job.last_error == "command exited with status 4: fatal: the widget is broken"
    attempt = queue.attempts(bad)[0]
    assert attempt.traceback == "warming up\nfatal: the widget is broken\n"
    assert attempt.output == "partial output\n"


def test_bad_app_fails_fast_with_exit_code_2(pools: Pools) -> None:
    pool = pools.start(apps=["no_such_module_for_jobq"], burst=True)
    assert pool.wait(30) == 2
    assert "cannot import --app no_such_module_for_jobq" in pool.log()


def test_a_slow_job_does_not_hold_back_the_successes_batched_before_it(
    pools: Pools, queue: jobq.Queue
) -> None:
    """A child records tiny jobs' successes together; a slow job claimed in the same batch must
    not keep them unrecorded (shown running, and run again if the child is killed) for as long
    as it runs: before a job of a type not known to be quick, the batch's successes are written."""
    from tests.helpers import wait_until

    pools.start(concurrency=1, poll_interval=0.1)
    warm = queue.enqueue_many([("noop", {})] * 300)  # the child's batches grow to their largest
    wait_until(lambda: queue.get(warm[-1]).state is jobq.JobState.SUCCEEDED, timeout=60,
               what="the warm-up drained")  # fmt: skip
    ids = queue.enqueue_many([("noop", {})] * 40 + [("sleep_once", {"seconds": 60})])
    fast, slow = ids[:-1], ids[-1]
    wait_until(lambda: queue.get(slow).state is jobq.JobState.RUNNING, timeout=30,
               what="the slow job started")  # fmt: skip
    wait_until(lambda: all(queue.get(i).state is jobq.JobState.SUCCEEDED for i in fast),
               timeout=10, what="the quick jobs' successes, while the slow one runs")  # fmt: skip

"""Failure hooks: `jobq work --on-failure CMD` and `@jobq.on_failure` run once per job that ends
failed for good, after the failure is recorded, without delaying the pool (jobq/pool/hooks.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from jobq import JobState, Queue
from tests.conftest import ROOT
from tests.helpers import wait_until
from tests.workerapp import Pools

HOOK = """
import json, os, sys
d = json.load(sys.stdin)
out = sys.argv[1]
path = os.path.join(out, f"{d['id']}.{os.getpid()}")
with open(path + ".tmp", "w") as f:
    json.dump(d, f)
os.rename(path + ".tmp", path)  # the test never reads half a file
"""


def _hook(tmp_path: Path) -> tuple[str, Path]:
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    out = tmp_path / "hooked"
    out.mkdir()
    return f"{sys.executable} {script} {out}", out


def _hooked(out: Path) -> dict[int, list[dict[str, object]]]:
    found: dict[int, list[dict[str, object]]] = {}
    for p in out.iterdir():
        if p.suffix == ".tmp":
            continue
        found.setdefault(int(p.name.split(".")[0]), []).append(json.loads(p.read_text()))
    return found


def test_a_command_hook_gets_each_job_failed_for_good_once_with_its_history(
    pools: Pools, queue: Queue, tmp_path: Path
) -> None:
    cmd, out = _hook(tmp_path)
    boom = queue.enqueue("boom", {"ledger": str(tmp_path / "ledger")})  # 3 attempts
    fail_now = queue.enqueue("fail_now", {})
    ok = [queue.enqueue("noop", {}) for _ in range(5)]
    suicide = queue.enqueue("suicide", {})  # kills its worker 3 times: failed by the supervisor
    pool = pools.start(on_failure=[cmd.split()], poll_interval=0.1)
    wait_until(lambda: len(_hooked(out)) == 3, timeout=60, what="three hooks ran")
    hooked = _hooked(out)
    assert sorted(hooked) == sorted([boom, fail_now, suicide])
    assert all(len(v) == 1 for v in hooked.values()), hooked  # once each, not per retry
    doc = hooked[boom][0]
    assert (doc["id"], doc["type"], doc["state"], doc["attempts"]) == (boom, "boom", "failed", 3)
    history = doc["attempts_history"]
    assert isinstance(history, list) and [a["outcome"] for a in history] == ["failed"] * 3
    assert [queue.get(i).state for i in ok] == [JobState.SUCCEEDED] * 5
    pool.stop()
    assert len(_hooked(out)) == 3  # and nothing more at shutdown


def test_a_slow_hook_never_holds_up_the_pool(pools: Pools, queue: Queue, tmp_path: Path) -> None:
    started = tmp_path / "hook-started"
    slow = tmp_path / "slow.py"
    slow.write_text(f"import time, pathlib\npathlib.Path({str(started)!r}).touch()\n"
                    "time.sleep(30)\n")  # fmt: skip
    first = queue.enqueue("fail_now", {})
    pools.start(on_failure=[[sys.executable, str(slow)]], poll_interval=0.1)
    wait_until(started.exists, timeout=30, what="the slow hook started")
    t0 = time.monotonic()
    later = [queue.enqueue("noop", {}) for _ in range(20)]
    wait_until(lambda: all(queue.get(i).state is JobState.SUCCEEDED for i in later), timeout=20,
               what="jobs after the failure ran while its hook slept")  # fmt: skip
    assert time.monotonic() - t0 < 15
    assert queue.get(first).state is JobState.FAILED


def test_a_failing_hook_is_logged_and_the_pool_goes_on(
    pools: Pools, queue: Queue, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.stdin.read()\nprint('nope: \\x1b[31mred', file=sys.stderr)\n"
                   "sys.exit(3)\n")  # fmt: skip
    job = queue.enqueue("fail_now", {})
    pool = pools.start(on_failure=[[sys.executable, str(bad)]], poll_interval=0.1)
    wait_until(lambda: "exited with status 3" in pool.log_path.read_text(), timeout=30,
               what="the hook's failure logged")  # fmt: skip
    log = pool.log_path.read_text()
    line = next(ln for ln in log.splitlines() if "exited with status 3" in ln)
    assert f"for job {job} exited with status 3: nope:" in line
    assert "\x1b" not in log  # the hook's stderr is untrusted text
    assert queue.get(job).state is JobState.FAILED
    after = queue.enqueue("noop", {})
    wait_until(lambda: queue.get(after).state is JobState.SUCCEEDED, timeout=30)


def test_a_python_hook_runs_once_per_failed_job_and_its_errors_are_contained(
    pools: Pools, queue: Queue, tmp_path: Path
) -> None:
    log_file = tmp_path / "hook.log"
    doomed = queue.enqueue("doomed", {})
    broken = queue.enqueue("doomed", {"break_hook": True})
    fine = queue.enqueue("fine", {})
    pool = pools.start(apps=["tests.hookapp"], poll_interval=0.1,
                       env={**os.environ, "JOBQ_TEST_HOOK_LOG": str(log_file)})  # fmt: skip
    wait_until(lambda: log_file.exists() and log_file.read_text(), timeout=60)
    wait_until(lambda: "the hook broke" in pool.log_path.read_text(), timeout=30)
    assert log_file.read_text().splitlines() == [f"{doomed} failed 2"]
    assert queue.get(broken).state is JobState.FAILED
    assert queue.get(fine).state is JobState.SUCCEEDED


def test_an_on_failure_program_that_does_not_exist_is_refused_at_start(db_path: str) -> None:
    r = subprocess.run([sys.executable, "-m", "jobq", "--db", db_path, "work", "--app",
                        "tests.workerapp", "--on-failure", "no-such-program --x"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (r.returncode, r.stderr.count("\n")) == (2, 1), r.stderr
    assert "program 'no-such-program' not found" in r.stderr
    assert not Path(db_path).exists()

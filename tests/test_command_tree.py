"""No process started for a command job outlives its attempt, whoever dies first.

Each test runs a real pool whose command leaves processes behind: background children in its
process group (`sleep &`), and a double-forking daemon that called setsid() to leave the group.
Every such process writes its pid to a file; the test waits until all of them run, ends the
attempt in one way (the job ends, a timeout, a cancel, a SIGTERM shutdown, a SIGKILL to the
worker child, the supervisor or the pool's whole process group) and waits, within a bound, until
every one of them is gone.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until
from workerapp import PoolProcess, Pools, alive

import jobq
from jobq.model import JobState

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux guarantees")

GONE_WITHIN = 3.0  # seconds: the bound for everything to be gone after the attempt ends

TREE = """
import json, os, subprocess, sys, time
DIR = {dir!r}
spec = json.load(sys.stdin)

def record(name, pid):
    with open(os.path.join(DIR, name + ".tmp"), "w") as f:
        f.write(str(pid))
    os.rename(os.path.join(DIR, name + ".tmp"), os.path.join(DIR, name + ".pid"))

for i in range(spec.get("bg", 0)):
    # like `sleep &` in a shell: same group, and it holds our stdout and stderr open
    record(f"bg{{i}}", subprocess.Popen(["sleep", str(770 + i)]).pid)
if spec.get("daemon"):
    pid = os.fork()
    if pid == 0:
        os.setsid()  # leaves the command's session and group
        if os.fork() == 0:
            record("daemon", os.getpid())
            os.execvp("sleep", ["sleep", "990"])
        os._exit(0)
    os.waitpid(pid, 0)
if spec.get("then") == "hang":
    time.sleep(1000)
print(json.dumps({{"ok": True}}))
sys.exit(spec.get("code", 0))
"""


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """An --exec entry for the tree-making command, and the directory of its pid files.
    Whatever it left running is killed at teardown (when a test fails)."""
    piddir = tmp_path / "pids"
    piddir.mkdir()
    script = tmp_path / "tree.py"
    script.write_text(TREE.format(dir=str(piddir)))
    yield ["tree", f"{sys.executable} {script}"], piddir
    for pid in _pids(piddir):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def _pids(piddir: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted(piddir.glob("*.pid"))]


def _running(piddir: Path, names: set[str], *, still: bool = True) -> list[int]:
    """Wait until every named process has started (and, if `still`, check that they run);
    their pids."""
    wait_until(
        lambda: {p.stem for p in piddir.glob("*.pid")} >= names, timeout=30, what=f"{names} ran"
    )
    pids = _pids(piddir)
    if still:
        assert all(alive(p) for p in pids), "a process died before the test ended the attempt"
    return pids


def _all_gone(pids: list[int], within: float = GONE_WITHIN) -> None:
    wait_until(
        lambda: not [p for p in pids if alive(p)],
        timeout=within,
        what=f"processes {[p for p in pids if alive(p)]} of the command gone",
    )


def _guardians_of(workers: list[int]) -> list[int]:
    """Live guardian processes of these worker children."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        mine = any(str(w).encode() in argv for w in workers)
        if mine and any(a.endswith(b"guardian.py") for a in argv) and alive(int(entry)):
            out.append(int(entry))
    return out


SPEC = {"bg": 2, "daemon": True}
NAMES = {"bg0", "bg1", "daemon"}


@pytest.mark.parametrize("code", [0, 3])
def test_what_a_finished_job_left_behind_dies_with_it(
    pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path], code: int
) -> None:
    execs, piddir = tree
    job_id = queue.enqueue("tree", {**SPEC, "code": code}, max_attempts=1)
    pool = pools.start(apps=[], execs=[execs], concurrency=1)
    pids = _running(piddir, NAMES, still=False)  # the job may be over already
    wait_until(lambda: queue.get(job_id).state.value in ("succeeded", "failed"), timeout=30)
    job = queue.get(job_id)
    assert job.state is (JobState.SUCCEEDED if code == 0 else JobState.FAILED)
    if code == 0:
        assert job.result == {"ok": True}
    # the sweep runs before the result is recorded: gone by now, not merely soon
    assert not [p for p in pids if alive(p)]
    assert pool.proc.poll() is None


def test_a_quick_job_with_a_background_child_neither_waits_for_it_nor_leaves_it(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    pidfile = tmp_path / "bg.pid"
    job_id = queue.enqueue("sh", max_attempts=1)
    pool = pools.start(
        apps=[], execs=[["sh", f"sh -c 'sleep 1000 & echo $! > {pidfile}'"]], concurrency=1,
        burst=True,
    )  # fmt: skip
    try:
        assert pool.wait(30) == 0
        assert queue.get(job_id).state is JobState.SUCCEEDED
        attempt = queue.attempts(job_id)[0]
        # the sleep holds the pipes open: without the kill at exit the worker drained for 0.2 s
        assert attempt.finished_at - attempt.started_at < 0.2
        assert not alive(int(pidfile.read_text()))
    finally:
        if pidfile.exists() and alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def _kill_mid_job(
    pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path], **settings: object
) -> tuple[PoolProcess, int, list[int], list[int]]:
    execs, piddir = tree
    job_id = queue.enqueue("tree", {**SPEC, "then": "hang"}, max_attempts=1)
    pool = pools.start(apps=[], execs=[execs], concurrency=1, **settings)
    pids = _running(piddir, NAMES)
    workers = pool.children()
    assert workers
    return pool, job_id, pids, workers


def test_worker_child_sigkilled(
    pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path]
) -> None:
    pool, _job, pids, workers = _kill_mid_job(pools, queue, tree)
    os.kill(workers[0], signal.SIGKILL)
    _all_gone(pids)
    wait_until(lambda: not _guardians_of(workers), timeout=GONE_WITHIN, what="guardian exits")
    assert pool.proc.poll() is None


def test_supervisor_sigkilled(
    pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path]
) -> None:
    pool, _job, pids, workers = _kill_mid_job(pools, queue, tree)
    pool.signal(signal.SIGKILL)  # its children die of PDEATHSIG; nobody is left to kill groups
    _all_gone(pids)
    wait_until(lambda: not _guardians_of(workers), timeout=GONE_WITHIN, what="guardian exits")


def test_supervisor_sigkilled_while_a_shell_runs_two_sleeps(
    pools: Pools, queue: jobq.Queue, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.pid", tmp_path / "b.pid"
    script = f"sleep 777 & echo $! > {a}; sleep 778 & echo $! > {b}; wait"
    queue.enqueue("sh", max_attempts=1)
    pool = pools.start(apps=[], execs=[["sh", f"sh -c '{script}'"]], concurrency=1)
    wait_until(lambda: a.exists() and b.exists() and a.read_text() and b.read_text(), timeout=30)
    pids = [int(a.read_text()), int(b.read_text())]
    try:
        assert all(alive(p) for p in pids)
        pool.signal(signal.SIGKILL)
        _all_gone(pids, within=2.0)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_whole_pool_process_group_sigkilled(
    pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path]
) -> None:
    pool, _job, pids, workers = _kill_mid_job(pools, queue, tree)
    os.killpg(pool.pid, signal.SIGKILL)  # `kill -9 -PGID`: supervisor and children at once
    _all_gone(pids)
    wait_until(lambda: not _guardians_of(workers), timeout=GONE_WITHIN, what="guardian exits")


def test_timeout(pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path]) -> None:
    execs, piddir = tree
    job_id = queue.enqueue("tree", {**SPEC, "then": "hang"}, max_attempts=1, timeout=1)
    pools.start(apps=[], execs=[execs], concurrency=1)
    pids = _running(piddir, NAMES)
    wait_until(lambda: queue.get(job_id).state is JobState.FAILED, timeout=30, what="timed out")
    assert queue.attempts(job_id)[0].outcome.value == "timeout"
    _all_gone(pids)


def test_cancel(pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path]) -> None:
    _pool, job_id, pids, _workers = _kill_mid_job(pools, queue, tree)
    queue.cancel(job_id)
    wait_until(lambda: queue.get(job_id).state is JobState.CANCELLED, timeout=30)
    _all_gone(pids)


def test_sigterm_shutdown_leaves_nothing(
    pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path]
) -> None:
    pool, job_id, pids, workers = _kill_mid_job(pools, queue, tree, shutdown_timeout=0.5)
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    assert queue.get(job_id).state is JobState.PENDING  # interrupted, back to pending
    _all_gone(pids)
    wait_until(lambda: not _guardians_of(workers), timeout=GONE_WITHIN, what="guardian exits")


def test_sigterm_drain_lets_the_job_finish_and_still_leaves_nothing(
    pools: Pools, queue: jobq.Queue, tree: tuple[list[str], Path], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    piddir = tree[1]
    # waits for the test's go-ahead, so that SIGTERM arrives while it runs
    waiter = tmp_path / "waiter.py"
    waiter.write_text(
        textwrap.dedent(f"""
        import os, subprocess, sys, time
        record = {str(piddir / "bg0")!r}
        p = subprocess.Popen(["sleep", "771"])
        open(record + ".tmp", "w").write(str(p.pid))
        os.rename(record + ".tmp", record + ".pid")
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
    """)
    )
    job_id = queue.enqueue("waiter", max_attempts=1)
    pool = pools.start(
        apps=[], execs=[["waiter", f"{sys.executable} {waiter}"]], concurrency=1,
        shutdown_timeout=30,
    )  # fmt: skip
    pids = _running(piddir, {"bg0"})
    workers = pool.children()
    pool.signal(signal.SIGTERM)
    wait_until(lambda: "stopping" in pool.log(), timeout=10, what="shutdown began")
    go.touch()
    assert pool.wait(30) == 0
    assert queue.get(job_id).state is JobState.SUCCEEDED
    assert not [p for p in pids if alive(p)]
    wait_until(lambda: not _guardians_of(workers), timeout=GONE_WITHIN, what="guardian exits")

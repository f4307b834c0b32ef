"""Helpers shared by the tests: wait for a condition, inspect processes through /proc, start and
kill what a test runs, read the ledgers handlers write, check a queue file.

Pool subprocesses import this module too (through tests.workerapp), so it imports nothing heavy:
pytest only when a wait fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# ---- waiting ----------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> object:
    """Poll `condition` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            import pytest  # here, not at the top: pool subprocesses import this module

            pytest.fail(f"condition not met within {timeout}s: {what or condition}")
        time.sleep(interval)


# ---- processes, through /proc -----------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, str] | None:
    """(ppid, state letter) of a process, None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name, in parentheses, may hold spaces: split after its closing one
    rest = data[data.rfind(b")") + 2 :].split()
    return int(rest[1]), rest[0].decode()


def alive(pid: int) -> bool:
    """Whether `pid` exists and is neither a zombie nor dead."""
    st = proc_stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie not yet reaped counts as exited)."""
    return not alive(pid)


def cmdline(pid: int) -> str:
    """The command line of `pid`, arguments joined by spaces ("" if it is gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def children_of(pid: int) -> list[int]:
    """Live children of `pid` (zombies excluded)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st[0] == pid and st[1] not in ("Z", "X"):
                out.append(int(entry))
    return out


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid`."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children_of(todo.pop())
        out += kids
        todo += kids
    return out


def pool_children(pid: int) -> list[int]:
    """A supervisor's children, including one forked a moment ago that has not exec'd yet (its
    command line is still the supervisor's), but not multiprocessing's resource tracker, which
    spawn starts too and which exits with the supervisor."""
    return [c for c in children_of(pid) if "resource_tracker" not in cmdline(c)]


def worker_children(pid: int) -> list[int]:
    """The multiprocessing worker children of a supervisor, once they run (spawn_main)."""
    return [c for c in children_of(pid) if "spawn_main" in cmdline(c)]


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL every process a test started (its whole session) and reap it."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # each was started in its own session
            except (ProcessLookupError, PermissionError):
                p.kill()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)


def start_work(
    jobq_cmd: list[str], env: dict[str, str], log_path: Path, *args: str
) -> subprocess.Popen[bytes]:
    """Start `jobq work --app tests.chaosapp ARGS` in its own session, logging to `log_path`."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child holds it; kill_all ends both
    return subprocess.Popen(
        [*jobq_cmd, "work", "--app", "tests.chaosapp", *args],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


# ---- ledgers: one line per handler run ------------------------------------------------------


def ledger_lines(path: Path) -> list[list[str]]:
    """A tests.workerapp ledger's lines (`job_id pid attempt [tag]`), split."""
    try:
        return [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []


def ledger_runs(path: Path) -> list[tuple[int, int, int]]:
    """A tests.chaosapp ledger's runs, in time order: (job id, attempt, pid)."""
    out = []
    for job, attempt, pid in ledger_lines(path):
        out.append((int(job), int(attempt), int(pid)))
    return out


# ---- the queue file, read from outside jobq ---------------------------------------------------


def integrity(path: str) -> str:
    """`PRAGMA integrity_check` of `path` through a plain connection ('ok' when sound)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "ok" if rows == [("ok",)] else repr(rows[:5])


def wal_size(path: str) -> int:
    """Size of the queue file's -wal, 0 when there is none."""
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0

"""`jobq demo`: a seeded queue file, four workers on the demo handlers, and the dashboard.

The dashboard is handed in by the CLI (`run_demo(open_dashboard)`): jobq never imports `tui`.
"""

from __future__ import annotations

import contextlib
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from .queue import Queue

WORDCOUNT = "import json,sys; print(len(json.load(sys.stdin)['text'].split()))"
STOP_TIMEOUT = 10.0  # seconds to wait for the pool after SIGTERM before SIGKILL
# Quitting the demo returns within about a second: the pool lets running jobs finish for
# SHUTDOWN_TIMEOUT (then interrupts them: back to pending, no attempt used up), and is told
# again ("stop at once") if it has not exited after QUIT_GRACE; QUIT_TIMEOUT bounds it all.
SHUTDOWN_TIMEOUT = 0.2
QUIT_GRACE = 0.5
QUIT_TIMEOUT = 0.8


def demo_db_path() -> str:
    """Where the demo's queue file lives: the user data dir, next to the default queue file."""
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("jobq", appauthor=False), "demo.db")


def worker_command(db_path: str) -> list[str]:
    """The `jobq work` command line that runs the demo handlers (one of them a command)."""
    wordcount = shlex.join([sys.executable, "-c", WORDCOUNT])
    return [sys.executable, "-m", "jobq", "--db", db_path, "work", "-c", "4",
            "--app", "jobq.demo_handlers", "--exec", f"text.wordcount={wordcount}",
            "--shutdown-timeout", str(SHUTDOWN_TIMEOUT), "--name", "demo"]  # fmt: skip


def seed_demo(q: Queue, rng: random.Random | None = None) -> None:
    """Fill a fresh demo file: a mix of types, queues and priorities, some scheduled."""
    from .demo_handlers import make_job

    rng = rng or random.Random(7)
    jobs: list[dict[str, object]] = [make_job(rng, n) for n in range(60)]
    for n in range(8):
        job = make_job(rng, 100 + n)
        job["delay"] = rng.choice([90, 300, 1800, 7200])
        jobs.append(job)
    jobs += [{"type": "report.build", "payload": {"report": "nightly", "n": i},
              "queue": "reports"} for i in range(4)]  # fmt: skip
    # a type no demo worker handles: the dashboard explains why it waits
    jobs.append({"type": "pdf.render", "payload": {"doc": "invoice-17.html"}, "queue": "default"})
    q.enqueue_many(jobs)


def ensure_generator(q: Queue) -> None:
    """Make sure exactly one generator job is waiting, so new work keeps arriving."""
    if q.count("pending", type="demo.generator") == 0:
        q.enqueue("demo.generator", {"n": 1000}, queue="default", priority=-10)


def start_workers(db_path: str, log_path: str) -> subprocess.Popen[bytes]:
    """Start the demo pool in its own session (so it can be stopped as a group)."""
    env = dict(os.environ, JOBQ_DB=db_path)
    env.pop("NOTIFY_SOCKET", None)
    with open(log_path, "ab") as log:
        return subprocess.Popen(worker_command(db_path), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, env=env, start_new_session=True)  # fmt: skip


def stop_workers(
    proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT, again_after: float | None = None
) -> int | None:
    """SIGTERM the pool's process group, wait, then SIGKILL whatever is left of the group.

    `again_after`: send a second SIGTERM (the pool stops at once) if it still runs by then.
    """
    pgid = proc.pid  # start_new_session: the pool leads its own group
    if proc.poll() is None:
        _killpg(pgid, signal.SIGTERM)
        first = timeout if again_after is None else min(again_after, timeout)
        try:
            proc.wait(first)
        except subprocess.TimeoutExpired:
            if again_after is not None:
                _killpg(pgid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.0, timeout - first))
    # children of the pool (and their command handlers) share its group: leave none behind
    _killpg(pgid, signal.SIGKILL)
    try:
        code = proc.wait(5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
        return None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.02)
    return code


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Its orphaned children are reaped by init, not
    by us, and an init may take a second to reap (a zombie still answers `killpg(pgid, 0)`), so
    on Linux zombies do not count: they run nothing and hold nothing but their pid."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # no /proc: whatever answers is alive
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_demo(open_dashboard: Callable[[str], object], db_path: str | None = None) -> int:
    """Seed (or reuse) the demo file, start `jobq work -c 4` on it, run
    `open_dashboard(path)`, and stop the workers when it returns. Returns the exit code."""
    path = db_path or demo_db_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with Queue(path) as q:
        if q.count() == 0:
            seed_demo(q)
        ensure_generator(q)
    log_path = os.path.join(os.path.dirname(path) or ".", "demo-workers.log")
    proc = start_workers(path, log_path)
    try:
        open_dashboard(path)
    finally:
        code = proc.poll()
        # said at once: the dashboard has gone and the terminal would otherwise look stuck
        print("jobq demo: stopping workers…", flush=True)
        stop_workers(proc, QUIT_TIMEOUT, again_after=QUIT_GRACE)
    if code not in (None, 0):
        print(f"jobq demo: the workers exited early (code {code}); see {log_path}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"jobq demo: queue file {path}; workers stopped")
    return 0

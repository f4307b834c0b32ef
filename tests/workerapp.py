"""Handlers used by the worker tests (`--app tests.workerapp`), and a helper that runs a pool.

Handlers that must prove how often they ran append one line per run to a ledger file named in
the payload ("ledger"): `job_id pid attempt`. Appends of one short line with O_APPEND are atomic.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import jobq
from jobq.model import JSONValue

# The worker tests import these from here too (alive, ledger_lines): one definition, in helpers.
from tests.helpers import alive as alive
from tests.helpers import descendants, pool_children
from tests.helpers import ledger_lines as ledger_lines

ROOT = Path(__file__).resolve().parent.parent


def _ledger(payload: JSONValue, job: jobq.Job, tag: str = "") -> None:
    if isinstance(payload, dict) and isinstance(payload.get("ledger"), str):
        line = f"{job.id} {os.getpid()} {job.attempts} {tag}".rstrip() + "\n"
        fd = os.open(str(payload["ledger"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


@jobq.handler("noop")
def noop(payload: JSONValue, job: jobq.Job) -> None:
    """Do nothing (drain benchmarks)."""


@jobq.handler("record")
def record(payload: JSONValue, job: jobq.Job) -> dict[str, int]:
    """Append to the ledger; return the pid that ran the job."""
    _ledger(payload, job)
    return {"pid": os.getpid(), "attempt": job.attempts}


@jobq.handler("echo")
def echo(payload: JSONValue, job: jobq.Job) -> JSONValue:
    """Return the payload."""
    return payload


@jobq.handler("chatty")
def chatty(payload: JSONValue, job: jobq.Job) -> int:
    """Print and log, to test output capture."""
    print("hello from print")
    print("to stderr", file=sys.stderr)
    logging.getLogger("chatty").warning("a warning from logging")
    return 42


@jobq.handler("boom", max_attempts=3)
def boom(payload: JSONValue, job: jobq.Job) -> None:
    """Always fail, after saying so."""
    _ledger(payload, job)
    print(f"attempt {job.attempts} about to fail")
    raise ValueError(f"boom on attempt {job.attempts}")


@jobq.handler("unserialisable")
def unserialisable(payload: JSONValue, job: jobq.Job) -> object:
    """Return something JSON cannot hold."""
    return {"when": object()}


@jobq.handler("sleep")
def sleep(payload: JSONValue, job: jobq.Job) -> dict[str, int]:
    """Mark the start in the ledger, sleep payload["seconds"], mark the end."""
    assert isinstance(payload, dict)
    _ledger(payload, job, "start")
    seconds = payload.get("seconds", 1)
    assert isinstance(seconds, (int, float))
    if not payload.get("once") or job.attempts == 1:  # once: only the first attempt sleeps
        time.sleep(float(seconds))
    _ledger(payload, job, "end")
    return {"pid": os.getpid()}


@jobq.handler("short_timeout", timeout=0.5, max_attempts=1)
def short_timeout(payload: JSONValue, job: jobq.Job) -> None:
    """Overrun the handler's 0.5 s timeout."""
    _ledger(payload, job, "start")
    time.sleep(30)


@jobq.handler("suicide", max_attempts=3)
def suicide(payload: JSONValue, job: jobq.Job) -> None:
    """Kill the worker running it (a poison pill)."""
    _ledger(payload, job)
    os.kill(os.getpid(), signal.SIGKILL)


class CustomStop(BaseException):
    """A BaseException of a handler's own, not an Exception."""


def _base_exception(kind: str) -> BaseException:
    import asyncio

    return {
        "KeyboardInterrupt": KeyboardInterrupt(),
        "GeneratorExit": GeneratorExit(),
        "CancelledError": asyncio.CancelledError(),
        "SystemExit": SystemExit(3),
        "CustomStop": CustomStop("custom"),
    }[kind]


@jobq.handler("raise_base", max_attempts=2)
def raise_base(payload: JSONValue, job: jobq.Job) -> None:
    """Raise the BaseException named by payload["kind"] (not an Exception)."""
    assert isinstance(payload, dict) and isinstance(payload["kind"], str)
    _ledger(payload, job)
    raise _base_exception(payload["kind"])


@jobq.handler("exit_now", max_attempts=2)
def exit_now(payload: JSONValue, job: jobq.Job) -> None:
    """Leave the worker process without unwinding (os._exit): a poison pill of another kind."""
    _ledger(payload, job)
    os._exit(3)


@jobq.handler("sleep_once", max_attempts=1, timeout=60)
def sleep_once(payload: JSONValue, job: jobq.Job) -> dict[str, int]:
    """Like sleep, but its handler allows a single attempt (max_attempts=1)."""
    return sleep(payload, job)


@jobq.handler("kill_supervisor")
def kill_supervisor(payload: JSONValue, job: jobq.Job) -> None:
    """On its first attempt, SIGKILL the pool's supervisor (the whole pool dies with it)."""
    _ledger(payload, job)
    if job.attempts == 1:
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(30)  # PR_SET_PDEATHSIG ends this child at once


@jobq.handler("limits", max_attempts=5, timeout=60)
def limits(payload: JSONValue, job: jobq.Job) -> dict[str, float | None]:
    """Return the limits the job carries while it runs."""
    return {"max_attempts": job.max_attempts, "timeout": job.timeout}


@jobq.handler("fail_now", max_attempts=5)
def fail_now(payload: JSONValue, job: jobq.Job) -> None:
    """Give up at once with jobq.Fail, though attempts are left."""
    _ledger(payload, job)
    raise jobq.Fail("image too large: 90000x90000")


@jobq.handler("snooze_then_ok", max_attempts=1)
def snooze_then_ok(payload: JSONValue, job: jobq.Job) -> object:
    """Snooze payload["snoozes"] times for payload["seconds"], then succeed (one attempt only:
    a snooze that counted would fail the job)."""
    assert isinstance(payload, dict) and isinstance(payload["ledger"], str)
    _ledger(payload, job)
    runs = len(Path(payload["ledger"]).read_text().splitlines())
    if runs <= int(payload["snoozes"]):  # type: ignore[call-overload]
        return jobq.Snooze(float(payload["seconds"]))  # type: ignore[arg-type]
    return {"runs": runs}


@jobq.handler("backoff_list", max_attempts=3, backoff=[0.3, 0.6])
def backoff_list(payload: JSONValue, job: jobq.Job) -> None:
    """Always fail; retried after the handler's own 0.3 s, then 0.6 s."""
    _ledger(payload, job)
    raise ValueError(f"attempt {job.attempts}")


# ---- running a pool in a test ----------------------------------------------------------------

POOL_SCRIPT = """
import json, sys
from jobq.pool import run_pool
from jobq.pool.settings import PoolSettings
kw = json.loads(sys.argv[1])
for key in ("apps", "execs", "queues", "type_globs"):
    if key in kw:
        kw[key] = tuple(tuple(x) if isinstance(x, list) else x for x in kw[key])
raise SystemExit(run_pool(PoolSettings(**kw)))
"""


class PoolProcess:
    """A pool supervisor running as a subprocess in its own process group; stderr to a file."""

    def __init__(
        self,
        db_path: str,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
        **settings: object,
    ) -> None:
        kw: dict[str, object] = {"db_path": db_path, "concurrency": 2, "apps": ["tests.workerapp"]}
        kw.update(settings)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ if env is None else env)
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        if env is None:
            full_env.pop("NOTIFY_SOCKET", None)
        cmd = argv or [sys.executable, "-c", POOL_SCRIPT, json.dumps(kw)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=full_env, stderr=self._log, start_new_session=True
        )
        self.pid = self.proc.pid

    def log(self) -> str:
        """Everything the pool logged so far."""
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        """Pids of the supervisor's live worker children (not multiprocessing's resource
        tracker, which spawn starts too and which exits with the supervisor)."""
        return pool_children(self.pid)

    def signal(self, sig: int) -> None:
        """Send a signal to the supervisor only."""
        os.kill(self.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the supervisor to exit; its exit code."""
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Kill whatever is left of the pool (the supervisor's process group and children)."""
        pids = [self.pid, *descendants(self.pid)]
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in pids:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            self.proc.wait(10)
        finally:
            self._log.close()


class Pools:
    """Starts pools for one test and kills every one of them (and their children) at the end."""

    def __init__(self, db_path: str, log_dir: Path) -> None:
        self.db_path = db_path
        self.log_dir = log_dir
        self.started: list[PoolProcess] = []

    def start(self, **settings: object) -> PoolProcess:
        """Start a pool on the test's queue file."""
        log_path = self.log_dir / f"pool{len(self.started)}.log"
        pool = PoolProcess(self.db_path, log_path, **settings)
        self.started.append(pool)
        return pool

    def close(self) -> None:
        """Kill every pool started."""
        for pool in self.started:
            pool.stop()


@contextmanager
def pools_for(db_path: str, log_dir: Path) -> Iterator[Pools]:
    """Pools for the duration of a with block (the body of each test module's fixture)."""
    pools = Pools(db_path, log_dir)
    try:
        yield pools
    finally:
        pools.close()

"""The PostgreSQL section's server and helpers: one throwaway server per bench run, shared by jobq,
the floor and every peer (pgqueuer, procrastinate), each in a database of its own.

The server is tests/pgserver.py's (initdb + pg_ctl as the `postgres` user, Unix socket only),
restarted with **fsync on** (PostgreSQL's default, with synchronous_commit on): the parts
compare durable queues, as the SQLite parts do with synchronous=FULL, and a commit that does not
reach the disk would make "durable enqueue" meaningless. Every subject pays the same fsync.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from common import Skip

FSYNC = "on"  # see the module docstring
_SERVER: Any = None  # the run's server, started on first use


def _bench_server_class() -> Any:
    from tests.pgserver import PgServer

    class BenchServer(PgServer):
        """tests/pgserver.py's server with the bench's settings (fsync on, default buffers)."""

        def _options(self) -> str:
            return (
                f"-k {self.socket_dir} -c listen_addresses='' -c fsync={FSYNC} "
                "-c max_connections=200 -c shared_buffers=256MB"
            )

    return BenchServer


def server() -> Any:
    """The run's PostgreSQL server (started on first call, destroyed at exit); Skip if none."""
    global _SERVER
    if _SERVER is not None:
        return _SERVER
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Skip("psycopg is not installed (pip install -e '.[bench]')") from None
    from tests.pgserver import ServerUnavailable, start_server

    try:
        first = start_server("bench")
    except ServerUnavailable as e:
        raise Skip(str(e)) from None
    srv = _bench_server_class()(**asdict(first))
    atexit.register(srv.destroy)
    srv.restart()  # with the bench's options
    _SERVER = srv
    return srv


def stop_server() -> None:
    """Destroy the run's server now (the tests call this; run.py leaves it to atexit)."""
    global _SERVER
    if _SERVER is not None:
        _SERVER.destroy()
        _SERVER = None


def conninfo(dbname: str) -> str:
    """A libpq conninfo string for `dbname` on the run's server (psycopg, asyncpg-free)."""
    srv = server()
    return f"host={srv.socket_dir} user=postgres dbname={dbname}"


def url(dbname: str, **params: str) -> str:
    """A postgresql:// URL for `dbname` (a `--db` value for jobq)."""
    return str(server().url(dbname, **params))


def connect(dbname: str, autocommit: bool = True) -> Any:
    import psycopg

    return psycopg.connect(conninfo(dbname), autocommit=autocommit)


def create_db(tag: str) -> str:
    """A fresh empty database on the run's server; its name."""
    name = f"b_{tag}_{uuid.uuid4().hex[:8]}"
    with connect("postgres") as c:
        c.execute(f"CREATE DATABASE {name}")
    return name


def drop_db(name: str) -> None:
    with connect("postgres") as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def database(tag: str) -> Iterator[str]:
    """A fresh database for one measurement, dropped afterwards (the disk stays small)."""
    name = create_db(tag)
    try:
        yield name
    finally:
        drop_db(name)


def facts() -> dict[str, str]:
    """Server version and the settings the figures depend on."""
    with connect("postgres") as c:
        out = {}
        for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method",
                     "shared_buffers"):  # fmt: skip
            out[name] = str(c.execute(f"SHOW {name}").fetchone()[0])
    return out


def facts_note() -> str:
    f = facts()
    return (
        f"PostgreSQL {f['server_version']}, fsync={f['fsync']}, "
        f"synchronous_commit={f['synchronous_commit']}"
    )


# ---- peers' worker groups: N forked processes under one root (for /proc CPU accounting) -------


def _group_main(target: Callable[..., None], args: tuple[Any, ...], workers: int) -> None:
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=target, args=(*args, k)) for k in range(workers)]
    for p in children:
        p.start()

    def forward(signum: int, frame: Any) -> None:
        for p in children:
            if p.pid is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = []
    for p in children:
        p.join()
        codes.append(p.exitcode)
    os._exit(0 if all(c == 0 for c in codes) else 1)


def start_group(
    target: Callable[..., None], args: tuple[Any, ...], workers: int
) -> multiprocessing.process.BaseProcess:
    """Fork a root process that forks `workers` children running target(*args, index)."""
    ctx = multiprocessing.get_context("fork")
    root = ctx.Process(target=_group_main, args=(target, args, workers))
    root.start()
    return root


def stop_group(root: multiprocessing.process.BaseProcess, timeout: float = 15.0) -> None:
    """SIGTERM to the root (forwarded to every worker), then SIGKILL the rest."""
    from common import descendants

    if root.is_alive() and root.pid is not None:
        os.kill(root.pid, signal.SIGTERM)
        root.join(timeout)
    if root.is_alive() and root.pid is not None:
        for pid in reversed(descendants(root.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        root.join(5)


def wait_group(root: multiprocessing.process.BaseProcess, timeout: float) -> float:
    """Wait for a burst group to exit; the monotonic time it was seen gone. Raise on failure."""
    root.join(timeout)
    t = time.monotonic()
    if root.is_alive():
        stop_group(root)
        raise RuntimeError(f"peer workers still running after {timeout:.0f} s")
    if root.exitcode != 0:
        raise RuntimeError(f"a peer worker exited with an error (root exit {root.exitcode})")
    return t


def jobq_pg_missing(pool: bool = False) -> str | None:
    """None if this checkout's jobq enqueues on a postgresql:// queue (and with `pool`, if
    `jobq work --burst` runs that job), else why not (one line)."""
    try:
        import jobq
    except ImportError as e:  # pragma: no cover - the bench runs from a checkout
        return f"jobq does not import: {e}"
    from common import log_tail, start_pool

    with database("probe") as db:
        try:
            with jobq.Queue(url(db)) as q:
                q.enqueue("noop", {})
        except Exception as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return f"jobq's PostgreSQL backend is not usable here: {type(e).__name__}: {text}"
        if not pool:
            return None
        with tempfile.TemporaryDirectory(prefix="jobq-bench-probe-") as wd:
            proc = start_pool(url(db), 1, burst=True, log=os.path.join(wd, "probe.log"))
            try:
                rc = proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                return "`jobq work --burst` on one PostgreSQL job did not exit in 120 s"
            with connect(db) as c:
                done = c.execute("SELECT count(*) FROM jobq.jobs WHERE state = 'succeeded'")
                ok = done.fetchone()[0] == 1
            if rc != 0 or not ok:
                last = (log_tail(proc).splitlines() or [""])[-1][:200]
                return f"`jobq work` does not run a job on PostgreSQL here (exit {rc}): {last}"
    return None

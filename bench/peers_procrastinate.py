"""procrastinate, driven with its library defaults (psycopg 3 pool, LISTEN/NOTIFY, jobs kept
after they finish): one worker per process (its default concurrency 1), `wait=False` for the
drain (its burst: the worker exits once it has caught up).

procrastinate's triggers write `procrastinate_events` rows ('started', 'succeeded', stamped by
the server's now()): the drain times the jobs from there and counts them in procrastinate_jobs.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pg_common


def available() -> str | None:
    """None if procrastinate imports, else why not."""
    try:
        import procrastinate  # noqa: F401
    except ImportError as e:
        return f"procrastinate is not installed ({e.name}; pip install -e '.[bench]')"
    return None


def version() -> str:
    from importlib.metadata import version as v

    return v("procrastinate")


def make_app(dbname: str) -> tuple[Any, dict[str, Any]]:
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=pg_common.conninfo(dbname)))

    @app.task(name="noop")
    async def noop(i: int) -> None:
        pass

    @app.task(name="stamp")
    async def stamp(i: int, t: float, out: str) -> None:
        started = time.monotonic()
        with open(os.path.join(out, f"stamp-{os.getpid()}.txt"), "a") as f:
            f.write(f"{i} {started - t:.6f}\n")

    return app, {"noop": noop, "stamp": stamp}


def install(dbname: str) -> None:
    app, _ = make_app(dbname)
    with app.open():
        app.schema_manager.apply_schema()


def prefill(dbname: str, n: int) -> None:
    app, tasks = make_app(dbname)
    with app.open():
        for lo in range(0, n, 10_000):
            tasks["noop"].batch_defer(*({"i": i} for i in range(lo, min(n, lo + 10_000))))


def _worker(dbname: str, burst: bool, index: int) -> None:
    app, _ = make_app(dbname)
    # its own signal handlers: SIGTERM/SIGINT stop the worker gracefully
    app.run_worker(wait=not burst, name=f"bench-{index}")


def drain(dbname: str, n: int, workers: int = 4, timeout: float = 600) -> dict[str, float]:
    """n pre-filled no-op jobs, `workers` wait=False worker processes: jobs/s fork→exit and
    first 'started'→last 'succeeded' event (after every job is checked succeeded)."""
    install(dbname)
    prefill(dbname, n)
    t0 = time.monotonic()
    root = pg_common.start_group(_worker, (dbname, True), workers)
    try:
        t1 = pg_common.wait_group(root, timeout)
    except BaseException:  # interrupted: no worker may outlive its database
        pg_common.stop_group(root)
        raise
    with pg_common.connect(dbname) as c:
        done, total = c.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FROM procrastinate_jobs"
        ).fetchone()
        first, last = c.execute(
            "SELECT extract(epoch FROM min(at) FILTER (WHERE type = 'started'))::float8,"
            " extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded'))::float8"
            " FROM procrastinate_events"
        ).fetchone()
    if done != n or total != n:
        raise RuntimeError(f"procrastinate: {done} of {n} jobs succeeded ({total} in the table)")
    return {"wall": n / (t1 - t0), "span": n / (last - first), "done": float(done)}


class Producer:
    """Enqueue through procrastinate's sync `task.defer`, one transaction per job."""

    def __init__(self, dbname: str) -> None:
        self.app, self.tasks = make_app(dbname)
        self.app.open()

    def enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        self.tasks[kind].defer(**payload)

    def close(self) -> None:
        self.app.close()


def start_consumer(dbname: str, workers: int) -> Any:
    """`workers` waiting worker processes under one root process."""
    return pg_common.start_group(_worker, (dbname, False), workers)

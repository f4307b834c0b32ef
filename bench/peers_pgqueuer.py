"""pgqueuer, driven with its library defaults (asyncpg, durable tables, batch_size 10, LISTEN/
NOTIFY wake-ups): one QueueManager per worker process, `mode=drain` for the drain (its burst).

Completed jobs leave the `pgqueuer` table and are logged in `pgqueuer_log` ('picked', then
'successful', each row stamped by the server's now()): the drain counts and times them there.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pg_common


def available() -> str | None:
    """None if pgqueuer and asyncpg import, else why not."""
    try:
        import asyncpg  # noqa: F401
        import pgqueuer  # noqa: F401
    except ImportError as e:
        return f"pgqueuer is not installed ({e.name}; pip install -e '.[bench]')"
    return None


def version() -> str:
    import pgqueuer

    return str(pgqueuer.__version__)


async def _connect(dbname: str) -> Any:
    import asyncpg

    srv = pg_common.server()
    return await asyncpg.connect(host=srv.socket_dir, user="postgres", database=dbname)


def _queries(conn: Any) -> Any:
    from pgqueuer import Queries

    return Queries.from_asyncpg_connection(conn)


def install(dbname: str) -> None:
    async def main() -> None:
        conn = await _connect(dbname)
        try:
            await _queries(conn).install()
        finally:
            await conn.close()

    asyncio.run(main())


def prefill(dbname: str, n: int) -> None:
    async def main() -> None:
        conn = await _connect(dbname)
        try:
            q = _queries(conn)
            for lo in range(0, n, 10_000):
                hi = min(n, lo + 10_000)
                await q.enqueue(
                    ["noop"] * (hi - lo),
                    [json.dumps({"i": i}).encode() for i in range(lo, hi)],
                    [0] * (hi - lo),
                )
        finally:
            await conn.close()

    asyncio.run(main())


def _worker(dbname: str, burst: bool, index: int) -> None:
    from pgqueuer import QueueManager
    from pgqueuer.types import QueueExecutionMode

    async def main() -> None:
        conn = await _connect(dbname)
        qm = QueueManager(_queries(conn))

        @qm.entrypoint("noop")
        async def noop(job: Any) -> None:
            pass

        @qm.entrypoint("stamp")
        async def stamp(job: Any) -> None:
            started = time.monotonic()
            p = json.loads(job.payload)
            with open(os.path.join(p["out"], f"stamp-{os.getpid()}.txt"), "a") as f:
                f.write(f"{p['i']} {started - p['t']:.6f}\n")

        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, qm.shutdown.set)
        mode = QueueExecutionMode.drain if burst else QueueExecutionMode.continuous
        await qm.run(mode=mode)

    asyncio.run(main())


def drain(dbname: str, n: int, workers: int = 4, timeout: float = 600) -> dict[str, float]:
    """n pre-filled no-op jobs, `workers` drain-mode processes: jobs/s fork→exit and first
    pick→last 'successful' log row (both after every job is checked done)."""
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
        left = c.execute("SELECT count(*) FROM pgqueuer").fetchone()[0]
        done, first, last = c.execute(
            "SELECT count(*) FILTER (WHERE status = 'successful'),"
            " extract(epoch FROM min(created) FILTER (WHERE status = 'picked'))::float8,"
            " extract(epoch FROM max(created) FILTER (WHERE status = 'successful'))::float8"
            " FROM pgqueuer_log"
        ).fetchone()
    if left or done != n:
        raise RuntimeError(f"pgqueuer: {done} of {n} jobs logged successful, {left} left queued")
    return {"wall": n / (t1 - t0), "span": n / (last - first), "done": float(done)}


class Producer:
    """Enqueue through pgqueuer's Queries.enqueue, one call (one transaction) per job."""

    def __init__(self, dbname: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(_connect(dbname))
        self.q = _queries(self.conn)

    def enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        self.loop.run_until_complete(self.q.enqueue(kind, json.dumps(payload).encode()))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


def start_consumer(dbname: str, workers: int) -> Any:
    """`workers` continuous QueueManager processes under one root process."""
    return pg_common.start_group(_worker, (dbname, False), workers)

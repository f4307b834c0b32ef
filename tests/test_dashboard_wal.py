"""The dashboard does not pin the WAL: checkpoints complete while it stays open under churn."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from jobq.store import Store
from tests.conftest import SLOW
from tests.factories import new_job
from tests.helpers import kill_all, start_work, wal_size


@pytest.mark.slow
@pytest.mark.timeout(900 if SLOW else 120)
def test_dashboard_does_not_pin_the_wal(
    tmp_path: Path, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
):
    """The dashboard stays open while workers churn: the -wal stays bounded and a PASSIVE
    checkpoint from another connection completes (busy 0, every frame checkpointed)."""
    import asyncio
    import threading

    from tui.app import make_app

    seconds = 600.0 if SLOW else 20.0
    Store(db_path).close()
    pool = start_work(jobq_cmd, jobq_env, tmp_path / "pool.log", "-c", "4")
    stop = threading.Event()
    payload = json.dumps({"seconds": 0.0, "pad": "w" * 2000})

    def produce() -> None:
        s = Store(db_path)
        try:
            while not stop.is_set():
                s.enqueue([new_job("chaos.sleep", payload) for _ in range(20)], time.time())
                time.sleep(0.02)
        finally:
            s.close()

    failed_probes: list[str] = []

    def checkpoint() -> tuple[int, int, int] | None:
        # This probe's own raw connection has failed with "disk I/O error" a few times under
        # heavy load (never one of jobq's connections; cause not found, see the closing notes
        # of sessions 5 and 6): such a sample is neither a completed checkpoint nor a failure
        # of jobq's; it is counted below, and most probes must succeed.
        conn = sqlite3.connect(db_path, timeout=5)
        try:
            return tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
        except sqlite3.OperationalError as e:
            failed_probes.append(str(e))
            return None
        finally:
            conn.close()

    wal_sizes: list[int] = []
    complete: list[float] = []

    async def run() -> int:
        app = make_app(db_path)  # watching the WAL, as `jobq tui` does
        async with app.run_test(size=(160, 50)) as pilot:
            t0 = time.monotonic()
            keys = ["1", "2", "3", "4", "enter", "escape", "6", "7", "1"]
            i = 0
            while time.monotonic() - t0 < seconds:
                await pilot.press(keys[i % len(keys)])  # an operator browsing
                i += 1
                await pilot.pause(0.2)
                wal_sizes.append(wal_size(db_path))
                got = checkpoint()
                if got is not None and got[0] == 0 and got[1] == got[2]:
                    complete.append(time.monotonic() - t0)
            return app.loads

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        loads = asyncio.run(run())
    finally:
        stop.set()
        producer.join(10)
        kill_all([pool])
    assert loads > 5, "the dashboard did not refresh under churn"
    assert len(failed_probes) <= len(wal_sizes) // 10, failed_probes[:3]
    assert max(wal_sizes) < 32 * 2**20, f"WAL grew to {max(wal_sizes) / 2**20:.1f} MiB"
    # checkpoints complete while the dashboard is open, including near the end
    assert complete, "no PASSIVE checkpoint ever completed"
    assert complete[-1] > seconds * 0.75, f"checkpoints stopped completing at {complete[-1]:.1f}s"
    print(
        f"\ntui+churn {seconds:.0f}s: {loads} refreshes, WAL max "
        f"{max(wal_sizes) / 2**20:.1f} MiB, {len(complete)} complete checkpoints"
    )

"""WAL size during a soak: `work -c 4`, 200 jobs/s enqueued, the dashboard open (headless)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common import (
    ROOT,
    Config,
    Row,
    child_env,
    start_pool,
    stat,
    stop_pool,
    work_available,
    workdir,
)

import jobq

RATE = 200.0
TUI_SCRIPT = """
import asyncio, sys
from tui.app import make_app

async def main(path, seconds):
    app = make_app(path)
    async with app.run_test(size=(160, 48)):
        await asyncio.sleep(seconds)

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


def tui_available() -> str | None:
    """None if tui.app.make_app exists, else why not."""
    if not os.path.exists(os.path.join(ROOT, "tui", "app.py")):
        return "tui/app.py not written yet"
    probe = subprocess.run(
        [sys.executable, "-c", "from tui.app import make_app"],
        env=child_env(),
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else f"tui.app.make_app: {probe.stderr[-200:].strip()}"


def run(cfg: Config) -> list[Row]:
    work_available()
    seconds = cfg.pick(15.0, 600.0)
    tui_missing = tui_available()
    with workdir(cfg, "soak") as wd:
        db = os.path.join(wd, "soak.db")
        q = jobq.Queue(db)
        pool = start_pool(db, 4, log=os.path.join(wd, "pool.log"))
        tui = None
        if tui_missing is None:
            tui = subprocess.Popen(
                [sys.executable, "-c", TUI_SCRIPT, db, str(seconds + 5)],
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(wd, "tui.log"), "w"),  # noqa: SIM115
            )
        wal = db + "-wal"
        sizes: list[float] = []
        backlog: list[int] = []
        try:
            time.sleep(2.0)
            t0 = nxt = time.monotonic()
            next_sample = t0
            i = 0
            while time.monotonic() < t0 + seconds:
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                q.enqueue("noop", {"i": i})
                i += 1
                nxt += 1 / RATE
                if time.monotonic() >= next_sample:
                    sizes.append(os.path.getsize(wal) if os.path.exists(wal) else 0)
                    backlog.append(q.count("pending"))
                    next_sample += 0.5
            enqueued = i
            elapsed = time.monotonic() - t0
        finally:
            stop_pool(pool)
            tui_rc = None
            if tui is not None:
                tui.terminate()
                tui_rc = tui.wait(10)
        done = q.count("succeeded")
        q.close()
    mib = max(sizes) / 2**20
    note = (
        f"{elapsed:.0f} s, {enqueued / elapsed:.0f} jobs/s enqueued, {done:,} of {enqueued:,} "
        f"succeeded; final WAL {sizes[-1] / 2**20:.1f} MiB; max backlog {max(backlog):,}; "
        + ("TUI open (headless run_test)" if tui is not None else f"TUI not open: {tui_missing}")
    )
    if tui is not None and tui_rc not in (0, -15, None):
        note += f" (TUI exited {tui_rc})"
    return [
        Row(
            "max WAL size during soak (work -c 4, 200 jobs/s)",
            stat([mib]),
            "MiB",
            goal="≤ 64 MiB",
            met=mib <= 64,
            note=note,
            extra={"wal_bytes": sizes, "pending": backlog},
        )
    ]

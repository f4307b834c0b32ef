"""WAL size during a soak: `work -c 4`, 200 jobs/s enqueued, the dashboard open (headless) and
processes looping on counts/list/stats; and the drain rate with those readers against without.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from common import (
    ROOT,
    Config,
    Row,
    child_env,
    paired_ratio,
    run_burst,
    start_pool,
    stat,
    stop_pool,
    wait_until,
    work_available,
    workdir,
)
from drain import in_file_span, prefill

import jobq

RATE = 200.0
READERS = 2
TUI_SCRIPT = """
import asyncio, sys
from tui.app import make_app

async def main(path, seconds):
    app = make_app(path)
    async with app.run_test(size=(160, 48)):
        await asyncio.sleep(seconds)

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""
# A script polling the queue back to back, as `watch jobq stats` or a monitoring loop would:
# one short read transaction after another, so that almost always one of them is open.
READER_SCRIPT = """
import os, sys
import jobq

q = jobq.Queue(sys.argv[1])
ready, stop = sys.argv[2], sys.argv[3]
loops = 0
while not os.path.exists(stop):
    q.counts()
    q.list(limit=50)
    q.stats()
    loops += 1
    if loops == 1:
        open(ready, "w").close()
print(loops)
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


class Readers:
    """READERS processes looping on counts/list/stats of one file until stopped."""

    def __init__(self, db: str, wd: str) -> None:
        tag = f"{os.path.basename(db)}-{time.monotonic_ns()}"
        self.stop_file = os.path.join(wd, f"stop-{tag}")
        ready = [os.path.join(wd, f"ready-{tag}-{k}") for k in range(READERS)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", READER_SCRIPT, db, r, self.stop_file],
                env=child_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for r in ready
        ]
        if not wait_until(lambda: all(os.path.exists(r) for r in ready), 60):
            self.stop()
            raise RuntimeError("the reader processes did not start looping")

    def stop(self) -> list[int]:
        """Stop the readers; the loops each made."""
        open(self.stop_file, "w").close()
        loops = []
        for p in self.procs:
            out, err = p.communicate(timeout=60)
            if p.returncode != 0:
                raise RuntimeError(f"a reader exited {p.returncode}: {err[-300:]}")
            loops.append(int(out.strip() or 0))
        return loops


class WalSampler:
    """Samples the -wal size of a file every 50 ms in a thread."""

    def __init__(self, db: str) -> None:
        self.wal = db + "-wal"
        self.sizes: list[int] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                self.sizes.append(os.path.getsize(self.wal))
            except OSError:
                self.sizes.append(0)
            self._done.wait(0.05)

    def stop(self) -> int:
        """Stop sampling; the largest size seen (bytes)."""
        self._done.set()
        self._thread.join(5)
        return max(self.sizes, default=0)


def soak(wd: str, seconds: float, tui_missing: str | None) -> Row:
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
    readers = Readers(db, wd)
    time.sleep(2.0)  # the pool's start-up
    sampler = WalSampler(db)
    backlog: list[int] = []
    try:
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
                backlog.append(q.count("pending"))
                next_sample += 0.5
        enqueued = i
        elapsed = time.monotonic() - t0
    finally:
        peak = sampler.stop()
        loops = readers.stop()
        stop_pool(pool)
        tui_rc = None
        if tui is not None:
            tui.terminate()
            tui_rc = tui.wait(10)
    done = q.count("succeeded")
    q.close()
    mib = peak / 2**20
    note = (
        f"{elapsed:.0f} s, {enqueued / elapsed:.0f} jobs/s enqueued, {done:,} of {enqueued:,} "
        f"succeeded; final WAL {sampler.sizes[-1] / 2**20:.1f} MiB; max backlog {max(backlog):,}; "
        f"{READERS} reader processes looping on counts/list/stats ({sum(loops):,} loops); "
        + ("TUI open (headless run_test)" if tui is not None else f"TUI not open: {tui_missing}")
    )
    if tui is not None and tui_rc not in (0, -15, None):
        note += f" (TUI exited {tui_rc})"
    return Row(
        f"max WAL size during soak (work -c 4, 200 jobs/s, {READERS} looping readers, dashboard)",
        stat([mib]),
        "MiB",
        goal="≤ 64 MiB",
        met=mib <= 64,
        note=note,
        extra={"wal_bytes": sampler.sizes, "pending": backlog},
    )


class Drain:
    """One `--burst -c 4` drain of n pre-filled jobs per call; returns jobs/s from the first start
    to the last end (the file's timestamps).

    `readers`: None, "same" (READERS processes looping on the drained file) or "other" (the same
    readers on another file as large: their CPU use without their effect on the drained file's
    WAL, which tells the two apart on a small machine).
    """

    def __init__(self, wd: str, n: int, readers: str | None) -> None:
        self.wd, self.n, self.readers = wd, n, readers
        self.wal_peak: list[float] = []
        self.loops: list[int] = []
        if readers == "other":
            self.other = os.path.join(wd, f"other-{time.monotonic_ns()}.db")
            prefill(self.other, n)

    def __call__(self) -> float:
        path = os.path.join(self.wd, f"drain-{time.monotonic_ns()}.db")
        prefill(path, self.n)
        target = {"same": path, "other": getattr(self, "other", "")}.get(self.readers or "")
        readers = Readers(target, self.wd) if target else None
        sampler = WalSampler(path)
        try:
            run_burst(path, 4, self.wd)
        finally:
            self.wal_peak.append(sampler.stop() / 2**20)
            if readers is not None:
                self.loops.append(sum(readers.stop()))
        return self.n / in_file_span(path, self.n)


def run(cfg: Config) -> list[Row]:
    work_available()
    seconds = cfg.pick(15.0, 600.0)
    n = cfg.pick(5000, 20_000)
    repeats = cfg.repeats  # --repeats; 3 quick, 5 full
    tui_missing = tui_available()
    with workdir(cfg, "soak") as wd:
        rows = [soak(wd, seconds, tui_missing)]
        with_readers, without = Drain(wd, n, "same"), Drain(wd, n, None)
        elsewhere = Drain(wd, n, "other")
        got: dict[Drain, list[float]] = {with_readers: [], without: [], elsewhere: []}
        for r in range(repeats):  # rotate the order: noise hits all alike
            order = list(got)[r % 3 :] + list(got)[: r % 3]
            for subject in order:
                got[subject].append(subject())
    read, alone, cpu = got[with_readers], got[without], got[elsewhere]
    ratio = paired_ratio(read, alone)
    wal = max(with_readers.wal_peak)
    rows.append(
        Row(
            f"drain -c 4 with {READERS} looping readers, first start→last end",
            stat(read),
            "jobs/s",
            "the same drain without readers",
            stat(alone),
            ratio,
            "≥ 0.8×, WAL ≤ 64 MiB",
            met=ratio is not None and ratio >= 0.8 and wal <= 64,
            note=f"{n:,} no-op jobs × {repeats}; readers on counts/list/stats "
            f"({sum(with_readers.loops):,} loops); max WAL {wal:.1f} MiB with readers, "
            f"{max(without.wal_peak):.1f} MiB without",
            extra={"wal_mib_readers": with_readers.wal_peak, "wal_mib_alone": without.wal_peak},
        )
    )
    rows.append(
        Row(
            f"same, with the {READERS} readers on another file (their CPU only)",
            stat(cpu),
            "jobs/s",
            "the same drain without readers",
            stat(alone),
            paired_ratio(cpu, alone),
            note="with readers on the drained file ÷ on another file: "
            f"{paired_ratio(read, cpu) or 0:.2f}× (what they cost beyond CPU time)",
        )
    )
    return rows

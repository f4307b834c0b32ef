"""Readers must not slow the workers: a drain with 8 `jobq wait` processes and an open dashboard,
against the same drain without them, in the same run (alternating)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from common import (
    Config,
    Row,
    child_env,
    cpu_seconds,
    jobq_cmd,
    paired_ratio,
    run_burst,
    stat,
    work_available,
    workdir,
)
from drain import in_file_span, prefill
from soak import TUI_SCRIPT, tui_available

import jobq

WAITERS = 8
GOAL = 0.9
SETTLE = 2.0  # seconds for the readers to start up before the drain (the dashboard's first paint)


class Drain:
    """One `--burst -c 4` drain of n pre-filled jobs per call, with or without the readers;
    returns jobs/s from the first start to the last end (the file's timestamps)."""

    def __init__(self, wd: str, n: int, readers: bool, tui: bool) -> None:
        self.wd, self.n, self.readers, self.tui = wd, n, readers, tui
        self.waiter_cpu: list[float] = []  # CPU seconds of all waiters during one drain
        self.tui_cpu: list[float] = []  # and of the dashboard
        self.drain_cpu: list[float] = []  # CPU seconds of the pool (rusage of the burst run)

    def __call__(self) -> float:
        path = os.path.join(self.wd, f"drain-{time.monotonic_ns()}.db")
        prefill(path, self.n)
        procs: list[subprocess.Popen[bytes]] = []
        if self.readers:
            # Each waits for jobs of the drain and for one that never runs (its queue is
            # paused), so that it is still waiting, and measured, when the drain ends.
            with jobq.Queue(path) as q:
                q.pause("held")
                held = q.enqueue("noop", {}, queue="held")
            ids = [str(i) for i in (self.n, self.n // 2, held)]
            for _ in range(WAITERS):
                procs.append(
                    subprocess.Popen(
                        [*jobq_cmd(), "--db", path, "wait", *ids],
                        env=child_env(),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            if self.tui:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", TUI_SCRIPT, path, "600"],
                        env=child_env(),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(SETTLE)
        waiters, tui = [p.pid for p in procs[:WAITERS]], [p.pid for p in procs[WAITERS:]]
        w0, t0 = cpu_seconds(waiters), cpu_seconds(tui)
        r0 = os.times()
        try:
            run_burst(path, 4, self.wd)
            r1 = os.times()
            if self.readers:
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("a reader exited during the drain")
                self.waiter_cpu.append(cpu_seconds(waiters) - w0)
                self.tui_cpu.append(cpu_seconds(tui) - t0)
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
        self.drain_cpu.append(r1.children_user + r1.children_system
                              - r0.children_user - r0.children_system)  # fmt: skip
        return self.n / in_file_span(path, self.n)


def _med(values: list[float]) -> float:
    return float(stat(values).get("median", 0.0))


def run(cfg: Config) -> list[Row]:
    work_available()
    n = cfg.pick(10_000, 40_000)
    repeats = cfg.repeats  # --repeats; 3 quick, 5 full
    tui_missing = tui_available()
    with workdir(cfg, "readers") as wd:
        with_readers = Drain(wd, n, True, tui_missing is None)
        alone = Drain(wd, n, False, False)
        got: dict[Drain, list[float]] = {with_readers: [], alone: []}
        for r in range(repeats):
            order = list(got)[r % 2 :] + list(got)[: r % 2]
            for subject in order:
                got[subject].append(subject())
    ratio = paired_ratio(got[with_readers], got[alone])
    what = f"{WAITERS} `jobq wait` processes" + (
        " + the dashboard (headless run_test)" if tui_missing is None else ""
    )
    return [
        Row(
            f"drain -c 4 with {what}, first start→last end",
            stat(got[with_readers]),
            "jobs/s",
            "the same drain without them",
            stat(got[alone]),
            ratio,
            f"≥ {GOAL}×",
            met=ratio is not None and ratio >= GOAL,
            note=f"{n:,} no-op jobs × {repeats}, alternating; CPU during a drain: the "
            f"{WAITERS} waiters {_med(with_readers.waiter_cpu):.2f} s, the dashboard "
            f"{_med(with_readers.tui_cpu):.2f} s, the pool {_med(alone.drain_cpu):.2f} s "
            "(without them)"
            + ("" if tui_missing is None else f"; dashboard not run: {tui_missing}"),
        )
    ]

"""Drain: pre-filled no-op jobs run by `jobq work -c N --burst`, against huey and SQLite's floor."""

from __future__ import annotations

import os
import sqlite3
import time

import floor
import peers_huey
from common import Config, Row, alternate, paired_ratio, run_burst, stat, work_available, workdir

import jobq


# The triggers that write lifecycle events (schema 3): dropped to measure a drain without them.
EVENT_TRIGGERS = ("events_created", "events_started", "events_cancelled", "events_retried",
                  "events_succeeded", "events_ended")  # fmt: skip


def prefill(path: str, n: int, events: bool = True) -> None:
    with jobq.Queue(path) as q:
        q.enqueue_many([("noop", {"i": i}) for i in range(n)])
    if not events:
        conn = sqlite3.connect(path)
        for name in EVENT_TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")  # constant names
        conn.close()


def in_file_span(path: str, n: int) -> float:
    """Seconds from the first job's start to the last job's end, as the file records them."""
    conn = sqlite3.connect(path)
    row = conn.execute(
        "SELECT count(*), min(started_at), max(finished_at) FROM jobs WHERE state = 'succeeded'"
    ).fetchone()
    conn.close()
    if row[0] != n:
        raise RuntimeError(f"only {row[0]} of {n} jobs succeeded")
    return float(row[2] - row[1])


class JobqDrain:
    """One `--burst` drain per call, plus an empty-queue run for the start-up cost."""

    def __init__(
        self, wd: str, n: int, concurrency: int, events: bool = True, startup: bool = True
    ) -> None:
        self.wd, self.n, self.c = wd, n, concurrency
        self.events, self.measure_startup = events, startup
        self.wall: list[float] = []
        self.startup: list[float] = []
        self.span: list[float] = []

    def __call__(self) -> float:
        path = os.path.join(self.wd, f"drain-{time.monotonic_ns()}.db")
        prefill(path, self.n, self.events)
        wall = run_burst(path, self.c, self.wd)
        self.span.append(self.n / in_file_span(path, self.n))
        self.wall.append(self.n / wall)
        if not self.measure_startup:
            return self.span[-1]
        empty = os.path.join(self.wd, f"empty-{time.monotonic_ns()}.db")
        jobq.Queue(empty).close()
        startup = run_burst(empty, self.c, self.wd)
        self.startup.append(startup)
        return self.span[-1]


def run(cfg: Config) -> list[Row]:
    work_available()
    n = cfg.pick(5000, 20_000)
    repeats = cfg.pick(2, 3)
    with workdir(cfg, "drain") as wd:
        jd = JobqDrain(wd, n, 4)
        off = JobqDrain(wd, n, 4, events=False, startup=False)
        subjects = {"jobq": jd, "floor": lambda: floor.claim_complete(wd, n, "NORMAL"),
                    "no events": off}  # fmt: skip
        huey_missing = peers_huey.available()
        if huey_missing is None:

            def huey() -> float:
                sub = os.path.join(wd, f"huey-{time.monotonic_ns()}")
                os.mkdir(sub)
                return peers_huey.drain(sub, n, 4)

            subjects["huey"] = huey
        r = alternate(subjects, repeats)
        scaling = {}
        for c in (1, 2, 4, 8):
            sd = JobqDrain(wd, cfg.pick(3000, 10_000), c)
            for _ in range(cfg.pick(1, 2)):
                sd()
            scaling[c] = sd
    span, wall, startup = stat(jd.span), stat(jd.wall), stat(jd.startup)
    # spawn→exit minus the empty-queue run: too noisy per round when the drain is shorter than
    # the start-up, so from the medians, and only when that leaves something
    rest = n / wall["median"] - startup["median"]
    minus = f"; spawn→exit minus start-up {n / rest:,.0f} jobs/s" if rest > 0.05 else ""
    rows = [
        Row(
            "drain, work -c 4, first start→last end (excl. start-up)",
            span,
            "jobs/s",
            "SQLite 1-at-a-time claim+complete, 1 proc",
            stat(r["floor"]),
            paired_ratio(jd.span, r["floor"]),
            "≥ 10k jobs/s",
            met=span["median"] >= 10_000,
            note=f"{n:,} no-op jobs × {repeats}, times from the file's started_at/finished_at"
            + minus,
        ),
        Row(
            "drain, work -c 4, spawn→exit (incl. start-up)",
            wall,
            "jobs/s",
            "huey, fork→n-th completion",
            stat(r["huey"]) if huey_missing is None else None,
            paired_ratio(jd.wall, r["huey"]) if huey_missing is None else None,
            note=f"empty-queue `--burst` run (interpreter + pool start-up) "
            f"{startup['median']:.2f} s ({startup['min']:.2f}–{startup['max']:.2f})",
        ),
    ]
    events_ratio = paired_ratio(jd.span, off.span)
    rows.append(
        Row(
            "drain -c 4 with lifecycle events, first start→last end",
            span,
            "jobs/s",
            "the same drain, event triggers dropped",
            stat(off.span),
            events_ratio,
            "≥ 0.95×",
            met=events_ratio is not None and events_ratio >= 0.95,
            note="rounds alternate; the ratio is the median of the per-round ratios",
        )
    )
    if huey_missing is None:
        ratio = paired_ratio(jd.span, r["huey"])
        rows.append(
            Row(
                "drain vs huey (4 process workers), excl. start-up",
                span,
                "jobs/s",
                "huey consumer, 4 processes",
                stat(r["huey"]),
                ratio,
                "≥ 3× huey",
                met=ratio is not None and ratio >= 3.0,
                note="huey timed from forking its consumer (already imported) to the n-th "
                "SIGNAL_COMPLETE",
            )
        )
    else:
        rows.append(Row("drain vs huey", None, "jobs/s", note=f"skipped: {huey_missing}"))
    base = scaling[1]
    for c, sd in scaling.items():
        rows.append(
            Row(
                f"drain -c {c}, first start→last end",
                stat(sd.span),
                "jobs/s",
                "-c 1" if c != 1 else "",
                stat(base.span) if c != 1 else None,
                paired_ratio(sd.span, base.span) if c != 1 else None,
                note=f"{sd.n:,} jobs; empty-queue start-up {stat(sd.startup)['median']:.2f} s",
            )
        )
    return rows

"""The dashboard on 1,000,000 jobs: first paint, refresh, RSS and key presses, measured by the
dashboard's own `python -m bench.tui_bench` (its file is built once and cached in the temp dir),
then the same on PostgreSQL (`--backend postgresql`: the same mix of jobs in a database of the
bench's own server), one after the other in the same run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from common import ROOT, Config, Row, Skip, child_env, stat

# a line of tui_bench's report: "  first paint (s)      0.4   goal <= 1.0: ok"
LINE = re.compile(r"^\s+(?P<name>\S.*?)\s{2,}(?P<value>-?[\d.]+)(?:\s+goal <= (?P<goal>[\d.]+))?")
GOALS = {  # tui_bench's name -> (label, unit, scale to unit)
    "first paint (s)": ("TUI first paint", "ms", 1000.0),
    "refresh median (ms)": ("TUI refresh, median", "ms", 1.0),
    "RSS peak (MiB)": ("TUI RSS peak", "MiB", 1.0),
    "key press p95 (ms)": ("TUI key press p95, 4 workers draining", "ms", 1.0),
}


def run(cfg: Config) -> list[Row]:
    if not os.path.exists(os.path.join(ROOT, "bench", "tui_bench.py")):
        raise Skip("bench/tui_bench.py not written yet")
    jobs = cfg.pick(200_000, 1_000_000)
    rows = _rows(jobs, "sqlite", "")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return rows  # the PostgreSQL part needs the bench extra; the SQLite rows stand alone
    return rows + _rows(jobs, "postgresql", " (PostgreSQL)")


def _rows(jobs: int, backend: str, suffix: str) -> list[Row]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.tui_bench", "--jobs", str(jobs), "--backend", backend],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tui_bench exited {proc.returncode}: {proc.stderr[-400:]}")
    figures = {}
    for line in proc.stdout.splitlines():
        m = LINE.match(line)
        if m:
            figures[m["name"]] = (float(m["value"]), m["goal"] and float(m["goal"]))
    rows = []
    for key, (label, unit, scale) in GOALS.items():
        if key not in figures:
            continue
        value, goal = figures[key]
        rows.append(
            Row(
                f"{label}, {jobs:,} jobs{suffix}",
                stat([value * scale]),
                unit,
                goal=f"≤ {goal * scale:g} {unit}" if goal else "",
                met=value <= goal if goal else None,
                extra={"tui_bench": {k: v for k, (v, _g) in figures.items()}},
            )
        )
    if not rows:
        raise RuntimeError(f"tui_bench printed none of {sorted(GOALS)}:\n{proc.stdout[-600:]}")
    return rows

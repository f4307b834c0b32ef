"""The dashboard on 1,000,000 jobs: first paint, refresh, RSS, measured by tui/bench.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from common import ROOT, Config, Row, Skip, child_env, stat, workdir
from scale import add_history

import jobq

GOALS = {  # key in tui/bench.py's JSON -> (label, unit, limit)
    "first_paint_ms": ("TUI first paint", "ms", 1000.0),
    "refresh_ms": ("TUI refresh", "ms", 50.0),
    "rss_mib": ("TUI RSS", "MiB", 200.0),
}


def run(cfg: Config) -> list[Row]:
    script = os.path.join(ROOT, "tui", "bench.py")
    if not os.path.exists(script):
        raise Skip("tui/bench.py not written yet")
    jobs = cfg.pick(200_000, 1_000_000)
    with workdir(cfg, "tui") as wd:
        db = os.path.join(wd, "tui.db")
        jobq.Queue(db).close()
        add_history(db, jobs)
        proc = subprocess.run(
            [sys.executable, script, "--db", db, "--json"],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"tui/bench.py exited {proc.returncode}: {proc.stderr[-400:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = []
    for key, (label, unit, limit) in GOALS.items():
        if key in result:
            v = float(result[key])
            rows.append(
                Row(
                    f"{label}, {jobs:,} jobs",
                    stat([v]),
                    unit,
                    goal=f"≤ {limit:g} {unit}",
                    met=v <= limit,
                    extra=result,
                )
            )
    if not rows:
        raise RuntimeError(f"tui/bench.py printed none of {sorted(GOALS)}: {result}")
    return rows

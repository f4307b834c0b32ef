"""Command handlers: `jobq work -c 4 --burst --exec t=/bin/true` against `xargs -P 4`.

Both run the same tiny command once per job, four at a time. jobq's rate is from the file (first
`started_at` to last `finished_at`: start-up excluded); xargs's is its process wall (its start-up
is a few milliseconds). jobq runs as a user runs it: the installed console script on compiled
bytecode (run.py compiles the package first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from common import (
    Config,
    Row,
    Skip,
    alternate,
    child_env,
    jobq_cmd,
    paired_ratio,
    stat,
    work_available,
    workdir,
)
from drain import in_file_span

import jobq

COMMAND = "/bin/true"
GOAL = 0.7


def prefill(path: str, n: int) -> None:
    with jobq.Queue(path) as q:
        q.enqueue_many([("t", {"i": i}) for i in range(n)])


class JobqCommands:
    """One `--burst` drain of n command jobs per call; also keeps its spawn→exit rate."""

    def __init__(self, wd: str, n: int) -> None:
        self.wd, self.n = wd, n
        self.wall: list[float] = []

    def __call__(self) -> float:
        path = os.path.join(self.wd, f"cmd-{time.monotonic_ns()}.db")
        prefill(path, self.n)
        argv = [*jobq_cmd(), "--db", path, "work", "-c", "4", "--burst", "--exec", f"t={COMMAND}"]
        t0 = time.monotonic()
        proc = subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"jobq work exited {proc.returncode}: {proc.stderr[-500:]}")
        self.wall.append(self.n / wall)
        return self.n / in_file_span(path, self.n)


def xargs(n: int) -> float:
    """Jobs/s of `xargs -P4 -n1 COMMAND` over n lines."""
    lines = "".join(f"{i}\n" for i in range(n))
    t0 = time.monotonic()
    subprocess.run(["xargs", "-P4", "-n1", COMMAND], input=lines, text=True, check=True)
    return n / (time.monotonic() - t0)


def run(cfg: Config) -> list[Row]:
    work_available()
    if shutil.which("xargs") is None or not os.access(COMMAND, os.X_OK):
        raise Skip(f"needs xargs and {COMMAND}")
    n = cfg.pick(1000, 3000)
    repeats = max(cfg.repeats, 3)
    with workdir(cfg, "commands") as wd:
        jc = JobqCommands(wd, n)
        r = alternate({"jobq": jc, "xargs": lambda: xargs(n)}, repeats)
    ratio = paired_ratio(r["jobq"], r["xargs"])
    return [
        Row(
            f"command handlers: {n:,} × `{COMMAND}`, work -c 4 (excl. start-up)",
            stat(r["jobq"]),
            "jobs/s",
            "xargs -P 4",
            stat(r["xargs"]),
            ratio,
            f"≥ {GOAL}× xargs -P 4",
            met=ratio is not None and ratio >= GOAL,
            note=f"first start→last end from the file; spawn→exit incl. start-up "
            f"{stat(jc.wall)['median']:,.0f} jobs/s; × {repeats}, alternating",
        )
    ]

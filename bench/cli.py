"""CLI start-up: each everyday command's process wall against a bare `python -c` with sqlite3
running the same query on the same file (its floor), alternating, in the same run.

jobq runs as a user runs it: the installed console script on compiled bytecode (run.py compiles
the package first). The file holds 1,000 jobs, a few failed and cancelled.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

from common import (
    Config,
    Row,
    alternate,
    child_env,
    cli_available,
    jobq_cmd,
    paired_ratio,
    stat,
    workdir,
)

import jobq

GOAL = 2.0
HELP_GOAL = 2.5

# The floors: what each command does, by hand (one connection, the same statement).
FLOOR_READ = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA busy_timeout = 30000")
sys.stdout.write("\\n".join(map(repr, c.execute(sys.argv[2]).fetchall())) + "\\n")
"""
FLOOR_WRITE = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA busy_timeout = 30000"); c.execute("PRAGMA synchronous = FULL")
c.execute("BEGIN IMMEDIATE"); c.execute(sys.argv[2]); c.execute("COMMIT")
"""
FLOOR_HELP = """
import sqlite3, sys
sys.stdout.write("Usage: jobq [OPTIONS] COMMAND [ARGS]...\\n" * 30)
"""

LS = "SELECT * FROM jobs ORDER BY id DESC LIMIT 50"
SHOW = "SELECT * FROM jobs WHERE id = 1 UNION ALL SELECT * FROM jobs WHERE id = 1"
STATS = "SELECT state, queue, type, count(*) FROM jobs GROUP BY state, queue, type"
WAIT = "SELECT id, state FROM jobs WHERE id IN (1, 2)"


# CPU time (user+sys, ms) of every measured run, by argv: on a loaded 2-core machine the wall
# time is mostly waiting for a core, and the CPU ratio says what each process itself costs
CPU_MS: dict[tuple[str, ...], list[float]] = {}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * 1000


def _run(argv: list[str]) -> float:
    c0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=child_env(), capture_output=True)
    dt = time.perf_counter() - t0
    CPU_MS.setdefault(tuple(argv), []).append(_children_cpu() - c0)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {proc.stderr[-300:]!r}")
    return dt * 1000


def prepare(path: str) -> tuple[int, int]:
    """A file with 1,000 jobs: two finished ones to wait for, one to cancel and retry."""
    with jobq.Queue(path) as q:
        ids = q.enqueue_many([("t", {"i": i, "text": "x" * 40}) for i in range(1000)])
        q.cancel_many([ids[0], ids[1], ids[2]])
    return ids[0], ids[2]


def run(cfg: Config) -> list[Row]:
    cli_available("ls")
    rounds = cfg.pick(15, 40)
    rows: list[Row] = []
    with workdir(cfg, "cli") as wd:
        path = os.path.join(wd, "cli.db")
        done, target = prepare(path)
        jq = [*jobq_cmd(), "--db", path]
        py = [sys.executable, "-c"]
        cases: list[tuple[str, list[str], list[str], float]] = [
            ("ls", [*jq, "ls"], [*py, FLOOR_READ, path, LS], GOAL),
            ("show ID", [*jq, "show", str(done)], [*py, FLOOR_READ, path, SHOW], GOAL),
            ("stats", [*jq, "stats"], [*py, FLOOR_READ, path, STATS], GOAL),
            ("wait ID ID (finished)", [*jq, "wait", str(done), str(done + 1)],
             [*py, FLOOR_READ, path, WAIT], GOAL),
            ("cancel ID", [*jq, "cancel", str(target)],
             [*py, FLOOR_WRITE, path, f"UPDATE jobs SET priority = 0 WHERE id = {target}"], GOAL),
            ("retry ID", [*jq, "retry", str(target)],
             [*py, FLOOR_WRITE, path, f"UPDATE jobs SET priority = 0 WHERE id = {target}"], GOAL),
            ("--help", [*jobq_cmd(), "--help"], [*py, FLOOR_HELP], HELP_GOAL),
        ]  # fmt: skip
        # each cancel needs a pending job and each retry a cancelled one: the other command
        # puts it back before every run, unmeasured
        before = {"cancel ID": "retry", "retry ID": "cancel"}
        for name, mine, floor, goal in cases:

            def mine_fn(argv: list[str] = mine, pre: str | None = before.get(name)) -> float:
                if pre is not None:
                    subprocess.run([*jq, pre, str(target)], env=child_env(), capture_output=True)
                return _run(argv)

            CPU_MS.clear()
            r = alternate({"jobq": mine_fn, "floor": lambda argv=floor: _run(argv)}, rounds)
            ratio = paired_ratio(r["jobq"], r["floor"])
            cpu_mine, cpu_floor = CPU_MS[tuple(mine)], CPU_MS[tuple(floor)]
            cpu_ratio = paired_ratio(cpu_mine, cpu_floor)
            rows.append(
                Row(
                    f"`jobq {name}` process wall",
                    stat(r["jobq"]),
                    "ms",
                    "bare python -c + sqlite3, same query" if name != "--help"
                    else "bare python -c + sqlite3 import, printing a text",
                    stat(r["floor"]),
                    ratio,
                    f"≤ {goal:g}× floor",
                    met=ratio is not None and ratio <= goal,
                    note=f"{rounds} runs each, alternating; 1,000 jobs in the file; CPU (user+sys) "
                    f"{_ms(cpu_mine)} vs {_ms(cpu_floor)}: {cpu_ratio or 0:.2f}×",
                    extra={"cpu_ms": cpu_mine, "floor_cpu_ms": cpu_floor, "cpu_ratio": cpu_ratio},
                )
            )
    return rows


def _ms(values: list[float]) -> str:
    return f"{stat(values).get('median', 0.0):.1f} ms"

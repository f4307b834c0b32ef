"""Enqueue: one durable job per call, bulk (API and `--ndjson`), and `jobq enqueue` start-up."""

from __future__ import annotations

import json
import os
import subprocess
import time

import floor
import peers_huey
from common import (
    Config,
    Row,
    Skip,
    alternate,
    child_env,
    cli_available,
    jobq_cmd,
    paired_ratio,
    percentile,
    stat,
    workdir,
)

import jobq


def _jobq_single(wd: str, n: int) -> float:
    path = os.path.join(wd, f"single-{time.monotonic_ns()}.db")
    with jobq.Queue(path) as q:
        q.enqueue("noop", {"i": -1})  # warm-up: file creation and connection outside the timing
        t0 = time.perf_counter()
        for i in range(n):
            q.enqueue("noop", {"i": i})
        return n / (time.perf_counter() - t0)


def _huey_single(wd: str, n: int) -> float:
    sub = os.path.join(wd, f"huey-{time.monotonic_ns()}")
    os.mkdir(sub)
    prod = peers_huey.Producer(sub)
    prod.enqueue("noop", {"i": -1})
    t0 = time.perf_counter()
    for i in range(n):
        prod.enqueue("noop", {"i": i})
    dt = time.perf_counter() - t0
    prod.close()
    return n / dt


def single(cfg: Config) -> list[Row]:
    n = cfg.pick(400, 2000)
    with workdir(cfg, "enqueue") as wd:
        subjects = {
            "jobq": lambda: _jobq_single(wd, n),
            "floor": lambda: floor.single_inserts(wd, n, "FULL"),
        }
        huey_missing = peers_huey.available()
        if huey_missing is None:
            subjects["huey"] = lambda: _huey_single(wd, n)
        r = alternate(subjects, cfg.repeats)
        normal = [floor.single_inserts(wd, n * 4, "NORMAL")]
    rows = [
        Row(
            "durable enqueue, 1 job/call",
            stat(r["jobq"]),
            "jobs/s",
            "SQLite FULL 1-row autocommit INSERT",
            stat(r["floor"]),
            paired_ratio(r["jobq"], r["floor"]),
            "≥ 0.8× floor",
            note=f"{n} calls × {cfg.repeats}; SQLite NORMAL floor {normal[0]:,.0f} rows/s",
        ),
    ]
    rows[0].met = rows[0].ratio is not None and rows[0].ratio >= 0.8
    if huey_missing is None:
        ratio = paired_ratio(r["jobq"], r["huey"])
        rows.append(
            Row(
                "durable enqueue vs huey",
                stat(r["jobq"]),
                "jobs/s",
                "huey SqliteHuey task()",
                stat(r["huey"]),
                ratio,
                "≥ 1.3× huey",
                met=ratio is not None and ratio >= 1.3,
                # huey also commits once per call with FULL: no such enqueue beats the floor
                note=f"ceiling for one fsync per call: floor/huey "
                f"{paired_ratio(r['floor'], r['huey']):.2f}×",
            )
        )
    else:
        rows.append(Row("durable enqueue vs huey", None, "jobs/s", note=f"skipped: {huey_missing}"))
    return rows


def _jobq_many(wd: str, n: int) -> float:
    path = os.path.join(wd, f"many-{time.monotonic_ns()}.db")
    with jobq.Queue(path) as q:
        q.enqueue("noop", {"i": -1})
        jobs = [("noop", {"i": i}) for i in range(n)]
        t0 = time.perf_counter()
        ids = q.enqueue_many(jobs)
        dt = time.perf_counter() - t0
    assert len(ids) == n
    return n / dt


def _ndjson(wd: str, n: int, text: str) -> float:
    path = os.path.join(wd, f"ndjson-{time.monotonic_ns()}.db")
    jobq.Queue(path).close()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*jobq_cmd(), "--db", path, "enqueue", "--ndjson", "-"],
        input=text,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    dt = time.perf_counter() - t0
    if proc.returncode != 0 or len(proc.stdout.split()) != n:
        raise RuntimeError(f"enqueue --ndjson exited {proc.returncode}: {proc.stderr[-300:]}")
    return n / dt


def bulk(cfg: Config) -> list[Row]:
    n = cfg.pick(50_000, 200_000)
    text = "".join(json.dumps({"type": "noop", "payload": {"i": i}}) + "\n" for i in range(n))
    try:
        cli_available("enqueue")
        cli_skip = None
    except Skip as e:
        cli_skip = str(e)
    with workdir(cfg, "bulk") as wd:
        subjects = {
            "jobq": lambda: _jobq_many(wd, n),
            "floor": lambda: floor.batch_inserts(wd, n, 1000, "FULL"),
        }
        if cli_skip is None:
            subjects["ndjson"] = lambda: _ndjson(wd, n, text)
        r = alternate(subjects, cfg.repeats)
    base = stat(r["floor"])
    name = "SQLite executemany, 1,000 rows/txn"
    out = [
        Row(
            "enqueue_many",
            stat(r["jobq"]),
            "jobs/s",
            name,
            base,
            paired_ratio(r["jobq"], r["floor"]),
            "≥ 200k jobs/s",
            met=stat(r["jobq"])["median"] >= 200_000,
            note=f"{n:,} jobs in one call",
        )
    ]
    if cli_skip is None:
        s = stat(r["ndjson"])
        out.append(
            Row(
                "jobq enqueue --ndjson -",
                s,
                "jobs/s",
                name,
                base,
                paired_ratio(r["ndjson"], r["floor"]),
                "≥ 200k jobs/s",
                met=s["median"] >= 200_000,
                note=f"{n:,} lines; process wall incl. start-up",
            )
        )
    else:
        out.append(Row("jobq enqueue --ndjson -", None, "jobs/s", note=f"skipped: {cli_skip}"))
    return out


def process_wall(cfg: Config) -> list[Row]:
    """`jobq enqueue` wall time vs a bare `python -c` doing the same durable insert."""
    try:
        cli_available("enqueue")
    except Skip as e:
        return [Row("jobq enqueue process wall", None, "ms", note=f"skipped: {e}")]
    runs = 30 if cfg.quick else 60
    env = child_env()
    with workdir(cfg, "wall") as wd:
        db = os.path.join(wd, "wall.db")
        jobq.Queue(db).close()
        argv_jobq = [*jobq_cmd(), "--db", db, "enqueue", "noop", "--payload", '{"i": 1}']
        argv_bare = floor.bare_insert_script(db)

        def timed(argv: list[str]) -> float:
            t0 = time.perf_counter()
            proc = subprocess.run(argv, env=env, capture_output=True)
            dt = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-300:]!r}")
            return dt * 1000

        timed(argv_jobq), timed(argv_bare)  # warm the page cache
        r = alternate({"jobq": lambda: timed(argv_jobq), "bare": lambda: timed(argv_bare)}, runs)
    ratio = paired_ratio(r["jobq"], r["bare"])
    return [
        Row(
            "jobq enqueue process wall",
            stat(r["jobq"]),
            "ms",
            "bare python -c + sqlite3 INSERT (FULL)",
            stat(r["bare"]),
            ratio,
            "≤ 2× bare",
            met=ratio is not None and ratio <= 2.0,
            note=f"{runs} runs each, alternating; p90 jobq {percentile(r['jobq'], 90):.0f} ms",
            extra={"command": " ".join(argv_jobq[:1])},
        )
    ]


def run(cfg: Config) -> list[Row]:
    return single(cfg) + bulk(cfg) + process_wall(cfg)

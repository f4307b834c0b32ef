"""PostgreSQL enqueue: one durable job per call (jobq, the bare psycopg floor, pgqueuer,
procrastinate), bulk `jobq enqueue --ndjson` against COPY, and `jobq enqueue`'s process wall."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import peers_pgqueuer
import peers_procrastinate
import pg_common
import pg_floor
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
)

import jobq

PEERS: dict[str, Any] = {"pgqueuer": peers_pgqueuer, "procrastinate": peers_procrastinate}
# (quick, full); tests/test_bench_pg.py shrinks them
SIZES = {"single": (300, 1000), "bulk": (50_000, 200_000), "process_runs": (30, 60)}


# where each subject's jobs land: every round checks that all of its calls did
TABLES = {
    "jobq": "jobq.jobs",
    "floor": "floor_jobs",
    "floortx": "floor_jobs",
    "pgqueuer": "pgqueuer",
    "procrastinate": "procrastinate_jobs",
}


def counted(name: str, dbname: str, n: int, fn: Callable[[], float]) -> Callable[[], float]:
    """fn, checked to have added n + 1 rows (the calls and the warm-up) to its table."""

    def count() -> int:
        try:
            with pg_common.connect(dbname) as c:
                return int(c.execute(f"SELECT count(*) FROM {TABLES[name]}").fetchone()[0])
        except Exception:  # the table does not exist before the first round
            return 0

    def one() -> float:
        before = count()
        rate = fn()
        added = count() - before
        if added != n + 1:
            raise RuntimeError(f"{name}: {added} rows enqueued for {n + 1} calls")
        return rate

    return one


def _jobq_single(dbname: str, n: int) -> float:
    with jobq.Queue(pg_common.url(dbname)) as q:
        q.enqueue("noop", {"i": -1})  # warm-up: schema check and connection outside the timing
        t0 = time.perf_counter()
        for i in range(n):
            q.enqueue("noop", {"i": i})
        return n / (time.perf_counter() - t0)


def _peer_single(mod: Any, dbname: str, n: int) -> float:
    prod = mod.Producer(dbname)
    try:
        prod.enqueue("noop", {"i": -1})
        t0 = time.perf_counter()
        for i in range(n):
            prod.enqueue("noop", {"i": i})
        return n / (time.perf_counter() - t0)
    finally:
        prod.close()


def _jobq_missing() -> str | None:
    try:
        cli_available("enqueue")
    except Skip as e:
        return str(e)
    return pg_common.jobq_pg_missing()


def single(cfg: Config, jobq_skip: str | None) -> list[Row]:
    n = cfg.pick(*SIZES["single"])
    dbs = {name: pg_common.create_db(name.replace("-", "")) for name in
           ("jobq", "floor", "floortx", *PEERS)}  # fmt: skip
    try:
        subjects: dict[str, Callable[[], float]] = {
            "floor": lambda: pg_floor.single_inserts(dbs["floor"], n),
            "floortx": lambda: pg_floor.single_inserts(dbs["floortx"], n, explicit=True),
        }
        if jobq_skip is None:
            jobq.Queue(pg_common.url(dbs["jobq"])).close()
            subjects["jobq"] = lambda: _jobq_single(dbs["jobq"], n)
        skipped = {}
        for name, mod in PEERS.items():
            missing = mod.available()
            if missing:
                skipped[name] = missing
                continue
            mod.install(dbs[name])
            subjects[name] = lambda mod=mod, name=name: _peer_single(mod, dbs[name], n)
        subjects = {name: counted(name, dbs[name], n, fn) for name, fn in subjects.items()}
        r = alternate(subjects, cfg.repeats)
    finally:
        for db in dbs.values():
            pg_common.drop_db(db)
    tx = stat(r["floortx"])
    note = (
        f"{n} calls × {cfg.repeats}; floor = autocommit 1-row INSERT (one round trip, one "
        f"commit); BEGIN+INSERT+COMMIT {tx['median']:,.0f} rows/s; {pg_common.facts_note()}"
    )
    rows: list[Row] = []
    if jobq_skip is None:
        ratio = paired_ratio(r["jobq"], r["floor"])
        rows.append(
            Row(
                "PG durable enqueue, Queue.enqueue 1 job/call",
                stat(r["jobq"]),
                "jobs/s",
                "psycopg 1-row INSERT, autocommit",
                stat(r["floor"]),
                ratio,
                "≥ 0.8× floor",
                met=ratio is not None and ratio >= 0.8,
                note=note
                + f"; vs BEGIN+INSERT+COMMIT {paired_ratio(r['jobq'], r['floortx']):.2f}×",
            )
        )
    else:
        fl = stat(r["floor"])
        rows.append(
            Row(
                "PG durable enqueue",
                None,
                "jobs/s",
                note=f"skipped: {jobq_skip}; floor {fl['median']:,.0f} rows/s; {note}",
            )
        )
    for name, mod in PEERS.items():
        if name in skipped:
            rows.append(
                Row(f"PG enqueue vs {name}", None, "jobs/s", note=f"skipped: {skipped[name]}")
            )
            continue
        label = f"{name} {mod.version()} " + (
            "Queries.enqueue" if name == "pgqueuer" else "task.defer"
        )
        if jobq_skip is None:
            rows.append(
                Row(
                    f"PG durable enqueue vs {name}",
                    stat(r["jobq"]),
                    "jobs/s",
                    label,
                    stat(r[name]),
                    paired_ratio(r["jobq"], r[name]),
                    note=f"{name}/floor {paired_ratio(r[name], r['floor']):.2f}×",
                )
            )
        else:
            ps = stat(r[name])
            rows.append(
                Row(
                    f"PG durable enqueue vs {name}",
                    None,
                    "jobs/s",
                    note=f"jobq skipped; {label} {ps['median']:,.0f} jobs/s "
                    f"({paired_ratio(r[name], r['floor']):.2f}× the floor)",
                )
            )
    rows[0].extra.update(calls=n, medians={k: stat(v)["median"] for k, v in r.items()})
    return rows


def _ndjson(dbname: str, n: int, text: str) -> float:
    loc = pg_common.url(dbname)
    jobq.Queue(loc).close()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*jobq_cmd(), "--db", loc, "enqueue", "--ndjson", "-"],
        input=text,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    dt = time.perf_counter() - t0
    if proc.returncode != 0 or len(proc.stdout.split()) != n:
        raise RuntimeError(f"enqueue --ndjson exited {proc.returncode}: {proc.stderr[-300:]}")
    return n / dt


def _jobq_many(dbname: str, n: int) -> float:
    with jobq.Queue(pg_common.url(dbname)) as q:
        q.enqueue("noop", {"i": -1})
        jobs = [("noop", {"i": i}) for i in range(n)]
        t0 = time.perf_counter()
        ids = q.enqueue_many(jobs)
        dt = time.perf_counter() - t0
    if len(ids) != n:
        raise RuntimeError(f"enqueue_many returned {len(ids)} ids for {n} jobs")
    return n / dt


def _fresh(tag: str, fn: Callable[[str], float]) -> Callable[[], float]:
    def one() -> float:
        with pg_common.database(tag) as db:
            return fn(db)

    return one


def bulk(cfg: Config, jobq_skip: str | None) -> list[Row]:
    n = cfg.pick(*SIZES["bulk"])
    text = "".join(json.dumps({"type": "noop", "payload": {"i": i}}) + "\n" for i in range(n))
    subjects = {"copy": _fresh("copy", lambda db: pg_floor.copy_rows(db, n))}
    if jobq_skip is None:
        subjects["ndjson"] = _fresh("ndjson", lambda db: _ndjson(db, n, text))
        subjects["many"] = _fresh("many", lambda db: _jobq_many(db, n))
    r = alternate(subjects, cfg.repeats)
    base = stat(r["copy"])
    extra = {"jobs": n, "medians": {k: stat(v)["median"] for k, v in r.items()}}
    if jobq_skip is not None:
        return [
            Row(
                "PG jobq enqueue --ndjson -",
                None,
                "jobs/s",
                note=f"skipped: {jobq_skip}; COPY floor {base['median']:,.0f} rows/s",
                extra=extra,
            )
        ]
    s = stat(r["ndjson"])
    return [
        Row(
            "PG jobq enqueue --ndjson -",
            s,
            "jobs/s",
            "psycopg COPY, 1 transaction",
            base,
            paired_ratio(r["ndjson"], r["copy"]),
            "≥ 100k jobs/s",
            met=s["median"] >= 100_000,
            note=f"{n:,} lines; process wall incl. start-up",
            extra=extra,
        ),
        Row(
            "PG enqueue_many",
            stat(r["many"]),
            "jobs/s",
            "psycopg COPY, 1 transaction",
            base,
            paired_ratio(r["many"], r["copy"]),
            note=f"{n:,} jobs in one call",
        ),
    ]


def process_wall(cfg: Config, jobq_skip: str | None) -> list[Row]:
    """`jobq enqueue` wall time vs a bare `python -c` doing a psycopg insert + commit."""
    if jobq_skip is not None:
        return [Row("PG jobq enqueue process wall", None, "ms", note=f"skipped: {jobq_skip}")]
    runs = cfg.pick(*SIZES["process_runs"])
    env = child_env()
    with pg_common.database("wall") as db:
        loc = pg_common.url(db)
        jobq.Queue(loc).close()
        pg_floor.create(db)
        argv_jobq = [*jobq_cmd(), "--db", loc, "enqueue", "noop", "--payload", '{"i": 1}']
        argv_bare = pg_floor.bare_insert_argv(db)

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
            "PG jobq enqueue process wall",
            stat(r["jobq"]),
            "ms",
            "bare python -c + psycopg INSERT+COMMIT",
            stat(r["bare"]),
            ratio,
            note=f"{runs} runs each, alternating; p90 jobq {percentile(r['jobq'], 90):.0f} ms; "
            "no PostgreSQL goal in issue 12 (SQLite's is ≤ 2× bare)",
        )
    ]


def run(cfg: Config) -> list[Row]:
    pg_common.server()
    jobq_skip = _jobq_missing()
    return single(cfg, jobq_skip) + bulk(cfg, jobq_skip) + process_wall(cfg, jobq_skip)

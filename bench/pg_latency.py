"""PostgreSQL enqueue→start latency on idle workers, measured as latency.py does for SQLite (a
`stamp` job every 50 ms after 2 s idle, full run also after 60 s idle; the handler subtracts the
producer's CLOCK_MONOTONIC from its own), for jobq `work -c 4`, pgqueuer and procrastinate with
4 worker processes each, one after the other on the same server; and each pool's idle CPU."""

from __future__ import annotations

import os
from typing import Any

import peers_pgqueuer
import peers_procrastinate
import pg_common
from common import (
    Config,
    Row,
    Skip,
    percentile,
    start_pool,
    stat,
    stop_pool,
    work_available,
    workdir,
)
from latency import ms, session

import jobq

PEERS: dict[str, Any] = {"pgqueuer": peers_pgqueuer, "procrastinate": peers_procrastinate}
GOALS = {"median": 5.0, "p99": 20.0}


def jobq_session(cfg: Config, wd: str) -> dict[str, Any]:
    outdir = os.path.join(wd, "jobq-stamps")
    os.mkdir(outdir)
    with pg_common.database("latjobq") as db:
        loc = pg_common.url(db)
        q = jobq.Queue(loc)
        pool = start_pool(loc, 4, log=os.path.join(wd, "pool.log"))
        try:
            return session(cfg, outdir, lambda p: q.enqueue("stamp", p), pool.pid)
        finally:
            stop_pool(pool)
            q.close()


def peer_session(cfg: Config, wd: str, name: str) -> dict[str, Any]:
    mod = PEERS[name]
    outdir = os.path.join(wd, f"{name}-stamps")
    os.mkdir(outdir)
    with pg_common.database(f"lat{name}") as db:
        mod.install(db)
        root = mod.start_consumer(db, 4)
        try:
            prod = mod.Producer(db)
            try:
                assert root.pid is not None
                return session(cfg, outdir, lambda p: prod.enqueue("stamp", p), root.pid)
            finally:
                prod.close()
        finally:
            pg_common.stop_group(root)


def run(cfg: Config) -> list[Row]:
    pg_common.server()
    note_pg = pg_common.facts_note()
    try:
        work_available()
        jobq_skip = pg_common.jobq_pg_missing(pool=True)
    except Skip as e:
        jobq_skip = str(e)
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    with workdir(cfg, "pglatency") as wd:
        if jobq_skip is None:
            results["jobq"] = jobq_session(cfg, wd)
        for name, mod in PEERS.items():
            missing = mod.available()
            if missing:
                skipped[name] = missing
            else:
                results[name] = peer_session(cfg, wd, name)
    rows: list[Row] = []
    peers = [n for n in PEERS if n in results]
    for key, label in (("after_2s", "after 2 s idle"), ("after_60s", "after 60 s idle")):
        if key not in next(iter(results.values()), {}):
            rows.append(
                Row(f"PG enqueue→start {label}", None, "ms", note="skipped: full mode only")
            )
            continue
        lat = {n: ms(results[n][key]["latency"]) for n in results}
        for pname, p in (("median", 50), ("p99", 99)):
            theirs = {n: percentile(lat[n], p) for n in peers}
            peer_text = ", ".join(f"{n} {v:.2f} ms" for n, v in theirs.items())
            if "jobq" not in results:
                rows.append(
                    Row(
                        f"PG enqueue→start latency {label}, {pname}",
                        None,
                        "ms",
                        note=f"jobq skipped: {jobq_skip}; {peer_text}",
                        extra={"latency_ms": lat},
                    )
                )
                continue
            mine = percentile(lat["jobq"], p)
            call = ms(results["jobq"][key]["enqueue_call"])
            after = [x - c for x, c in zip(lat["jobq"], call, strict=True)]
            first = peers[0] if peers else None
            rows.append(
                Row(
                    f"PG enqueue→start latency {label}, {pname}",
                    stat([mine]),
                    "ms",
                    f"{first}, 4 processes" if first else "",
                    stat([theirs[first]]) if first else None,
                    mine / theirs[first] if first and theirs[first] else None,
                    f"≤ {GOALS[pname]:g} ms",
                    met=mine <= GOALS[pname],
                    note=f"{len(lat['jobq'])} jobs at 20/s; {pname} of jobq's enqueue call "
                    f"itself (its fsync) {percentile(call, p):.2f} ms, of start after the call "
                    f"returned {percentile(after, p):.2f} ms; peers: {peer_text or 'none'}; "
                    f"{note_pg}",
                    extra={"latency_ms": lat},
                )
            )
    cpu = {n: r["idle_cpu_pct"] for n, r in results.items()}
    peer_cpu = ", ".join(f"{n} {cpu[n]:.2f} %" for n in peers)
    rows.append(
        Row(
            "PG idle CPU, work -c 4 (supervisor + children)",
            stat([cpu["jobq"]]) if "jobq" in cpu else None,
            "% of a core",
            goal="≤ 1 % of a core",  # SQLite's goal: idle workers do not busy-poll (issue 12 too)
            met=cpu["jobq"] <= 1.0 if "jobq" in cpu else None,
            note=("" if "jobq" in cpu else f"jobq skipped: {jobq_skip}; ")
            + f"utime+stime from /proc; peers (4 processes): {peer_cpu or 'none'}",
        )
    )
    for name, why in skipped.items():
        rows.append(Row(f"PG latency, {name}", None, "ms", note=f"skipped: {why}"))
    return rows

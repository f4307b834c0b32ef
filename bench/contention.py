"""Lock waits: 20 processes enqueueing in loops while `work -c 4` drains, for N seconds.

Every enqueue call's latency is recorded; the baseline is the same load through bare sqlite3
(autocommit INSERT, synchronous=FULL, the same 30 s busy timeout) against the same pool. A third
run adds an exclusive `flock` on a side file around each bare insert: blocked writers then wait
in the kernel and are woken at once, instead of in SQLite's busy handler, which sleeps 1, 2, 5,
10 … 100 ms between retries and lets newcomers overtake a long waiter.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import sqlite3
import time
from array import array

from common import (
    Config,
    Row,
    percentile,
    start_pool,
    stat,
    stop_pool,
    work_available,
    workdir,
)

import jobq

LOOPS = 20
BARE_INSERT = (
    "INSERT INTO jobs (type, queue, payload, priority, state, run_at, created_at)"
    " VALUES ('noop', 'default', ?, 0, 'pending', ?, ?)"
)


def _loop(kind: str, db: str, start: float, seconds: float, out: str) -> None:
    lat = array("d")
    failures = 0
    if kind == "jobq":
        q = jobq.Queue(db)

        def call(i: int) -> None:
            q.enqueue("noop", {"i": i})
    else:
        conn = sqlite3.connect(db, isolation_level=None, timeout=30)
        conn.execute("PRAGMA synchronous = FULL")
        lock = os.open(db + ".bench-lock", os.O_RDWR | os.O_CREAT) if kind == "flock" else -1

        def call(i: int) -> None:
            t = time.time()
            if lock >= 0:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                conn.execute(BARE_INSERT, (f'{{"i": {i}}}', t, t))
            finally:
                if lock >= 0:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    time.sleep(max(0.0, start - time.monotonic()))
    i = 0
    while time.monotonic() < start + seconds:
        t0 = time.perf_counter()
        try:
            call(i)
        except (jobq.JobqError, sqlite3.Error):
            failures += 1
        lat.append(time.perf_counter() - t0)
        i += 1
    with open(out, "wb") as f:
        lat.tofile(f)
    with open(out + ".failures", "w") as f:
        f.write(str(failures))


def load(kind: str, wd: str, seconds: float) -> dict[str, float]:
    db = os.path.join(wd, f"{kind}.db")
    jobq.Queue(db).close()
    pool = start_pool(db, 4, log=os.path.join(wd, f"{kind}-pool.log"))
    ctx = multiprocessing.get_context("fork")
    start = time.monotonic() + 2.0  # every loop connected and the pool up before the clock starts
    outs = [os.path.join(wd, f"{kind}-{k}.lat") for k in range(LOOPS)]
    procs = [ctx.Process(target=_loop, args=(kind, db, start, seconds, o)) for o in outs]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(seconds + 120)
    finally:
        stop_pool(pool)
    lat: list[float] = []
    failures = sum(p.exitcode != 0 for p in procs)
    for o in outs:
        if os.path.exists(o):
            a = array("d")
            with open(o, "rb") as f:
                a.frombytes(f.read())
            lat.extend(a)
            with open(o + ".failures") as f:
                failures += int(f.read())
    ms = [x * 1000 for x in lat]
    return {
        "calls": len(ms),
        "calls_per_s": len(ms) / seconds,
        "failures": failures,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "p99_9_ms": percentile(ms, 99.9),
        "max_ms": max(ms) if ms else float("nan"),
    }


def run(cfg: Config) -> list[Row]:
    work_available()
    seconds = cfg.pick(4.0, 20.0)
    with workdir(cfg, "contention") as wd:
        j = load("jobq", wd, seconds)
        b = load("bare", wd, seconds)
        fl = load("flock", wd, seconds)
    return [
        Row(
            f"enqueue p99.9 under contention ({LOOPS} enqueue procs + work -c 4)",
            stat([j["p99_9_ms"]]),
            "ms",
            "bare sqlite3 FULL INSERT loops",
            stat([b["p99_9_ms"]]),
            j["p99_9_ms"] / b["p99_9_ms"] if b["p99_9_ms"] else None,
            "≤ 100 ms, 0 failures",
            met=j["p99_9_ms"] <= 100 and j["failures"] == 0,
            note=f"{seconds:g} s; jobq {j['calls']:,} calls, {j['failures']} failures, p50 "
            f"{j['p50_ms']:.1f} p99 {j['p99_ms']:.1f} max {j['max_ms']:.0f} ms; bare "
            f"{b['calls']:,} calls, {b['failures']} failures, max {b['max_ms']:.0f} ms",
            extra={"jobq": j, "bare": b, "bare_flock": fl},
        ),
        Row(
            "  same, bare sqlite3 with a flock around each insert",
            stat([fl["p99_9_ms"]]),
            "ms",
            "bare sqlite3 FULL INSERT loops",
            stat([b["p99_9_ms"]]),
            fl["p99_9_ms"] / b["p99_9_ms"] if b["p99_9_ms"] else None,
            note=f"{fl['calls']:,} calls, {fl['failures']} failures, p50 {fl['p50_ms']:.1f} "
            f"p99 {fl['p99_ms']:.1f} max {fl['max_ms']:.0f} ms: what a fair writer lock buys",
        ),
    ]

"""Lock waits: 20 processes enqueueing in loops while `work -c 4` drains, for N seconds.

Every enqueue call's latency is recorded. Baselines, in the same run against the same pool: jobq
with its turnstile turned off (JOBQ_TURNSTILE=0: writers wait in SQLite's busy handler, which
sleeps 1, 2, 5, 10 … 100 ms between retries and lets newcomers overtake a long waiter); the same
load through bare sqlite3 (autocommit INSERT, synchronous=FULL, the same 30 s busy timeout); and
bare sqlite3 with an exclusive `flock` on a side file around each insert (woken at once by the
kernel, but in no particular order). Also counted: the jobs the pool finished meanwhile, since a
fair lock gives the workers their turns too.
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
    if kind.startswith("jobq"):
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
    # "jobq-unfair": jobq with JOBQ_TURNSTILE=0, in the pool and in the (forked) loops alike
    saved = os.environ.get("JOBQ_TURNSTILE")
    if kind == "jobq-unfair":
        os.environ["JOBQ_TURNSTILE"] = "0"
    try:
        return _load(kind, db, wd, seconds)
    finally:
        if saved is None:
            os.environ.pop("JOBQ_TURNSTILE", None)
        else:
            os.environ["JOBQ_TURNSTILE"] = saved


def _load(kind: str, db: str, wd: str, seconds: float) -> dict[str, float]:
    pool = start_pool(db, 4, log=os.path.join(wd, f"{kind}-pool.log"))
    ctx = multiprocessing.get_context("fork")
    start = time.monotonic() + 2.0  # every loop connected and the pool up before the clock starts
    outs = [os.path.join(wd, f"{kind}-{k}.lat") for k in range(LOOPS)]
    procs = [ctx.Process(target=_loop, args=(kind, db, start, seconds, o)) for o in outs]
    try:
        for p in procs:
            p.start()
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        with jobq.Queue(db) as q:  # what the pool finished within the window, not after it
            done = q.counts().get("succeeded", 0)
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
        "pool_done_per_s": done / seconds,
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
        u = load("jobq-unfair", wd, seconds)
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
            f"{j['p50_ms']:.1f} p99 {j['p99_ms']:.1f} max {j['max_ms']:.0f} ms, pool finished "
            f"{j['pool_done_per_s']:,.0f} jobs/s; bare {b['calls']:,} calls, {b['failures']} "
            f"failures, max {b['max_ms']:.0f} ms",
            extra={"jobq": j, "jobq_unfair": u, "bare": b, "bare_flock": fl},
        ),
        Row(
            "  same, jobq with JOBQ_TURNSTILE=0",
            stat([u["p99_9_ms"]]),
            "ms",
            "jobq with the turnstile",
            stat([j["p99_9_ms"]]),
            u["p99_9_ms"] / j["p99_9_ms"] if j["p99_9_ms"] else None,
            note=f"{u['calls']:,} calls ({u['calls'] / max(j['calls'], 1):.2f}× the turnstile's), "
            f"{u['failures']} failures, p50 {u['p50_ms']:.1f} p99 {u['p99_ms']:.1f} max "
            f"{u['max_ms']:.0f} ms, pool finished {u['pool_done_per_s']:,.0f} jobs/s",
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

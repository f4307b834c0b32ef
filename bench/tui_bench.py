"""Measure the dashboard on a big queue: `python -m bench.tui_bench [--jobs N] [--file PATH]
[--backend postgresql]` (from the checkout's root; bench/run.py runs it as its `tui` part).

Goals (issue 4): first paint <= 1 s, a refresh <= 50 ms, RSS <= 200 MiB, a key press answered in
<= 100 ms while 4 workers drain the queue; and a job enqueued by another process on screen within
100 ms (median), which only the loader's wake-up path can do: its fallback timer is 2 s. Not a
test: it prints figures and the goals.

The file (1,000,000 jobs: 90 % succeeded, 5 % failed, 5 % pending by default) is built once and
cached; each run works on a copy. With `--backend postgresql` the same mix is built (in SQL:
bench/pg_tui.py) in a database of the bench's own throwaway server (bench/pg_common.py, fsync
on), for each run. This module is also the workers' `--app`: the handlers below
do nothing, so that the pool drains as fast as it can while the dashboard is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from jobq import Job, JSONValue, NewJob, Queue, handler

if TYPE_CHECKING:
    from tui.app import JobqApp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `bench.` imports

TYPES = ("email.send", "images.resize", "webhook.deliver", "report.build")


def _noop(payload: JSONValue, job: Job) -> None:
    return None


for _type in TYPES:
    handler(_type)(_noop)

# another process: enqueue one job per line read, print "<id> <monotonic time after the commit>"
# (CLOCK_MONOTONIC is shared by all processes, so the two sides' times compare)
_PRODUCER = """
import sys, time, jobq
q = jobq.Queue(sys.argv[1])
for line in sys.stdin:
    job_id = q.enqueue("bench.probe", priority="critical")
    print(job_id, time.monotonic(), flush=True)
"""


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB (Linux)."""
    now = peak = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return now, peak


def build(path: str, jobs: int) -> None:
    """Create the cached big file if it is not there yet."""
    if os.path.exists(path):
        return
    print(f"building {path} with {jobs:,} jobs (once)…", flush=True)
    t0 = time.perf_counter()
    seed_bulk(path + ".tmp", jobs)
    os.replace(path + ".tmp", path)
    print(f"  built in {time.perf_counter() - t0:.0f} s")


def seed_bulk(path: str, n: int = 1_000_000, *, batch: int = 5000) -> None:
    """A big queue for the benchmark (a file, or a postgresql:// URL): `n` jobs, ~90 %
    succeeded, the rest failed or pending."""
    # not at the top: the import figure would then leave it out
    from jobq.backend import Ending, Role, open_backend

    rng = random.Random(3)
    s = open_backend(path, Role.WORKER)
    types = ["email.send", "images.resize", "webhook.deliver", "report.build"]
    now = time.time() - n * 0.001
    try:
        done = 0
        while done < n:
            k = min(batch, n - done)
            jobs = [
                NewJob(
                    type=rng.choice(types),
                    queue=rng.choice(["mail", "images", "default"]),
                    payload_json=json.dumps({"n": done + i, "user": f"u{rng.randint(1, 9999)}"}),
                    priority=rng.choice([-10, 0, 0, 10]),
                )
                for i in range(k)
            ]
            s.enqueue(jobs, now)
            if done + k <= n * 0.9:
                claimed = s.claim("bench/1", now, 60, limit=k)
                s.complete_many([(j.id, j.lease_token or "", "true", None) for j in claimed], now)
            elif done + k <= n * 0.95:
                for j in s.claim("bench/1", now, 60, limit=k // 10):
                    s.end_attempt(
                        j.id,
                        j.lease_token or "",
                        now,
                        Ending.FAIL,
                        "ValueError: bad input",
                        traceback="Traceback…\nValueError: bad input",
                        retryable=False,
                    )
            done += k
            now += k * 0.001
    finally:
        s.close()


async def measure(path: str, with_workers: bool) -> dict[str, float]:
    """Run the app headless on `path` and time what the goals name."""
    t_import = time.perf_counter()
    from tui.app import make_app

    import_s = time.perf_counter() - t_import
    out: dict[str, float] = {"import textual+tui (s)": import_s}
    t0 = time.perf_counter()
    app = make_app(path)
    async with app.run_test(size=(160, 45)) as pilot:
        while not app.loads:
            await pilot.pause(0.002)
        await pilot.pause()
        out["first paint (s)"] = time.perf_counter() - t0
        # refresh: a forced reload, from request to the redrawn list
        times = []
        for _ in range(20):
            n = app.loads
            t = time.perf_counter()
            app.loader.refresh()
            while app.loads == n:
                await asyncio.sleep(0.005)  # not a busy loop: it would hold the GIL
            times.append((time.perf_counter() - t) * 1000)
        assert app.main.snapshot is not None
        out["refresh median (ms)"] = statistics.median(times)
        out["refresh max (ms)"] = max(times)
        out["loader queries, last (ms)"] = app.main.snapshot.load_ms
        for tab in ("4", "3", "1"):  # succeeded (900k), failed, pending
            n = app.loads
            t = time.perf_counter()
            await pilot.press(tab)
            while app.loads == n:
                await asyncio.sleep(0.005)
            out[f"tab {tab} switch (ms)"] = (time.perf_counter() - t) * 1000
        seen = await enqueue_to_screen(app, path, 30)
        out["other process's enqueue on screen, median (ms)"] = statistics.median(seen)
        out["other process's enqueue on screen, max (ms)"] = max(seen)
        proc = None
        if with_workers:
            env = dict(os.environ, JOBQ_DB=path)
            proc = subprocess.Popen([sys.executable, "-m", "jobq", "--db", path, "work", "-c", "4",
                                     "--app", "bench.tui_bench", "--log-level", "WARNING"],
                                    env=env, cwd=ROOT, start_new_session=True)  # fmt: skip
            await asyncio.sleep(3)
        try:
            lat = []
            before = Queue(path).count("pending")
            for _ in range(60):
                t = time.perf_counter()
                await pilot.press("down")  # returns once the key is handled and idle again
                lat.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0.05)
            drained = before - Queue(path).count("pending")
            out["key press median (ms)"] = statistics.median(lat)
            out["key press p95 (ms)"] = sorted(lat)[int(len(lat) * 0.95)]
            out["key press max (ms)"] = max(lat)
            out["jobs drained meanwhile"] = drained
            out["loads while draining"] = app.loads
        finally:
            if proc is not None:
                t = time.perf_counter()
                os.killpg(proc.pid, signal.SIGTERM)
                # not 30 s: on PostgreSQL (fsync on) each claimed-but-unstarted job is released
                # in a transaction of its own, up to 4 x 64 of them on a loaded machine
                proc.wait(180)
                out["pool stop after SIGTERM (s)"] = time.perf_counter() - t
    out["RSS now (MiB)"], out["RSS peak (MiB)"] = rss_mib()
    return out


async def enqueue_to_screen(app: JobqApp, path: str, n: int) -> list[float]:
    """Times (ms) from another process's commit to its job's row being in the pending list."""
    producer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PRODUCER, path,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert producer.stdin is not None and producer.stdout is not None
    times = []
    try:
        for _ in range(n):
            await asyncio.sleep(0.3)  # apart, so that each is its own change, not a burst
            producer.stdin.write(b"\n")
            job_id, committed = (await producer.stdout.readline()).split()
            key = job_id.decode()
            while not any(k.value == key for k in app.main.table.rows):
                await asyncio.sleep(0.002)
            times.append((time.monotonic() - float(committed)) * 1000)
    finally:
        producer.stdin.close()
        await producer.wait()
    return times


def main(argv: list[str] | None = None) -> int:
    """Build (once), copy, measure, print."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--file", default=None, help="cached big file (default: in the temp dir)")
    p.add_argument("--no-workers", action="store_true")
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = p.parse_args(argv)
    import tempfile

    where = "a queue file"
    if args.backend == "postgresql":
        sys.path.insert(0, os.path.join(ROOT, "bench"))  # pg_common imports bench's `common`
        import pg_common
        import pg_tui

        with pg_common.database("tui") as db:
            location = pg_common.url(db)
            print(f"building {args.jobs:,} jobs in PostgreSQL…", flush=True)
            print(f"  built in {pg_tui.seed(db, args.jobs):.0f} s")
            figures = asyncio.run(measure(location, not args.no_workers))
            where = pg_common.facts_note()
    else:
        cached = args.file or os.path.join(tempfile.gettempdir(), f"jobq-bench-{args.jobs}.db")
        build(cached, args.jobs)
        with tempfile.TemporaryDirectory() as d:
            work = os.path.join(d, "bench.db")
            shutil.copyfile(cached, work)
            figures = asyncio.run(measure(work, not args.no_workers))
    goals = {"first paint (s)": 1.0, "refresh median (ms)": 50, "RSS peak (MiB)": 200,
             "key press p95 (ms)": 100,
             "other process's enqueue on screen, median (ms)": 100}  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"jobq tui on {args.jobs:,} jobs in {where} (load average {load})")
    for name, value in figures.items():
        goal = goals.get(name)
        ok = "ok" if goal is not None and value <= goal else "MISSED"
        verdict = "" if goal is None else f"   goal <= {goal}: {ok}"
        print(f"  {name:48} {value:10.1f}{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

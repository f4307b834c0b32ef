"""PostgreSQL drain: N pre-filled no-op jobs, 4 worker processes, jobq against pgqueuer and
procrastinate on the same server, in rotating order, each round in fresh databases.

Every subject is timed the same two ways: from the first job's start to the last job's end as
its own tables record them (server or worker clock, start-up excluded: the ratio with the goal),
and from starting the workers to their exit (peers: fork of an already-imported process; jobq:
spawn of `jobq work -c 4 --burst`, interpreter start-up included, shown next to its
empty-queue run). Every job is checked done in the database before a figure counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import peers_pgqueuer
import peers_procrastinate
import pg_common
from common import (
    Config,
    Row,
    Skip,
    alternate,
    paired_ratio,
    run_burst,
    stat,
    work_available,
    workdir,
)

import jobq

PEERS = {"pgqueuer": peers_pgqueuer, "procrastinate": peers_procrastinate}
GOALS = {"pgqueuer": 1.0, "procrastinate": 2.0}
# (quick, full); tests/test_bench_pg.py shrinks them
SIZES = {"jobs": (2000, 10_000)}


def jobq_span(dbname: str, n: int, schema: str = "jobq") -> float:
    """Seconds from the first start to the last end of n succeeded jobs, from jobq's tables."""
    with pg_common.connect(dbname) as c:
        done, first, last = c.execute(
            f"SELECT count(*), extract(epoch FROM min(started_at))::float8,"
            f" extract(epoch FROM max(finished_at))::float8"
            f" FROM {schema}.jobs WHERE state = 'succeeded'"
        ).fetchone()
    if done != n:
        raise RuntimeError(f"jobq: only {done} of {n} jobs succeeded")
    return float(last - first)


class JobqDrain:
    """One `jobq work -c C --burst` drain per call on a fresh database, and an empty-queue run."""

    def __init__(self, wd: str, n: int, concurrency: int = 4) -> None:
        self.wd, self.n, self.c = wd, n, concurrency
        self.span: list[float] = []
        self.wall: list[float] = []
        self.startup: list[float] = []
        self.done: list[int] = []  # jobs found succeeded in the tables, per round

    def __call__(self) -> float:
        with pg_common.database("jobq") as db:
            loc = pg_common.url(db)
            with jobq.Queue(loc) as q:
                q.enqueue_many([("noop", {"i": i}) for i in range(self.n)])
            wall = run_burst(loc, self.c, self.wd)
            self.span.append(self.n / jobq_span(db, self.n))
            self.done.append(self.n)  # jobq_span raised unless all n succeeded
            self.wall.append(self.n / wall)
        with pg_common.database("jobqempty") as db:
            loc = pg_common.url(db)
            jobq.Queue(loc).close()
            self.startup.append(run_burst(loc, self.c, self.wd))
        return self.span[-1]


class PeerDrain:
    def __init__(self, name: str, n: int) -> None:
        self.name, self.n = name, n
        self.span: list[float] = []
        self.wall: list[float] = []
        self.done: list[int] = []  # jobs the peer's tables show done, per round

    def __call__(self) -> float:
        with pg_common.database(self.name) as db:
            r = PEERS[self.name].drain(db, self.n, 4)
        self.done.append(int(r["done"]))
        self.span.append(r["span"])
        self.wall.append(r["wall"])
        return r["span"]


def measure(cfg: Config, n: int, repeats: int, with_jobq: bool) -> dict[str, object]:
    """Alternate every available subject `repeats` times; their objects by name."""
    subjects: dict[str, Callable[[], float]] = {}
    skipped: dict[str, str] = {}
    with workdir(cfg, "pgdrain") as wd:
        if with_jobq:
            subjects["jobq"] = JobqDrain(wd, n)
        for name, mod in PEERS.items():
            missing = mod.available()
            if missing:
                skipped[name] = missing
            else:
                subjects[name] = PeerDrain(name, n)
        alternate(subjects, repeats)
    return {"subjects": subjects, "skipped": skipped}


def run(cfg: Config) -> list[Row]:
    pg_common.server()
    note_pg = pg_common.facts_note()
    try:
        work_available()
        jobq_skip = pg_common.jobq_pg_missing(pool=True)
    except Skip as e:
        jobq_skip = str(e)
    n = cfg.pick(*SIZES["jobs"])
    repeats = cfg.repeats
    t0 = time.monotonic()
    m = measure(cfg, n, repeats, jobq_skip is None)
    subjects, skipped = m["subjects"], m["skipped"]
    assert isinstance(subjects, dict) and isinstance(skipped, dict)
    rows: list[Row] = []
    if jobq_skip is None:
        jd = subjects["jobq"]
        su = stat(jd.startup)
        rows.append(
            Row(
                "PG drain, jobq work -c 4, first start→last end",
                stat(jd.span),
                "jobs/s",
                note=f"{n:,} no-op jobs × {repeats}; {note_pg}; spawn→exit "
                f"{stat(jd.wall)['median']:,.0f} jobs/s incl. the empty-queue run's "
                f"{su['median']:.2f} s",
                extra={"wall": stat(jd.wall), "startup_s": su, "jobs": n, "done": jd.done},
            )
        )
    else:
        rows.append(Row("PG drain, jobq", None, "jobs/s", note=f"skipped: {jobq_skip}"))
    for name in PEERS:
        if name in skipped:
            rows.append(
                Row(f"PG drain vs {name}", None, "jobs/s", note=f"skipped: {skipped[name]}")
            )
            continue
        peer = subjects[name]
        desc = f"{name} {PEERS[name].version()}, 4 processes" + (
            ", batch 10" if name == "pgqueuer" else ", concurrency 1 each"
        )
        goal = GOALS[name]
        if jobq_skip is None:
            jd = subjects["jobq"]
            ratio = paired_ratio(jd.span, peer.span)
            rows.append(
                Row(
                    f"PG drain vs {name}, first start→last end",
                    stat(jd.span),
                    "jobs/s",
                    desc,
                    stat(peer.span),
                    ratio,
                    f"≥ {goal:g}× {name}",
                    met=ratio is not None and ratio >= goal,
                    note=f"{name} fork→exit {stat(peer.wall)['median']:,.0f} jobs/s; "
                    f"jobq spawn→exit {stat(jd.wall)['median']:,.0f} jobs/s "
                    f"(ratio {paired_ratio(jd.wall, peer.wall):.2f}×)",
                    extra={
                        "peer_wall": stat(peer.wall),
                        "jobq_wall": stat(jd.wall),
                        "jobs": n,
                        "peer_done": peer.done,
                    },
                )
            )
        else:
            ps = stat(peer.span)
            rows.append(
                Row(
                    f"PG drain vs {name}",
                    None,
                    "jobs/s",
                    note=f"jobq skipped; {desc} alone: {ps['median']:,.0f} jobs/s "
                    f"({ps['min']:,.0f}–{ps['max']:,.0f}) first start→last end, fork→exit "
                    f"{stat(peer.wall)['median']:,.0f} jobs/s; {n:,} jobs × {repeats}; {note_pg}",
                    extra={
                        "peer_span": ps,
                        "peer_wall": stat(peer.wall),
                        "jobs": n,
                        "peer_done": peer.done,
                    },
                )
            )
    rows[0].extra["seconds"] = round(time.monotonic() - t0, 1)
    return rows

"""The per-minute history (jobq.rollup) on every backend: a minute's figures are exactly those of
the attempts that finished in it and of the jobs due when it was rolled up; a minute is written
once however many pools roll it up; a real pool writes the minutes it worked; a day is kept."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobq import rollup
from jobq.backend import Ending, Role, open_backend
from jobq.pool.maintenance import Roller
from tests.conftest import ROOT, SLOW
from tests.factories import claim_one, enqueue
from tests.helpers import wait_until

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

M = 1_700_000_040  # the start of a minute (a multiple of 60)
assert M % 60 == 0


def _succeed(b: Backend, job_id: int, start: float, end: float) -> None:
    lease = claim_one(b, job_id, start)
    assert b.complete_many([(job_id, lease.lease_token or "", None, None)], end) == [True]


def _end(b: Backend, job_id: int, start: float, end: float, how: Ending) -> None:
    lease = claim_one(b, job_id, start)
    b.end_attempt(job_id, lease.lease_token or "", end, how, "boom", rand=0.5)


def seed_minute(b: Backend) -> None:
    """Attempts ended in minute M (and one either side of it), pending jobs due at M + 66."""
    for start, end in ((1.0, 1.012), (2.0, 2.2), (3.0, 4.3)):  # 12 ms, 200 ms, 1.3 s
        _succeed(b, enqueue(b, M - 100, type="resize", queue="img"), M + start, M + end)
    retried = enqueue(b, M - 100, type="send", queue="mail", max_attempts=3)
    _end(b, retried, M + 5, M + 5.5, Ending.FAIL)  # due again after ~5 s of backoff
    final = enqueue(b, M - 100, type="send", queue="mail", max_attempts=1)
    _end(b, final, M + 6, M + 6.25, Ending.FAIL)  # failed for good
    crashed = enqueue(b, M - 100, type="send", queue="mail")
    _end(b, crashed, M + 7, M + 8, Ending.CRASH)  # due again at once (run_at M + 8)
    cancelled = enqueue(b, M - 100, type="send", queue="mail")
    _end(b, cancelled, M + 9, M + 10, Ending.CANCEL)  # neither counted nor timed
    _succeed(b, enqueue(b, M - 100, type="other", queue="mail"), M - 2, M - 1)  # minute before
    _succeed(b, enqueue(b, M - 100, type="other", queue="mail"), M + 59, M + 60)  # minute after
    enqueue(b, M + 30, type="resize", queue="img")  # due since M + 30
    enqueue(b, M + 30, type="resize", queue="img", run_at=M + 600)  # scheduled: not due


def figures(rows: list[rollup.RollupRow], minute: int) -> dict[tuple[str, str, str], float]:
    """The minute's figures, its markers (whose value is a time) aside."""
    return {(q, t, k): v for m, q, t, k, v in rows
            if m == minute and k not in (rollup.ROLLED, rollup.SAMPLED)}  # fmt: skip


EXPECTED = {
    ("img", "resize", "succeeded"): 3,
    ("", "resize", "run:55"): 1,  # 12 ms: 12000 µs, 5 digits, "12" // 5 = 2 → 5*18 + 2 - 37
    ("", "resize", "run:75"): 1,  # 200 ms
    ("", "resize", "run:91"): 1,  # 1.3 s
    ("mail", "send", "retried"): 2,  # the failure with attempts left, and the crash
    ("mail", "send", "failed"): 1,
    ("", "send", "run:81"): 1,  # 500 ms (the retried failure)
    ("", "send", "run:76"): 1,  # 250 ms (the final failure); a crash's run time is not counted
    ("mail", "", "depth"): 2,  # the two retried jobs, due again
    ("mail", "", "oldest"): 58.0,  # the crashed one, due since M + 8
    ("img", "", "depth"): 1,
    ("img", "", "oldest"): 36.0,
}


def test_a_minute_is_rolled_up_exactly(backend: Backend) -> None:
    seed_minute(backend)
    assert backend.rollup(0, M + 3600) == []
    # the minute before (its one success) is filled in; the empty ones before are skipped
    assert backend.roll_up(M + 66) == [M - 60, M]
    rows = backend.rollup(M - 3600, M + 3600)
    assert figures(rows, M) == EXPECTED
    assert figures(rows, M - 60) == {("mail", "other", "succeeded"): 1, ("", "other", "run:91"): 1}
    markers = {(m, k): v for m, q, t, k, v in rows if k in (rollup.ROLLED, rollup.SAMPLED)}
    # the depth is sampled for the minute that just ended only: the older one has a gap
    assert markers == {(M - 60, "rolled"): M + 66, (M, "rolled"): M + 66,
                       (M, "sampled"): M + 66}  # fmt: skip
    # the same arithmetic as the SQL, and the buckets hold what they say
    assert [rollup.bucket_of(s) for s in (0.012, 0.2, 1.3, 0.5, 0.25, 1.0)] == [55, 75, 91, 81,
                                                                               76, 91]  # fmt: skip
    for s in (0.000003, 0.012, 0.2, 1.3, 7.77, 3600.0):
        low, high = rollup.bucket_bounds(rollup.bucket_of(s))
        assert low <= s < high and high <= max(low * 1.5, 0.00001)


def test_rolling_the_same_minute_twice_writes_it_once(backend_kind: str, tmp_path: Path) -> None:
    """Two pools (two connections) roll up at the same moment: one writes, the other nothing;
    and again later, nothing more."""
    from tests.conftest import backend_location

    location = backend_location(backend_kind, tmp_path)
    first = open_backend(location, Role.WORKER)
    seed_minute(first)
    pools = [open_backend(location, Role.WORKER) for _ in range(4)]
    written: list[list[int]] = []
    barrier = threading.Barrier(len(pools))

    def roll(b: Backend) -> None:
        barrier.wait()
        written.append(b.roll_up(M + 66))

    threads = [threading.Thread(target=roll, args=(b,)) for b in pools]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert sorted(written) == [[], [], [], [M - 60, M]]
        assert first.roll_up(M + 70) == []
        assert figures(first.rollup(M, M + 60), M) == EXPECTED
    finally:
        for b in [first, *pools]:
            b.close()


def test_the_live_minute_is_read_without_writing(backend: Backend) -> None:
    """Before any roll-up, the dashboard's live read has the current minute (sampled now) and
    the previous one; nothing is written."""
    seed_minute(backend)
    live = backend.rollup_live(M + 50)
    assert backend.rollup(0, M + 3600) == []
    assert {m for m, *_ in live} == {M - 60, M}
    assert ("img", "resize", "succeeded", 3.0) in [(q, t, k, v) for m, q, t, k, v in live]
    sampled = [(m, q, k, v) for m, q, t, k, v in live if k in ("depth", "sampled")]
    assert sampled == [(M, "", "sampled", M + 50), (M, "img", "depth", 1.0),
                       (M, "mail", "depth", 2.0)]  # fmt: skip
    # once rolled up, only the minutes after it are live
    backend.roll_up(M + 66)
    assert {m for m, *_ in backend.rollup_live(M + 70)} == {M + 60}


def test_history_sums_minutes_into_the_charts_points(backend: Backend) -> None:
    seed_minute(backend)
    backend.roll_up(M + 66)
    clock = [0.0]
    reader = rollup.HistoryReader(live_every=5.0, mono=lambda: clock[0])
    hour = reader.read(backend, M + 70, "hour")
    assert len(hour.points) == 60 and hour.points[-1].start == M + 60
    at_m = hour.points[-2]
    assert (at_m.start, at_m.succeeded, at_m.failed, at_m.retried) == (M, 3, 1, 2)
    assert at_m.depth == {"img": 1, "mail": 2} and at_m.oldest == {"img": 36.0, "mail": 58.0}
    p50 = at_m.p("resize", 0.5)
    assert p50 is not None and 0.2 <= p50 < 0.3  # the middle one of 12 ms, 200 ms, 1.3 s
    assert hour.points[-3].rolled and hour.points[-3].depth is None  # rolled, never sampled
    assert not hour.points[0].rolled  # no pool ran: a gap
    assert hour.queues == ["img", "mail"] and hour.types == ["other", "resize", "send"]
    day = reader.read(backend, M + 70, "day")
    assert len(day.points) == 96 and day.step == 900
    assert sum(p.succeeded for p in day.points) == 5  # M - 60, M and the live M + 60
    assert rollup.history([], M, "hour").empty and not hour.empty


def test_pruning_keeps_at_least_a_day(backend: Backend) -> None:
    day = 24 * 3600
    old, recent = M - day - 3600, M - 3600
    for minute in (old, recent):
        _succeed(backend, enqueue(backend, minute - 10, type="x"), minute + 1, minute + 2)
    assert backend.roll_up(old + 66) == [old]
    assert backend.roll_up(recent + 66) == [recent]
    # a retention of a minute still keeps the last day
    assert Roller(backend, retention=60).roll(M + 66) == [M]
    assert {m for m, *_ in backend.rollup(0, M + 60)} == {recent, M}


def test_a_longer_retention_keeps_more(backend: Backend) -> None:
    old = M - 30 * 3600
    _succeed(backend, enqueue(backend, old - 10, type="x"), old + 1, old + 2)
    assert backend.roll_up(old + 66) == [old]
    roller = Roller(backend, retention=48 * 3600)
    roller.roll(M + 66)
    assert old in {m for m, *_ in backend.rollup(0, M + 60)}
    assert roller.roll(M + 67) == []  # not due again before the next minute has ended
    assert Roller(backend, retention=None).keep == rollup.KEEP_WITHOUT_RETENTION


def _pool(location: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NOTIFY_SOCKET", None)
    argv = [sys.executable, "-m", "jobq", "--db", location, "work", "--burst", "-c", "2",
            "--app", "tests.workerapp"]  # fmt: skip
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()


def test_a_pool_rolls_up_at_start_the_minutes_before_it(location: str) -> None:
    """A real pool's start rolls up the finished minutes no one rolled up yet (the quick form of
    the test below, which waits for the minute of its own drain to end: JOBQ_SLOW=1)."""
    b = open_backend(location, Role.WORKER)
    try:
        m = rollup.minute_of(time.time()) - 120
        for i in range(5):
            _succeed(b, enqueue(b, m, type="noop"), m + 1 + i, m + 1.5 + i)
        _end(b, enqueue(b, m, type="boom", max_attempts=1), m + 10, m + 10.25, Ending.FAIL)
        assert b.rollup(m, m + 60) == []
        _pool(location)
        rows = b.rollup(m, m + 60)
        assert any(k == "rolled" for _m, _q, _t, k, _v in rows)
        f = figures(rows, m)
        assert f[("default", "noop", "succeeded")] == 5
        assert f[("default", "boom", "failed")] == 1
    finally:
        b.close()


@pytest.mark.skipif(not SLOW, reason="waits for a minute to end: JOBQ_SLOW=1 (CI budget)")
def test_a_real_pool_rolls_up_the_minutes_it_worked(location: str, tmp_path: Path) -> None:
    """`jobq work --burst` drains jobs; once their minute is over, the next pool's start rolls
    it up (any pool's maintenance may): its counts and run times are the drain's."""
    b = open_backend(location, Role.PRODUCER)
    try:
        for _ in range(5):
            enqueue(b, time.time(), type="noop")
        enqueue(b, time.time(), type="boom", max_attempts=1)
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("NOTIFY_SOCKET", None)
        argv = [sys.executable, "-m", "jobq", "--db", location, "work", "--burst", "-c", "2",
                "--app", "tests.workerapp"]  # fmt: skip
        t0 = time.time()
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        t1 = time.time()
        worked = range(rollup.minute_of(t0), rollup.minute_of(t1) + 1, 60)
        # the last minute worked ends, and GRACE passes: the next pool's start rolls it up
        wait_until(
            lambda: time.time() >= worked[-1] + 60 + rollup.GRACE + 0.5, timeout=75, interval=0.5
        )
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        rows = b.rollup(worked[0], worked[-1] + 60)
        assert {m for m, q, t, k, v in rows if k == "rolled"} >= {worked[-1]}
        total: dict[tuple[str, str], float] = {}
        for _m, _q, t, k, v in rows:
            if k in ("succeeded", "failed", "retried") or k.startswith("run:"):
                key = (t, k if not k.startswith("run:") else "ran")
                total[key] = total.get(key, 0) + v
        assert total == {("noop", "succeeded"): 5, ("noop", "ran"): 5, ("boom", "failed"): 1,
                         ("boom", "ran"): 1}  # fmt: skip
    finally:
        b.close()


@pytest.mark.parametrize("seconds", [0.0, 0.000009, 0.00001, 0.0149, 0.015, 0.99, 86400.0])
def test_buckets_are_contiguous(seconds: float) -> None:
    """Each bucket starts where the one before ends: no run time falls between two."""
    i = rollup.bucket_of(seconds)
    low, high = rollup.bucket_bounds(i)
    assert low <= seconds < high
    if i > 0:
        assert rollup.bucket_bounds(i - 1)[1] == pytest.approx(low)


def test_a_minute_is_read_by_index_ranges_on_finish_times(tmp_path: Path) -> None:
    """SQLite's plan: successes by jobs_finished, failures by attempts_failures (a range each,
    whatever the history's size; the drain's successful attempts pay for no index of ours)."""
    import sqlite3

    from jobq.store.sqlite.sql_live import ROLLUP_ATTEMPTS

    path = str(tmp_path / "q.db")
    open_backend(path, Role.WORKER).close()
    conn = sqlite3.connect(path)
    try:
        plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + ROLLUP_ATTEMPTS,
                                           {"start": M, "end": M + 60})]  # fmt: skip
    finally:
        conn.close()
    searches = [p for p in plan if p.startswith(("SEARCH", "SCAN")) and "subquery" not in p]
    assert searches == [
        "SEARCH jobs USING INDEX jobs_finished (finished_at>? AND finished_at<?)",
        "SEARCH a USING INDEX attempts_failures (finished_at>? AND finished_at<?)",
        "SEARCH j USING INTEGER PRIMARY KEY (rowid=?)",
    ], plan

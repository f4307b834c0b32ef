"""Dependencies under concurrency, on every backend, with real processes (each its own
connection) started together behind a barrier, round after round:

- producers enqueue the same (type, unique key) with `after` at once: exactly one job is
  created, every caller gets its id, its dependency links are intact and it waits exactly for
  the dependencies that have not succeeded;
- the same through the CLI (`jobq enqueue --unique-key K --after X --json`);
- producers enqueue jobs after X, after X's dependent Y and after both, while another process
  ends X (succeeds, fails, is cancelled running or pending): once everything settled, a
  dependent of a succeeded job ran, a dependent of a failed or cancelled one is cancelled
  naming it, no job ran before all its dependencies succeeded, and nothing is left blocked.

The always-on sizes keep each test a few seconds per backend; JOBQ_SLOW=1 runs 5-10 times as
many rounds. tests/test_dependencies_locks.py forces the interleavings these races found.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from jobq import JobState, Queue
from jobq.backend import ClaimFilter, Ending, Role, open_backend
from tests.conftest import ROOT, SLOW, is_sqlite
from tests.factories import new_job
from tests.helpers import wait_until

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

PRODUCERS = 4
UNIQUE_ROUNDS = 600 if SLOW else 60
ENDING_ROUNDS = 800 if SLOW else 80
CLI_ROUNDS = 10 if SLOW else 2
MODES = ("succeed", "fail", "cancel-running", "cancel-pending")
LEASE = 600.0


class Children:
    """Processes spawned one by one, each running `target(*args, n, out)`, which puts one
    result on `out` as (n, value, error): error is the child's traceback, or None (`report`)."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.out = self.ctx.Queue()
        self.procs: list[Any] = []

    def start(self, target: Callable[..., None], *args: Any) -> None:
        p = self.ctx.Process(target=target, args=(*args, len(self.procs), self.out))
        p.start()
        self.procs.append(p)

    def results(self, timeout: float = 120) -> list[Any]:
        """Every child's value, in start order (fails the test with a child's traceback)."""
        got: dict[int, Any] = {}
        failed: list[str] = []
        try:
            for _ in self.procs:
                n, value, error = self.out.get(timeout=timeout)
                got[n] = value
                failed += [error] if error is not None else []
        finally:
            for p in self.procs:
                p.join(30)
                if p.is_alive():
                    p.kill()
        failed.sort(key=lambda e: "BrokenBarrierError" in e)  # the cause first
        assert not failed, failed[0]
        return [got[n] for n in range(len(self.procs))]


def _spawned(runs: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> list[Any]:
    """Run each (target, args) of `runs` in a process of its own, all at once; their values."""
    children = Children()
    for target, args in runs:
        children.start(target, *args)
    return children.results()


def report(out: Any, n: int, barrier: Any, work: Callable[[], object]) -> None:
    """Put (n, what `work` returns, None) on `out`, or (n, None, its traceback) if it raises;
    then break `barrier` (if any), so that the other children stop instead of waiting it out."""
    try:
        out.put((n, work(), None))
    except BaseException:
        if barrier is not None:
            barrier.abort()
        out.put((n, None, traceback.format_exc()))


# ---- the same unique key with dependencies, from several producers at once --------------------


def _enqueue_unique_rounds(location: str, barrier: Any, rounds: list[list[int]], n: int,
                           out: Any) -> None:  # fmt: skip
    def work() -> list[tuple[int, bool]]:
        got: list[tuple[int, bool]] = []
        with Queue(location) as q:
            q.counts()  # connected before the first round
            for r, after in enumerate(rounds):
                barrier.wait(60)
                now = time.time()
                job = q.new_job("u", {"by": n}, unique_key=f"k{r}", after=after, now=now)
                job_id, existing = q.insert_unique(job, now)
                got.append((job_id, existing is None))
        return got

    report(out, n, barrier, work)


def _claim_all(b: Backend, type: str) -> list[int]:
    jobs = b.claim("main/1", time.time(), LEASE, ClaimFilter(types=(type,)), limit=10_000)
    b.complete_many([(j.id, j.lease_token or "", None, None) for j in jobs], time.time())
    return sorted(j.id for j in jobs)


def test_concurrent_enqueues_of_one_unique_key_with_after_create_one_job(location: str) -> None:
    """The bug: on PostgreSQL the producers that lost the race raised a unique violation from
    the dependency insert instead of getting the winner's id."""
    b = open_backend(location, Role.WORKER)
    try:
        waiting = b.enqueue([new_job("d.wait") for _ in range(UNIQUE_ROUNDS)], time.time())
        done = b.enqueue([new_job("d.done") for _ in range(UNIQUE_ROUNDS)], time.time())
        assert len(_claim_all(b, "d.done")) == UNIQUE_ROUNDS
        # per round: after a pending job, a succeeded one, or both
        rounds = [[[waiting[r]], [done[r]], [waiting[r], done[r]]][r % 3]
                  for r in range(UNIQUE_ROUNDS)]  # fmt: skip
        barrier = multiprocessing.get_context("spawn").Barrier(PRODUCERS)
        results = _spawned([(_enqueue_unique_rounds, (location, barrier, rounds))] * PRODUCERS)
        ids = []
        for r in range(UNIQUE_ROUNDS):
            got = [results[p][r] for p in range(PRODUCERS)]
            assert len({i for i, _ in got}) == 1, f"round {r}: {got}"
            assert sum(created for _, created in got) == 1, f"round {r}: {got}"
            ids.append(got[0][0])
        links = b.dependencies(ids)
        for r, job_id in enumerate(ids):
            job = b.get(job_id)
            assert job is not None and job.state is JobState.PENDING, job
            want = [(a, JobState.SUCCEEDED if a in done else JobState.PENDING) for a in rounds[r]]
            assert links[job_id] == want, (r, links[job_id])
        assert b.counts()["pending"] == 2 * UNIQUE_ROUNDS  # no stray job
        # each waits exactly for its dependencies that had not succeeded: no more, no less
        assert _claim_all(b, "u") == [ids[r] for r in range(1, UNIQUE_ROUNDS, 3)]
        assert _claim_all(b, "d.wait") == sorted(waiting)
        assert _claim_all(b, "u") == sorted(ids[r] for r in range(UNIQUE_ROUNDS) if r % 3 != 1)
    finally:
        b.close()


def waiting_on_locks(location: str) -> int:
    """How many sessions of the test's database wait for a lock (PostgreSQL)."""
    import psycopg

    from jobq.store.postgres.connection import split_url

    url, _ = split_url(location)
    with psycopg.connect(url, autocommit=True) as pg:
        row = pg.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                         " AND datname = current_database()").fetchone()  # fmt: skip
    return int(row[0]) if row else 0


def hold_row(location: str, job_id: int) -> Callable[[], None]:
    """On PostgreSQL, lock a job's row in a transaction of the test's own; return what ends it
    (on SQLite: nothing to do, its writers take turns anyway)."""
    if is_sqlite(location):
        return lambda: None
    import psycopg

    from jobq.store.postgres.connection import split_url

    url, schema = split_url(location)
    pg = psycopg.connect(url)
    pg.execute(f'SELECT id FROM "{schema}".jobs WHERE id = %s FOR UPDATE', (job_id,))

    def release() -> None:
        pg.commit()
        pg.close()

    return release


def test_concurrent_cli_enqueues_with_a_key_and_after_print_one_id(location: str) -> None:
    """Every `jobq enqueue --unique-key K --after X` run at once prints the same id; one says
    it created the job, the others that it already existed (on PostgreSQL all of them queue
    behind a lock on X first, so that they race for the key as soon as it is let go)."""
    env = dict(os.environ, JOBQ_DB=location)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with Queue(location) as q:
        dep = q.enqueue("d.wait")
    for r in range(CLI_ROUNDS):
        release = hold_row(location, dep)
        argv = [sys.executable, "-m", "jobq", "enqueue", "u", "--unique-key", f"c{r}",
                "--after", str(dep), "--json"]  # fmt: skip
        procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(PRODUCERS)]  # fmt: skip
        if not is_sqlite(location):
            wait_until(lambda: waiting_on_locks(location) >= PRODUCERS, timeout=60,
                       what="every enqueue waits for the dependency's row")  # fmt: skip
        release()
        done = [(p.wait(60), *p.communicate()) for p in procs]
        assert [code for code, _, _ in done] == [0] * PRODUCERS, done
        printed = [json.loads(stdout) for _, stdout, _ in done]
        assert len({p["id"] for p in printed}) == 1, printed
        assert sorted(p.get("existing", False) for p in printed) == [False] + [True] * (
            PRODUCERS - 1), printed  # fmt: skip
        notes = sorted(stderr for _, _, stderr in done)
        assert notes[0] == "" and all("already pending" in s for s in notes[1:]), notes
        with Queue(location) as q:
            assert q.dependencies(printed[0]["id"]) == [(dep, JobState.PENDING)]


# ---- enqueues after a job that is ending in another process -----------------------------------


def _end_rounds(location: str, barrier: Any, plan: list[tuple[int, str, str]], n: int,
                out: Any) -> None:  # fmt: skip
    def work() -> list[object]:
        b = open_backend(location, Role.WORKER)
        try:
            b.counts()
            ended: list[object] = []
            for x, token, mode in plan:
                barrier.wait(60)
                now = time.time()
                if mode == "succeed":
                    ended.append(b.complete(x, token, now, None, None))
                elif mode == "fail":
                    ended.append(b.end_attempt(x, token, now, Ending.FAIL, "boom",
                                               retryable=False))  # fmt: skip
                elif mode == "cancel-running":
                    ended.append(b.end_attempt(x, token, now, Ending.CANCEL, "stop"))
                else:
                    ended.append(str(b.cancel([x], now)[x]))
            return ended
        finally:
            b.close()

    report(out, n, barrier, work)


def _enqueue_after_rounds(location: str, barrier: Any, plan: list[tuple[int, int | None]],
                          n: int, out: Any) -> None:  # fmt: skip
    def work() -> list[list[tuple[int, str]]]:
        got: list[list[tuple[int, str]]] = []
        with Queue(location) as q:
            q.counts()
            for x, y in plan:
                todo = [("j", [x])] + ([] if y is None else [("z", [y]), ("w", [x, y])])
                if n % 2:  # half the producers go down the chain first
                    todo.reverse()
                barrier.wait(60)
                got.append([(q.enqueue("dep." + k, after=after), k) for k, after in todo])
        return got

    report(out, n, barrier, work)


def _settle(b: Backend) -> None:
    """Run every job that can run (as a pool would), checking at each claim that all its
    dependencies succeeded, until none can."""
    while jobs := b.claim("settle/1", time.time(), LEASE, limit=500):
        deps = b.dependencies([j.id for j in jobs])
        for j in jobs:
            early = [(a, s) for a, s in deps.get(j.id, []) if s is not JobState.SUCCEEDED]
            assert not early, f"job {j.id} ({j.type}) claimed while it waits for {early}"
        b.complete_many([(j.id, j.lease_token or "", None, None) for j in jobs], time.time())


def test_enqueues_after_a_job_that_ends_meanwhile_settle_right(location: str) -> None:
    """Rounds of: one process ends X (each of MODES in turn) while producers enqueue J after X
    and, in half the rounds, Z after Y and W after X and Y (Y: a dependent of X enqueued
    before the round, so that a failure cancels it while Z links to it). The bug: on
    PostgreSQL a Z whose links committed while a cascade cancel of Y waited for Y's row was
    left pending, blocked for good."""
    b = open_backend(location, Role.WORKER)
    try:
        now = time.time()
        modes = [MODES[r % len(MODES)] for r in range(ENDING_ROUNDS)]
        xs = b.enqueue([new_job("x.run" if m != "cancel-pending" else "x.idle") for m in modes],
                       now)  # fmt: skip
        # Y in rounds 0-3, 8-11, ...: X with and without a dependent when the round starts
        ys: list[int | None] = [
            b.enqueue([new_job("dep.y")._replace(after=(x,))], now)[0] if r % 8 < 4 else None
            for r, x in enumerate(xs)
        ]
        tokens = {j.id: j.lease_token or "" for j in b.claim(
            "main/1", now, LEASE, ClaimFilter(types=("x.run",)), limit=ENDING_ROUNDS)}  # fmt: skip
        barrier = multiprocessing.get_context("spawn").Barrier(1 + PRODUCERS // 2)
        plan = [(x, tokens.get(x, ""), m) for x, m in zip(xs, modes, strict=True)]
        ender = (location, barrier, plan)
        producer = (location, barrier, list(zip(xs, ys, strict=True)))
        ended, *made = _spawned(
            [(_end_rounds, ender)] + [(_enqueue_after_rounds, producer)] * (PRODUCERS // 2)
        )
        _settle(b)
        counts = b.counts()
        assert (counts["pending"], counts["running"]) == (0, 0), counts  # nothing left blocked
        for r, (x, y, mode) in enumerate(zip(xs, ys, modes, strict=True)):
            ok = mode == "succeed"
            word = {"succeed": "succeeded", "fail": "failed"}.get(mode, "cancelled")
            want = {"succeed": True, "fail": JobState.FAILED, "cancel-running": JobState.CANCELLED,
                    "cancel-pending": "cancelled"}[mode]  # fmt: skip
            assert ended[r] == want, (r, mode, ended[r])
            xj = b.get(x)
            assert xj is not None and xj.state.value == word, (r, xj)
            # each job made in the round: the dependency its cancel must name, and how it ended
            cause_of = {"j": (x, word), "z": (y, "succeeded" if ok else "cancelled"),
                        "w": (x, word)}  # fmt: skip
            cause = {job_id: cause_of[kind] for m in made for job_id, kind in m[r]}
            if y is not None:
                cause[y] = (x, word)
            for job_id, (dep, how) in cause.items():
                job = b.get(job_id)
                assert job is not None
                if ok:
                    assert job.state is JobState.SUCCEEDED, (r, mode, job)
                else:
                    want_end = (JobState.CANCELLED, f"dependency job {dep} {how}")
                    assert (job.state, job.last_error) == want_end, (r, mode, job)
    finally:
        b.close()

"""Chaos: real pools, real SIGKILL / SIGSTOP, nothing lost.

- Jobs append (job id, attempt, pid) to an fsynced ledger while a loop SIGKILLs random children
  and whole supervisors (restarting them). Every job must end succeeded, every duplicate run must
  be explained by a kill, and no child may outlive its supervisor.
- Fencing under load: several children SIGSTOPped past their lease; their jobs are rescued and
  completed elsewhere; resumed, their writes change nothing and they log "lease lost".
- Every way an attempt can end, at once: BaseException handlers, commands that leave background
  grandchildren, pools whose wall clock is off by a minute, burst pools after supervisor kills.

Every test runs on each backend (a queue file, a schema on the session's PostgreSQL server); the
file's own integrity check runs on files only.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from jobq.backend import Role, open_backend, parse_location
from tests.conftest import SLOW, is_sqlite
from tests.factories import new_job
from tests.helpers import (
    cmdline,
    gone,
    integrity,
    ledger_runs,
    pool_children,
    wait_until,
    worker_children,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

LEASE = "2s"


@pytest.fixture
def chaos_env(location: str, jobq_env: dict[str, str]) -> dict[str, str]:
    """The pools' environment, JOBQ_DB naming the test's queue on each backend in turn."""
    return dict(jobq_env, JOBQ_DB=location)


def sound(location: str) -> str:
    """'ok' when the queue's storage is sound: PRAGMA integrity_check for a file (a server
    checks its own pages)."""
    return integrity(parse_location(location).target) if is_sqlite(location) else "ok"


def row_of(store: Backend, job_id: int) -> tuple[object, ...]:
    """Everything a write could change about a job: its row and its attempts."""
    return (store.get(job_id), tuple(store.attempts(job_id)))


# ---------------------------------------------------------------------------------------------
# a pool under test


class Pool:
    """One `jobq work` supervisor started by a test, logging to its own file."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*cmd, "work", "--app", "tests.chaosapp", "--lease", LEASE, *args],
            env=env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self, n: int) -> list[int]:
        """Wait until `n` worker children run; return their pids."""
        kids: list[int] = []

        def up() -> bool:
            nonlocal kids
            kids = worker_children(self.pid)
            return len(kids) >= n

        wait_until(up, 30, 0.05, what=f"{n} worker children of {self.pid}")
        return kids

    def stop(self) -> None:
        """SIGKILL the whole session (teardown) and reap."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


# ---------------------------------------------------------------------------------------------
# kills of children and supervisors


@pytest.mark.slow
@pytest.mark.timeout(900 if SLOW else 180)
def test_random_kills_of_children_and_supervisors_lose_nothing(
    tmp_path: Path, location: str, chaos_env: dict[str, str], jobq_cmd: list[str]
):
    n_jobs, child_kills, pool_kills = (5_000, 200, 20) if SLOW else (300, 15, 2)
    ledger = tmp_path / "ledger"
    # long enough a run for the kills asked for (a kill every 0.2-1 s: ~0.6 s on average)
    slow = 0.25 if SLOW else 0.06
    # half the jobs are instant (workers batch them: up to 64 claimed and recorded per
    # transaction), half take a moment (so that kills land in the middle of a handler)
    store = open_backend(location, Role.WORKER)
    jobs = [
        new_job("chaos.ledger", f'{{"ledger": "{ledger}", "sleep": {0.0 if i % 2 else slow}}}',
                max_attempts=1000)
        for i in range(n_jobs)
    ]  # fmt: skip
    store.enqueue(jobs, time.time())
    total_time = n_jobs * slow / 2 / 4  # the handlers' own work, spread over 4 children

    pools: list[Pool] = []
    killed_children: set[int] = set()  # pids we SIGKILLed
    killed_pools: dict[int, list[int]] = {}  # supervisor pid -> its worker children then
    orphan_waits: list[float] = []
    rng = random.Random(6)

    def start() -> Pool:
        pool = Pool(jobq_cmd, chaos_env, tmp_path / f"pool{len(pools)}.log", "-c", "4")
        pools.append(pool)
        return pool

    def done() -> bool:
        return store.counts()["succeeded"] == n_jobs

    started = time.monotonic()
    try:
        pool = start()
        pool.ready(4)
        # supervisor kills are spread over the run; child kills fill the gaps
        pool_kill_every = max(1, child_kills // max(pool_kills, 1))
        kills = 0
        ran = 0  # ledger lines at the last kill
        while not done():
            time.sleep(rng.uniform(0.2, 1.0) * (0.5 if not SLOW else 1.0))
            # each kill waits for a run since the last one: a child's start-up (a spawned
            # interpreter, its connections) can outlast the pause above on a loaded machine
            # (on PostgreSQL, ~1 s at load 12), and kills that only ever hit children still
            # starting would test nothing but respawning
            wait_until(lambda r=ran: done() or len(ledger_runs(ledger)) > r, 60, 0.02,
                       what="a job runs between two kills")  # fmt: skip
            ran = len(ledger_runs(ledger))
            if done():
                break
            if len(killed_children) >= 2 * child_kills and len(killed_pools) == pool_kills:
                continue  # chaos enough: let it drain (each kill costs a child's start-up)
            if len(killed_pools) < pool_kills and kills and kills % pool_kill_every == 0:
                # every child, even one forked a moment ago that has not exec'd yet
                kids = pool_children(pool.pid)
                killed_pools[pool.pid] = kids
                os.kill(pool.pid, signal.SIGKILL)
                pool.proc.wait(5)
                t0 = time.monotonic()
                # PDEATHSIG: every child dies with its supervisor, within 2 s
                what = f"children {kids} of killed supervisor {pool.pid} exit"
                wait_until(lambda k=kids: all(gone(p) for p in k), 2.0, 0.01, what=what)
                orphan_waits.append(time.monotonic() - t0)
                pool = start()
                pool.ready(4)
                kills += 1
                continue
            kids = worker_children(pool.pid)
            if kids:
                victim = rng.choice(kids)
                try:
                    os.kill(victim, signal.SIGKILL)
                    killed_children.add(victim)
                except ProcessLookupError:
                    pass
                kills += 1
            if time.monotonic() - started > (840 if SLOW else 150):
                pytest.fail(f"not done after {time.monotonic() - started:.0f}s: {store.counts()}")
        # enough chaos happened for the run to mean something
        assert len(killed_children) >= child_kills or (
            not SLOW and len(killed_children) >= child_kills // 2
        ), f"only {len(killed_children)} child kills (jobs finished too fast: {total_time:.1f}s)"
        assert len(killed_pools) == pool_kills, killed_pools
        # the last pool stops cleanly on SIGTERM; its children go with it
        kids = worker_children(pool.pid)
        pool.proc.send_signal(signal.SIGTERM)
        assert pool.proc.wait(30) == 0
        wait_until(lambda: all(gone(p) for p in kids), 2.0, 0.01, what="children exit")
    finally:
        for p in pools:
            p.stop()

    counts = store.counts()
    assert counts == {"pending": 0, "running": 0, "succeeded": n_jobs, "failed": 0,
                      "cancelled": 0}  # fmt: skip
    runs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for job_id, attempt, pid in ledger_runs(ledger):
        runs[job_id].append((attempt, pid))
    assert sorted(runs) == list(range(1, n_jobs + 1)), "a job never ran"

    doomed = killed_children | {p for kids in killed_pools.values() for p in kids}
    unexplained = []
    duplicates = 0
    for job_id, job_runs in runs.items():
        history = store.attempts(job_id)
        final = [h.attempt for h in history if h.outcome.value == "succeeded"]
        assert len(final) == 1, (job_id, history)
        # the successful run is the last one of the final attempt number (the ledger is in time
        # order; a released run may have used the same number before it)
        success = max(k for k, (attempt, _pid) in enumerate(job_runs) if attempt == final[0])
        for k, (attempt, pid) in enumerate(job_runs):
            if k == success:
                continue
            duplicates += 1
            ended = [h for h in history if h.attempt == attempt and h.outcome.value != "succeeded"]
            # explained: the run's worker was killed by us, and its attempt ended crashed
            if pid in doomed and any(h.outcome.value == "crashed" for h in ended):
                continue
            told = [(h.attempt, h.outcome.value, h.error) for h in history]
            unexplained.append((job_id, attempt, pid, pid in doomed, told))
    assert unexplained == [], f"{len(unexplained)} duplicate runs not explained by a kill: " + (
        "; ".join(map(str, unexplained[:10]))
    )
    assert sound(location) == "ok"
    store.close()
    print(
        f"\nchaos: {n_jobs} jobs, {len(killed_children)} child kills, {len(killed_pools)} "
        f"supervisor kills, {duplicates} duplicate runs (each after a kill, its attempt crashed), "
        f"orphans gone within "
        f"{max(orphan_waits, default=0):.2f}s, {time.monotonic() - started:.1f}s"
    )


# ---------------------------------------------------------------------------------------------
# fencing under load: several children stopped past their lease at once


@pytest.mark.timeout(120)
def test_children_stopped_past_their_lease_are_fenced(
    tmp_path: Path, location: str, chaos_env: dict[str, str], jobq_cmd: list[str]
):
    ledger = tmp_path / "ledger"
    store = open_backend(location, Role.WORKER)
    # background load for both pools
    store.enqueue(
        [new_job("chaos.ledger", f'{{"ledger": "{tmp_path / "load"}", "sleep": 0.02}}')
         for _ in range(400)],
        time.time(),
    )  # fmt: skip
    a = Pool(jobq_cmd, chaos_env, tmp_path / "a.log", "-c", "4")
    b: Pool | None = None
    stopped: list[int] = []
    try:
        a.ready(4)
        # three slow jobs, first in line: three of A's children take one each
        slow = store.enqueue(
            [new_job("chaos.sleep", f'{{"ledger": "{ledger}", "seconds": 4}}', priority=20)
             for _ in range(3)],
            time.time(),
        )  # fmt: skip

        def three_running() -> list[tuple[int, int, int]] | None:
            runs = ledger_runs(ledger)
            return runs if len({r[0] for r in runs}) == 3 else None

        runs = wait_until(three_running, 20, 0.02, what="the three slow jobs start")
        owners = {job: pid for job, _attempt, pid in runs}  # type: ignore[union-attr]
        stopped = sorted(set(owners.values()))
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        b = Pool(jobq_cmd, chaos_env, tmp_path / "b.log", "-c", "2")

        # leases expire (2 s), the jobs are rescued and run to success by someone else
        def all_done() -> bool:
            jobs = [store.get(j) for j in slow]
            return all(j is not None and j.state.value == "succeeded" for j in jobs)

        wait_until(all_done, 40, 0.1, what="the stopped children's jobs succeed elsewhere")
        rows = {j: row_of(store, j) for j in slow}
        for j in slow:
            job = store.get(j)
            assert job is not None and job.result["pid"] not in stopped  # type: ignore[index]
            history = store.attempts(j)
            assert history[0].outcome.value == "crashed", history
            assert "worker stopped" in (history[0].error or ""), history[0].error
            assert history[-1].outcome.value == "succeeded"
            assert len([h for h in history if h.outcome.value == "succeeded"]) == 1

        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        # the resumed children finish their sleep, try to record, and are refused
        wait_until(lambda: a.text().count("lease lost") >= len(slow), 15, 0.1,
                   what="'lease lost' logged for each stopped job")  # fmt: skip
        for j in slow:
            assert f"job {j} " in a.text() or f"job {j}:" in a.text()
        # a window for any stale write after the refusals: an absence cannot be awaited
        time.sleep(0.5)
        assert {j: row_of(store, j) for j in slow} == rows, "a stale write changed a row"
        for j in slow:
            assert len([h for h in store.attempts(j) if h.outcome.value == "succeeded"]) == 1
        assert a.proc.poll() is None and b.proc.poll() is None, "a pool died"
        wait_until(lambda: store.counts()["succeeded"] == 403, 60, 0.2, what="load drains")
        assert sound(location) == "ok"
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        a.stop()
        if b is not None:
            b.stop()
        store.close()


@pytest.mark.timeout(60)
def test_a_finished_job_of_a_killed_child_is_not_recorded_as_not_started(
    tmp_path: Path, location: str, chaos_env: dict[str, str], jobq_cmd: list[str]
):
    """Regression (fixed in d445dfb): a child runs A then B in one claimed batch; B's handler
    SIGKILLs its own child before the batch is recorded. A ran: its history must not say it
    never started, and its re-run must not reuse the attempt number of the run that happened."""
    ledger = tmp_path / "ledger"
    store = open_backend(location, Role.WORKER)
    # a fresh child claims batches of 1, 2, 4, 8, 16 instant jobs: jobs 16-31 share a batch, so
    # B (job 21) runs after A jobs 16-20 of its own batch, whose successes are not recorded yet
    mark = f'{{"ledger": "{ledger}"}}'
    store.enqueue([new_job("chaos.mark", mark) for _ in range(20)], time.time())
    b_id = store.enqueue([new_job("chaos.suicide", "{}")], time.time())[0]
    pool = Pool(jobq_cmd, chaos_env, tmp_path / "pool.log", "-c", "1")
    try:
        wait_until(lambda: store.counts()["succeeded"] == 21, 30, 0.05, what="all succeed")
    finally:
        pool.stop()
    b_history = [(h.attempt, h.outcome.value) for h in store.attempts(b_id)]
    assert b_history[0] == (1, "crashed"), b_history  # the scenario happened as designed
    runs = ledger_runs(ledger)
    problems = []
    for a_id in range(1, 21):
        told = [(h.attempt, h.outcome.value, h.error) for h in store.attempts(a_id)]
        attempts = [attempt for job, attempt, _pid in runs if job == a_id]
        if any("not started" in (e or "") for _a, _o, e in told) or len(attempts) != len(
            set(attempts)
        ):
            problems.append((a_id, attempts, told))
    assert problems == [], problems
    store.close()


# ---------------------------------------------------------------------------------------------
# every way an attempt can end, at once: BaseException handlers, commands that leave
#    background grandchildren, pools whose wall clock is off by a minute, burst pools started
#    right after each supervisor kill

SITECUSTOMIZE = """
import os, time
_offset = float(os.environ.get("JOBQ_TEST_CLOCK_OFFSET") or 0)
if _offset:
    _real = time.time
    time.time = lambda: _real() + _offset
"""
GRANDCHILD = "sleep 987"  # a command's background grandchild: must never outlive its attempt


def _grandchildren() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and cmdline(int(p)).strip()
            == GRANDCHILD and not gone(int(p))]  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900 if SLOW else 240)
def test_every_way_an_attempt_ends_at_once_loses_nothing(
    tmp_path: Path, location: str, chaos_env: dict[str, str], jobq_cmd: list[str]
):
    n_each, child_kills, pool_kills = (1_000, 40, 10) if SLOW else (60, 10, 2)
    # one offset per pool, in turn: every pool's clock is a minute off the producer's
    offsets = [60.0, -60.0] if SLOW else [60.0]
    ledger, cmd_ledger = tmp_path / "ledger", tmp_path / "cmd-ledger"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    store = open_backend(location, Role.WORKER)
    # due a while ago for every clock (a pool a minute slow included)
    past = time.time() - 120
    slow = 0.5 if SLOW else 0.2  # long enough a run for every supervisor kill to land
    jobs = [new_job("chaos.ledger", f'{{"ledger": "{ledger}", "sleep": {slow * (i % 2)}}}',
                    max_attempts=1000, run_at=past) for i in range(n_each)]  # fmt: skip
    jobs += [new_job("chaos.base", f'{{"ledger": "{ledger}"}}', max_attempts=1000, run_at=past)
             for _ in range(n_each // 4)]  # fmt: skip
    jobs += [new_job("chaos.cmd", "{}", max_attempts=1000, run_at=past) for _ in range(n_each)]
    store.enqueue(jobs, time.time())
    n_jobs = len(jobs)
    command = f"chaos.cmd=sh -c 'echo \"$JOBQ_JOB_ID\" >> {cmd_ledger}; {GRANDCHILD} & sleep 0.05'"
    pools: list[Pool] = []
    bursts: list[Pool] = []
    killed: set[int] = set()
    rng = random.Random(2)

    def start(*extra: str) -> Pool:
        env = dict(chaos_env)
        env["PYTHONPATH"] = str(site) + os.pathsep + env["PYTHONPATH"]
        env["JOBQ_TEST_CLOCK_OFFSET"] = str(offsets[len(pools) % len(offsets)])
        pool = Pool(jobq_cmd, env, tmp_path / f"pool{len(pools) + len(bursts)}.log",
                    "-c", "3", "--exec", command, *extra)  # fmt: skip
        (bursts if extra else pools).append(pool)
        return pool

    def done() -> bool:
        return store.counts()["succeeded"] == n_jobs

    started = time.monotonic()
    try:
        pool = start()
        pool.ready(3)
        kills = 0
        while not done():
            time.sleep(rng.uniform(0.2, 0.8))
            if done():
                break
            if len(killed) >= child_kills and kills >= child_kills + pool_kills:
                continue  # enough chaos: let it drain
            # a supervisor kill every third round until all are done (early: the run must not
            # drain before the last one), child kills in between and after
            if kills % 3 == 0 and kills // 3 <= pool_kills and kills:
                kids = pool_children(pool.pid)
                killed.update(kids)
                os.kill(pool.pid, signal.SIGKILL)
                pool.proc.wait(5)
                start("--burst")  # right after the kill: it must rescue, run, then leave
                pool = start()
                pool.ready(3)
            else:
                kids = worker_children(pool.pid)
                if kids:
                    victim = rng.choice(kids)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(victim, signal.SIGKILL)
                        killed.add(victim)
            kills += 1
            if time.monotonic() - started > (840 if SLOW else 200):
                pytest.fail(f"not done after {time.monotonic() - started:.0f}s: {store.counts()}")
        assert len(bursts) == pool_kills, f"{len(bursts)} supervisor kills, not {pool_kills}"
        assert len(killed) >= child_kills, f"only {len(killed)} children killed"
        pool.proc.send_signal(signal.SIGTERM)
        assert pool.proc.wait(30) == 0
        for b in bursts:
            assert b.proc.wait(60) == 0, b.text()[-2000:]
        # nothing a job started outlives the pools: no worker child, no command grandchild
        wait_until(lambda: not _grandchildren(), 5.0, 0.05, what="command grandchildren gone")
        for p in pools + bursts:
            assert not worker_children(p.pid)
    finally:
        for p in pools + bursts:
            p.stop()

    counts = store.counts()
    assert counts["succeeded"] == n_jobs, counts
    runs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for job_id, attempt, pid in ledger_runs(ledger):
        runs[job_id].append((attempt, pid))
    unexplained = []
    for job_id, job_runs in runs.items():
        history = store.attempts(job_id)
        final = [h.attempt for h in history if h.outcome.value == "succeeded"]
        assert len(final) == 1, (job_id, history)
        success = max(k for k, (attempt, _pid) in enumerate(job_runs) if attempt == final[0])
        for k, (attempt, pid) in enumerate(job_runs):
            if k == success:
                continue
            ended = {h.outcome.value for h in history if h.attempt == attempt} - {"succeeded"}
            # explained: the handler's own BaseException failed the attempt, or we killed the
            # run's worker and its attempt ended crashed
            if "failed" in ended or (pid in killed and "crashed" in ended):
                continue
            unexplained.append((job_id, attempt, pid, sorted(ended)))
    assert unexplained == [], unexplained[:10]
    base_ids = [j for j in runs if store.get(j).type == "chaos.base"]  # type: ignore[union-attr]
    for j in base_ids:
        # a claimed job that never started is released uncharged ("interrupted"): skip those
        outcomes = [h.outcome.value for h in store.attempts(j) if h.outcome.value != "interrupted"]
        assert outcomes[0] in ("failed", "crashed") and outcomes[-1] == "succeeded", outcomes
    assert sound(location) == "ok"
    store.close()
    print(f"\nchaos (every ending): {n_jobs} jobs, {len(killed)} processes killed, "
          f"{len(bursts)} burst pools, {time.monotonic() - started:.1f}s")  # fmt: skip

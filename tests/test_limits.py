"""Limits across pools (jobq limit, jobq/limits.py), on every backend.

Real pools (`jobq work -c 4` subprocesses, on PostgreSQL two of them as other hosts) drain jobs
whose handler (tests/limitapp.py) writes `start T` / `end T` to a ledger with one clock (the
machine's time.time()): the ledger proves that no more than N ran at once and that the starts
kept to the rate. The rate is GCRA without burst: starts (the claim times, `started_at`) are at
least period/count apart, so a window of length W holds at most floor(W * count / period) + 1.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobq
from jobq import JobState
from jobq.backend import ANY
from jobq.diagnose import WaitReason, diagnose_job
from jobq.limits import Limit, LimitStatus, make_limit
from tests.helpers import descendants, kill_all, wait_until

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000.0
# CPU seconds an idle pool may use in 2 s (measured: 0.01-0.02 s; a claim loop, even starved
# on a loaded machine, takes several times more)
IDLE_CPU = 0.15


class Pools:
    """`jobq work --app tests.limitapp` pools on one queue; all SIGKILLed at teardown."""

    def __init__(self, location: str, kind: str, tmp: Path) -> None:
        self.location, self.kind, self.tmp = location, kind, tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT), JOBQ_DB=self.location, **extra)
        env.pop("NOTIFY_SOCKET", None)
        return env

    def start(self, *args: str, host: str | None = None, **env: str) -> subprocess.Popen[bytes]:
        """Start a pool; on PostgreSQL `host` makes it judge and be judged as another host."""
        if host is not None and self.kind == "postgresql":
            env["JOBQ_TEST_HOST"] = host
        log = open(self.tmp / f"pool{len(self.procs)}.log", "ab")  # noqa: SIM115 - kill_all
        p = subprocess.Popen(
            [sys.executable, "-m", "jobq", "work", "--app", "tests.limitapp", *args],
            env=self.env(**env), stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        self.procs.append(p)
        return p

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobq", *args], env=self.env(),
                              capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture
def pools(location: str, backend_kind: str, tmp_path: Path) -> Iterator[Pools]:
    p = Pools(location, backend_kind, tmp_path)
    yield p
    kill_all(p.procs)


@pytest.fixture
def q(location: str) -> Iterator[jobq.Queue]:
    with jobq.Queue(location) as queue:
        yield queue


def runs(ledger: Path) -> dict[int, list[float]]:
    """Job id → [start, end] (end missing for a run that never ended) from a ledger."""
    out: dict[int, list[float]] = {}
    if not ledger.exists():
        return out
    for line in ledger.read_text().splitlines():
        what, t, job_id, _ = line.split()
        if what == "start":
            out[int(job_id)] = [float(t)]
        else:
            out[int(job_id)].append(float(t))
    return out


def max_overlap(intervals: list[list[float]]) -> int:
    """The most intervals [start, end] open at one instant (an end at t closes before a start)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


def states(q: jobq.Queue, ids: list[int]) -> list[JobState]:
    return [q.get(i).state for i in ids]


def all_succeeded(q: jobq.Queue, ids: list[int]) -> bool:
    return all(s is JobState.SUCCEEDED for s in states(q, ids))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants, from /proc."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# ---- real pools -------------------------------------------------------------------------------


def test_concurrency_limit_holds_across_pools(q: jobq.Queue, pools: Pools, tmp_path: Path) -> None:
    ledger, free_ledger = tmp_path / "limited.ledger", tmp_path / "free.ledger"
    q.set_limit("limited", concurrency=3)
    held = [q.enqueue("limited", {"ledger": str(ledger), "seconds": 0.2}) for _ in range(18)]
    free = [q.enqueue("free", {"ledger": str(free_ledger)}) for _ in range(30)]
    for host in ("host-a", "host-b", None):
        pools.start("-c", "4", host=host)
    wait_until(lambda: all_succeeded(q, held + free), timeout=90, what="every job succeeded")
    limited = list(runs(ledger).values())
    assert len(limited) == 18
    assert max_overlap(limited) == 3  # never more than 3, and the limit was reached
    # the free jobs behind the held ones were not held back
    assert max(e for _, e in runs(free_ledger).values()) < max(s for s, _ in limited)
    assert [s.running for s in q.limits()] == [0]


def test_rate_limit_holds_across_pools(q: jobq.Queue, pools: Pools, tmp_path: Path) -> None:
    ledger, free_ledger = tmp_path / "limited.ledger", tmp_path / "free.ledger"
    q.set_limit("limited", rate="10/s")  # one start every 0.1 s
    held = [q.enqueue("limited", {"ledger": str(ledger)}) for _ in range(25)]
    free = [q.enqueue("free", {"ledger": str(free_ledger)}) for _ in range(20)]
    for host in ("host-a", "host-b", None):
        pools.start("-c", "4", host=host)
    wait_until(lambda: all_succeeded(q, held + free), timeout=90, what="every job succeeded")
    # the claims (started_at, the time the rate governs) are at least 0.1 s apart
    claimed = sorted(q.get(i).started_at or 0.0 for i in held)
    gaps = [b - a for a, b in itertools.pairwise(claimed)]
    assert min(gaps) >= 0.1 - 1e-6, gaps
    # the ledger: no 1-second window holds more than 10 + 1 starts (one more for the jitter
    # between a claim and its handler's start)
    starts = sorted(s for s, *_ in runs(ledger).values())
    assert len(starts) == 25
    assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) <= 11
    assert max(e for _, e in runs(free_ledger).values()) < starts[-1]


def test_limit_rm_wakes_the_pools_and_held_jobs_say_why(
    q: jobq.Queue, pools: Pools, tmp_path: Path
) -> None:
    ledger = tmp_path / "limited.ledger"
    q.set_limit("limited", concurrency=1)
    ids = [q.enqueue("limited", {"ledger": str(ledger), "seconds": 60}) for _ in range(3)]
    pool = pools.start("-c", "3", JOBQ_POLL_INTERVAL="120")  # a wake-up, never the fallback poll
    wait_until(lambda: states(q, ids).count(JobState.RUNNING) == 1, timeout=30)
    pending = [i for i, s in zip(ids, states(q, ids), strict=True) if s is JobState.PENDING]
    shown = pools.cli("show", str(pending[0]))
    assert shown.returncode == 0, shown.stderr
    assert "held by limit limited: 1 of 1 running" in shown.stdout
    listed = pools.cli("limit", "ls")
    assert listed.stdout.splitlines()[1].split()[:4] == ["limited", "1", "-", "1"]
    # two idle children with held jobs sleep: no claim loop
    before = cpu_seconds(pool.pid)
    time.sleep(2.0)  # a span of idleness to measure, not a wait for a condition
    assert cpu_seconds(pool.pid) - before < IDLE_CPU
    assert states(q, ids).count(JobState.RUNNING) == 1
    t0 = time.monotonic()
    removed = pools.cli("limit", "rm", "limited")
    assert removed.returncode == 0 and removed.stdout == "removed limit limited\n"
    wait_until(lambda: states(q, ids).count(JobState.RUNNING) == 3, timeout=10)
    assert time.monotonic() - t0 < 10  # released by a wake-up: the poll is 120 s


def test_rate_held_worker_sleeps_until_the_next_start(
    q: jobq.Queue, pools: Pools, tmp_path: Path
) -> None:
    ledger = tmp_path / "limited.ledger"
    q.set_limit("limited", rate="15/min")  # one start every 4 s
    ids = [q.enqueue("limited", {"ledger": str(ledger)}) for _ in range(2)]
    pool = pools.start("-c", "2", JOBQ_POLL_INTERVAL="120")
    wait_until(lambda: q.get(ids[0]).state is JobState.SUCCEEDED, timeout=30)
    shown = pools.cli("show", str(ids[1]))
    assert "held by limit limited: rate 15/min, next start in" in shown.stdout, shown.stdout
    before = cpu_seconds(pool.pid)
    time.sleep(2.0)  # a span of idleness to measure, not a wait for a condition
    assert cpu_seconds(pool.pid) - before < IDLE_CPU
    wait_until(lambda: q.get(ids[1]).state is JobState.SUCCEEDED, timeout=30)
    first, second = (q.get(i).started_at or 0.0 for i in ids)
    # started when the rate allowed it (the child slept until then, not until the 120 s poll)
    assert 4.0 - 1e-6 <= second - first < 4.0 + 2.0


def test_a_killed_pool_frees_its_share_once_rescued(
    q: jobq.Queue, pools: Pools, tmp_path: Path
) -> None:
    ledger = tmp_path / "limited.ledger"
    q.set_limit("limited", concurrency=2)
    ids = [q.enqueue("limited", {"ledger": str(ledger), "seconds": 1.0}) for _ in range(4)]
    first = pools.start("-c", "4")
    wait_until(lambda: len(runs(ledger)) == 2, timeout=30)
    kill_all([first])  # SIGKILL, supervisor and children: two jobs left running in the queue
    assert [s.running for s in q.limits()] == [2]
    assert states(q, ids).count(JobState.RUNNING) == 2
    pools.start("-c", "4")  # its rescuer finds the dead pool and gives its jobs back
    wait_until(lambda: all_succeeded(q, ids), timeout=60, what="every job succeeded")
    finished = [r for r in runs(ledger).values() if len(r) == 2]
    assert len(finished) == 4
    assert max_overlap(finished) <= 2
    crashed = [a for i in ids for a in q.attempts(i) if a.outcome == "crashed"]
    assert len(crashed) == 2
    assert [s.running for s in q.limits()] == [0]


# ---- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["limit", "limited", "--concurrency", "0"],
        ["limit", "limited", "-c", "-3"],
        ["limit", "limited", "-c", "many"],
        ["limit", "limited", "--rate", "10/fortnight"],
        ["limit", "limited", "--rate", "0/min"],
        ["limit", "limited", "--rate", "fast"],
        ["limit", "limited"],
        ["limit", "limited", "-c", "2", "--bogus"],
        ["limit", "lim*", "-c", "2"],
        ["limit", "queue:", "-c", "2"],
        ["limit", "ls", "extra"],
        ["limit", "rm"],
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    q: jobq.Queue, pools: Pools, args: list[str]
) -> None:
    out = pools.cli(*args)
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("jobq: error: ")
    assert "Traceback" not in out.stderr
    assert q.limits() == []


def test_cli_sets_replaces_lists_and_removes(q: jobq.Queue, pools: Pools) -> None:
    assert pools.cli("limit", "limited", "-c", "4").stdout == "limit limited: at most 4 running\n"
    out = pools.cli("limit", "queue:mail", "--rate", "100/min", "-c", "2")
    assert out.stdout == "limit queue:mail: at most 2 running, at most 100/min started\n"
    assert pools.cli("limit", "limited", "--rate", "5/10s").returncode == 0  # replaces
    import json

    listed = json.loads(pools.cli("limit", "ls", "--json").stdout)
    assert listed == [
        {"key": "limited", "concurrency": None, "rate": "5/10s", "running": 0,
         "next_start_in": None},
        {"key": "queue:mail", "concurrency": 2, "rate": "100/min", "running": 0,
         "next_start_in": None},
    ]  # fmt: skip
    missing = pools.cli("limit", "rm", "nope")
    assert missing.returncode == 1 and "no limit 'nope'" in missing.stderr
    assert pools.cli("limit", "rm", "queue:mail").returncode == 0
    assert [s.limit.key for s in q.limits()] == ["limited"]


# ---- the claim, driven with a fake clock ------------------------------------------------------


def test_a_batch_claim_never_exceeds_the_room_left(backend_kind: str, location: str) -> None:
    with jobq.Queue(location) as q:
        b = q.backend
        b.put_limit(make_limit("limited", 3, None), T0)
        b.put_limit(make_limit("queue:mail", None, "2/s"), T0)
        for _ in range(5):
            q.enqueue("limited", {})
        for _ in range(3):
            q.enqueue("free", {}, queue="mail")
        for _ in range(4):
            q.enqueue("free", {})
        got = b.claim("w/1", T0, 30, ANY, limit=50)
        # 3 of the limited type, 1 of queue mail (no burst), all 4 free ones
        assert sorted((j.type, j.queue) for j in got) == sorted(
            [("limited", "default")] * 3 + [("free", "mail")] + [("free", "default")] * 4
        )
        assert b.claim("w/1", T0 + 0.1, 30, ANY, limit=50) == []
        # the next start the rate allows (the limited type waits for a running job to end)
        assert b.next_run_at(ANY, T0 + 0.1) == pytest.approx(T0 + 0.5)
        running = {s.limit.key: s.running for s in q.limits()}
        assert running == {"limited": 3, "queue:mail": 1}
        mail = b.claim("w/1", T0 + 0.5, 30, ANY, limit=50)
        assert [(j.type, j.queue) for j in mail] == [("free", "mail")]
        done = got[0] if got[0].type == "limited" else got[1]
        assert b.complete(done.id, done.lease_token or "", T0 + 0.6, None, None)
        again = b.claim("w/1", T0 + 0.6, 30, ANY, limit=50)
        assert [j.type for j in again] == ["limited"]  # one ended, one more may start
        b.remove_limit("limited")
        assert [j.type for j in b.claim("w/1", T0 + 0.6, 30, ANY, limit=50)] == ["limited"]


def test_no_limit_no_change(backend_kind: str, location: str) -> None:
    """Without limits the claim is the plain one: order and batch as before."""
    with jobq.Queue(location) as q:
        ids = [q.enqueue("limited", {}, priority=p) for p in (0, 10, 5)]
        got = q.backend.claim("w/1", time.time() + 1, 30, ANY, limit=10)
        assert [j.id for j in got] == [ids[1], ids[2], ids[0]]
        assert q.backend.next_run_at(ANY, time.time()) is None


# ---- parsing and texts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [("100/min", 100, 60.0), ("5/s", 5, 1.0), ("5/sec", 5, 1.0), ("1000/hour", 1000, 3600.0),
     ("3/h", 3, 3600.0), ("5/10s", 5, 10.0), (" 7 / m ", 7, 60.0)],
)  # fmt: skip
def test_rates_parse(text: str, count: int, period: float) -> None:
    lim = make_limit("limited", None, text)
    assert (lim.rate_count, lim.rate_period) == (count, period)


def test_waiting_reasons_name_the_limit() -> None:
    from test_diagnose import NOW, job, pool

    due = job(type="resize", queue="mail")
    full = LimitStatus(Limit("resize", 4), running=4)
    paced = LimitStatus(Limit("queue:mail", None, 100, 60.0, tat=NOW + 0.4), running=0)
    # no pool at all outranks the limit: that is what to act on first
    d = diagnose_job(due, [], [], NOW, [full])
    assert d is not None and d.code is WaitReason.NO_POOL
    takes = pool(handlers=("resize",))
    d = diagnose_job(due, [takes], [], NOW, [full])
    assert d is not None and (d.code, d.text) == (
        WaitReason.LIMITED,
        "held by limit resize: 4 of 4 running",
    )
    d = diagnose_job(due, [takes], [], NOW, [paced])
    assert d is not None and (d.code, d.text) == (
        WaitReason.LIMITED,
        "held by limit queue:mail: rate 100/min, next start in 0.4 s",
    )
    d = diagnose_job(due, [takes], [], NOW + 1, [paced])  # the rate allows a start again
    assert d is not None and d.code is WaitReason.DUE


def test_metrics_show_each_limits_running_jobs(backend_kind: str, location: str) -> None:
    from jobq.metrics import exposition

    with jobq.Queue(location) as q:
        q.set_limit("limited", concurrency=3)
        q.set_limit("queue:mail", rate="1/s")
        for _ in range(2):
            q.enqueue("limited", {})
        assert len(q.backend.claim("w/1", time.time(), 30, ANY, limit=5)) == 2
    text = exposition(location)
    assert 'jobq_limit_running{key="limited"} 2.0' in text
    assert 'jobq_limit_running{key="queue:mail"} 0.0' in text
    assert 'jobq_limit_concurrency{key="limited"} 3.0' in text
    assert 'jobq_limit_concurrency{key="queue:mail"}' not in text


def test_a_burst_pool_waits_for_rate_held_jobs_in_the_same_child(
    q: jobq.Queue, pools: Pools, tmp_path: Path
) -> None:
    ledger = tmp_path / "limited.ledger"
    q.set_limit("limited", rate="4/s")
    ids = [q.enqueue("limited", {"ledger": str(ledger)}) for _ in range(4)]
    pool = pools.start("-c", "1", "--burst")
    assert pool.wait(timeout=60) == 0
    assert all_succeeded(q, ids)
    # one child ran them all: it slept until each start the rate allowed, rather than exiting
    # on an empty claim to be respawned by the supervisor again and again
    pids = {line.split()[3] for line in ledger.read_text().splitlines()}
    assert len(pids) == 1, pids
    claimed = sorted(q.get(i).started_at or 0.0 for i in ids)
    assert min(b - a for a, b in itertools.pairwise(claimed)) >= 0.25 - 1e-6

"""The pure decisions of jobq.lifecycle, table by table: how an attempt ends, which limits apply,
whether a pool lives (on real /proc processes) and what a rescue takes back."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from itertools import product

import pytest

from jobq import lifecycle
from jobq.basics import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, JobState, Outcome
from jobq.lifecycle import Ending, HeldJob, end_attempt
from tests.conftest import wait_until

LINUX = lifecycle.host_key() is not None
needs_proc = pytest.mark.skipif(not LINUX, reason="needs /proc (Linux)")
NOW = 1_700_000_000.0


# ---- end_attempt: counted × cancel × attempts against the limit × retryable -------------------


def due(attempts: int) -> float:
    """A retry time that shows which attempt count it was computed for."""
    return 1000.0 + attempts


P, F, C = JobState.PENDING, JobState.FAILED, JobState.CANCELLED
FAIL, CANCEL = Outcome.FAILED, Outcome.CANCELLED

# (counted, cancel requested, attempts, max_attempts, retryable) -> the Ending
END_TABLE = [
    ((True, False, 1, 3, True), Ending(P, FAIL, 1, 1001.0, False)),
    ((True, False, 2, 3, True), Ending(P, FAIL, 2, 1002.0, False)),
    ((True, False, 3, 3, True), Ending(F, FAIL, 3, None, True)),  # the last attempt
    ((True, False, 5, 3, True), Ending(F, FAIL, 5, None, True)),  # over the limit
    ((True, False, 1, 1, True), Ending(F, FAIL, 1, None, True)),
    ((True, False, DEFAULT_MAX_ATTEMPTS - 1, None, True),
     Ending(P, FAIL, DEFAULT_MAX_ATTEMPTS - 1, 1000.0 + DEFAULT_MAX_ATTEMPTS - 1, False)),
    ((True, False, DEFAULT_MAX_ATTEMPTS, None, True),
     Ending(F, FAIL, DEFAULT_MAX_ATTEMPTS, None, True)),
    ((True, False, 1, 3, False), Ending(F, FAIL, 1, None, True)),  # not retryable: final
    ((True, True, 1, 3, True), Ending(C, CANCEL, 1, None, True)),
    ((True, True, 3, 3, True), Ending(C, CANCEL, 3, None, True)),  # cancel beats "failed"
    ((True, True, 1, 3, False), Ending(C, CANCEL, 1, None, True)),
    # not counted: the attempt is given back, and the job always goes back to pending
    ((False, False, 3, 3, True), Ending(P, FAIL, 2, 1002.0, False)),
    ((False, False, 5, 3, True), Ending(P, FAIL, 4, 1004.0, False)),
    ((False, False, 1, 1, True), Ending(P, FAIL, 0, 1000.0, False)),
    ((False, False, 0, 3, True), Ending(P, FAIL, 0, 1000.0, False)),  # never below zero
    ((False, True, 2, 3, True), Ending(C, CANCEL, 1, None, True)),
    ((False, True, 2, 3, False), Ending(C, CANCEL, 1, None, True)),
    ((False, False, 2, 3, False), Ending(F, FAIL, 1, None, True)),
]  # fmt: skip


@pytest.mark.parametrize(("given", "expected"), END_TABLE, ids=[str(g) for g, _ in END_TABLE])
def test_end_attempt(given: tuple[bool, bool, int, int | None, bool], expected: Ending) -> None:
    counted, cancel, attempts, max_attempts, retryable = given
    retry_at = due if retryable else None
    got = end_attempt(attempts=attempts, max_attempts=max_attempts, cancel_requested=cancel,
                      outcome=FAIL, counted=counted, retry_at=retry_at)  # fmt: skip
    assert got == expected
    assert type(got.finished) is bool


def test_end_attempt_table_covers_every_decision() -> None:
    seen = {(g[0], g[1], g[4], e.state) for g, e in END_TABLE}
    for counted, cancel, retryable in product([True, False], repeat=3):
        assert any(s[:3] == (counted, cancel, retryable) for s in seen)
    assert {e.state for _, e in END_TABLE} == {P, F, C}


@pytest.mark.parametrize("cancel", [False, True])
def test_a_forced_state_is_final_and_keeps_the_outcome(cancel: bool) -> None:
    got = end_attempt(attempts=1, max_attempts=3, cancel_requested=cancel,
                      outcome=Outcome.TIMEOUT, counted=True, retry_at=due,
                      force_state=JobState.CANCELLED)  # fmt: skip
    assert got == Ending(C, Outcome.TIMEOUT, 1, None, True)


@pytest.mark.parametrize(
    ("ids", "progress", "charged", "released"),
    [
        ([], None, [], []),
        ([7, 3], None, [7, 3], []),  # nobody can tell what started: every job may have
        ([7, 3, 9, 1], (9, frozenset({7, 3})), [7, 3, 9], [1]),  # ran, ran, running, waiting
        ([7, 3, 9], (0, frozenset({7})), [7], [3, 9]),  # between jobs
        ([7, 3], (0, frozenset()), [], [7, 3]),  # nothing of this batch started
        ([7, 3], (5, frozenset({6})), [], [7, 3]),  # progress of another batch
    ],
)
def test_split_batch_charges_exactly_what_started(
    ids: list[int],
    progress: tuple[int, frozenset[int]] | None,
    charged: list[int],
    released: list[int],
) -> None:
    assert lifecycle.split_batch(ids, progress) == (charged, released)


# ---- effective limits: the job's, else the handler's, else the defaults -----------------------


@pytest.mark.parametrize(
    ("job", "handler", "expected"),
    [
        ((None, None), (None, None), (DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT)),
        ((None, None), (7, 12.5), (7, 12.5)),
        ((2, 3.0), (7, 12.5), (2, 3.0)),
        ((2, None), (7, 12.5), (2, 12.5)),
        ((None, 3.0), (7, None), (7, 3.0)),
        ((2, None), (None, None), (2, DEFAULT_TIMEOUT)),
        ((None, 3.0), (None, None), (DEFAULT_MAX_ATTEMPTS, 3.0)),
        ((0, 0.0), (7, 12.5), (0, 0.0)),  # zero is a value, not "unset"
        ((None, None), (0, 0.0), (0, 0.0)),
    ],
)
def test_effective_limits(
    job: tuple[int | None, float | None],
    handler: tuple[int | None, float | None],
    expected: tuple[int, float],
) -> None:
    assert lifecycle.effective_limits(job[0], job[1], handler[0], handler[1]) == expected


# ---- pools: real processes in /proc ----------------------------------------------------------

# The child renames itself with a non-ASCII name holding ") ": /proc/PID/stat must be read past
# the last ")" and decoded whatever bytes the name has.
CHILD = """
import sys
with open("/proc/self/comm", "w", encoding="utf-8") as f:
    f.write("j\\u00f6b) 1 2 Z")
print("ready", flush=True)
sys.stdin.read()
"""


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@needs_proc
def test_proc_key_names_host_pid_and_start_time(child: subprocess.Popen[str]) -> None:
    before = _uptime()
    own = lifecycle.proc_key()
    key = lifecycle.proc_key(child.pid)
    assert own is not None and key is not None
    host, pid, ticks = key.rsplit(":", 2)
    assert host == lifecycle.host_key() and pid == str(child.pid)
    assert own.rsplit(":", 2)[1] == str(os.getpid())
    # the start time, on the clock of /proc/uptime: after ours, not after now
    start = int(ticks) / os.sysconf("SC_CLK_TCK")
    assert int(own.rsplit(":", 1)[1]) <= int(ticks)
    assert start <= before + 0.02
    assert before - start < 60, "the child started moments ago"
    assert lifecycle.process_state(key, lifecycle.host_key()) == "alive"


@needs_proc
def test_a_process_that_grows_keeps_its_key() -> None:
    grow = "import sys; sys.stdin.readline(); x = bytearray(64 << 20); print('big', flush=True)"
    proc = subprocess.Popen([sys.executable, "-c", grow + "; sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        key = lifecycle.proc_key(proc.pid)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "big\n"
        assert lifecycle.proc_key(proc.pid) == key
        assert lifecycle.process_state(key, lifecycle.host_key()) == "alive"
    finally:
        proc.kill()
        proc.wait()


@needs_proc
def test_a_stopped_process_then_a_zombie_then_nothing(child: subprocess.Popen[str]) -> None:
    here = lifecycle.host_key()
    key = lifecycle.proc_key(child.pid)
    os.kill(child.pid, signal.SIGSTOP)
    wait_until(lambda: lifecycle.process_state(key, here) == "stopped", what="SIGSTOP seen")
    os.kill(child.pid, signal.SIGCONT)
    wait_until(lambda: lifecycle.process_state(key, here) == "alive", what="SIGCONT seen")
    os.kill(child.pid, signal.SIGKILL)
    # not reaped yet: a zombie, state Z, is gone
    wait_until(lambda: lifecycle.process_state(key, here) == "gone", what="zombie seen")
    with open(f"/proc/{child.pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
    child.wait()
    assert lifecycle.process_state(key, here) == "gone"
    assert lifecycle.proc_key(child.pid) is None


@needs_proc
def test_a_traced_process_is_stopped(child: subprocess.Popen[str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    ptrace_attach, ptrace_detach = 16, 17
    if libc.ptrace(ptrace_attach, child.pid, None, None) != 0:
        pytest.skip(f"ptrace not permitted here: {os.strerror(ctypes.get_errno())}")
    key = lifecycle.proc_key(child.pid)
    wait_until(lambda: lifecycle.process_state(key, lifecycle.host_key()) == "stopped",
               what="tracing stop (t) seen")  # fmt: skip
    os.waitpid(child.pid, 0)  # the attach stop, reported to the tracer
    libc.ptrace(ptrace_detach, child.pid, None, 0)
    wait_until(lambda: lifecycle.process_state(key, lifecycle.host_key()) == "alive",
               what="detached")  # fmt: skip


@needs_proc
def test_pid_reuse_cannot_pass_for_the_old_process(child: subprocess.Popen[str]) -> None:
    here = lifecycle.host_key()
    key = lifecycle.proc_key(child.pid)
    assert key is not None
    head, ticks = key.rsplit(":", 1)
    assert lifecycle.process_state(f"{head}:{int(ticks) + 1}", here) == "gone"
    assert lifecycle.process_state(key, here) == "alive"


@pytest.mark.parametrize(
    ("key", "here"),
    [
        (None, "b:ns"),
        ("b:ns:1:2", None),
        ("other:ns:1:2", "b:ns"),  # another host: its pids mean nothing here
        ("b:ns:x1:2", "b:ns"),
    ],
)
def test_process_state_unknown(key: str | None, here: str | None) -> None:
    assert lifecycle.process_state(key, here) == "unknown"


@needs_proc
def test_another_pid_namespace_is_another_host() -> None:
    code = "from jobq.lifecycle import host_key; print(host_key())"
    try:
        out = subprocess.run(["unshare", "--pid", "--fork", sys.executable, "-c", code],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no unshare(1)")
    if out.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {out.stderr.strip()}")
    here = lifecycle.host_key()
    assert here is not None
    there = out.stdout.strip()
    assert there != here
    assert there.split(":")[0] == here.split(":")[0], "same machine: the same boot id"


def test_no_boot_id_no_host_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "_read", lambda path: None)
    assert lifecycle.host_key() is None
    assert lifecycle.proc_key() is None


def test_this_host_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "_HOST", [])
    first = lifecycle.this_host()
    assert first == lifecycle.host_key()
    monkeypatch.setattr(lifecycle, "host_key", lambda: "changed")
    assert lifecycle.this_host() == first


# status, process, heartbeat age -> the word `jobq workers` shows
S = lifecycle.STALE_AFTER
POOL_TABLE = [
    ("stopped", "gone", 0.0, "stopped"),  # it said so itself: not dead
    ("stopped", "unknown", S + 1, "stopped"),
    ("running", "gone", 0.0, "dead"),  # gone on this host: dead whatever the heartbeat
    ("stopping", "gone", 0.0, "dead"),
    ("running", "alive", S + 100, "running"),  # alive on this host: the heartbeat does not matter
    ("stopping", "alive", S + 100, "stopping"),
    ("dead", "alive", 0.0, "running"),  # marked dead by a rescuer, yet alive: running
    ("running", "unknown", S, "running"),  # another host: by heartbeat
    ("running", "unknown", S + 0.5, "dead"),
    ("stopping", "unknown", 1.0, "stopping"),
]


@needs_proc
@pytest.mark.parametrize(("status", "proc", "age", "expected"), POOL_TABLE)
def test_pool_status(status: str, proc: str, age: float, expected: str) -> None:
    here = lifecycle.host_key()
    if proc == "gone":
        p = subprocess.Popen([sys.executable, "-c", "pass"])
        key = lifecycle.proc_key(p.pid)
        p.wait()
    else:
        key = lifecycle.proc_key() if proc == "alive" else "otherboot:ns:12:34"
    assert lifecycle.pool_status(status, key, NOW - age, NOW, here) == expected


# ---- plan_rescue: pool state × lease × batch size -------------------------------------------

WHY = {
    "gone": "worker pool p died (its process is gone)",
    "stale": f"worker pool p went silent (no heartbeat for {S:g}s)",
    "stopped": "lease expired: worker p/1 stopped renewing it",
    "unknown": "lease expired: worker p/1 stopped renewing it",
}


def batch(n: int, *, pool: str = "p", token: str = "tok", lease_until: float, first_id: int = 1
          ) -> list[HeldJob]:  # fmt: skip
    """A claim of `n` jobs, listed in reverse claim order (the plan must sort them)."""
    jobs = [HeldJob(first_id + i, token, f"{pool}/1", lease_until, (-n + i, NOW - 60, first_id + i))
            for i in range(n)]  # fmt: skip
    return jobs[::-1]


POOL_WORDS = ["own", "alive", "stopped", "gone", "stale", "unknown", None]


@pytest.mark.parametrize(
    ("state", "lease", "size"),
    list(product(POOL_WORDS, ["live", "now", "expired"], [1, 3])),
)
def test_plan_rescue(state: str | None, lease: str, size: int) -> None:
    lease_until = {"live": NOW + 5, "now": NOW, "expired": NOW - 5}[lease]
    held = batch(size, lease_until=lease_until)
    states = {} if state in ("own", None) else {"p": state}
    plan = lifecycle.plan_rescue(held, states, NOW, own_pool="p" if state == "own" else "mine")
    word = state or "unknown"  # a pool the workers table does not know
    taken = word in ("gone", "stale") or (word in ("stopped", "unknown") and lease == "expired")
    if not taken:
        assert plan == lifecycle.RescuePlan([], [])
        return
    why = WHY[word]
    # without the dead worker's progress every job of its batch may have started
    assert [(j.id, w) for j, w in plan.charge] == [(i, why) for i in range(1, size + 1)]
    assert plan.release == []
    if word in ("gone", "stale"):  # with it, exactly what started is charged
        known = lifecycle.plan_rescue(held, states, NOW, own_pool="mine",
                                      progress={"p": {"p/1": (1, frozenset())}})  # fmt: skip
        assert [(j.id, w) for j, w in known.charge] == [(1, why)]
        assert [(j.id, w) for j, w in known.release] == [(i, f"not started: {why}")
                                                        for i in range(2, size + 1)]  # fmt: skip


def test_plan_rescue_takes_every_batch_of_every_pool_past_ones_it_keeps() -> None:
    held = [
        *batch(2, pool="mine", token="m", lease_until=NOW - 5, first_id=100),
        *batch(2, pool="live", token="l", lease_until=NOW - 5, first_id=200),
        *batch(3, pool="p", token="a", lease_until=NOW + 60, first_id=1),
        *batch(2, pool="p", token="b", lease_until=NOW + 60, first_id=10),
        *batch(2, pool="q", token="c", lease_until=NOW - 5, first_id=20),
    ]
    states = {"live": "alive", "p": "gone", "q": "unknown"}
    plan = lifecycle.plan_rescue(held, states, NOW, own_pool="mine")
    assert sorted(j.id for j, _ in plan.charge) == [1, 2, 3, 10, 11, 20, 21]
    assert plan.release == []
    # p's worker had run job 1 (unrecorded) and was running job 2 of batch a; q is not dead, so
    # no progress is asked of it: its expired batch is charged whole
    known = lifecycle.plan_rescue(held, states, NOW, own_pool="mine",
                                  progress={"p": {"p/1": (2, frozenset({1}))}})  # fmt: skip
    assert sorted(j.id for j, _ in known.charge) == [1, 2, 20, 21]
    assert sorted(j.id for j, _ in known.release) == [3, 10, 11]

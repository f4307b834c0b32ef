"""Reliability under races, crashes, kills, full disks and hostile files (issue 6).

Numbers in the test names follow issue 6: 2 no double claim, 4 rescuer table, 5 durable
acknowledgement, 6 disk full, 7 bad files, 10 hot backup, 11 contention, 12 the TUI does not pin
the WAL. Each slow test has a reduced form that runs by default; `JOBQ_SLOW=1` runs full sizes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobq.model import JobState
from jobq.store import Store
from tests.factories import T0, make_job, new_job, raw_row

# ---------------------------------------------------------------------------------------------
# helpers shared by the process tests of this module


def integrity(path: str) -> str:
    """`PRAGMA integrity_check` of `path` through a plain connection ('ok' when sound)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "ok" if rows == [("ok",)] else repr(rows[:5])


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL every process this test started (by pid) and reap it."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # each was started in its own session
            except (ProcessLookupError, PermissionError):
                p.kill()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# 2. No double claim: 8 processes race through Store.claim

CLAIMER = textwrap.dedent(
    """
    import json, os, sys, time
    from jobq.errors import DatabaseBusy
    from jobq.store import Store

    path, out, go, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = Store(path)
    while not os.path.exists(go):
        time.sleep(0.001)
    claimed, busy, empty = [], 0, 0
    while empty < 3:
        try:
            jobs = store.claim(f"racer-{os.getpid()}/1", time.time(), 300.0, limit=limit)
        except DatabaseBusy:
            busy += 1
            continue
        if jobs:
            empty = 0
            claimed.extend(j.id for j in jobs)
        else:
            empty += 1
    with open(out, "w") as f:
        json.dump({"claimed": claimed, "busy": busy}, f)
    """
)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("limit", [1, 8])
def test_2_no_double_claim(tmp_path: Path, db_path: str, jobq_env: dict[str, str], limit: int):
    """8 processes claim 10,000 ready jobs at once: each id exactly once, no busy error."""
    total = 10_000
    store = Store(db_path)
    for start in range(0, total, 5_000):
        store.enqueue([new_job("race") for _ in range(min(5_000, total - start))], time.time())
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLAIMER,
                db_path,
                str(tmp_path / f"out{i}"),
                str(go),
                str(limit),
            ],
            env=jobq_env,
            start_new_session=True,
        )
        for i in range(8)
    ]
    try:
        time.sleep(0.5)  # let every racer open its connection before the start signal
        go.touch()
        for p in procs:
            assert p.wait(timeout=200) == 0
    finally:
        kill_all(procs)
    results = [json.loads((tmp_path / f"out{i}").read_text()) for i in range(8)]
    every = [i for r in results for i in r["claimed"]]
    dupes = [i for i, n in Counter(every).items() if n > 1]
    assert dupes == [], f"claimed more than once: {dupes[:20]}"
    assert sorted(every) == list(range(1, total + 1))
    assert sum(r["busy"] for r in results) == 0, "DatabaseBusy reached a caller"
    per_proc = [len(r["claimed"]) for r in results]
    assert sum(1 for n in per_proc if n > 0) >= 2, f"no race happened: {per_proc}"
    counts = store.counts()
    assert counts["running"] == total and counts["pending"] == 0
    assert integrity(db_path) == "ok"
    store.close()


# ---------------------------------------------------------------------------------------------
# 4. Rescuer table: lease × owner pool × attempts × cancel × state → end state

NOW = T0
POOL = "pool-a"


@dataclass(frozen=True)
class RescueCase:
    state: str
    lease: str  # "expired", "boundary" (lease_until == now), "live", or "-" (not running)
    owner: str  # "alive" (fresh heartbeat), "dead" (stale heartbeat), "gone" (no workers row)
    attempts: str  # "left" or "used"
    cancel: bool
    expect: str  # end state
    expect_outcome: str | None  # history row the rescue writes, None: nothing changes

    @property
    def id(self) -> str:
        c = "cancel" if self.cancel else "-"
        return f"{self.state}/{self.lease}/{self.owner}/{self.attempts}/{c}"


def _rescue_cases() -> list[RescueCase]:
    cases = []
    for owner in ("alive", "dead", "gone"):
        for attempts in ("left", "used"):
            for cancel in (False, True):
                for lease in ("expired", "boundary", "live"):
                    # The lease alone decides: a pool that is alive but let its lease lapse (a
                    # stopped child, a stalled supervisor) is rescued too, and fencing makes its
                    # late writes change nothing; a dead pool's unexpired lease waits for expiry.
                    if lease == "expired":
                        if cancel:
                            expect, outcome = "cancelled", "cancelled"
                        elif attempts == "used":
                            expect, outcome = "failed", "crashed"
                        else:
                            expect, outcome = "pending", "crashed"
                    else:
                        expect, outcome = "running", None
                    cases.append(RescueCase("running", lease, owner, attempts, cancel, expect,
                                            outcome))  # fmt: skip
            for state in ("pending", "succeeded", "failed", "cancelled"):
                if state == "failed" and attempts == "left":
                    continue  # a failed job has used its attempts (retry resets them)
                cases.append(RescueCase(state, "-", owner, attempts, False, state, None))
    return cases


RESCUE_CASES = _rescue_cases()
MAX = 3


def _build(store: Store, case: RescueCase):
    if case.owner != "gone":
        heartbeat = NOW - 1 if case.owner == "alive" else NOW - 3600
        store.register_worker(POOL, name="a", host="h", pid=1, concurrency=1, queues=[],
                              types=[], now=heartbeat)  # fmt: skip
    attempts = MAX if case.attempts == "used" else 1
    kwargs: dict[str, object] = {"now": NOW, "max_attempts": MAX, "worker": f"{POOL}/1"}
    if case.state == "running":
        lease_until = {"expired": NOW - 5, "boundary": NOW, "live": NOW + 5}[case.lease]
        return make_job(store, "running", attempts=attempts, lease_until=lease_until,
                        cancel_requested=case.cancel, **kwargs)  # fmt: skip
    if case.state in ("pending", "cancelled"):
        # a job with every attempt crashed is failed, not pending or cancellable
        return make_job(store, case.state, attempts=min(attempts, MAX - 1), **kwargs)
    return make_job(store, case.state, attempts=attempts, **kwargs)


def _snapshot(store: Store, path: str, job_ids: list[int]) -> dict[int, tuple[object, ...]]:
    return {i: (raw_row(path, i), len(store.attempts(i))) for i in job_ids}


@pytest.mark.parametrize("case", RESCUE_CASES, ids=[c.id for c in RESCUE_CASES])
def test_4_rescuer_table(store: Store, db_path: str, case: RescueCase):
    """Each fixture row ends in its expected state; a second pass changes nothing."""
    job = _build(store, case)
    before = raw_row(db_path, job.id)
    history_before = len(store.attempts(job.id))

    rescued = store.rescue_expired(NOW)

    after = store.get(job.id)
    assert after is not None
    assert after.state.value == case.expect
    if case.expect_outcome is None:
        assert rescued == []
        assert raw_row(db_path, job.id) == before
        assert len(store.attempts(job.id)) == history_before
    else:
        assert rescued == [(job.id, JobState(case.expect))]
        last = store.attempts(job.id)[-1]
        assert last.outcome.value == case.expect_outcome
        assert last.attempt == job.attempts
        assert after.attempts == job.attempts  # the lost attempt is counted
        assert after.lease_token is None and after.lease_until is None
        if case.expect == "pending":
            assert after.run_at == NOW  # due again at once
        else:
            assert after.finished_at == NOW
    snap = _snapshot(store, db_path, [job.id])
    assert store.rescue_expired(NOW) == []
    assert _snapshot(store, db_path, [job.id]) == snap


def test_4_rescuer_table_in_one_file(store: Store, db_path: str):
    """Every fixture in one file, one pass: the same end states; the second pass is a no-op;
    later time only rescues what has expired by then."""
    built = [(case, _build(store, case)) for case in RESCUE_CASES]
    rescued = dict(store.rescue_expired(NOW))
    for case, job in built:
        got = store.get(job.id)
        assert got is not None
        assert got.state.value == case.expect, case.id
        assert (job.id in rescued) == (case.expect_outcome is not None), case.id
    ids = [job.id for _, job in built]
    snap = _snapshot(store, db_path, ids)
    assert store.rescue_expired(NOW) == []
    assert _snapshot(store, db_path, ids) == snap
    # later, every remaining lease (boundary and live: NOW and NOW+5) has expired too
    later = dict(store.rescue_expired(NOW + 6))
    still_running = {job.id for case, job in built if case.expect == "running"}
    assert set(later) == still_running
    assert store.counts()["running"] == 0
    assert integrity(db_path) == "ok"


def test_4_rescued_owner_cannot_write(store: Store):
    """The pool whose lease was rescued writes nothing afterwards: every fenced write is a no-op."""
    job = make_job(store, "running", now=NOW, lease_until=NOW - 1, attempts=1)
    token = job.lease_token or ""
    assert store.rescue_expired(NOW) == [(job.id, JobState.PENDING)]
    row = store.get(job.id)
    assert not store.complete(job.id, token, NOW, '"late"', None)
    assert store.fail(job.id, token, NOW, "late") is None
    assert store.crash(job.id, token, NOW, "late") is None
    assert store.release(job.id, token, NOW) is None
    assert store.finish_cancelled(job.id, token, NOW) is None
    assert store.renew([(job.id, token)], NOW + 100) == 0
    assert store.get(job.id) == row

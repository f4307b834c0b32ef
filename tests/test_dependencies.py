"""Dependencies (`enqueue --after`), on every backend: a job runs only once every job it is after
succeeded; a failure or cancel of one cancels it (naming the culprit) and its own dependents.

Real pools (`jobq work --app tests.depsapp`) write a ledger of start and end times: no dependent
may start before all its dependencies ended.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import Queue
from jobq.backend import ClaimFilter, Ending
from tests.conftest import ROOT
from tests.factories import new_job
from tests.helpers import kill_all, wait_until

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

T0 = 1_000_000.0
LEASE = 60.0
STEP = "deps.step"


def _env(location: str) -> dict[str, str]:
    env = dict(os.environ)
    env["JOBQ_DB"] = location
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    return env


def _jobq(location: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobq", *args], env=_env(location), input=stdin,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _pool(location: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - the child holds it; kill_all ends both
    return subprocess.Popen(
        [sys.executable, "-m", "jobq", "work", "--app", "tests.depsapp", *args],
        env=_env(location), stdout=out, stderr=out, start_new_session=True,
    )  # fmt: skip


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    kill_all(started)


def _ledger(path: Path) -> list[tuple[str, int, int, float]]:
    """(start|end, job id, attempt, time) per line, in the order written."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        what, job, attempt, at = line.split()
        out.append((what, int(job), int(attempt), float(at)))
    return out


def _step(q: Queue, ledger: Path, after: list[int] | None = None, **payload: object) -> int:
    return q.enqueue(STEP, {"ledger": str(ledger), **payload}, after=after)


def _check_order(ledger: Path, deps: dict[int, list[int]]) -> None:
    """No job of `deps` started before every job it is after ended (its last attempt)."""
    lines = _ledger(ledger)
    ends = {job: at for what, job, _, at in lines if what == "end"}
    starts = [(job, at) for what, job, _, at in lines if what == "start"]
    for job, after in deps.items():
        mine = [at for j, at in starts if j == job]
        assert len(mine) == 1, f"job {job} started {len(mine)} times: {lines}"
        for a in after:
            assert a in ends, f"job {job} ran although job {a} never ended: {lines}"
            assert mine[0] >= ends[a], f"job {job} started before job {a} ended: {lines}"


# ---- real pools -------------------------------------------------------------------------------


def test_chains_and_fan_in_run_in_order_with_a_real_pool(
    location: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    ledger = tmp_path / "ledger"
    with Queue(location) as q:
        a1 = _step(q, ledger, sleep=0.4)
        a2 = _step(q, ledger, sleep=0.2)
        b = _step(q, ledger, [a1, a2], sleep=0.1)  # fan-in
        c = _step(q, ledger, [b])  # a chain
        d = _step(q, ledger, [c, a2], sleep=0.1)
        free = [_step(q, ledger, sleep=0.1) for _ in range(6)]  # keep the other workers busy
        e = _step(q, ledger, [d], priority="critical")  # priority does not jump the wait
    pool = _pool(location, tmp_path / "pool.log", "-c", "4", "--burst")
    procs.append(pool)
    assert pool.wait(timeout=120) == 0, (tmp_path / "pool.log").read_text()
    with Queue(location) as q:
        states = {j: q.get(j).state.value for j in [a1, a2, b, c, d, e, *free]}
    assert set(states.values()) == {"succeeded"}, states
    _check_order(ledger, {b: [a1, a2], c: [b], d: [c, a2], e: [d], a1: [], a2: []})


def test_a_failure_cancels_the_dependents_down_the_tree(
    location: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    ledger = tmp_path / "ledger"
    with Queue(location) as q:
        a = _step(q, ledger, fail=True)
        ok = _step(q, ledger)
        b = _step(q, ledger, [a, ok])
        c = _step(q, ledger, [b])
        other = _step(q, ledger, [ok])  # its dependency succeeds: it runs
    pool = _pool(location, tmp_path / "pool.log", "-c", "4", "--burst")
    procs.append(pool)
    assert pool.wait(timeout=120) == 0, (tmp_path / "pool.log").read_text()
    with Queue(location) as q:
        assert q.get(a).state.value == "failed"
        jb, jc = q.get(b), q.get(c)
        assert (jb.state.value, jb.last_error) == ("cancelled", f"dependency job {a} failed")
        assert (jc.state.value, jc.last_error) == ("cancelled", f"dependency job {b} cancelled")
        assert q.get(other).state.value == "succeeded"
        cancelled = [e.job_id for e in q.events(kinds="cancelled", limit=1000)]
    assert sorted(cancelled) == [b, c]  # exactly one event each
    started = {job for what, job, _, _ in _ledger(ledger) if what == "start"}
    assert b not in started and c not in started


def test_a_sigkilled_pool_mid_dependency_reruns_it_and_the_dependent_runs_once_after(
    location: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    ledger = tmp_path / "ledger"
    with Queue(location) as q:
        a = q.enqueue(STEP, {"ledger": str(ledger), "sleep_first": 60}, max_attempts=3)
        b = _step(q, ledger, [a])
    first = _pool(location, tmp_path / "pool1.log", "-c", "2")
    procs.append(first)
    wait_until(lambda: any(w == "start" and j == a for w, j, _, _ in _ledger(ledger)),
               timeout=60, what="job a started")  # fmt: skip
    kill_all([first])  # SIGKILL, supervisor and children at once
    with Queue(location) as q:
        assert q.get(b).state.value == "pending"
    second = _pool(location, tmp_path / "pool2.log", "-c", "2", "--burst")
    procs.append(second)
    assert second.wait(timeout=120) == 0, (tmp_path / "pool2.log").read_text()
    with Queue(location) as q:
        assert q.get(a).state.value == "succeeded" and q.get(a).attempts == 2
        assert q.get(b).state.value == "succeeded"
    lines = _ledger(ledger)
    assert [(w, j, n) for w, j, n, _ in lines if j == a] == [
        ("start", a, 1), ("start", a, 2), ("end", a, 2)]  # fmt: skip
    _check_order(ledger, {b: [a]})


def test_jobq_wait_on_a_dependent_in_a_shell_pipeline(
    location: str, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    ledger = tmp_path / "ledger"
    procs.append(_pool(location, tmp_path / "pool.log", "-c", "2"))
    script = f"""
set -e
jobq() {{ "{sys.executable}" -m jobq "$@"; }}
a=$(jobq enqueue {STEP} --payload '{{"ledger": "{ledger}", "sleep": 0.3}}')
b=$(jobq enqueue {STEP} --payload '{{"ledger": "{ledger}"}}' --after "$a")
bad=$(jobq enqueue {STEP} --payload '{{"ledger": "{ledger}", "fail": true}}')
c=$(jobq enqueue {STEP} --payload '{{"ledger": "{ledger}"}}' --after "$b,$bad")
jobq wait "$b" --timeout 60s
echo "b=$b"
set +e
jobq wait "$c" --timeout 60s
echo "c-wait=$?"
jobq show "$c" --json
"""
    done = subprocess.run(["sh", "-c", script], env=_env(location), capture_output=True,
                          text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "c-wait=1" in out, out
    shown = json.loads(out[out.index("{") :])
    assert shown["state"] == "cancelled"
    assert shown["last_error"].startswith("dependency job ") and "failed" in shown["last_error"]
    b = int(out.split("b=")[1].split()[0])
    _check_order(ledger, {b: [b - 1]})


# ---- the CLI: bad input, reasons ------------------------------------------------------------


def test_after_a_missing_job_is_refused_and_writes_nothing(location: str) -> None:
    assert _jobq(location, "enqueue", "t").returncode == 0  # job 1 exists
    for args in (["--after", "1", "--after", "999999"], ["--after", "1,999999"],
                 ["--after", "x"], ["--after", "0"], ["--after", "1,"]):  # fmt: skip
        done = _jobq(location, "enqueue", "t", *args)
        assert done.returncode == 2, (args, done)
        assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    batch = '{"type": "u"}\n{"type": "u", "after": [1]}\n{"type": "u", "after": [424242]}\n'
    done = _jobq(location, "enqueue", "--ndjson", "-", stdin=batch)
    assert done.returncode == 2 and "424242" in done.stderr, done
    for bad in ('"x"', "[true]", "[1.5]", "[-3]"):
        done = _jobq(
            location, "enqueue", "--ndjson", "-", stdin='{"type": "u", "after": ' + bad + "}"
        )
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (bad, done)
    with Queue(location) as q:
        assert [j.id for j in q.list(limit=100)] == [1]  # nothing else was written


def test_enqueue_after_by_cli_and_ndjson_records_the_links(location: str) -> None:
    a = int(_jobq(location, "enqueue", "t").stdout)
    b = int(_jobq(location, "enqueue", "t").stdout)
    c = int(_jobq(location, "enqueue", "t", "--after", f"{a},{b}", "--after", str(a)).stdout)
    lines = f'{{"type": "t", "after": [{c}]}}\n{{"type": "t", "payload": {{"after": 1}}}}\n'
    d, e = map(int, _jobq(location, "enqueue", "--ndjson", "-", stdin=lines).stdout.split())
    with Queue(location) as q:
        assert q.dependencies(c) == [(a, "pending"), (b, "pending")]
        assert q.dependencies(d) == [(c, "pending")]
        assert q.dependencies(e) == [] and q.get(e).payload == {"after": 1}
        assert [i for i, _ in q.dependents(a)] == [c]


def test_show_says_what_a_dependent_waits_for(location: str) -> None:
    with Queue(location) as q:
        a, b = q.enqueue("t"), q.enqueue("t")
        one = q.enqueue("t", after=[a])
        two = q.enqueue("t", after=[a, b])
        w = q.backend
        w.claim("pool-x/1", time.time(), LEASE, ClaimFilter(types=("t",)), limit=1)  # a runs
    shown = _jobq(location, "show", str(one)).stdout
    assert f"waiting for job {a} (running)" in shown, shown
    shown = _jobq(location, "show", str(two)).stdout
    assert f"waiting for jobs {a} (running), {b} (pending)" in shown, shown
    data = json.loads(_jobq(location, "show", str(two), "--json").stdout)
    assert data["after"] == [a, b] and data["blocked_by"] == [a, b]
    assert data["waiting"]["code"] == "dependency"
    data = json.loads(_jobq(location, "show", str(a), "--json").stdout)
    assert data["after"] == [] and data["dependents"] == [one, two]
    listing = _jobq(location, "ls").stdout
    row = next(ln for ln in listing.splitlines() if ln.split()[0] == str(two))
    assert "dependency" in row, listing


# ---- the backend contract ---------------------------------------------------------------------


def _claim(b: Backend, now: float, n: int = 10) -> list[int]:
    return [j.id for j in b.claim("pool-x/1", now, LEASE, limit=n)]


def _lease(b: Backend, job_id: int) -> str:
    job = b.get(job_id)
    assert job is not None and job.lease_token is not None
    return job.lease_token


def test_a_blocked_job_is_never_claimed_until_all_its_dependencies_succeeded(
    backend: Backend,
) -> None:
    a1, a2 = backend.enqueue([new_job(), new_job()], T0)
    (b,) = backend.enqueue([new_job(priority=20)._replace(after=(a1, a2))], T0)
    assert not backend.has_claimable(T0 - 1) and backend.next_run_at() == T0
    assert _claim(backend, T0, n=1) == [a1]
    assert _claim(backend, T0) == [a2]
    assert not backend.has_claimable(T0) and _claim(backend, T0) == []
    assert backend.next_run_at() is None  # a blocked job wakes nobody
    backend.complete_many([(a1, _lease(backend, a1), None, None)], T0 + 1)
    assert _claim(backend, T0 + 1) == []
    backend.complete_many([(a2, _lease(backend, a2), None, None)], T0 + 2)
    assert backend.has_claimable(T0 + 2)
    assert _claim(backend, T0 + 2) == [b]
    # the pending listing in claim order holds blocked and runnable jobs alike
    (c,) = backend.enqueue([new_job()._replace(after=(b,))], T0 + 3)
    (d,) = backend.enqueue([new_job(priority=-5)], T0 + 3)
    assert [j.id for j in backend.list_jobs(T0 + 3, _pending_in_claim_order())] == [c, d]


def _pending_in_claim_order() -> object:
    from jobq.backend import JobFilter

    return JobFilter(state="pending", order="claim", limit=10)


def test_a_dependency_that_already_ended_decides_at_enqueue(backend: Backend) -> None:
    ok, bad, gone = backend.enqueue([new_job(), new_job(), new_job()], T0)
    backend.claim("pool-x/1", T0, LEASE, limit=2)
    backend.complete_many([(ok, _lease(backend, ok), None, None)], T0 + 1)
    backend.end_attempt(bad, _lease(backend, bad), T0 + 1, Ending.FAIL, "x", retryable=False)
    backend.cancel([gone], T0 + 1)
    (runs,) = backend.enqueue([new_job()._replace(after=(ok,))], T0 + 2)
    assert _claim(backend, T0 + 2) == [runs]  # a succeeded dependency: no wait at all
    for dead, word in ((bad, "failed"), (gone, "cancelled")):
        (j,) = backend.enqueue([new_job()._replace(after=(ok, dead))], T0 + 3)
        job = backend.get(j)
        assert job is not None
        assert (job.state.value, job.last_error) == ("cancelled", f"dependency job {dead} {word}")


def test_cancels_and_failures_cascade_in_the_same_transaction(backend: Backend) -> None:
    a, x = backend.enqueue([new_job(), new_job()], T0)
    (b,) = backend.enqueue([new_job()._replace(after=(a,))], T0)
    (c,) = backend.enqueue([new_job()._replace(after=(b, x))], T0)
    out = backend.cancel([a, x], T0 + 1)  # a bulk cancel of pending jobs
    assert {str(o) for o in out.values()} == {"cancelled"}
    got = {j: backend.get(j) for j in (b, c)}
    assert got[b] is not None and got[b].last_error == f"dependency job {a} cancelled"
    assert got[c] is not None and got[c].state.value == "cancelled"
    # a running dependency cancelled by its worker, a timeout, a crash that ends it failed
    for how, word in ((Ending.CANCEL, "cancelled"), (Ending.TIMEOUT, "failed"),
                      (Ending.CRASH, "failed")):  # fmt: skip
        (r,) = backend.enqueue([new_job(max_attempts=1)], T0 + 2)
        (dep,) = backend.enqueue([new_job()._replace(after=(r,))], T0 + 2)
        assert _claim(backend, T0 + 2) == [r]
        state = backend.end_attempt(r, _lease(backend, r), T0 + 3, how, "stop")
        assert state is not None and state.value == word
        job = backend.get(dep)
        assert job is not None
        assert (job.state.value, job.last_error) == ("cancelled", f"dependency job {r} {word}")


def test_a_retry_does_not_bring_back_cancelled_dependents(backend: Backend) -> None:
    (a,) = backend.enqueue([new_job(max_attempts=1)], T0)
    (b,) = backend.enqueue([new_job()._replace(after=(a,))], T0)
    _claim(backend, T0)
    backend.end_attempt(a, _lease(backend, a), T0 + 1, Ending.FAIL, "boom")
    assert backend.retry([a], T0 + 2)[a].done
    dependent = backend.get(b)
    assert dependent is not None and dependent.state.value == "cancelled"  # stays cancelled
    # retrying the dependent too makes it wait again for what has not succeeded
    assert backend.retry([b], T0 + 2)[b].done
    assert _claim(backend, T0 + 3) == [a]
    backend.complete_many([(a, _lease(backend, a), None, None)], T0 + 4)
    assert _claim(backend, T0 + 5) == [b]


def test_prune_never_deletes_a_job_that_a_pending_one_waits_for(backend: Backend) -> None:
    a, lone = backend.enqueue([new_job(), new_job()], T0)
    _claim(backend, T0)
    backend.complete_many([(i, _lease(backend, i), None, None) for i in (a, lone)], T0 + 1)
    (b,) = backend.enqueue([new_job()._replace(after=(a,))], T0 + 2)
    (c,) = backend.enqueue([new_job(run_at=T0 + 10_000)._replace(after=(a,))], T0 + 2)
    assert backend.count_prunable(T0 + 100, ["succeeded"]) == 1
    assert backend.prune(T0 + 100, ["succeeded"]) == 1  # `lone` only
    assert backend.get(a) is not None and backend.get(lone) is None
    _claim(backend, T0 + 3)
    backend.complete_many([(b, _lease(backend, b), None, None)], T0 + 4)
    assert backend.prune(T0 + 100, ["succeeded"]) == 1  # b; c still waits (for its run_at)
    assert backend.get(a) is not None and backend.get(b) is None
    backend.cancel([c], T0 + 5)
    assert backend.prune(T0 + 100, ["succeeded", "cancelled"]) == 2


def test_a_forced_delete_of_a_pending_dependency_cancels_its_dependents(
    backend: Backend,
) -> None:
    (a,) = backend.enqueue([new_job()], T0)
    (b,) = backend.enqueue([new_job()._replace(after=(a,))], T0)
    assert backend.delete([a], force=True)[a].done
    job = backend.get(b)
    assert job is not None
    assert (job.state.value, job.last_error) == ("cancelled", f"dependency job {a} deleted")
    assert backend.dependencies([b]) == {b: [(a, None)]}

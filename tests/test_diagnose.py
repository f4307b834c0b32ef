"""Why a job waits: `jobq.diagnose_job` over every reason, its agreement with the claim, and
`jobq show` / `jobq ls` against real worker pools."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from workerapp import Pools

from devtools.showcase import SHOWCASE_NOW, seed_showcase
from jobq import (
    Diagnosis,
    Job,
    JobState,
    Queue,
    WaitReason,
    WorkerInfo,
    diagnose_job,
    fingerprint,
    format_duration,
    pool_alive,
)
from jobq.diagnose import _glob_regex, glob_match, pool_takes
from jobq.limits import Limit, LimitStatus
from jobq.store import Store
from tests.conftest import wait_until
from tests.factories import new_job

NOW = 1_800_000_000.0
R = WaitReason


def job(**fields: object) -> Job:
    """A pending job of type noop in queue default, due now, unless `fields` say otherwise."""
    base = Job(id=7, type="noop", queue="default", payload_json="{}", priority=0,
               state=JobState.PENDING, run_at=NOW - 1, attempts=0, max_attempts=None,
               timeout=None, unique_key=None, result_json=None, last_error=None,
               created_at=NOW - 10, started_at=None, finished_at=None, worker_id=None,
               lease_token=None, lease_until=None, cancel_requested=False)  # fmt: skip
    return replace(base, **fields)  # type: ignore[arg-type]


def running(**fields: object) -> Job:
    """A job leased by child 1 of pool `w1` for 5 s, lease 25 s ahead."""
    defaults: dict[str, object] = {"state": JobState.RUNNING, "attempts": 1, "max_attempts": 4,
                                   "started_at": NOW - 5, "worker_id": "w1/1",
                                   "lease_token": "t", "lease_until": NOW + 25}  # fmt: skip
    return job(**{**defaults, **fields})


def pool(
    id: str = "w1",
    *,
    handlers: tuple[str, ...] = ("noop", "sleep"),
    globs: tuple[str, ...] | None = (),
    queues: tuple[str, ...] = (),
    concurrency: int = 2,
    busy: int = 0,
    beat: float = NOW - 1,
    status: str = "running",
) -> WorkerInfo:
    """A registered pool as `Store.workers` reads it."""
    return WorkerInfo(id=id, name=id, host="h", pid=1, started_at=NOW - 100, heartbeat_at=beat,
                      concurrency=concurrency, queues=queues, types=handlers, jobs_done=0,
                      status=status, current_jobs=tuple(range(busy)), type_globs=globs)  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    job: Job
    pools: tuple[WorkerInfo, ...]
    expect: WaitReason | None
    says: tuple[str, ...] = ()
    paused: tuple[str, ...] = ()
    limits: tuple[LimitStatus, ...] = ()
    after: tuple[tuple[int, JobState | None], ...] = ()  # its dependencies and their states


DEAD = NOW - 600
CASES = [
    Case(
        "scheduled",
        job(run_at=NOW + 3600),
        (pool(),),
        R.SCHEDULED,
        ("scheduled at 2027-01-15T09:00:00Z (in 1h00m)",),
    ),
    Case(
        "backoff",
        job(run_at=NOW + 25, attempts=1, max_attempts=4, last_error="x"),
        (pool(),),
        R.BACKOFF,
        ("retry 2/4 at ", "(in 25s)"),
    ),
    Case(
        "backoff, the job's own max",
        job(run_at=NOW + 5, attempts=2, max_attempts=9),
        (pool(),),
        R.BACKOFF,
        ("retry 3/9 at",),
    ),
    Case(
        "paused",
        job(queue="mail"),
        (pool(),),
        R.PAUSED,
        ("queue 'mail' is paused",),
        paused=("mail", "other"),
    ),
    Case(
        "paused and scheduled",
        job(queue="mail", run_at=NOW + 60),
        (pool(),),
        R.PAUSED,
        ("queue 'mail' is paused; scheduled at", "(in 1m00s)"),
        paused=("mail",),
    ),
    Case("no pool at all", job(), (), R.NO_POOL, ("no worker pool is running",)),
    Case(
        "no pool, scheduled",
        job(run_at=NOW + 60),
        (),
        R.NO_POOL,
        ("no worker pool is running; scheduled at",),
    ),
    Case(
        "only a dead pool",
        job(),
        (pool(beat=DEAD),),
        R.NO_POOL,
        ("no worker pool is running (pool 'w1' that took it last heartbeated 10m00s ago)",),
    ),
    Case(
        "only a stopped pool",
        job(),
        (pool(status="stopped"),),
        R.NO_POOL,
        ("no worker pool is running",),
    ),
    Case(
        "only a stopping pool",
        job(),
        (pool(status="stopping"),),
        R.NO_POOL,
        ("(pool 'w1' is stopping)",),
    ),
    Case(
        "queue filter",
        job(queue="mail"),
        (pool(queues=("images", "pdf")),),
        R.NO_POOL_FOR_QUEUE,
        ("no live pool takes queue 'mail' (queues taken: 'w1': 'images', 'pdf')",),
    ),
    Case(
        "queue taken only by a dead pool",
        job(queue="mail"),
        (pool(queues=("images",)), pool("w2", queues=("mail",), beat=DEAD)),
        R.NO_POOL_FOR_QUEUE,
        ("queue 'mail'",),
    ),
    Case(
        "type glob excludes a handled type",
        job(),
        (pool(globs=("sl*",)),),
        R.NO_POOL_FOR_TYPE,
        ("no live pool handles type 'noop': pool 'w1' takes only --type 'sl*'",),
    ),
    Case(
        "no handler",
        job(type="pdf.render"),
        (pool(handlers=("sleep",)),),
        R.NO_POOL_FOR_TYPE,
        (
            "no live pool handles type 'pdf.render': pool 'w1' has no handler for it "
            "(handlers: 'sleep')",
        ),
    ),
    Case(
        "a glob that matches, but no handler",
        job(type="slow"),
        (pool(globs=("sl*",)),),
        R.NO_POOL_FOR_TYPE,
        ("has no handler for it",),
    ),
    Case(
        "handled only by a pool of another queue",
        job(),
        (pool(queues=("other",)), pool("w2", handlers=("sleep",))),
        R.NO_POOL_FOR_TYPE,
        ("pool 'w2' has no handler",),
    ),
    Case(
        "old record: globs mixed into types",
        job(),
        (pool(handlers=("noop", "sleep", "sl*"), globs=None),),
        R.NO_POOL_FOR_TYPE,
        ("takes only --type 'sl*'",),
    ),
    Case(
        "old record: handler names only", job(), (pool(handlers=("noop",), globs=None),), R.DUE, ()
    ),
    Case(
        "every able pool busy",
        job(),
        (pool(busy=2), pool("w2", busy=1, concurrency=1)),
        R.BUSY,
        ("all 2 pools are full (3/3)",),
    ),
    Case(
        "busy, and another pool without its handler is idle",
        job(),
        (pool(busy=2), pool("w2", handlers=("x",))),
        R.BUSY,
        ("pool 'w1' is full (2/2)",),
    ),
    Case(
        "due",
        job(),
        (pool(busy=1),),
        R.DUE,
        ("due now: a free worker of pool 'w1' should claim it in a moment",),
    ),
    Case("due on the free pool", job(), (pool(busy=2), pool("w2")), R.DUE, ("pool 'w2'",)),
    Case("glob and handler match", job(type="sleep"), (pool(globs=("sl*", "x")),), R.DUE, ()),
    Case(
        "running", running(), (pool(),), R.RUNNING, ("running on pool 'w1' for 5s (attempt 1/4)",)
    ),
    Case(
        "cancel requested",
        running(cancel_requested=True),
        (pool(),),
        R.CANCELLING,
        ("cancel requested: pool 'w1' will stop it",),
    ),
    Case(
        "pool died, another will rescue",
        running(),
        (pool(beat=DEAD), pool("w2")),
        R.POOL_DEAD,
        (
            "its pool 'w1' is dead (last heartbeat 10m00s ago); a live pool will "
            "rescue it within seconds",
        ),
    ),
    Case(
        "pool died, lease over",
        running(lease_until=NOW - 3),
        (pool(beat=DEAD), pool("w2")),
        R.POOL_DEAD,
        ("a live pool will rescue it within seconds",),
    ),
    Case(
        "pool died, nobody to rescue",
        running(),
        (pool(beat=DEAD),),
        R.POOL_DEAD,
        ("no pool is running to rescue it",),
    ),
    Case(
        "pool not registered",
        running(worker_id="gone/3"),
        (pool(),),
        R.POOL_DEAD,
        ("its pool 'gone' is not registered",),
    ),
    Case(
        "lease ran out under a live pool",
        running(lease_until=NOW - 40),
        (pool(),),
        R.LEASE_EXPIRED,
        ("its lease ran out 40s ago on pool 'w1'",),
    ),
    Case(
        "held by a limit across pools",
        job(),
        (pool(),),
        R.LIMITED,
        ("held by limit noop: 2 of 2 running",),
        limits=(LimitStatus(Limit("noop", 2), running=2),),
    ),
    Case("succeeded", job(state=JobState.SUCCEEDED), (), None),
    Case("failed", job(state=JobState.FAILED), (), None),
    Case("cancelled", job(state=JobState.CANCELLED), (pool(),), None),
    Case(
        "one dependency",
        job(),
        (pool(),),
        R.DEPENDENCY,
        ("waiting for job 12 (running)",),
        after=((12, JobState.RUNNING), (11, JobState.SUCCEEDED)),
    ),
    Case(
        "dependencies, first of the reasons",
        job(queue="mail"),
        (pool(),),
        R.DEPENDENCY,
        ("waiting for jobs 12 (running), 13 (pending), 14 (failed) and 1 more; queue 'mail'",),
        paused=("mail",),
        after=((12, JobState.RUNNING), (13, JobState.PENDING), (14, JobState.FAILED), (15, None)),
    ),
    Case(
        "dependencies all succeeded",
        job(),
        (pool(),),
        R.DUE,
        ("due now",),
        after=((12, JobState.SUCCEEDED),),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_diagnosis(case: Case) -> None:
    got = diagnose_job(case.job, case.pools, case.paused, NOW, case.limits, case.after)
    if case.expect is None:
        assert got is None
        return
    assert got is not None and got.code is case.expect, got
    for text in case.says:
        assert text in got.text, got.text
    assert "\n" not in got.text


def test_the_table_covers_every_reason() -> None:
    assert {c.expect for c in CASES} - {None} == set(WaitReason)


def test_diagnosis_json_shape() -> None:
    assert Diagnosis(R.DUE, "x").to_dict() == {"code": "due", "text": "x"}


def test_pool_alive_is_the_heartbeat_within_30s() -> None:
    assert pool_alive(pool(beat=NOW - 29), NOW)
    assert not pool_alive(pool(beat=NOW - 31), NOW)
    assert not pool_alive(pool(status="stopped"), NOW)


# ---- the diagnosis agrees with the claim ------------------------------------------------------

TYPES = ("noop", "sleep", "slow", "s[1]", "S")
FILTERS = [  # (queues, handler names, globs) as `jobq work -q … --type …` registers them
    ((), ("noop", "sleep"), ()),
    ((), ("noop", "sleep", "slow"), ("sl*",)),
    (("default",), ("noop", "s[1]"), ("s?1?", "n*")),
    (("mail",), TYPES, ()),
    ((), TYPES, ("[^n]*",)),
    ((), TYPES, ("[a-s]*", "S")),
    (("default", "mail"), ("slow", "S"), ("*",)),
]


@pytest.mark.parametrize("queues,names,globs", FILTERS)
def test_pool_takes_exactly_what_the_claim_leases(
    tmp_path: Path, queues: tuple[str, ...], names: tuple[str, ...], globs: tuple[str, ...]
) -> None:
    store = Store(str(tmp_path / "q.db"))
    jobs = []
    for t, q in itertools.product(TYPES, ("default", "mail")):
        job_id = store.enqueue([new_job(t, queue=q)], NOW - 1)[0]
        jobs.append(store.get(job_id))
    claimed = store.claim("w1/1", NOW, 60, limit=100, types=list(names),
                          type_globs=list(globs) or None, queues=list(queues) or None)  # fmt: skip
    p = pool(handlers=names, globs=globs, queues=queues)
    expected = {j.id for j in jobs if j is not None and pool_takes(p, j) is None}
    assert {j.id for j in claimed} == expected
    store.close()


_GLOB_CHARS = st.text(alphabet="ab]^-[*?", max_size=7)


@settings(max_examples=400, deadline=None)
@given(pattern=_GLOB_CHARS, text=st.text(alphabet="ab]^-[*?c", max_size=6))
# a reversed range keeps its first character; a "-" just after a range is a member
@example(pattern="[[-?]", text="[")
@example(pattern="[a-c-e]", text="-")
@example(pattern="[]-a]", text="-")
def test_glob_match_is_sqlite_glob(pattern: str, text: str) -> None:
    with sqlite3.connect(":memory:") as conn:
        want = bool(conn.execute("SELECT ? GLOB ?", (text, pattern)).fetchone()[0])
    assert glob_match(pattern, text) is want
    assert bool(_glob_regex(pattern).fullmatch(text)) is want  # what PostgreSQL's claim uses


# ---- failures that look alike -----------------------------------------------------------------


def test_fingerprint_masks_numbers_and_uses_first_frame_outside_jobq() -> None:
    tb = ('Traceback (most recent call last):\n  File "/x/jobq/pool/executor.py", line 9, in run\n'
          '  File "/srv/app/hooks.py", line 42, in deliver\n    post()\n'
          "ConnectionError: POST /orders/123: refused\n")  # fmt: skip
    assert fingerprint("hook", "ignored", tb) == (
        "hook",
        "ConnectionError: POST /orders/N: refused",
        "hooks.py:deliver",
    )
    # a command handler's stderr tail has no frames: the error line decides
    assert fingerprint("cmd", "exit status 3", None) == ("cmd", "exit status N", "")


def test_showcase_jobs_read_from_a_file(tmp_path: Path) -> None:
    """The demo file's jobs, read back through the store, diagnosed as the dashboard does."""
    seed_showcase(str(tmp_path / "q.db")).close()
    now = SHOWCASE_NOW
    with Queue(str(tmp_path / "q.db")) as q:
        pools = [replace(w, heartbeat_at=now) for w in q.workers()]
        assert [p.type_globs for p in pools] == [None]  # registered without globs: old shape

        def code(job_id: int, paused: tuple[str, ...] = ()) -> str | None:
            d = diagnose_job(q.get(job_id), pools, paused, now)
            return None if d is None else d.code.value

        assert code(40) == "scheduled"
        assert code(5) == "backoff"
        assert code(42) == "no_pool_for_type"  # pdf.render: no handler
        assert code(43, ("thumbs",)) == "queue_paused"
        assert code(1) is None  # failed


# ---- through real processes -------------------------------------------------------------------


def jobq(env: dict[str, str], cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def waiting(env: dict[str, str], cmd: list[str], job_id: int) -> dict[str, str]:
    r = jobq(env, cmd, "show", str(job_id), "--json")
    assert r.returncode == 0, r.stderr
    value: dict[str, str] = json.loads(r.stdout)["waiting"]
    return value


def state(db_path: str, job_id: int) -> JobState:
    with Queue(db_path) as q:
        return q.get(job_id).state


def registered(db_path: str) -> bool:
    with Queue(db_path) as q:
        return any(w.status == "running" for w in q.workers())


def test_show_and_ls_name_the_type_filter_of_the_only_pool(
    pools: Pools, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    """The issue: with the only pool on --type 'sl*', a noop job waits for ever and said
    "due now"; show (text and JSON) and ls now say that no live pool handles its type."""
    pools.start(type_globs=["sl*"], concurrency=1)
    wait_until(lambda: registered(db_path), timeout=30, what="pool registered")
    assert jobq(jobq_env, jobq_cmd, "enqueue", "noop").stdout == "1\n"
    w = waiting(jobq_env, jobq_cmd, 1)
    assert w["code"] == "no_pool_for_type"
    assert w["text"].startswith("no live pool handles type 'noop': pool ")
    assert w["text"].endswith("takes only --type 'sl*'")
    lines = jobq(jobq_env, jobq_cmd, "show", "1").stdout.splitlines()
    [line] = [ln for ln in lines if ln.startswith("waiting ")]
    assert line.split(None, 1)[1].startswith("no live pool handles type 'noop': pool ")
    assert line.endswith("takes only --type 'sl*' [no_pool_for_type]")
    header, row = jobq(jobq_env, jobq_cmd, "ls").stdout.splitlines()
    assert "WAITING" in header.split() and "no_pool_for_type" in row.split()
    # a type the pool does take runs: the diagnosis is not just pessimism
    jobq(jobq_env, jobq_cmd, "enqueue", "sleep", "--payload", '{"seconds": 0}')
    wait_until(lambda: state(db_path, 2) is JobState.SUCCEEDED, timeout=30)
    assert state(db_path, 1) is JobState.PENDING


def test_show_says_the_queue_is_paused_then_the_job_runs_once_resumed(
    pools: Pools, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    assert jobq(jobq_env, jobq_cmd, "pause", "default").returncode == 0
    pools.start(concurrency=1)
    wait_until(lambda: registered(db_path), timeout=30, what="pool registered")
    jobq(jobq_env, jobq_cmd, "enqueue", "noop")
    assert waiting(jobq_env, jobq_cmd, 1) == {"code": "queue_paused",
                                              "text": "queue 'default' is paused"}  # fmt: skip
    assert jobq(jobq_env, jobq_cmd, "resume", "default").returncode == 0
    wait_until(lambda: state(db_path, 1) is JobState.SUCCEEDED, timeout=30)
    assert "waiting" not in json.loads(jobq(jobq_env, jobq_cmd, "show", "1", "--json").stdout)


def test_show_says_scheduled_and_busy(
    pools: Pools, db_path: str, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    jobq(jobq_env, jobq_cmd, "enqueue", "noop", "--delay", "1h")
    w = waiting(jobq_env, jobq_cmd, 1)
    # no pool yet: that is what to act on; the schedule follows
    assert w["code"] == "no_pool" and "no worker pool is running; scheduled at" in w["text"]
    pools.start(concurrency=1)
    wait_until(lambda: registered(db_path), timeout=30, what="pool registered")
    w = waiting(jobq_env, jobq_cmd, 1)
    assert w["code"] == "scheduled" and w["text"].startswith("scheduled at ")
    assert "(in 59m" in w["text"] or "(in 1h00m)" in w["text"]
    # one worker, held by a long job: the next due job waits for it
    jobq(jobq_env, jobq_cmd, "enqueue", "sleep", "--payload", '{"seconds": 60}')
    wait_until(lambda: state(db_path, 2) is JobState.RUNNING, timeout=30)
    wait_until(lambda: waiting(jobq_env, jobq_cmd, 2)["code"] == "running", timeout=30)
    jobq(jobq_env, jobq_cmd, "enqueue", "noop")
    w = waiting(jobq_env, jobq_cmd, 3)
    assert w["code"] == "busy" and "is full (1/1)" in w["text"], w


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-3, "0s"), (0.9, "0s"), (42, "42s"), (185, "3m05s"), (7800, "2h10m"), (273_600, "3d4h")],
)
def test_durations_read_the_same_in_every_view(seconds: float, text: str) -> None:
    # one formatter for `jobq ls`/`show`, the diagnoses and the dashboard
    assert format_duration(seconds) == text

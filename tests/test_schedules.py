"""Periodic jobs (jobq.schedules): the store's rules on every backend, exactly one job per slot
with processes racing, the CLI and the handlers file, and real pools firing them."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobq import Queue
from jobq.backend import Role, open_backend
from jobq.schedules import Schedule, next_run
from tests.conftest import ROOT
from tests.helpers import wait_until
from tests.workerapp import Pools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def sched(
    name: str = "s", cron: str = "*/5 * * * *", next_at: float = T0, **kw: object
) -> Schedule:
    fields: dict[str, object] = dict(name=name, cron=cron, tz="UTC", type="noop",
                                     queue="default", payload_json='{"from":"cron"}',
                                     priority=3, paused=False, next_at=next_at)  # fmt: skip
    fields.update(kw)
    return Schedule(**fields)  # type: ignore[arg-type]


def _next(s: Schedule, now: float) -> float:
    return next_run(s.cron, s.tz, now)


def test_a_due_schedule_fires_one_job_and_moves_to_its_next_slot(backend: Backend) -> None:
    assert backend.put_schedule(sched(), T0 - 100)
    assert backend.next_schedule_at() == T0
    assert backend.fire_schedules(T0 - 1, _next) == []
    ((name, job_id),) = backend.fire_schedules(T0 + 2, _next)
    assert name == "s"
    job = backend.get(job_id)
    assert job is not None
    assert (job.type, job.payload_json, job.priority, job.queue) == ("noop", '{"from":"cron"}',
                                                                     3, "default")  # fmt: skip
    (s,) = backend.schedules()
    assert (s.next_at, s.last_at, s.last_job_id) == (T0 + 300, T0, job_id)
    assert backend.fire_schedules(T0 + 2, _next) == []  # the slot is spent


def test_after_downtime_a_schedule_catches_up_once(backend: Backend) -> None:
    backend.put_schedule(sched(next_at=T0), T0)
    fired = backend.fire_schedules(T0 + 3600 + 10, _next)  # 12 slots missed
    assert len(fired) == 1
    (s,) = backend.schedules()
    assert s.next_at == T0 + 3600 + 300  # the next slot after now, not the next missed one


def test_paused_and_removed_schedules_do_not_fire(backend: Backend) -> None:
    backend.put_schedule(sched("a"), T0)
    backend.put_schedule(sched("b"), T0)
    assert backend.pause_schedule("a", True)
    assert backend.remove_schedule("b")
    assert backend.fire_schedules(T0 + 1, _next) == []
    assert not backend.remove_schedule("b")
    assert not backend.pause_schedule("nope", True)
    assert [s.name for s in backend.schedules()] == ["a"]
    assert backend.next_schedule_at() is None


def test_a_name_is_taken_until_replaced_and_replacing_keeps_the_pause(backend: Backend) -> None:
    assert backend.put_schedule(sched(), T0)
    assert not backend.put_schedule(sched(cron="0 * * * *"), T0)
    backend.pause_schedule("s", True)
    assert backend.put_schedule(sched(cron="0 * * * *", next_at=T0 + 3600), T0, replace=True)
    (s,) = backend.schedules()
    assert (s.cron, s.paused, s.next_at) == ("0 * * * *", True, T0 + 3600)


def _race(location: str, now: float, out: multiprocessing.Queue[list[tuple[str, int]]]) -> None:
    b = open_backend(location, Role.WORKER)
    try:
        fired: list[tuple[str, int]] = []
        for _ in range(20):
            fired += b.fire_schedules(now, _next)
        out.put(fired)
    finally:
        b.close()


def test_processes_racing_fire_each_slot_exactly_once(location: str) -> None:
    b = open_backend(location, Role.PRODUCER)
    try:
        for i in range(30):
            b.put_schedule(sched(f"s{i}"), T0)
    finally:
        b.close()
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[tuple[str, int]]] = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(location, T0 + 1, out)) for _ in range(4)]
    for p in procs:
        p.start()
    fired = [f for _ in procs for f in out.get(timeout=60)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(name for name, _ in fired) == sorted(f"s{i}" for i in range(30))
    b = open_backend(location, Role.READER)
    try:
        assert b.count_jobs(T0 + 10) == 30
    finally:
        b.close()


def test_pools_fire_a_due_schedule_once_each(pools: Pools, db_path: str) -> None:
    now = time.time()
    with Queue(db_path) as q:
        for i in range(10):  # due now; the next slot is next minute's
            q.backend.put_schedule(sched(f"s{i}", cron="* * * * *", next_at=now), now)
    for _ in range(3):
        pools.start(concurrency=1, poll_interval=0.1)
    with Queue(db_path) as q:
        wait_until(lambda: q.stats().by_state["succeeded"] >= 10, timeout=60,
                   what="ten scheduled jobs ran")  # fmt: skip
        assert len(q.list(limit=100)) == 10  # once each, three pools notwithstanding
        assert all(s.next_at > now and s.last_job_id for s in q.backend.schedules())


def _jobq(db: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "jobq", "--db", db, *args], input=stdin,
                       capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["s", "61 * * * *", "t"], "bad cron line '61 * * * *'"),
        (["s", "* * * *", "t"], "bad cron line"),
        (["s", "@reboot", "t"], "@reboot is not a schedule"),
        (["s", "* * * * *", "t", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["s", "* * * * *", "t", "--tz", "../../etc/passwd"], "unknown time zone"),
        (["s s", "* * * * *", "t"], "schedule name"),
        (["s", "* * * * *", "t t"], "job type"),
        (["s", "* * * * *", "t", "--payload", "{bad"], "payload"),
        (["s", "* * * * *", "t", "--priority", "urgent"], "priority"),
    ],
)
def test_bad_schedules_are_one_line_exit_2_and_write_nothing(
    db_path: str, args: list[str], message: str
) -> None:
    r = _jobq(db_path, "schedule", "add", *args)
    assert (r.returncode, r.stderr.count("\n")) == (2, 1), r.stderr
    assert message in r.stderr
    assert not Path(db_path).exists()


def test_the_cli_adds_lists_pauses_resumes_and_removes(db_path: str) -> None:
    r = _jobq(db_path, "schedule", "add", "nightly", "30 2 * * *", "report", "--tz",
              "Europe/Paris", "--payload", "-", stdin='{"kind": "daily"}')  # fmt: skip
    assert r.returncode == 0 and r.stdout.startswith("schedule nightly: next run in "), r
    assert _jobq(db_path, "schedule", "add", "nightly", "* * * * *", "x").returncode == 1
    ls = _jobq(db_path, "schedule", "ls").stdout
    assert "nightly  30 2 * * *  Europe/Paris  report" in ls
    assert _jobq(db_path, "schedule", "pause", "nightly").returncode == 0
    assert "paused" in _jobq(db_path, "schedule", "ls").stdout
    assert _jobq(db_path, "schedule", "resume", "nightly").returncode == 0
    assert _jobq(db_path, "schedule", "rm", "nightly").returncode == 0
    gone = _jobq(db_path, "schedule", "rm", "nightly")
    expected = "jobq: error: no schedule named 'nightly' (see jobq schedule ls)"
    assert (gone.returncode, gone.stderr.strip()) == (1, expected)


def test_a_handlers_files_schedules_apply_at_pool_start_and_keep_their_slot(
    pools: Pools, db_path: str, tmp_path: Path
) -> None:
    toml = tmp_path / "handlers.toml"
    toml.write_text('[schedules.hourly]\ncron = "0 * * * *"\ntype = "noop"\n'
                    'payload = { kind = "hourly" }\ntz = "Asia/Kolkata"\n')  # fmt: skip
    pool = pools.start(handlers_file=str(toml))
    with Queue(db_path, create=True) as q:
        wait_until(lambda: [s.name for s in q.backend.schedules()] == ["hourly"], timeout=30)
        (s,) = q.backend.schedules()
        assert (s.tz, s.payload_json) == ("Asia/Kolkata", '{"kind":"hourly"}')
        # Kolkata is UTC+5:30: its hours start at :30 UTC
        assert time.gmtime(s.next_at).tm_min == 30
        q.backend.put_schedule(dataclasses.replace(s, next_at=s.next_at + 3600), time.time(),
                               replace=True)  # fmt: skip
    pool.stop()
    pools.start(handlers_file=str(toml))
    with Queue(db_path) as q:
        wait_until(lambda: len(pools.started[-1].log_path.read_text()) > 0, timeout=30)
        wait_until(lambda: "schedule hourly" in pools.started[-1].log_path.read_text(), timeout=30)
        (again,) = q.backend.schedules()
        assert again.next_at == s.next_at + 3600  # unchanged cron line: the slot is kept


def test_a_bad_schedule_in_a_handlers_file_stops_the_pool_with_one_line(
    db_path: str, tmp_path: Path
) -> None:
    toml = tmp_path / "handlers.toml"
    toml.write_text('[schedules.x]\ncron = "*/0 * * * *"\ntype = "noop"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "jobq", "--db", db_path, "work", "--handlers",
                        str(toml), "--app", "tests.workerapp"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT, env=env)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "[schedules.x]: bad cron line" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_resumed_schedule_starts_at_its_next_slot_not_its_backlog(db_path: str) -> None:
    now = time.time()
    with Queue(db_path, create=True) as q:
        q.backend.put_schedule(sched("late", cron="* * * * *", next_at=now - 3600), now)
        q.backend.pause_schedule("late", True)
    r = _jobq(db_path, "schedule", "resume", "late")
    assert (r.returncode, r.stdout.strip()) == (0, "resumed schedule late")
    with Queue(db_path) as q:
        (s,) = q.backend.schedules()
        assert not s.paused and s.next_at > now  # the hour it missed is not fired
    missing = _jobq(db_path, "schedule", "resume", "nope")
    assert (missing.returncode, missing.stderr.count("\n")) == (1, 1)

"""`jobq copy SRC DST`: a whole queue moves between backends, all or nothing, ids and history kept.

Every test runs over each (source, target) pair of backends in BACKENDS, so a file → PostgreSQL
and a PostgreSQL → file copy are both checked once the PostgreSQL backend is listed.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jobq.backend import Ending, Role, open_backend
from jobq.errors import QueueFileError
from jobq.limits import Limit
from jobq.schedules import Schedule
from jobq.transfer import COPY_COLUMNS, COPY_TABLES, SourceBusy, TargetNotEmpty, copy_queue
from tests.conftest import BACKENDS, backend_location, need_backend
from tests.factories import claim_one, new_job
from tests.helpers import wait_until

T0 = 1_800_000_000.0
PAIRS = list(itertools.product(BACKENDS, BACKENDS))


@pytest.fixture(params=PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(source, target) locations of two fresh queues on the backends of this pair."""
    src_kind, dst_kind = request.param
    need_backend(src_kind, request)
    need_backend(dst_kind, request)
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    return backend_location(src_kind, tmp_path / "src"), backend_location(
        dst_kind, tmp_path / "dst"
    )


def _everything(location: str) -> dict[str, list[tuple[object, ...]]]:
    b = open_backend(location, Role.READER)
    b.prepare_export()
    try:
        with b.snapshot():
            return {t: [row for batch in b.export_rows(t, batch=7) for row in batch]
                    for t in COPY_TABLES}  # fmt: skip
    finally:
        b.close()


def _fill(location: str) -> list[int]:
    """A queue with a job in every state the copy carries, a history, a pause and odd payloads."""
    b = open_backend(location, Role.PRODUCER)
    try:
        payloads = ['{"path":"a.jpg"}', '{"n":12345678901234567890,"s":"é\\u0000\\"x"}', "[1,2.5]",
                    '"text"', "null", '{"deep":{"a":[{"b":-0.0}]}}']  # fmt: skip
        ids = b.enqueue([new_job("resize", p, priority=i) for i, p in enumerate(payloads)], T0)
        ids += b.enqueue([new_job("later", run_at=T0 + 3600, queue="slow", max_attempts=7)], T0)
        ids += b.enqueue([new_job("keyed", unique_key="k1", timeout=12.5)], T0)
        w = open_backend(location, Role.WORKER)
        try:
            ok, bad, gone = w.claim("pool-a/1", T0 + 1, 60, limit=3)
            w.complete_many([(ok.id, ok.lease_token or "", '{"r":1}', "out\n")], T0 + 2)
            w.end_attempt(bad.id, bad.lease_token or "", T0 + 3, Ending.FAIL, "boom",
                          traceback="Traceback…", retryable=False)  # fmt: skip
            w.end_attempt(gone.id, gone.lease_token or "", T0 + 4, Ending.CRASH, "killed")
        finally:
            w.close()
        b.cancel([ids[-1]], T0 + 5)
        b.set_paused("slow", True, T0 + 6)
    finally:
        b.close()
    return ids


def test_a_copy_carries_every_job_attempt_and_pause_exactly(pair: tuple[str, str]) -> None:
    src, dst = pair
    ids = _fill(src)
    before = _everything(src)
    report = copy_queue(src, dst)
    assert {t: n for t, n in report.rows.items() if n} == {
        "queues": 1, "jobs": len(ids), "attempts": 3, "events": len(before["events"])
    }  # fmt: skip
    assert _everything(dst) == before  # every column of every row, payload texts byte for byte
    assert _everything(src) == before  # the source is untouched


def test_the_source_is_read_as_of_one_instant(pair: tuple[str, str]) -> None:
    """Writes to the source while the copy runs (producers are not stopped) land in no table of
    the copy: before, each table was read in its own transaction, so a job enqueued after the
    jobs table was read still had its events copied (events of a job the target lacks)."""
    src, dst = pair
    _fill(src)
    before = _everything(src)
    late: list[int] = []

    def meanwhile(table: str, written: int) -> None:
        if table == "jobs" and not late:  # the jobs are written: enqueue and act on the source
            b = open_backend(src, Role.PRODUCER)
            try:
                late.extend(b.enqueue([new_job("late"), new_job("late")], T0 + 20))
                b.cancel([late[0]], T0 + 21)
                b.set_paused("late-queue", True, T0 + 22)
            finally:
                b.close()

    copy_queue(src, dst, progress=meanwhile)
    assert late, "the copy never reported the jobs table"
    assert _everything(dst) == before
    assert set(late) <= {r[0] for r in _everything(src)["jobs"]}  # the source has them


def test_after_a_copy_new_jobs_get_new_ids_and_old_jobs_read_the_same(
    pair: tuple[str, str],
) -> None:
    src, dst = pair
    ids = _fill(src)
    copy_queue(src, dst)
    b = open_backend(dst, Role.PRODUCER)
    try:
        new = b.enqueue([new_job("after")], T0 + 10)[0]
        assert new > max(ids)
        s = open_backend(src, Role.READER)
        try:
            for i in ids:
                assert b.get(i) == s.get(i)
                assert b.attempts(i) == s.attempts(i)
            assert b.paused_queues() == ["slow"]
        finally:
            s.close()
    finally:
        b.close()


def test_a_target_that_holds_jobs_is_refused_untouched_unless_replace(
    pair: tuple[str, str],
) -> None:
    src, dst = pair
    _fill(src)
    b = open_backend(dst, Role.PRODUCER)
    try:
        b.enqueue([new_job("mine")], T0)
    finally:
        b.close()
    before = _everything(dst)
    with pytest.raises(TargetNotEmpty, match="already holds 1 jobs"):
        copy_queue(src, dst)
    assert _everything(dst) == before
    copy_queue(src, dst, replace=True)
    assert _everything(dst) == _everything(src)


def test_a_source_with_running_jobs_is_refused(pair: tuple[str, str]) -> None:
    src, dst = pair
    b = open_backend(src, Role.WORKER)
    try:
        b.enqueue([new_job("t")], T0)
        assert b.claim("pool-a/1", T0, 60)
    finally:
        b.close()
    with pytest.raises(SourceBusy, match="1 running jobs"):
        copy_queue(src, dst)
    with pytest.raises(QueueFileError):  # refused before the target was even created
        open_backend(dst, Role.READER)


def test_a_copy_that_fails_midway_leaves_the_target_as_it_was(pair: tuple[str, str]) -> None:
    src, dst = pair
    b = open_backend(src, Role.PRODUCER)
    try:
        b.enqueue([new_job("t", f'{{"i":{i}}}') for i in range(3000)], T0)
    finally:
        b.close()

    class Stop(Exception):
        pass

    def stop_midway(table: str, n: int) -> None:
        if table == "jobs" and n >= 1500:
            raise Stop

    with pytest.raises(Stop):
        copy_queue(src, dst, progress=stop_midway)
    assert _everything(dst) == {t: [] for t in COPY_TABLES}
    copy_queue(src, dst)  # and a second try copies everything
    assert len(_everything(dst)["jobs"]) == 3000


def test_a_killed_copy_leaves_the_target_as_it_was(pair: tuple[str, str], tmp_path: Path) -> None:
    """SIGKILL of `jobq copy` while it writes (held there by JOBQ_TEST_HOLD_COPY)."""
    src, dst = pair
    b = open_backend(src, Role.PRODUCER)
    try:
        b.enqueue([new_job("t", f'{{"i":{i}}}') for i in range(2000)], T0)
    finally:
        b.close()
    held = tmp_path / "held"
    env = {**os.environ, "JOBQ_TEST_HOLD_COPY": f"1000:{held}"}
    proc = subprocess.Popen([sys.executable, "-m", "jobq", "copy", src, dst], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_until(held.exists, timeout=30, what="the copy reached its 1000th job")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _everything(dst)["jobs"] == []
    r = subprocess.run([sys.executable, "-m", "jobq", "copy", src, dst],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("copied 2000 jobs, 0 attempts and 0 queue settings from ")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "jobq", *args], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_the_cli_refuses_bad_copies_with_one_line(pair: tuple[str, str], tmp_path: Path) -> None:
    src, dst = pair
    _fill(src)
    same = _cli("copy", src, src)
    assert (same.returncode, same.stderr.count("\n")) == (2, 1)
    assert "the source and the target are the same queue" in same.stderr
    missing = _cli("copy", str(tmp_path / "nothing.db"), dst)
    assert (missing.returncode, missing.stderr.count("\n")) == (1, 1)
    with pytest.raises(QueueFileError):  # neither refusal created the target
        open_backend(dst, Role.READER)
    ok = _cli("copy", src, dst)
    assert ok.returncode == 0, ok.stderr
    again = _cli("copy", src, dst)
    assert (again.returncode, again.stderr.count("\n")) == (1, 1)
    assert "--replace" in again.stderr
    assert _cli("copy", "--replace", src, dst).returncode == 0


def test_the_sqlite_copy_statements_name_the_copy_columns() -> None:
    from jobq.store.sqlite.sql_copy import EXPORT_ROWS, IMPORT_ROWS
    from jobq.transfer import COPY_COLUMNS

    for table, cols in COPY_COLUMNS.items():
        assert EXPORT_ROWS[table].startswith(f"SELECT {', '.join(cols)} FROM {table} ORDER BY ")
        assert IMPORT_ROWS[table].startswith(f"INSERT INTO {table} ({', '.join(cols)}) VALUES")
        assert IMPORT_ROWS[table].count("?") == len(cols)


# ---- everything a queue keeps travels -----------------------------------------------------


def _full(location: str) -> dict[str, int]:
    """A queue using every feature that keeps state: a job waiting for two others (`after`), an
    edited job, a snoozed job, a finished job with its output and progress, a pruned job's
    totals, a paused queue, a limit, two schedules (one paused), the per-minute history and the
    events of all that."""
    b = open_backend(location, Role.WORKER)
    try:
        first, second = b.enqueue([new_job("first"), new_job("second")], T0)
        waiting = b.enqueue([new_job("waiting")._replace(after=(first, second))], T0)[0]
        edited = b.enqueue([new_job("edited", '{"v":1}')], T0)[0]
        assert b.edit_payload(edited, '{"v":2}', T0 + 1, user="ann", host="box")
        pruned = b.enqueue([new_job("pruned")], T0)[0]
        job = claim_one(b, pruned, T0 + 1.5)
        assert b.complete_many([(pruned, job.lease_token or "", None, None)], T0 + 1.6) == [True]
        assert b.prune(T0 + 1.7, ["succeeded"]) == 1  # its figures stay in metric_totals
        done = b.enqueue([new_job("done", priority=9)], T0)[0]
        job = claim_one(b, done, T0 + 2)
        assert job.lease_token is not None
        chunks = [(1, T0 + 2.25, "stdout", "hello\n"), (2, T0 + 2.5, "stderr", "warn\n")]
        assert b.write_output([(done, job.lease_token, 1, True, chunks,
                                (0.5, "half way", T0 + 2.5))]) == [True]  # fmt: skip
        assert b.complete_many([(done, job.lease_token, '{"ok":1}', None)], T0 + 3) == [True]
        snoozy = b.enqueue([new_job("snoozy", priority=8)], T0)[0]
        job = claim_one(b, snoozy, T0 + 4)
        assert job.lease_token is not None
        b.end_attempt(snoozy, job.lease_token, T0 + 5, Ending.SNOOZE, delay=600)
        b.put_limit(Limit("first", concurrency=2, rate_count=10, rate_period=60.0), T0)
        for name, paused in (("nightly", False), ("hourly", True)):
            b.put_schedule(Schedule(name, "0 3 * * *", "UTC", "report", "default", '{"r":1}', 0,
                                    paused, T0 + 3600), T0)  # fmt: skip
        b.set_paused("slow", True, T0 + 6)
        assert b.roll_up(T0 + 300)
    finally:
        b.close()
    return {"first": first, "second": second, "waiting": waiting, "edited": edited,
            "done": done, "snoozy": snoozy}  # fmt: skip


def _cli_at(location: str, *args: str) -> str:
    r = _cli("--db", location, *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("via", BACKENDS)
def test_a_round_trip_keeps_dependencies_edits_output_limits_schedules_and_history(
    via: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """file → `via` → file: every table arrives equal, and the waiting job still waits."""
    need_backend(via, request)
    locations = []
    for name, kind in (("a", "sqlite"), ("b", via), ("c", "sqlite")):
        (tmp_path / name).mkdir()
        locations.append(backend_location(kind, tmp_path / name))
    src, mid, dst = locations
    ids = _full(src)
    before = _everything(src)
    assert all(before[t] for t in COPY_TABLES), [t for t in COPY_TABLES if not before[t]]
    copy_queue(src, mid)
    report = copy_queue(mid, dst)
    assert report.rows == {t: len(rows) for t, rows in before.items()}
    assert _everything(mid) == before
    assert _everything(dst) == before
    jobs = {row[0]: dict(zip(COPY_COLUMNS["jobs"], row, strict=True)) for row in before["jobs"]}
    assert jobs[ids["waiting"]]["blocked"] == 2 and jobs[ids["snoozy"]]["snoozes"] == 1
    assert jobs[ids["first"]]["has_dependents"] == 1

    # what the CLI shows of them is the same on both sides
    show = [json.loads(_cli_at(q, "show", str(ids["edited"]), "--json")) for q in (src, dst)]
    assert show[0]["edits"] == show[1]["edits"] and show[1]["edits"][0]["user"] == "ann"
    assert _cli_at(src, "limit", "ls", "--json") == _cli_at(dst, "limit", "ls", "--json")
    # (the next run's "in 41d5h" read a second apart could cross an hour)
    schedules = [re.sub(r"in \d+d\d+h", "in …", _cli_at(q, "schedule", "ls")) for q in (src, dst)]
    assert schedules[0] == schedules[1] and "paused" in schedules[1]
    assert "nightly" in schedules[1] and "hourly" in schedules[1]
    assert _cli_at(src, "logs", str(ids["done"])) == _cli_at(dst, "logs", str(ids["done"]))

    for target in (mid, dst):  # new rows get new ids on both kinds of target
        b = open_backend(target, Role.WORKER)
        try:
            new = b.enqueue([new_job("new", priority=-1)], T0 + 10)[0]
            assert new > max(ids.values())
            assert b.edit_payload(new, '{"v":3}', T0 + 11, user="bob", host="box")
            assert [e.user for e in b.edits(new)] == ["bob"]
            # the waiting job is not claimable until both jobs it is after have succeeded
            claimed = b.claim("pool-b/1", T0 + 20, 60, limit=10)
            assert {j.id for j in claimed} == {ids["first"], ids["second"], ids["edited"], new}
            assert b.complete_many([(j.id, j.lease_token or "", None, None)
                                    for j in claimed], T0 + 21) == [True] * 4  # fmt: skip
            assert [j.id for j in b.claim("pool-b/1", T0 + 22, 60, limit=10)] == [ids["waiting"]]
            # the feed goes on from the source's last event, with only what happened here
            top = before["events"][-1][0]
            fresh = b.events(after=top, limit=1000)
            assert [e.id for e in fresh] == list(range(top + 1, top + 1 + len(fresh)))
            assert {e.job_id for e in fresh if e.kind == "created"} == {new}
            assert len(b.events(limit=10_000)) == len(before["events"]) + len(fresh)
        finally:
            b.close()


@pytest.mark.parametrize("what", ["limit", "schedule", "history"])
def test_a_target_with_limits_schedules_or_history_is_not_empty(
    pair: tuple[str, str], what: str
) -> None:
    src, dst = pair
    _fill(src)
    b = open_backend(dst, Role.WORKER)
    try:
        if what == "limit":
            b.put_limit(Limit("mine", concurrency=1), T0)
        elif what == "schedule":
            b.put_schedule(Schedule("mine", "0 3 * * *", "UTC", "t", "default", "{}", 0, False,
                                    T0 + 3600), T0)  # fmt: skip
        else:
            # a job deleted since leaves its events: a feed the copy's would collide with
            mine = b.enqueue([new_job("mine")], T0)[0]
            b.delete([mine], force=True)
            assert b.get(mine) is None and b.last_event_id()
    finally:
        b.close()
    before = _everything(dst)
    refused = r"already holds \d+ [a-z ]+: copy into an empty queue"
    with pytest.raises(TargetNotEmpty, match=refused):
        copy_queue(src, dst)
    assert _everything(dst) == before
    copy_queue(src, dst, replace=True)
    assert _everything(dst) == _everything(src)

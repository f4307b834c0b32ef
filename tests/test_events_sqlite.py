"""Lifecycle events, SQLite side: the triggers cost the same however big the tables are, an older
file is migrated, a copy carries no events, the hard cap holds, a failed write leaves none."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from jobq.backend import Ending
from jobq.model import EventKind
from jobq.store import Store
from jobq.store.sqlite import events as sqlite_events
from jobq.store.sqlite.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from jobq.transfer import copy_queue
from tests.factories import T0, claim_one, enqueue, new_job

ALL = [k.value for k in EventKind]


def _vm_steps(path: str, statement: str, params: dict[str, object]) -> int:
    """Virtual machine instructions SQLite runs for `statement`, its triggers included (a
    progress handler called on every instruction), in a transaction rolled back after."""
    conn = sqlite3.connect(path, isolation_level=None)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.set_progress_handler(count, 1)
        conn.execute(statement, params)
        conn.set_progress_handler(None, 1)
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return steps


@pytest.mark.parametrize(
    ("what", "statement"),
    [
        ("created", "INSERT INTO jobs (type, payload, run_at, created_at) VALUES ('t', '', 0, 0)"),
        ("started", "UPDATE jobs SET state = 'running', lease_token = 'x' WHERE id = :id"),
        ("cancelled", "UPDATE jobs SET state = 'cancelled', finished_at = 1 WHERE id = :id"),
        ("ended", "INSERT INTO attempts (job_id, attempt, started_at, finished_at, outcome,"
                  " error) VALUES (:id, 1, 0, 1, 'failed', 'E')"),
    ],
)  # fmt: skip
def test_a_trigger_costs_the_same_with_100_or_20000_jobs_and_events(
    tmp_path: Path, what: str, statement: str
) -> None:
    """No trigger scans a table: its cost does not grow with the jobs, attempts and events held
    (EXPLAIN QUERY PLAN does not look inside triggers, so count the instructions run)."""
    costs = []
    for n in (100, 20_000):
        path = str(tmp_path / f"{n}.db")
        with closing(Store(path)) as s:
            ids = s.enqueue_runs([(new_job("bulk"), "[" + ",".join(["{}"] * n) + "]", n)], T0)
            jobs = s.claim("p/1", T0, 30, limit=n // 2)  # half with a started event
            s.complete_many([(j.id, j.lease_token or "", None, None) for j in jobs], T0 + 1)
            assert s.last_event_id() >= 2 * n
        costs.append(_vm_steps(path, statement, {"id": ids[-1]}))
    assert costs[1] <= costs[0] * 1.2 + 50, costs


def test_an_older_file_is_migrated_with_an_empty_event_table(tmp_path: Path) -> None:
    """A file of the schema before the events' migration gains the table (and the later ones)."""
    path = str(tmp_path / "older.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    before = next(i for i, m in enumerate(MIGRATIONS) if any("CREATE TABLE events" in s for s in m))
    for migration in MIGRATIONS[:before]:
        for sql in migration:
            conn.execute(sql)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {before}")
    conn.execute("INSERT INTO jobs (type, payload, run_at, created_at) VALUES ('old', '{}', 0, 0)")
    conn.close()
    with closing(Store(path)) as s:
        assert s.events(kinds=ALL) == []  # no history is made up for what came before
        job_id = enqueue(s, T0, type="new")
        assert [(e.kind.value, e.job_id) for e in s.events(kinds=ALL)] == [("created", job_id)]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_file_of_schema_11_whose_created_trigger_was_dropped_by_hand_still_opens(
    tmp_path: Path,
) -> None:
    """Migration 12 drops `events_created`: one already gone (a benchmark's variant, a user's
    experiment) must not make the queue refuse to open."""
    path = str(tmp_path / "older.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for migration in MIGRATIONS[:11]:
        for sql in migration:
            conn.execute(sql)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 11")
    conn.execute("DROP TRIGGER events_created")
    conn.close()
    with closing(Store(path)) as s:
        job_id = enqueue(s, T0, type="new")
        assert [(e.kind.value, e.job_id) for e in s.events(kinds=ALL)] == [("created", job_id)]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_write_that_fails_leaves_no_event(store: Store) -> None:
    """The events are written in the change's transaction: rolled back with it."""
    with pytest.raises(ValueError, match="held 2 payloads"):
        store.enqueue_runs([(new_job("x"), '[{"a":1},{"a":2}]', 3)], T0)
    assert store.events(kinds=ALL) == [] and store.last_event_id() == 0


def test_a_copy_carries_the_source_history_and_fires_no_events_of_its_own(
    tmp_path: Path,
) -> None:
    """`jobq copy --replace` empties the target (its events too) and carries the source's
    events with their ids; the rows the copy inserts fire none of their own."""
    src, dst = str(tmp_path / "src.db"), str(tmp_path / "dst.db")
    with closing(Store(src)) as s:
        job_id = enqueue(s, T0)
        lease = claim_one(s, job_id, T0 + 1)
        s.end_attempt(job_id, lease.lease_token or "", T0 + 2, Ending.FAIL, "E")
        history = s.events(kinds=ALL)
    with closing(Store(dst)) as d:
        enqueue(d, T0)
        d.cancel([1], T0)
    copy_queue(src, dst, replace=True)
    with closing(Store(dst)) as d:
        assert d.events(kinds=ALL) == history
        new = enqueue(d, T0 + 5)
        assert [e.job_id for e in d.events(after=history[-1].id, kinds=ALL)] == [new]


def test_maintain_holds_the_hard_cap_once_a_minute(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_events, "EVENTS_KEEP", 5)
    ids = [enqueue(store, T0) for _ in range(8)]
    store.maintain()
    assert [e.job_id for e in store.events(kinds=ALL)] == ids[3:]
    for _ in range(4):
        enqueue(store, T0)
    store.maintain()  # within the minute: not checked again
    assert len(store.events(kinds=ALL)) == 9
    store._cap_checked = -1e9  # a minute later
    store.maintain()
    assert len(store.events(kinds=ALL)) == 5


def test_pool_pruner_prunes_events_with_the_jobs_retention(store: Store) -> None:
    from jobq.pool.maintenance import Pruner

    enqueue(store, T0 - 100)
    kept = enqueue(store, T0 - 10)
    Pruner(store, 50.0).prune(T0)
    assert [e.job_id for e in store.events(kinds=ALL)] == [kept]

"""What only the PostgreSQL backend has to get right: its schema (created by writers only,
migrated once by racing processes, a newer one refused untouched, another program's refused),
its URL (schema=, a password never shown), a server that is down or restarts, and the claim's
query plan with much history."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobq.backend import ANY, ClaimFilter, Ending, Role, open_backend
from jobq.errors import (
    InvalidInput,
    NewerSchema,
    NotAJobqFile,
    QueueFileError,
    ServerUnavailable,
)
from jobq.store.postgres.connection import split_url
from jobq.store.postgres.schema import SCHEMA_VERSION
from tests.factories import T0, make_job, new_job
from tests.pgserver import PgServer, start_server


def _raw(location: str) -> psycopg.Connection[Any]:
    """A plain connection to the location's database (outside jobq), autocommit."""
    url, _ = split_url(location)
    return psycopg.connect(url, autocommit=True)


def _schema(location: str) -> str:
    return split_url(location)[1]


def _catalog(location: str) -> list[tuple[object, ...]]:
    """Every object of the location's schema (name, kind) and jobq_meta's rows: what a refusal
    must leave as it was."""
    schema = _schema(location)
    with _raw(location) as c:
        objects = c.execute(
            "SELECT c.relname, c.relkind::text FROM pg_class AS c"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s"
            " ORDER BY 1",
            (schema,),
        ).fetchall()
        meta = c.execute(f'SELECT version FROM "{schema}".jobq_meta').fetchall()
    return [*objects, ("meta", meta)]


@pytest.fixture
def pg_location(pg_server: PgServer) -> str:
    """A fresh schema in the session's server."""
    return pg_server.location()


def test_a_newer_schema_is_refused_untouched(pg_location: str) -> None:
    b = open_backend(pg_location, Role.PRODUCER)
    b.enqueue([new_job()], T0)
    b.close()
    with _raw(pg_location) as c:
        c.execute(f'UPDATE "{_schema(pg_location)}".jobq_meta SET version = %s',
                  (SCHEMA_VERSION + 1,))  # fmt: skip
    before = _catalog(pg_location)
    for role in Role:
        with pytest.raises(NewerSchema, match="written by a newer jobq"):
            open_backend(pg_location, role)
    assert _catalog(pg_location) == before


@pytest.mark.parametrize("role", [Role.READER, Role.OPERATOR])
def test_a_reader_on_an_empty_schema_creates_nothing(pg_location: str, role: Role) -> None:
    schema = _schema(pg_location)
    with pytest.raises(QueueFileError, match=f"no queue at .*schema {schema} has no jobq tables"):
        open_backend(pg_location, role)
    with _raw(pg_location) as c:
        found = c.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchall()
    assert found == [], "a read-only role created the schema"


def test_a_schema_of_another_program_is_refused(pg_location: str) -> None:
    schema = _schema(pg_location)
    with _raw(pg_location) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
        c.execute(f'CREATE TABLE "{schema}".jobs (id int)')
    with pytest.raises(NotAJobqFile, match="not a jobq queue"):
        open_backend(pg_location, Role.PRODUCER)
    with _raw(pg_location) as c:
        tables = c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    assert tables == [("jobs",)]


def _open_and_enqueue(location: str, barrier: Any, n: int) -> None:
    barrier.wait(30)
    b = open_backend(location, Role.PRODUCER if n % 2 else Role.WORKER)
    b.enqueue([new_job(f"p{n}")], time.time())
    b.close()


def test_processes_migrating_at_once_create_one_schema(pg_location: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_open_and_enqueue, args=(pg_location, barrier, i))
             for i in range(n)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n
    b = open_backend(pg_location, Role.READER)
    try:
        assert b.counts()["pending"] == n
        assert b.doctor()["integrity"] == "ok"
    finally:
        b.close()
    with _raw(pg_location) as c:
        meta = c.execute(f'SELECT version FROM "{_schema(pg_location)}".jobq_meta').fetchall()
    assert meta == [(SCHEMA_VERSION,)]


def test_two_schemas_are_two_queues(pg_server: PgServer) -> None:
    a = open_backend(pg_server.location(), Role.PRODUCER)
    b = open_backend(pg_server.location(), Role.PRODUCER)
    try:
        a.enqueue([new_job("in-a")], T0)
        assert b.counts()["pending"] == 0
        assert [j.type for j in a.list_jobs(T0)] == ["in-a"]
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:s3cret@127.0.0.1:1/jobs",
        "postgresql://bob@127.0.0.1:1/jobs?password=s3cret",
        "postgresql:///jobs?host=127.0.0.1&port=1&user=bob&password=s3cret&schema=q",
    ],
)
def test_the_password_is_never_in_an_error(url: str) -> None:
    with pytest.raises(ServerUnavailable) as got:
        open_backend(url, Role.PRODUCER)
    message = str(got.value)
    assert "s3cret" not in message
    assert "***" in message
    assert "\n" not in message
    assert got.value.exit_code == 75


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server of this test's own, which it may stop and restart."""
    server = start_server()
    try:
        yield server
    finally:
        server.destroy()


@pytest.mark.timeout(180)
def test_a_server_that_goes_away_is_server_unavailable_then_reconnected(
    own_server: PgServer,
) -> None:
    location = own_server.location()
    b = open_backend(location, Role.WORKER)
    try:
        first = b.enqueue([new_job()], T0)[0]
        own_server.stop()
        with pytest.raises(ServerUnavailable, match="cannot reach the PostgreSQL server"):
            b.get(first)
        with pytest.raises(ServerUnavailable):
            b.enqueue([new_job()], T0)  # no connection to make: the same error, not a crash
        own_server.start()
        job = b.get(first)  # the next call connects again
        assert job is not None and job.id == first
        assert len(b.enqueue([new_job()], T0)) == 1
        own_server.restart()  # while this process is idle: its connection dies unnoticed
        assert b.counts()["pending"] == 2, "a read is sent again on a new connection"
    finally:
        b.close()
    with pytest.raises(ServerUnavailable):
        own_server.stop()
        open_backend(location, Role.PRODUCER)


def test_claim_walks_the_pending_index_whatever_the_history(pg_location: str) -> None:
    """The claim's plan reads the partial index over pending rows in claim order: with 20,000
    finished jobs and fresh statistics, or none, as a custom plan or the generic plan the server
    may switch to for a prepared statement, and with every kind of filter."""
    from jobq.store.postgres.testhooks import claim_plan

    every = ClaimFilter(queues=("default",), types=("todo", "done"), type_globs=("t*",))

    def check_plans() -> None:
        for f, generic in [(ANY, False), (ANY, True), (every, False), (every, True)]:
            plan = claim_plan(b, T0 + 3, f, generic=generic)
            assert "Index Scan using jobs_pending" in plan, (f, generic, plan)
            assert "Seq Scan on jobs" not in plan and "Sort" not in plan, (f, generic, plan)

    b = open_backend(pg_location, Role.WORKER)
    try:
        b.enqueue([new_job("done") for _ in range(20_000)], T0)
        check_plans()  # 20,000 due rows, no statistics yet
        while jobs := b.claim("w/1", T0, 30, limit=1000):
            b.complete_many([(j.id, j.lease_token or "", None, None) for j in jobs], T0 + 1)
        b.enqueue([new_job("todo") for _ in range(50)], T0 + 2)
        with _raw(pg_location) as c:
            c.execute(f'ANALYZE "{_schema(pg_location)}".jobs')
        check_plans()
        got = b.claim("w/1", T0 + 3, 30)
        assert [j.type for j in got] == ["todo"]
    finally:
        b.close()


def test_a_payload_reads_back_byte_for_byte(pg_location: str) -> None:
    texts = ['{"b":1,"a":2}', "12345678901234567890", "-0.0", '"x\\u0000y"', "[1,[2,{}]]", "1e400"]
    b = open_backend(pg_location, Role.PRODUCER)
    try:
        single = [b.enqueue([new_job(payload_json=t)], T0)[0] for t in texts]
        bulk = b.enqueue([new_job("bulk", payload_json=t) for t in texts], T0)
        assert bulk == sorted(bulk) and len(bulk) == len(texts)
        assert [j.payload_json for j in b.get_many(single)] == texts
        assert [j.payload_json for j in b.get_many(bulk)] == texts
    finally:
        b.close()


def test_the_change_token_moves_only_when_a_write_is_visible(pg_location: str) -> None:
    """A writer bumps the sequence inside its transaction; a token read meanwhile must still
    change once the transaction commits, or a dashboard would keep a stale page."""
    b = open_backend(pg_location, Role.PRODUCER)
    try:
        make_job(b, "pending")
        with _raw(pg_location) as c:
            c.execute("BEGIN")
            c.execute(f'INSERT INTO "{_schema(pg_location)}".jobs (type, payload, run_at,'
                      " created_at) VALUES ('raw', '{}', now(), now())")  # fmt: skip
            during = b.change_token()
            assert b.counts()["pending"] == 1  # not visible yet
            c.execute("COMMIT")
        after = b.change_token()
        assert after != during
        assert b.counts()["pending"] == 2
        assert b.change_token() == after, "the token moves only when something changed"
    finally:
        b.close()


def test_backup_is_refused_with_what_to_use_instead(pg_location: str, tmp_path: Path) -> None:
    open_backend(pg_location, Role.PRODUCER).close()
    b = open_backend(pg_location, Role.OPERATOR)
    try:
        with pytest.raises(InvalidInput, match="pg_dump"):
            b.backup(str(tmp_path / "copy.db"))
    finally:
        b.close()
    assert list(tmp_path.iterdir()) == []


def test_running_of_takes_a_prefix_whatever_the_collation(pg_server: PgServer) -> None:
    """Under a collation where punctuation weighs nothing at first (ICU's "shifted", glibc's
    en_US), "p2/1" sorts between "p/" and "p/\\U0010ffff": a range of worker ids would hand
    another pool's job to this one's supervisor."""
    with psycopg.connect(pg_server.url("postgres"), autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS jobq_shifted")
        try:
            c.execute("CREATE DATABASE jobq_shifted TEMPLATE template0 LOCALE_PROVIDER icu"
                      " ICU_LOCALE 'en-US-u-ka-shifted' LOCALE 'C.utf8'")  # fmt: skip
        except psycopg.Error as e:
            pytest.skip(f"no ICU collation on this server: {e}")
    b = open_backend(pg_server.url("jobq_shifted", schema="q"), Role.WORKER)
    try:
        mine = make_job(b, "running", worker="p/1")
        make_job(b, "running", worker="p2/1")
        assert [r[0] for r in b.running_of("p/")] == [mine.id]
    finally:
        b.close()


def _fail_jobs(location: str, barrier: Any, n: int) -> None:
    b = open_backend(location, Role.WORKER)
    barrier.wait(30)
    for _ in range(n):
        jobs = b.claim(f"p{os.getpid()}/1", time.time(), 30)
        if not jobs:
            break
        b.end_attempt(jobs[0].id, jobs[0].lease_token or "", time.time(), Ending.FAIL, "boom",
                      retryable=False)  # fmt: skip
    b.close()


@pytest.mark.timeout(120)
def test_a_follower_of_errors_sees_every_failure(pg_location: str) -> None:
    """`jobq errors -f` asks for the failed attempts after the last id it saw: ids must reach
    it in commit order, or a failure whose transaction took an id first and committed last is
    skipped for good."""
    b = open_backend(pg_location, Role.PRODUCER)
    total, n_procs = 600, 4
    b.enqueue([new_job("f") for _ in range(total)], time.time())
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_procs + 1)
    procs = [ctx.Process(target=_fail_jobs, args=(pg_location, barrier, total))
             for _ in range(n_procs)]  # fmt: skip
    for p in procs:
        p.start()
    barrier.wait(30)
    seen: list[int] = []
    last = 0
    try:
        while any(p.is_alive() for p in procs):
            new = b.errors(after=last, limit=1000)
            if new:
                last = new[0].attempt.id
                seen += [e.attempt.job_id for e in new]
        seen += [e.attempt.job_id for e in b.errors(after=last, limit=1000)]
    finally:
        for p in procs:
            p.join(60)
        b.close()
    assert [p.exitcode for p in procs] == [0] * n_procs
    assert len(seen) == len(set(seen)) == total, f"{total - len(set(seen))} failures never seen"


def test_a_nul_in_a_handlers_output_or_error_is_recorded(pg_location: str) -> None:
    """PostgreSQL text cannot hold NUL, which a command's stdout or stderr may: the attempt is
    recorded with U+FFFD in its place, not left running because its end could not be written."""
    b = open_backend(pg_location, Role.WORKER)
    try:
        failed = make_job(b, "running")
        state = b.end_attempt(failed.id, failed.lease_token or "", T0, Ending.FAIL, "bad\x00",
                              traceback="tb\x00", output="out\x00")  # fmt: skip
        assert state is not None
        (a,) = b.attempts(failed.id)
        assert (a.error, a.traceback, a.output) == ("bad\ufffd", "tb\ufffd", "out\ufffd")
        assert b.get(failed.id).last_error == "bad\ufffd"  # type: ignore[union-attr]
        done = make_job(b, "running")
        assert b.complete_many([(done.id, done.lease_token or "", None, "x\x00y")], T0) == [True]
        assert [a.output for a in b.attempts(done.id)] == ["x\ufffdy"]
    finally:
        b.close()


@pytest.mark.parametrize(
    "url", ["postgresql://u:s3cret%zz@h/db", "postgresql://h/db?password=s3cret%zz&user=u"]
)
def test_a_malformed_url_is_bad_input_without_its_password(url: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid PostgreSQL URL") as got:
        open_backend(url, Role.PRODUCER)
    assert "s3cret" not in str(got.value) and "***" in str(got.value)


def test_a_write_that_changes_nothing_wakes_nobody(pg_location: str) -> None:
    """Idle workers wake on every notification and claim: if an empty claim notified, two idle
    workers would wake each other for ever. Writes that change no row neither notify nor move
    the change token; writes that do, do both."""
    b = open_backend(pg_location, Role.WORKER)
    listener = _raw(pg_location)
    try:
        listener.execute(f'LISTEN "jobq:{_schema(pg_location)}"')
        stale = make_job(b, "succeeded")
        list(listener.notifies(timeout=0.2))  # what making the job sent
        token = b.change_token()
        assert b.claim("w/1", T0, 30) == []
        assert b.renew([(stale.id, "0" * 16)], T0) == 0
        assert b.complete_many([(stale.id, "0" * 16, None, None)], T0) == [False]
        assert b.end_attempt(stale.id, "0" * 16, T0, Ending.FAIL) is None
        assert b.prune(T0 - 10_000, ["succeeded"]) == 0
        assert b.change_token() == token
        assert list(listener.notifies(timeout=0.5)) == []
        job = make_job(b, "pending")
        list(listener.notifies(timeout=0.2))
        token = b.change_token()
        assert [j.id for j in b.claim("w/1", T0, 30)] == [job.id]
        assert b.change_token() != token
        assert len(list(listener.notifies(timeout=5, stop_after=1))) == 1
    finally:
        listener.close()
        b.close()


def test_a_workers_statements_are_never_jit_compiled(pg_location: str) -> None:
    """A worker's session prices sorts out (so claims walk the index); the sort completing a
    batch must not then look expensive enough for the server to JIT-compile it: measured, that
    took 1.4 s to complete one job instead of 2 ms."""
    import psycopg as pg

    from jobq.store.postgres.sql import COMPLETE_MANY

    b = open_backend(pg_location, Role.WORKER)
    try:
        b.enqueue([new_job() for _ in range(3)], T0)
        jobs = b.claim("w/1", T0, 30, limit=3)
        params = {"ids": [j.id for j in jobs], "tokens": [j.lease_token for j in jobs],
                  "results": [None] * 3, "outputs": [None] * 3, "now": T0}  # fmt: skip
        conn = b._live()  # type: ignore[attr-defined]
        with conn.transaction():
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN ANALYZE " + COMPLETE_MANY,
                                                        params))  # fmt: skip
            raise pg.Rollback
        assert "JIT" not in plan, plan
    finally:
        b.close()


@pytest.mark.timeout(60)
def test_a_retry_racing_an_enqueue_of_its_unique_key_reports_the_duplicate(
    pg_location: str,
) -> None:
    """Retry checks that no pending or running job holds the key, but a producer's insert of
    the same key that commits while the retry waits on the unique index makes the update
    violate it: that is the DUPLICATE_UNIQUE_KEY outcome, not an error that aborts the other
    ids of the same retry (it was exit 1 for the whole command)."""
    import threading

    from jobq.backend import ActionResult

    open_backend(pg_location, Role.WORKER).close()  # creates the schema
    b = open_backend(pg_location, Role.OPERATOR)  # as `jobq retry` opens it
    failed = make_job(b, "failed", type="t", unique_key="k")
    other = make_job(b, "failed", type="u")
    producer = psycopg.connect(split_url(pg_location)[0])  # a transaction left open
    producer.execute(
        f'INSERT INTO "{_schema(pg_location)}".jobs (type, payload, unique_key, run_at,'
        " created_at) VALUES ('t', '{}', 'k', now(), now())"
    )
    got: dict[int, object] = {}
    retry = threading.Thread(target=lambda: got.update(b.retry([failed.id, other.id], T0)))
    retry.start()
    try:
        with _raw(pg_location) as watcher:  # the retry waits on the producer's row lock
            deadline = time.monotonic() + 30
            while not watcher.execute(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ("%UPDATE jobs%",),
            ).fetchone():
                assert time.monotonic() < deadline, "the retry never waited on the key"
                time.sleep(0.01)
        producer.commit()
        retry.join(30)
        assert not retry.is_alive()
        assert got[failed.id].result is ActionResult.DUPLICATE_UNIQUE_KEY  # type: ignore[attr-defined]
        assert got[other.id].result is ActionResult.RETRIED  # type: ignore[attr-defined]
        assert b.get(failed.id).state == "failed"
        assert b.get(other.id).state == "pending"
    finally:
        producer.close()
        retry.join(30)
        b.close()


def test_created_events_come_from_the_trigger_except_in_a_bulk_insert(pg_location: str) -> None:
    """Schema 10: a bulk insert writes its own created events and tells the row trigger so for
    its transaction only; a hand-written insert, and every later transaction of the same
    connection, still get theirs from the trigger, once each."""
    b = open_backend(pg_location, Role.PRODUCER)
    try:
        bulk = b.enqueue_runs([(new_job("bulk"), '[{"a":1},[2]]', 2)], T0)
        one = b.enqueue([new_job("one")], T0)  # the same connection, after the bulk insert
        s = _schema(pg_location)
        with _raw(pg_location) as c:
            (hand,) = c.execute(
                f'INSERT INTO "{s}".jobs (type, payload, run_at, created_at) VALUES'
                " ('hand', '{}', now(), now()) RETURNING id"
            ).fetchone()  # type: ignore[misc]
            setting = c.execute("SELECT current_setting('jobq.bulk_insert', true)").fetchone()
        created = [e.job_id for e in b.events(kinds=["created"])]
    finally:
        b.close()
    assert created == [*bulk, *one, hand]
    assert setting in ((None,), ("",))  # never set outside a bulk insert's transaction

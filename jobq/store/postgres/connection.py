"""One connection to a PostgreSQL queue: the URL, settings per role, the schema check,
transactions, error translation, reconnection, and the administration verbs.

A Backend object holds one psycopg connection in autocommit mode: a write of one statement is its
own transaction (one round trip: claim, complete, enqueue), and a write of several statements runs
in an explicit transaction (`_write`). Each call that finds the connection lost opens a new one
(the call that lost it failed with ServerUnavailable: nothing is retried behind the caller's back,
as a write may or may not have committed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ...backend import Role, display_location
from ...errors import (
    DatabaseBusy,
    DiskFull,
    InvalidInput,
    JobqError,
    NewerSchema,
    NotAJobqFile,
    QueueFileError,
    ServerUnavailable,
    TemporaryFailure,
)
from .schema import CREATE_META, SCHEMA_VERSION, channel_of, quote_ident, statements
from .sql import CHANGE_TOKEN, COUNT_TABLES, SCHEMA_TABLES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...waiting import Waiter

DEFAULT_SCHEMA = "jobq"
# An identifier that needs no quoting; at most 58 characters so that the NOTIFY channel
# "jobq:<schema>" stays within PostgreSQL's 63-byte limit on names.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,57}")
CONNECT_TIMEOUT = 10  # seconds, unless the URL says otherwise (libpq's default is forever)

CHANGE_TRIGGERS = ("jobq_changed_insert", "jobq_changed_update", "jobq_changed_delete")
EXPECTED_INDEXES = ("jobs_pending", "jobs_blocked", "jobs_running", "jobs_state", "jobs_finished",
                    "jobs_unique", "job_deps_after", "attempts_job", "attempts_errors")  # fmt: skip

# SQLSTATEs that mean "wait and try again": lock_timeout, statement_timeout, deadlock, serialization
_BUSY = ("55P03", "57014", "40P01", "40001")


def split_url(url: str) -> tuple[str, str]:
    """(the URL without jobq's `schema=` parameter, the schema name): libpq never sees it."""
    base, mark, query = url.partition("?")
    schema = DEFAULT_SCHEMA
    kept = []
    for param in query.split("&") if mark else []:
        key, _, value = param.partition("=")
        if key == "schema":
            schema = unquote(value)
        elif param:
            kept.append(param)
    if _SCHEMA_NAME.fullmatch(schema) is None:
        raise InvalidInput(
            f"schema={schema!r} in {display_location(url)} is not a valid schema name: "
            "lowercase letters, digits and _, at most 58 characters, not starting with a digit"
        )
    return base + ("?" + "&".join(kept) if kept else ""), schema


def _written_passwords(url: str) -> list[str]:
    """The password of a URL as written (user:PASSWORD@ and password=PASSWORD), unparsed."""
    rest = url.partition("://")[2]
    rest, _, query = rest.partition("?")
    userinfo = rest.partition("/")[0].rpartition("@")[0]
    found = [userinfo.partition(":")[2]] if ":" in userinfo else []
    found += [p.partition("=")[2] for p in query.split("&")
              if p.partition("=")[0].strip().lower() == "password"]  # fmt: skip
    return [f for f in found if f]


def translate(e: psycopg.Error, where: str, secret: str | None = None) -> JobqError:
    """Turn a psycopg error into the jobq error a person can act on (one line, no password)."""
    lines = str(e).strip().splitlines()
    first = lines[0].strip() if lines else type(e).__name__
    if secret:
        first = first.replace(secret, "***")
    state = e.sqlstate
    if state in _BUSY:
        return DatabaseBusy(f"{where} stayed locked by another transaction past the lock timeout")
    if state == "53100":
        return DiskFull(f"the server of {where} is out of disk space: {first}")
    if state is not None and state.startswith("53"):
        return TemporaryFailure(f"the server of {where} is out of resources: {first}")
    if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError) and (
        state is None or state.startswith(("08", "57P"))
    ):
        return ServerUnavailable(f"cannot reach the PostgreSQL server of {where}: {first}")
    if state is None and isinstance(e, psycopg.DataError):  # refused before it was sent
        return InvalidInput(f"{where}: {first}")
    if state == "42501":
        return QueueFileError(f"{where}: {first}")
    return JobqError(f"{where}: {first}")


class Connection:
    """A connection to one queue (a schema in a PostgreSQL database), set up for a role.

    PRODUCER and WORKER roles create the schema and its tables if missing and migrate an older
    one; READER and OPERATOR never create anything. A schema written by a newer jobq is refused
    untouched (NewerSchema). Producers' commits wait for the WAL flush (synchronous_commit on:
    an acknowledged enqueue survives a crash); a worker's own transitions do not (losing one
    can only make a job run again, which at-least-once allows), but its enqueues do.
    """

    def __init__(self, url: str, role: Role, *, busy_timeout: float) -> None:
        self.location = url
        self.display = display_location(url)
        self._conninfo, self.schema = split_url(url)
        self.channel = channel_of(self.schema)
        try:
            params = conninfo_to_dict(self._conninfo)
        except psycopg.Error as e:
            first = (str(e).strip().splitlines() or ["invalid"])[0]
            for written in _written_passwords(url):  # libpq may quote the bad part: a password
                first = first.replace(written, "***")
            raise InvalidInput(f"{self.display} is not a valid PostgreSQL URL: {first}") from None
        password = params.get("password")
        self._secret = str(password) if password else None
        self._in_snapshot = False  # inside snapshot(): reads join its transaction
        self._kwargs: dict[str, Any] = {"autocommit": True}
        if "application_name" not in params:
            self._kwargs["application_name"] = "jobq"
        if "connect_timeout" not in params:
            self._kwargs["connect_timeout"] = CONNECT_TIMEOUT
        self._create = role in (Role.PRODUCER, Role.WORKER, Role.WORKER_SPIN)
        self._async_commit = role in (Role.WORKER, Role.WORKER_SPIN)
        lock_ms = 1 if role is Role.WORKER_SPIN else max(1, int(busy_timeout * 1000))
        # A worker's claims walk the partial index in claim order, whatever the planner guesses
        # (SQLite's INDEXED BY): without statistics, or in a generic plan, it may believe few
        # rows are due and sort them all (measured: 2 s a claim over 1M due jobs, 0.4 ms on the
        # index). Sorts and bitmap scans cost it more than any index walk, on this session only.
        # JIT is off for every session: jobq's statements are short, compiling one costs more
        # than it runs (and a priced-out sort's cost would set it off: 1.4 s to complete a job).
        plans = "off" if role in (Role.WORKER, Role.WORKER_SPIN) else "on"
        self._setup = (quote_ident(self.schema), f"{lock_ms}ms",
                       "off" if self._async_commit else "on", plans, plans)  # fmt: skip
        self._conn: psycopg.Connection[Any] | None = None
        self._open()

    # ---- connecting ------------------------------------------------------------------------

    def _open(self) -> psycopg.Connection[Any]:
        """Connect, set the session up and check the schema (creating or migrating it)."""
        try:
            conn = psycopg.connect(self._conninfo, **self._kwargs)
        except psycopg.Error as e:
            raise translate(e, self.display, self._secret) from None
        try:
            row = conn.execute(
                "SELECT set_config('search_path', %s, false), set_config('lock_timeout', %s,"
                " false), set_config('synchronous_commit', %s, false),"
                " set_config('enable_sort', %s, false), set_config('enable_bitmapscan', %s, false),"
                " set_config('jit', 'off', false),"
                " to_regclass(%s)::text, (SELECT count(*) FROM pg_tables WHERE schemaname = %s)",
                (*self._setup, quote_ident(self.schema) + ".jobq_meta", self.schema),
            ).fetchone()
            assert row is not None
            version = 0
            if row[6] is not None:
                got = conn.execute("SELECT max(version) FROM jobq_meta").fetchone()
                version = got[0] if got and got[0] is not None else 0
            self._check_version(version)
            if row[6] is None and not self._create:
                raise QueueFileError(
                    f"no queue at {self.display}: schema {self.schema} has no jobq tables"
                )
            if row[6] is None and row[7]:
                raise NotAJobqFile(
                    f"schema {self.schema} of {self.display} holds tables that are not a jobq "
                    "queue: name another with ?schema=NAME"
                )
            if version < SCHEMA_VERSION:
                self._migrate(conn)
        except psycopg.Error as e:
            conn.close()
            raise translate(e, self.display, self._secret) from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise NewerSchema(
                f"schema {self.schema} of {self.display} was written by a newer jobq (schema "
                f"{version}, this jobq knows up to {SCHEMA_VERSION}): upgrade jobq"
            )

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create or migrate the schema in one transaction, under an advisory lock: several
        processes starting at once take turns, and each re-reads the version under the lock."""
        s = quote_ident(self.schema)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("jobq:" + self.schema,))
            exists = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
            ).fetchone()
            if not exists:  # not CREATE ... IF NOT EXISTS: it needs the CREATE right anyway
                conn.execute(f"CREATE SCHEMA {s}")
            conn.execute(CREATE_META.format(s=s))
            got = conn.execute(f"SELECT max(version) FROM {s}.jobq_meta").fetchone()
            version = got[0] if got and got[0] is not None else 0
            self._check_version(version)
            for sql in statements(version, self.schema):
                conn.execute(sql)  # our constants, formatted with a validated name
            conn.execute(f"DELETE FROM {s}.jobq_meta")
            conn.execute(f"INSERT INTO {s}.jobq_meta (version) VALUES (%s)", (SCHEMA_VERSION,))

    def _live(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
                self._conn = None
            conn = self._open()
        return conn

    # ---- transactions ------------------------------------------------------------------------

    def _one(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run one statement as its own transaction; return its cursor (rows fetched)."""
        conn = self._live()
        try:
            cur = conn.execute(sql, params)
            return cur
        except psycopg.Error as e:
            raise translate(e, self.display, self._secret) from None

    def _get(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run one read-only statement; return its cursor (rows fetched). A read that finds its
        connection dead (the server restarted while this process was idle) is sent once more on
        a new connection: it changes nothing, so sending it twice is harmless."""
        conn = self._live()
        try:
            return conn.execute(sql, params)
        except psycopg.Error as e:
            if not conn.broken or self._in_snapshot:  # a new connection is not the snapshot
                raise translate(e, self.display, self._secret) from None
        return self._one(sql, params)

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """One transaction of several statements; `durable` waits for the WAL flush at commit
        even on a worker's connection."""
        conn = self._live()
        try:
            with conn.transaction():
                if durable and self._async_commit:
                    conn.execute("SET LOCAL synchronous_commit = on")
                yield conn
        except psycopg.Error as e:
            raise translate(e, self.display, self._secret) from None

    _read = _write  # a read of several statements: one snapshot-consistent-enough transaction

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """The reads inside see the queue at one instant: one REPEATABLE READ, READ ONLY
        transaction around them (a snapshot inside a snapshot is the outer one)."""
        if self._in_snapshot:
            yield
            return
        conn = self._live()
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                self._in_snapshot = True
                try:
                    yield
                finally:
                    self._in_snapshot = False
        except psycopg.Error as e:
            raise translate(e, self.display, self._secret) from None

    # ---- change, identity, administration ------------------------------------------------------

    def change_token(self) -> int:
        """A number that changes once another connection's write is visible (see schema.py)."""
        row = self._get(CHANGE_TOKEN).fetchone()
        return int(row[0])

    data_version = change_token  # the older name

    def waker(self) -> Waiter:
        """A waker on this queue's commits (LISTEN on its channel), armed now."""
        from .waker import PgWaker  # type: ignore[import-not-found, unused-ignore]

        waiter: Waiter = PgWaker(self._conninfo, self.channel, **self._kwargs)
        return waiter

    def check_identity(self, force: bool = False) -> None:
        """Nothing to check: a server URL names the same queue for as long as it exists."""

    def maintain(self) -> None:
        """Periodic upkeep a pool runs: nothing here (the server's autovacuum does it)."""

    def backup(self, target: str) -> None:
        """Refused: a queue on a server is copied with the server's tools."""
        raise InvalidInput(
            "jobq backup copies queue files; for PostgreSQL use pg_dump (or `jobq copy URL FILE`)"
        )

    def doctor(self) -> dict[str, object]:
        """Server and schema report: versions, table counts, indexes, the masked location.

        `integrity` is "ok" when every table, index and change trigger of the schema version is
        there and every index is valid (a failed CREATE INDEX CONCURRENTLY leaves an invalid
        one), else the list of what is wrong. Foreign keys are enforced by the server.
        """
        with self._read() as conn:
            server = conn.execute("SHOW server_version").fetchone()
            got = conn.execute("SELECT max(version) FROM jobq_meta").fetchone()
            counts = conn.execute(COUNT_TABLES).fetchone()
            present = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
                (self.schema,))]  # fmt: skip
            indexes = {r[0]: r[1] for r in conn.execute(
                "SELECT c.relname, i.indisvalid FROM pg_index AS i"
                " JOIN pg_class AS c ON c.oid = i.indexrelid"
                " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s", (self.schema,))}  # fmt: skip
            triggers = {(r[0], r[1]) for r in conn.execute(
                "SELECT c.relname, t.tgname FROM pg_trigger AS t"
                " JOIN pg_class AS c ON c.oid = t.tgrelid"
                " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND t.tgenabled <> 'D'", (self.schema,))}  # fmt: skip
        assert server is not None and got is not None and counts is not None
        problems = [f"missing table {t}" for t in (*SCHEMA_TABLES, "jobq_meta")
                    if t not in present]  # fmt: skip
        problems += [f"missing index {i}" for i in EXPECTED_INDEXES if i not in indexes]
        problems += [f"invalid index {i}" for i, valid in sorted(indexes.items()) if not valid]
        problems += [f"no trigger {g} on {t} (workers would not wake)"
                     for t in ("jobs", "workers", "queues") for g in CHANGE_TRIGGERS
                     if (t, g) not in triggers]  # fmt: skip
        if ("jobs", "jobq_unblock") not in triggers:
            problems.append("no trigger jobq_unblock on jobs (dependents would never run)")
        return {
            "location": self.display,
            "backend": "postgresql",
            "schema": self.schema,
            "integrity": problems or "ok",
            "foreign_key_violations": 0,
            "schema_version": got[0],
            "supported_schema_version": SCHEMA_VERSION,
            "server_version": server[0],
            "tables": dict(zip(SCHEMA_TABLES, counts, strict=True)),
            "unexpected_tables": [n for n in present if n not in (*SCHEMA_TABLES, "jobq_meta")],
            "indexes": sorted(i for i in indexes if i.startswith("jobs_")),
        }

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

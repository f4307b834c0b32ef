"""Whole-queue export and import for `jobq copy` on PostgreSQL (jobq/transfer.py has the rules).

Export reads in one REPEATABLE READ transaction per table; import writes every table with COPY
in one transaction (all or nothing). COPY writes the given ids into the identity columns, like
OVERRIDING SYSTEM VALUE, and the identity sequences are then moved past the highest id, so the
next enqueue gets a new id.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence

import psycopg

from .connection import translate
from .reads import Reads

Batch = list[tuple[object, ...]]

# How each column travels: times as epoch seconds (a rollup minute as an integer, as the SQLite
# file keeps it), json as its text, booleans as 0 / 1
_OUT = {
    "run_at", "created_at", "started_at", "finished_at", "lease_until", "paused_at", "at",
    "next_at", "last_at", "minute",
}  # fmt: skip
_JSON = {"payload", "result", "old_payload"}
_BOOL = {"cancel_requested", "paused", "has_dependents", "retried"}
# Each table's order (its primary key); text keys in byte order, as SQLite sorts them
_KEY = {
    "queues": 'name COLLATE "C"', "jobs": "id", "attempts": "id", "job_deps": "job_id, after_id",
    "job_edits": "id", "job_output": "job_id, attempt, seq", "job_progress": "job_id",
    "limits": 'key COLLATE "C"', "schedules": 'name COLLATE "C"',
    "rollup": 'minute, queue COLLATE "C", type COLLATE "C", key COLLATE "C"',
    "metric_totals": 'type COLLATE "C", key COLLATE "C"', "events": "id",
}  # fmt: skip
# The tables whose ids an identity gives: moved past the highest copied id
_IDENTITY = ("jobs", "attempts", "job_edits")
# What makes a target non-empty, in jobq.transfer.HELD's order
HELD = """
SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM queues), (SELECT count(*) FROM limits),
       (SELECT count(*) FROM schedules), (SELECT count(*) FROM rollup),
       (SELECT count(*) FROM metric_totals), (SELECT count(*) FROM events)
"""


def _name(col: str) -> str:
    return '"user"' if col == "user" else col


def _columns(table: str) -> tuple[str, ...]:
    from ...transfer import COPY_COLUMNS

    try:
        return COPY_COLUMNS[table]
    except KeyError:
        raise ValueError(f"no table {table!r} travels in a copy") from None


def _select(col: str) -> str:
    if col == "minute":
        return "date_part('epoch', minute)::bigint"
    if col in _OUT:
        return f"date_part('epoch', {col})"
    if col in _JSON:
        return f"{col}::text"
    if col in _BOOL:
        return f"{col}::int"
    return _name(col)


def _to_pg(col: str, value: object) -> object:
    if value is None:
        return None
    if col in _OUT:
        from datetime import datetime, timezone

        return datetime.fromtimestamp(float(value), tz=timezone.utc)  # type: ignore[arg-type]
    if col in _BOOL:
        return bool(value)
    return value


class Transfer(Reads):
    """export_rows / import_rows of the Backend protocol."""

    def prepare_export(self) -> None:
        """Give feed ids to the settled events (outside the export's read-only snapshot)."""
        self.sequence()  # type: ignore[attr-defined]  # the Events mixin of the backend

    def export_rows(self, table: str, batch: int = 5000) -> Generator[Batch, None, None]:
        """The rows of `table` in COPY_COLUMNS order (times in epoch seconds), by key. Events
        are those with a feed id, given first to every event that has settled (see
        store/postgres/events.py): one still in flight has no place in the feed yet."""
        cols = _columns(table)
        where = ""
        if table == "events":
            if not self._in_snapshot:  # inside one, prepare_export() came before it
                self.prepare_export()
            where = " WHERE id IS NOT NULL"
        select = ", ".join(_select(c) for c in cols)
        sql = f"SELECT {select} FROM {table}{where} ORDER BY {_KEY[table]}"
        try:
            with self._read() as conn, conn.cursor(name=f"jobq_export_{table}") as cur:
                cur.itersize = batch
                cur.execute(sql)  # constant text: names from COPY_COLUMNS
                while rows := cur.fetchmany(batch):
                    yield [tuple(r) for r in rows]
        except psycopg.Error as e:
            raise translate(e, self.display, self._secret) from None

    def import_rows(
        self,
        tables: Sequence[tuple[str, Iterable[Batch]]],
        *,
        replace: bool = False,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, int]:
        """Insert every table's batches in one transaction (all or nothing); ids as given.
        Refuses (TargetNotEmpty) a queue that holds anything of jobq.transfer.HELD unless
        `replace`, which empties it first in the same transaction. The events the inserts fire
        are dropped (a copied job is no new event); the source's own come as table "events"."""
        from ...transfer import COPY_TABLES, TargetNotEmpty

        written: dict[str, int] = {}
        with self._write(durable=True) as conn:
            row = conn.execute(HELD).fetchone()
            assert row is not None
            held = tuple(row)
            if any(held) and not replace:
                raise TargetNotEmpty.of(self.display, held)
            if any(held):
                running = conn.execute("SELECT count(*) FROM jobs WHERE state = 'running'")
                row = running.fetchone()
                if row is not None and row[0]:
                    raise TargetNotEmpty(f"{self.display} has running jobs: stop its pools first")
                for table in reversed(COPY_TABLES):  # children first
                    conn.execute(f"DELETE FROM {table}")  # constant names
            # a copy is no lifecycle change: the events its rows fire (schema 3's triggers) are
            # dropped before the source's are written (they could not be told apart after)
            drop_fired = "DELETE FROM events WHERE xid = pg_current_xact_id()"
            dropped = False
            for table, batches in tables:
                cols = _columns(table)
                if table == "events":
                    conn.execute(drop_fired)
                    dropped = True
                n = 0
                names = ", ".join(_name(c) for c in cols)
                with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for rows in batches:
                        for r in rows:
                            copy.write_row([_to_pg(c, v) for c, v in zip(cols, r, strict=True)])
                        n += len(rows)
                        if progress is not None:
                            progress(table, n)
                written[table] = n
            if not dropped:
                conn.execute(drop_fired)
            for table in _IDENTITY:  # the next id after the highest copied
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" greatest((SELECT max(id) FROM {table}), 1),"
                    f" (SELECT max(id) FROM {table}) IS NOT NULL)"
                )
        return written

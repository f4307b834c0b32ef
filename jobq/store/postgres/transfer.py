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

# How each column travels: times as epoch seconds, json as its text
_OUT = {"run_at", "created_at", "started_at", "finished_at", "lease_until", "paused_at"}
_JSON = {"payload", "result"}


def _columns(table: str) -> tuple[str, ...]:
    from ...transfer import COPY_COLUMNS

    try:
        return COPY_COLUMNS[table]
    except KeyError:
        raise ValueError(f"no table {table!r} travels in a copy") from None


def _select(col: str) -> str:
    if col in _OUT:
        return f"date_part('epoch', {col})"
    if col in _JSON:
        return f"{col}::text"
    if col in ("cancel_requested", "paused"):
        return f"{col}::int"
    return col


def _to_pg(col: str, value: object) -> object:
    if value is None:
        return None
    if col in _OUT:
        from datetime import datetime, timezone

        return datetime.fromtimestamp(float(value), tz=timezone.utc)  # type: ignore[arg-type]
    if col in ("cancel_requested", "paused"):
        return bool(value)
    return value


class Transfer(Reads):
    """export_rows / import_rows of the Backend protocol."""

    def export_rows(self, table: str, batch: int = 5000) -> Generator[Batch, None, None]:
        """The rows of `table` in COPY_COLUMNS order (times in epoch seconds), by key."""
        cols = _columns(table)
        key = "name" if table == "queues" else "id"
        sql = f"SELECT {', '.join(_select(c) for c in cols)} FROM {table} ORDER BY {key}"
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
        Refuses (TargetNotEmpty) a queue holding jobs, attempts or queue settings unless
        `replace`, which empties it first in the same transaction."""
        from ...transfer import TargetNotEmpty

        written: dict[str, int] = {}
        with self._write(durable=True) as conn:
            held = conn.execute(
                "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM attempts),"
                " (SELECT count(*) FROM queues)"
            ).fetchone()
            assert held is not None
            if any(held) and not replace:
                raise TargetNotEmpty(
                    f"{self.display} already holds {held[0]} jobs: copy into an empty queue, or "
                    "pass --replace to overwrite it"
                )
            if any(held):
                running = conn.execute("SELECT count(*) FROM jobs WHERE state = 'running'")
                row = running.fetchone()
                if row is not None and row[0]:
                    raise TargetNotEmpty(f"{self.display} has running jobs: stop its pools first")
                conn.execute("DELETE FROM attempts")
                conn.execute("DELETE FROM jobs")
                conn.execute("DELETE FROM queues")
            for table, batches in tables:
                cols = _columns(table)
                n = 0
                with conn.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for rows in batches:
                        for r in rows:
                            copy.write_row([_to_pg(c, v) for c, v in zip(cols, r, strict=True)])
                        n += len(rows)
                        if progress is not None:
                            progress(table, n)
                written[table] = n
            # a copy is no lifecycle change: drop the events its rows fired (schema 3's triggers)
            conn.execute("DELETE FROM events WHERE xid = pg_current_xact_id()")
            for table in ("jobs", "attempts"):  # the next id after the highest copied
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" greatest((SELECT max(id) FROM {table}), 1),"
                    f" (SELECT max(id) FROM {table}) IS NOT NULL)"
                )
        return written

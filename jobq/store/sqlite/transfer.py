"""Whole-queue export and import for `jobq copy` (jobq/transfer.py has the rules).

Plain sqlite3 executemany, not sqlite-utils' insert_all: insert_all commits through `with conn`,
which would end the one transaction that makes a copy all or nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence

from .connection import _translate
from .reads import Reads
from .sql import DROP_EVENTS_AFTER, LAST_EVENT_ID
from .sql_copy import EMPTY_QUEUE, EXPORT_ROWS, HELD, IMPORT_ROWS, RUNNING

Batch = list[tuple[object, ...]]


def _columns(table: str) -> tuple[str, ...]:
    from ...transfer import COPY_COLUMNS  # here: off `jobq enqueue`'s start-up path

    try:
        return COPY_COLUMNS[table]
    except KeyError:
        raise ValueError(f"no table {table!r} travels in a copy") from None


class Transfer(Reads):
    """export_rows / import_rows of the Backend protocol."""

    def prepare_export(self) -> None:
        """Nothing to settle before an export: every row of the file is final when committed."""

    def export_rows(self, table: str, batch: int = 5000) -> Generator[Batch, None, None]:
        """The rows of `table` in COPY_COLUMNS order, in batches, by primary key; several
        tables come from one instant inside `snapshot()` (as `jobq copy` reads them)."""
        _columns(table)  # a table that does not travel: ValueError
        try:
            with self._read() as conn:
                cur = conn.execute(EXPORT_ROWS[table])
                while rows := cur.fetchmany(batch):
                    yield rows
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None

    def import_rows(
        self,
        tables: Sequence[tuple[str, Iterable[Batch]]],
        *,
        replace: bool = False,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, int]:
        """Insert every table's batches in one transaction (all or nothing); ids as given.

        Refuses (TargetNotEmpty) a queue that holds anything of jobq.transfer.HELD unless
        `replace`, which deletes it first in the same transaction. The events the inserts fire
        are dropped (a copied job is no new event); the source's own come as table "events".
        Returns rows per table.
        """
        from ...transfer import TargetNotEmpty

        written: dict[str, int] = {}
        with self._write(durable=True) as conn:
            held = tuple(conn.execute(HELD).fetchone())
            if any(held) and not replace:
                raise TargetNotEmpty.of(str(self.path), held)
            if any(held):
                if conn.execute(RUNNING).fetchone()[0]:
                    raise TargetNotEmpty(f"{self.path} has running jobs: stop its pools first")
                for statement in EMPTY_QUEUE:
                    conn.execute(statement)
            mark = conn.execute(LAST_EVENT_ID).fetchone()[0]
            dropped = False
            for table, batches in tables:
                _columns(table)
                if table == "events":  # before the source's events, which may have any ids
                    conn.execute(DROP_EVENTS_AFTER, {"mark": mark})
                    dropped = True
                n = 0
                for rows in batches:
                    conn.executemany(IMPORT_ROWS[table], rows)
                    n += len(rows)
                    if progress is not None:
                        progress(table, n)
                written[table] = n
            if not dropped:
                conn.execute(DROP_EVENTS_AFTER, {"mark": mark})
            # the next enqueue continues after the highest copied id (AUTOINCREMENT keeps its
            # own high-water mark, which a DELETE does not lower); job_edits and events take
            # max(id) + 1 by themselves
            top = conn.execute("SELECT max(id) FROM jobs").fetchone()[0] or 0
            conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'jobs'", (top,))
            conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) SELECT 'jobs', ? WHERE NOT EXISTS "
                "(SELECT 1 FROM sqlite_sequence WHERE name = 'jobs')",
                (top,),
            )
        return written

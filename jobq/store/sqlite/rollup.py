"""The per-minute history on SQLite (jobq/rollup.py says what it keeps and why it never counts
twice): the reads of a minute, its write once, the stored rows, the prune."""

from __future__ import annotations

import sqlite3

from .connection import _translate
from .reads import Reads
from .sql_live import (
    PRUNE_ROLLUP,
    ROLLUP_ATTEMPTS,
    ROLLUP_DEPTH,
    ROLLUP_INSERT,
    ROLLUP_LAST,
    ROLLUP_MARK,
    ROLLUP_ROWS,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: CLI start-up
if TYPE_CHECKING:
    from ...rollup import RollupRow


class Rollup(Reads):
    """`roll_up`, `rollup`, `rollup_live` and `prune_rollup` of the Backend protocol."""

    @staticmethod
    def _minute(
        conn: sqlite3.Connection, minute: int, now: float, sample: bool, marker: str
    ) -> list[RollupRow]:
        from ... import rollup

        attempts = conn.execute(ROLLUP_ATTEMPTS, {"start": minute, "end": minute + 60})
        depth = conn.execute(ROLLUP_DEPTH, {"now": now}).fetchall() if sample else None
        return rollup.minute_rows(minute, attempts.fetchall(), depth, now, marker)

    def roll_up(self, now: float) -> list[int]:
        """See Backend.roll_up. The minutes are read in a read transaction (no lock held while
        they are counted), then written in one short write transaction."""
        from ... import rollup

        try:
            with self._read() as conn:
                todo = rollup.minutes_due(now, conn.execute(ROLLUP_LAST).fetchone()[0])
                minutes = [self._minute(conn, m, now, m == todo[-1], rollup.ROLLED)
                           for m in todo]  # fmt: skip
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        if not todo:
            return []
        written = []
        with self._write() as conn:
            for rows in minutes:
                first = rows[0]
                if len(rows) == 1:
                    continue  # a minute before the newest with no attempt: no pool ran then
                if conn.execute(ROLLUP_MARK, {"minute": first[0], "now": now}).fetchone():
                    conn.executemany(ROLLUP_INSERT, rows[1:])
                    written.append(first[0])
        return written

    def rollup(self, since: float, until: float) -> list[RollupRow]:
        """See Backend.rollup."""
        try:
            with self._read() as conn:
                rows = conn.execute(ROLLUP_ROWS, {"since": since, "until": until}).fetchall()
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        return [(int(m), q, t, k, float(v)) for m, q, t, k, v in rows]

    def rollup_live(self, now: float) -> list[RollupRow]:
        """See Backend.rollup_live."""
        from ... import rollup

        current = rollup.minute_of(now)
        try:
            with self._read() as conn:
                last = conn.execute(ROLLUP_LAST).fetchone()[0]
                first = current - 60 if last is None else max(current - 60, int(last) + 60)
                rows: list[RollupRow] = []
                for m in range(first, current + 1, 60):
                    rows += self._minute(conn, m, now, m == current, rollup.LIVE)
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        return rows

    def prune_rollup(self, before: float) -> int:
        """See Backend.prune_rollup."""
        with self._write() as conn:
            return conn.execute(PRUNE_ROLLUP, {"before": before}).rowcount

"""The per-minute history on PostgreSQL (as jobq/store/sqlite/rollup.py; jobq/rollup.py says
what it keeps). Several hosts may roll up the same minute at once: the second one's insert of the
minute's `rolled` row waits for the first one's commit, then does nothing, and so writes
nothing."""

from __future__ import annotations

from typing import Any

from ... import rollup
from ...rollup import RollupRow
from .reads import Reads

# The statements, as on SQLite (jobq/store/sqlite/sql.py, ROLLUP_*), here rather than in sql.py,
# which is at the module size limit. The same bucket arithmetic on the run time in µs (exact: a
# timestamptz difference is whole µs).

ROLLUP_ATTEMPTS = """
SELECT queue, type, outcome, final,
       CASE WHEN us < 10 THEN 0
            ELSE length(us::text) * 18 + left(us::text, 2)::int / 5 - 37 END AS bucket,
       count(*)
FROM (
    SELECT queue, type, 'succeeded' AS outcome, false AS final,
           round(greatest(extract(epoch FROM finished_at - started_at), 0) * 1000000)::bigint
               AS us
    FROM jobs
    WHERE finished_at >= to_timestamp(%(start)s::float8)
      AND finished_at < to_timestamp(%(end)s::float8) AND state = 'succeeded'
    UNION ALL
    SELECT j.queue, j.type, a.outcome, (j.state = 'failed' AND a.attempt = j.attempts),
           round(greatest(extract(epoch FROM a.finished_at - a.started_at), 0) * 1000000)::bigint
    FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
    WHERE a.outcome IN ('failed', 'timeout', 'crashed')
      AND a.finished_at >= to_timestamp(%(start)s::float8)
      AND a.finished_at < to_timestamp(%(end)s::float8)
) AS x
GROUP BY queue, type, outcome, final, bucket
"""
ROLLUP_DEPTH = """
SELECT queue, count(*), date_part('epoch', min(run_at)) FROM jobs
WHERE state = 'pending' AND run_at <= to_timestamp(%(now)s::float8) GROUP BY queue
"""
ROLLUP_LAST = "SELECT date_part('epoch', max(minute)) FROM rollup"
ROLLUP_MARK = """
INSERT INTO rollup (minute, queue, type, key, value)
VALUES (to_timestamp(%(minute)s::float8), '', '', 'rolled', %(now)s::float8)
ON CONFLICT DO NOTHING RETURNING 1
"""
ROLLUP_INSERT = """
INSERT INTO rollup (minute, queue, type, key, value)
VALUES (to_timestamp(%s::float8), %s, %s, %s, %s::float8)
"""
ROLLUP_ROWS = """
SELECT date_part('epoch', minute)::bigint, queue, type, key, value FROM rollup
WHERE minute >= to_timestamp(%(since)s::float8) AND minute < to_timestamp(%(until)s::float8)
ORDER BY minute
"""
PRUNE_ROLLUP = "DELETE FROM rollup WHERE minute < to_timestamp(%(before)s::float8)"


def _last(conn: Any) -> int | None:
    value = conn.execute(ROLLUP_LAST).fetchone()[0]
    return None if value is None else int(value)


class Rollup(Reads):
    """`roll_up`, `rollup`, `rollup_live` and `prune_rollup` of the Backend protocol."""

    @staticmethod
    def _minute(conn: Any, minute: int, now: float, sample: bool, marker: str) -> list[RollupRow]:
        attempts = conn.execute(ROLLUP_ATTEMPTS, {"start": minute, "end": minute + 60})
        depth = conn.execute(ROLLUP_DEPTH, {"now": now}).fetchall() if sample else None
        return rollup.minute_rows(minute, attempts.fetchall(), depth, now, marker)

    def roll_up(self, now: float) -> list[int]:
        """See Backend.roll_up: read in one transaction, written in another."""
        with self._read() as conn:
            todo = rollup.minutes_due(now, _last(conn))
            minutes = [self._minute(conn, m, now, m == todo[-1], rollup.ROLLED) for m in todo]
        written = []
        if minutes:
            with self._write() as conn:
                for rows in minutes:
                    first = rows[0]
                    if len(rows) == 1:
                        continue  # a minute before the newest with no attempt: no pool ran
                    if conn.execute(ROLLUP_MARK, {"minute": first[0], "now": now}).fetchone():
                        with conn.cursor() as cur:
                            cur.executemany(ROLLUP_INSERT, rows[1:])
                        written.append(first[0])
        return written

    def rollup(self, since: float, until: float) -> list[RollupRow]:
        """See Backend.rollup."""
        with self._read() as conn:
            rows = conn.execute(ROLLUP_ROWS, {"since": since, "until": until}).fetchall()
        return [(int(m), q, t, k, float(v)) for m, q, t, k, v in rows]

    def rollup_live(self, now: float) -> list[RollupRow]:
        """See Backend.rollup_live."""
        current = rollup.minute_of(now)
        rows: list[RollupRow] = []
        with self._read() as conn:
            last = _last(conn)
            first = current - 60 if last is None else max(current - 60, last + 60)
            for m in range(first, current + 1, 60):
                rows += self._minute(conn, m, now, m == current, rollup.LIVE)
        return rows

    def prune_rollup(self, before: float) -> int:
        """See Backend.prune_rollup."""
        with self._write() as conn:
            return int(conn.execute(PRUNE_ROLLUP, {"before": before}).rowcount)

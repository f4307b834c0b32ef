"""Live output and progress of running attempts on PostgreSQL (see the SQLite backend's
jobq/store/sqlite/output.py): fenced writes of the pool, and their reads."""

from __future__ import annotations

from collections.abc import Sequence

from .reads import Reads
from .sql import _epoch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...backend import OutputWrite
    from ...liveoutput import JobProgress, OutputChunk

# The statements (here rather than in sql.py, which is at its size limit), as the SQLite ones.
# The fence of every write: the job is still leased with this token. FOR SHARE: an end of the
# attempt (an UPDATE of the row) waits for this short transaction, so no write lands after it.
OUTPUT_LEASED = "SELECT 1 FROM jobs WHERE id = %(job_id)s AND lease_token = %(token)s FOR SHARE"
OUTPUT_CLEAR = "DELETE FROM job_output WHERE job_id = %(job_id)s AND attempt = %(attempt)s"
OUTPUT_INSERT = """
INSERT INTO job_output (job_id, attempt, seq, at, stream, text)
VALUES (%(job_id)s, %(attempt)s, %(seq)s, to_timestamp(%(at)s::float8), %(stream)s, %(text)s)
"""
PROGRESS_PUT = """
INSERT INTO job_progress (job_id, attempt, fraction, message, at)
VALUES (%(job_id)s, %(attempt)s, %(fraction)s, %(message)s, to_timestamp(%(at)s::float8))
ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, fraction = excluded.fraction,
                                   message = excluded.message, at = excluded.at
"""
OUTPUT_AFTER = f"""
SELECT job_id, attempt, seq, {_epoch("at")}, stream, text FROM job_output
WHERE job_id = %(job_id)s AND attempt = %(attempt)s AND seq > %(after)s
ORDER BY seq LIMIT %(limit)s
"""
PROGRESS_OF = f"""
SELECT p.job_id, p.attempt, p.fraction, p.message, {_epoch("p.at")}
FROM job_progress AS p JOIN jobs AS j ON j.id = p.job_id AND j.attempts = p.attempt
WHERE p.job_id = ANY(%(ids)s)
"""


class Output(Reads):
    """`write_output`, `output` and `progress_of` of the Backend protocol."""

    def write_output(self, items: Sequence[OutputWrite]) -> list[bool]:
        """Write each attempt's new output chunks and latest progress, in one transaction; per
        item, whether its lease still held (False: nothing of it was written)."""
        out: list[bool] = []
        if not items:
            return out
        with self._write() as conn:
            for job_id, token, attempt, first, chunks, progress in items:
                key = {"job_id": job_id, "attempt": attempt}
                leased = conn.execute(OUTPUT_LEASED, {"job_id": job_id, "token": token})
                if leased.fetchone() is None:
                    out.append(False)
                    continue
                if first:
                    conn.execute(OUTPUT_CLEAR, key)
                if chunks:
                    with conn.cursor() as cur:
                        cur.executemany(OUTPUT_INSERT, [
                            {**key, "seq": seq, "at": at, "stream": stream, "text": text}
                            for seq, at, stream, text in chunks
                        ])  # fmt: skip
                if progress is not None:
                    fraction, message, at = progress
                    conn.execute(PROGRESS_PUT, {**key, "fraction": fraction, "message": message,
                                                "at": at})  # fmt: skip
                out.append(True)
        return out

    def output(
        self, job_id: int, attempt: int, *, after: int = 0, limit: int = 1000
    ) -> list[OutputChunk]:
        """The chunks of an attempt's output with seq > `after`, in order, at most `limit`."""
        from ...liveoutput import OutputChunk

        params = {"job_id": job_id, "attempt": attempt, "after": after, "limit": limit}
        rows = self._get(OUTPUT_AFTER, params).fetchall()
        return [OutputChunk(*r) for r in rows]

    def progress_of(self, ids: Sequence[int]) -> dict[int, JobProgress]:
        """The latest progress of each job's current attempt (jobs without one are left out)."""
        from ...liveoutput import JobProgress

        if not ids:
            return {}
        rows = self._get(PROGRESS_OF, {"ids": list(ids)}).fetchall()
        return {r[0]: JobProgress(*r) for r in rows}

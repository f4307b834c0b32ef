"""Live output and progress of running attempts: the pool's fenced writes and their reads.

A pool writes an attempt's output in chunks (jobq.pool.capture) while the attempt holds its
lease: every write checks the lease token inside its own transaction, so a worker that lost its
lease (rescued, cancelled, timed out) writes nothing. The rows go with their job (ON DELETE
CASCADE): `delete` and `prune` need nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence

from .reads import Reads
from .rows import ids_json
from .sql_live import (
    OUTPUT_AFTER,
    OUTPUT_CLEAR,
    OUTPUT_INSERT,
    OUTPUT_LEASED,
    PROGRESS_OF,
    PROGRESS_PUT,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...backend import OutputWrite
    from ...liveoutput import JobProgress, OutputChunk


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
                conn.executemany(OUTPUT_INSERT, [
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
        with self._read() as conn:
            rows = conn.execute(OUTPUT_AFTER, params).fetchall()
        return [OutputChunk(*r) for r in rows]

    def progress_of(self, ids: Sequence[int]) -> dict[int, JobProgress]:
        """The latest progress of each job's current attempt (jobs without one are left out)."""
        from ...liveoutput import JobProgress

        if not ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(PROGRESS_OF, {"ids": ids_json(ids)}).fetchall()
        return {r[0]: JobProgress(*r) for r in rows}

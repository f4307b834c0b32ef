"""Rows as records: jobs and attempts read back from SQLite, and LIKE patterns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ...basics import JobState, Outcome

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from ...model import Attempt, Job


def _row_to_job(r: Sequence[object]) -> Job:
    from ...model import Job  # lazy: `jobq enqueue` never builds a Job, nor imports dataclasses

    return Job(
        id=r[0],  # type: ignore[arg-type]
        type=r[1],  # type: ignore[arg-type]
        queue=r[2],  # type: ignore[arg-type]
        payload_json=r[3],  # type: ignore[arg-type]
        priority=r[4],  # type: ignore[arg-type]
        state=JobState(r[5]),
        run_at=r[6],  # type: ignore[arg-type]
        attempts=r[7],  # type: ignore[arg-type]
        max_attempts=r[8],  # type: ignore[arg-type]
        timeout=r[9],  # type: ignore[arg-type]
        unique_key=r[10],  # type: ignore[arg-type]
        result_json=r[11],  # type: ignore[arg-type]
        last_error=r[12],  # type: ignore[arg-type]
        created_at=r[13],  # type: ignore[arg-type]
        started_at=r[14],  # type: ignore[arg-type]
        finished_at=r[15],  # type: ignore[arg-type]
        worker_id=r[16],  # type: ignore[arg-type]
        lease_token=r[17],  # type: ignore[arg-type]
        lease_until=r[18],  # type: ignore[arg-type]
        cancel_requested=bool(r[19]),
    )


def _row_to_attempt(r: Sequence[object]) -> Attempt:
    from ...model import Attempt

    return Attempt(
        id=r[0],  # type: ignore[arg-type]
        job_id=r[1],  # type: ignore[arg-type]
        attempt=r[2],  # type: ignore[arg-type]
        worker_id=r[3],  # type: ignore[arg-type]
        started_at=r[4],  # type: ignore[arg-type]
        finished_at=r[5],  # type: ignore[arg-type]
        outcome=Outcome(r[6]),
        error=r[7],  # type: ignore[arg-type]
        traceback=r[8],  # type: ignore[arg-type]
        output=r[9],  # type: ignore[arg-type]
    )


def ids_json(ids: Iterable[int]) -> str:
    """A JSON list of job ids (for json_each), without importing json: `jobq ls`/`wait` start-up."""
    return "[" + ",".join([str(int(i)) for i in ids]) + "]"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

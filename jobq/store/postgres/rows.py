"""Rows as records (jobs and attempts read back from the server), and the values of filters:
SQLite GLOB patterns as PostgreSQL regular expressions, LIKE patterns, a claim's parameters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ...backend import ClaimFilter
from ...basics import JobState, Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model import Attempt, Job


def row_to_job(r: Sequence[Any]) -> Job:
    """A Job from a row of sql.JOB_COLUMNS."""
    from ...model import Job

    return Job(
        id=r[0],
        type=r[1],
        queue=r[2],
        payload_json=r[3],
        priority=r[4],
        state=JobState(r[5]),
        run_at=r[6],
        attempts=r[7],
        max_attempts=r[8],
        timeout=r[9],
        unique_key=r[10],
        result_json=r[11],
        last_error=r[12],
        created_at=r[13],
        started_at=r[14],
        finished_at=r[15],
        worker_id=r[16],
        lease_token=r[17],
        lease_until=r[18],
        cancel_requested=bool(r[19]),
    )


def row_to_attempt(r: Sequence[Any]) -> Attempt:
    """An Attempt from a row of sql.ATTEMPT_COLUMNS."""
    from ...model import Attempt

    return Attempt(
        id=r[0],
        job_id=r[1],
        attempt=r[2],
        worker_id=r[3],
        started_at=r[4],
        finished_at=r[5],
        outcome=Outcome(r[6]),
        error=r[7],
        traceback=r[8],
        output=r[9],
    )


def like_escape(text: str) -> str:
    """`text` as a LIKE pattern that matches it literally (backslash: LIKE's default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> str:
    """A PostgreSQL regular expression (ARE) that matches what SQLite's GLOB `pattern` does:
    the whole text, `*`, `?`, `[...]` sets and ranges, case-sensitively."""
    from ...diagnose import _glob_regex  # the one translation, shared with the diagnoses

    body = _glob_regex(pattern).pattern
    # Python's never-matching (?!) is not an ARE; a set holding nothing is the same refusal
    body = body.replace("(?!)", "[^\\x00-\\U0010ffff]")
    return "^(?:" + body + ")$"


def claim_params(now: float, f: ClaimFilter) -> dict[str, Any]:
    """The parameters of sql.DUE_FOR_WORKER for a claim filter at `now`."""
    return {
        "now": now,
        "types": None if f.types is None else list(f.types),
        "globs": None if f.type_globs is None else [glob_regex(g) for g in f.type_globs],
        "queues": None if f.queues is None else list(f.queues),
    }


def limits_json(limits: dict[str, tuple[int | None, float | None]] | None) -> str | None:
    """A claim's handler limits as the JSON object sql.HANDLER_LIMIT reads."""
    return None if not limits else json.dumps({t: list(v) for t, v in limits.items()})

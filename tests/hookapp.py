"""An --app module with a Python failure hook (tests/test_failure_hooks.py): it appends
`job_id state attempts` to the file named by JOBQ_TEST_HOOK_LOG."""

from __future__ import annotations

import os

import jobq
from jobq.model import JSONValue


@jobq.handler("doomed", max_attempts=2)
def doomed(payload: JSONValue, job: jobq.Job) -> None:
    """Always fail."""
    raise RuntimeError(f"doomed on attempt {job.attempts}")


@jobq.handler("fine")
def fine(payload: JSONValue, job: jobq.Job) -> None:
    """Succeed."""


@jobq.on_failure
def note_failure(job: jobq.Job) -> None:
    """Record the failed job; a job whose payload says so makes the hook itself fail."""
    if isinstance(job.payload, dict) and job.payload.get("break_hook"):
        raise ValueError("the hook broke")
    with open(os.environ["JOBQ_TEST_HOOK_LOG"], "a") as f:
        f.write(f"{job.id} {job.state.value} {job.attempts}\n")

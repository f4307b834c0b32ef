"""How each way of ending an attempt is recorded, the same on every backend; what becomes of the
job is jobq.lifecycle.end_attempt's decision. No dataclasses or typing here: the SQLite store,
which `jobq enqueue` loads, imports this module.

Dependencies (`enqueue --after`): a job runs once every job it is after has succeeded. The
ending that makes a job succeeded makes each of its pending dependents wait for one job fewer;
the ending that makes it failed (for good) or cancelled, and a cancel or delete of a pending
job, cancels its pending dependents and theirs, each naming the job that took it down
("dependency job 12 failed") — all in the transaction of that ending. A retry of a job does not
bring back the dependents cancelled meanwhile (retry them: each waits again for its
dependencies that have not succeeded). `dependency_states` decides a new dependent's start.
"""

from __future__ import annotations

from . import retry
from .backend import Ending
from .basics import JobState, Outcome
from .errors import InvalidInput

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

# (outcome recorded, attempt counted, retried after backoff)
ENDINGS = {
    Ending.FAIL: (Outcome.FAILED, True, True),
    Ending.TIMEOUT: (Outcome.TIMEOUT, True, True),
    Ending.CRASH: (Outcome.CRASHED, True, False),
    Ending.CANCEL: (Outcome.CANCELLED, True, False),
    Ending.INTERRUPT: (Outcome.INTERRUPTED, False, False),
    Ending.RELEASE: (Outcome.INTERRUPTED, False, False),
    Ending.SNOOZE: (Outcome.INTERRUPTED, False, False),
}
DEFAULT_ERROR = {
    Ending.FAIL: "failed",
    Ending.TIMEOUT: "timed out",
    Ending.CRASH: "worker crashed",
    Ending.CANCEL: "cancelled while running",
    Ending.INTERRUPT: "interrupted by shutdown",
    Ending.RELEASE: "not started: released",
    Ending.SNOOZE: "snoozed",
}


class Plan:
    """What a store passes on to lifecycle.end_attempt for one ending."""

    __slots__ = ("counted", "error", "force_state", "outcome", "retry_at", "snooze")

    def __init__(
        self,
        outcome: Outcome,
        counted: bool,
        error: str,
        retry_at: Callable[[int], float] | None,
        force_state: JobState | None,
        snooze: bool,
    ) -> None:
        self.outcome, self.counted, self.error = outcome, counted, error
        self.retry_at, self.force_state, self.snooze = retry_at, force_state, snooze


def plan(
    how: Ending,
    now: float,
    error: str | None,
    *,
    retryable: bool = True,
    rand: float | None = None,
    delay: float | None = None,
) -> Plan:
    """FAIL and TIMEOUT retry after backoff (`delay` seconds if given, else the default backoff,
    `rand` fixing its jitter) while `retryable`; CRASH makes the job due at once; INTERRUPT and
    RELEASE give it back uncounted; SNOOZE too, due in `delay` seconds; CANCEL ends it."""
    outcome, counted, backoff = ENDINGS[how]

    def retry_at(attempts: int) -> float:
        if delay is not None and (backoff or how is Ending.SNOOZE):
            return now + delay
        return now + retry.backoff(attempts, rand) if backoff else now

    cancel = how is Ending.CANCEL
    return Plan(outcome, counted, DEFAULT_ERROR[how] if error is None else error,
                retry_at if retryable and not cancel else None,
                JobState.CANCELLED if cancel else None, how is Ending.SNOOZE)  # fmt: skip


def dependency_states(after: Sequence[int], found: Mapping[int, str]) -> tuple[int, int | None]:
    """For a new job's dependencies `after` and the states `found` of those that exist:
    (how many have not succeeded yet, the first that failed or was cancelled, or None).

    A missing one is bad input (InvalidInput: nothing is written). One that already failed or
    was cancelled does not refuse the job: it is created cancelled, naming it, exactly as if it
    had been enqueued a moment earlier (a shell pipeline's outcome must not depend on how fast
    its first job failed).
    """
    for job_id in after:
        if job_id not in found:
            raise InvalidInput(f"after: no job {job_id} in this queue")
    dead = next((i for i in after if found[i] in ("failed", "cancelled")), None)
    return sum(1 for i in after if found[i] != "succeeded"), dead

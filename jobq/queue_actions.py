"""The operators' actions of `jobq.Queue` (retry, cancel, priority, pause, limits, prune), a
mixin of the Queue class kept apart so that each module stays short."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .backend import ActionOutcome, ActionResult, display_location
from .basics import FINISHED_STATES
from .errors import InvalidInput, InvalidTransition, JobNotFound, JobqError
from .values import parse_duration, parse_priority, validate_queue

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: CLI start-up
if TYPE_CHECKING:
    from .backend import Backend
    from .limits import Limit, LimitStatus
    from .schedules import Schedule

    _Outcomes = dict[int, ActionOutcome]
    _Limits = list[LimitStatus]
    _Schedules = list[Schedule]


class Actions:
    """What an operator does to jobs and queues (jobq.Queue inherits it)."""

    backend: Backend
    path: str

    def retry(self, job_id: int) -> None:
        """Move a failed or cancelled job back to pending with its attempts reset."""
        self._one(job_id, self.backend.retry([job_id], time.time())[job_id], "retry")

    def retry_many(self, ids: Sequence[int]) -> _Outcomes:
        """Retry several jobs; per id RETRIED or why not."""
        return self.backend.retry(ids, time.time())

    def cancel(self, job_id: int) -> ActionResult:
        """Cancel a pending job, or ask its worker to stop a running one.

        Returns CANCELLED or CANCEL_REQUESTED (equal to 'cancelled', 'cancel requested').
        """
        outcome = self.backend.cancel([job_id], time.time())[job_id]
        self._one(job_id, outcome, "cancel")
        return outcome.result

    def cancel_many(self, ids: Sequence[int]) -> _Outcomes:
        """Cancel several jobs; per id CANCELLED, CANCEL_REQUESTED or why not."""
        return self.backend.cancel(ids, time.time())

    def set_priority(self, job_id: int, priority: int | str) -> None:
        """Set a job's priority (an integer or low/normal/high/critical)."""
        p = parse_priority(priority)
        self._one(job_id, self.backend.set_priority([job_id], p)[job_id], "reprioritise")

    def set_priority_many(self, ids: Sequence[int], priority: int | str) -> _Outcomes:
        """Set the priority of several jobs."""
        return self.backend.set_priority(ids, parse_priority(priority))

    def pause(self, queue: str) -> None:
        """Stop workers claiming from `queue` (running jobs finish)."""
        self.backend.set_paused(validate_queue(queue), True, time.time())

    def resume(self, queue: str) -> None:
        """Let workers claim from `queue` again."""
        self.backend.set_paused(validate_queue(queue), False, time.time())

    def set_limit(
        self, key: str, *, concurrency: int | None = None, rate: str | None = None
    ) -> Limit:
        """Limit the jobs of a type (`"resize"`) or a queue (`"queue:mail"`) across every pool:
        at most `concurrency` running, at most `rate` (e.g. `"100/min"`) started. Setting a
        limit again replaces it. InvalidInput (nothing written) for a bad key or value."""
        from .limits import make_limit

        limit = make_limit(key, concurrency, rate)
        self.backend.put_limit(limit, time.time())
        return limit

    def limits(self) -> _Limits:
        """Every limit with the number of its jobs running now."""
        return self.backend.limits()

    def remove_limit(self, key: str) -> None:
        """Remove a limit (the jobs it held become claimable); JobNotFound if there is none."""
        if not self.backend.remove_limit(key):
            raise JobNotFound(f"no limit {key!r} (see jobq limit ls)")

    def schedules(self) -> _Schedules:
        """Every schedule, by name, with its next run and the last job it enqueued."""
        return self.backend.schedules()

    def pause_schedule(self, name: str, paused: bool = True) -> bool:
        """Pause a schedule, or resume it; False if there is none of that name.

        A resume first moves the schedule to its next slot after now, still paused: it never
        fires the backlog of slots missed while it was paused (as `jobq schedule resume`)."""
        if paused:
            return self.backend.pause_schedule(name, True)
        import dataclasses

        from .schedules import next_run

        found = [s for s in self.backend.schedules() if s.name == name]
        if not found:
            return False
        now = time.time()
        moved = dataclasses.replace(found[0], next_at=next_run(found[0].cron, found[0].tz, now))
        self.backend.put_schedule(moved, now, replace=True)
        return self.backend.pause_schedule(name, False)

    def prune(
        self, older_than: float | str, states: Sequence[str] = ("succeeded", "failed", "cancelled")
    ) -> int:
        """Delete finished jobs older than `older_than` (seconds or e.g. "7d"); return how many."""
        for s in states:
            if s not in {x.value for x in FINISHED_STATES}:
                raise InvalidInput(
                    f"prune deletes finished jobs only; {s!r} is not a finished state"
                )
        seconds = parse_duration(older_than, "age")
        return self.backend.prune(time.time() - seconds, states)

    def _one(self, job_id: int, outcome: ActionOutcome, action: str) -> None:
        if outcome.done:
            return
        raise outcome_error(job_id, outcome, action, display_location(self.path))


def outcome_error(job_id: int, outcome: ActionOutcome, action: str, location: str) -> JobqError:
    """The error that says why `action` did not happen to a job (one line, for a person)."""
    if outcome.result is ActionResult.NOT_FOUND:
        return JobNotFound(f"no job {job_id} in {location}")
    if outcome.result is ActionResult.DUPLICATE_UNIQUE_KEY:
        return InvalidTransition(f"cannot {action} job {job_id}: a pending or running job of its"
                                 " type holds its unique key")  # fmt: skip
    return InvalidTransition(f"cannot {action} job {job_id}: it is {outcome}")

"""The `Backend` Protocol: every operation callers make on a queue (jobq/backend.py is the
seam; this module is read by the type checker only, never imported at run time)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from .backend import ActionOutcome, ClaimFilter, Ending, JobFilter
from .basics import JobState, NewJob
from .lifecycle import Progress
from .limits import Limit, LimitStatus
from .liveoutput import JobProgress, OutputChunk
from .model import Attempt, Event, FailedAttempt, Job, JobEdit, QueueStats, WorkerInfo
from .rollup import RollupRow
from .schedules import Schedule
from .waiting import Waiter

if TYPE_CHECKING:  # type aliases jobq.backend defines for the type checker only
    from .backend import OutputWrite, RunningRow


class Backend(Protocol):
    """Every operation callers make on a queue; each is one transaction. `now` is always an
    argument (seconds since the epoch), so tests drive the state machine with numbers."""

    location: str
    """What was opened, as given (print it with display_location)."""

    # ---- producers
    def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[int]: ...
    def enqueue_unique(self, job: NewJob, now: float) -> tuple[int, str | None]: ...
    def enqueue_runs(self, runs: Iterable[tuple[NewJob, str, int]], now: float) -> list[int]: ...

    # ---- workers
    def claim(
        self,
        worker_id: str,
        now: float,
        lease_seconds: float,
        filter: ClaimFilter = ...,
        *,
        limit: int = 1,
        limits: Mapping[str, tuple[int | None, float | None]] | None = None,
    ) -> list[Job]: ...
    def has_claimable(self, now: float, filter: ClaimFilter = ...) -> bool: ...
    def next_run_at(self, filter: ClaimFilter = ..., now: float | None = None) -> float | None: ...
    def renew(self, leases: Sequence[tuple[int, str]], lease_until: float) -> int: ...
    def complete_many(
        self, done: Sequence[tuple[int, str, str | None, str | None]], now: float
    ) -> list[bool]: ...
    def end_attempt(
        self,
        job_id: int,
        token: str,
        now: float,
        how: Ending,
        error: str | None = None,
        *,
        traceback: str | None = None,
        output: str | None = None,
        retryable: bool = True,
        rand: float | None = None,
        delay: float | None = None,
    ) -> JobState | None: ...
    def release_many(
        self, leases: Sequence[tuple[int, str]], now: float, reason: str
    ) -> list[JobState | None]:
        """Give back claimed jobs that never started (id, lease token) in one transaction, each
        exactly as `end_attempt(id, token, now, Ending.RELEASE, reason)` would (fenced on its
        token); per lease, the job's new state, or None if the lease was lost."""
        ...

    def running_of(self, worker_prefix: str) -> list[RunningRow]: ...
    def write_output(self, items: Sequence[OutputWrite]) -> list[bool]:
        """Append running attempts' live output and set their progress, in one transaction,
        each fenced on its lease token; per item, whether it was written."""
        ...

    def rescue(
        self,
        now: float,
        *,
        here: str | None = None,
        own_pool: str | None = None,
        progress: Callable[[str], Progress | None] | None = None,
    ) -> list[tuple[int, JobState]]: ...

    # ---- pools
    def register_worker(
        self,
        worker_id: str,
        *,
        name: str,
        host: str,
        pid: int,
        concurrency: int,
        queues: Sequence[str],
        types: Sequence[str],
        now: float,
        type_globs: Sequence[str] | None = None,
        proc_key: str | None = None,
    ) -> None: ...
    def worker_heartbeat(
        self, worker_id: str, now: float, jobs_done: int, status: str = "running"
    ) -> None: ...
    def workers(self) -> list[WorkerInfo]: ...
    def forget_pools(
        self, now: float, *, before: float | None = None, here: str | None = None
    ) -> list[str]:
        """Delete the records of pools that are stopped or dead at `now`
        (lifecycle.pool_status, `here` being the caller's lifecycle.host_key()), whose last
        heartbeat is before `before` (None: any), and none of whose workers still holds a
        running job (the rescuer needs a dead pool's record until its jobs are back). One
        transaction; returns the ids of the pools forgotten, in id order."""
        ...

    # ---- operators
    def cancel(self, ids: Sequence[int], now: float) -> dict[int, ActionOutcome]: ...
    def retry(self, ids: Sequence[int], now: float) -> dict[int, ActionOutcome]: ...
    def set_priority(self, ids: Sequence[int], priority: int) -> dict[int, ActionOutcome]: ...
    def set_paused(self, queue: str, paused: bool, now: float) -> None: ...
    def edit_payload(
        self,
        job_id: int,
        payload_json: str,
        now: float,
        *,
        user: str,
        host: str,
        retry: bool = False,
        seen: Job | None = None,
    ) -> ActionOutcome:
        """Replace the payload of a pending, failed or cancelled job and record the edit
        (`edits`), in one transaction; with `retry`, a failed or cancelled job also goes
        back to pending as `retry` does. With `seen` (the job as the caller read it), the
        write happens only if its state, attempts, start and payload are still those
        (compare-and-set). Returns OK, RETRIED, NOT_FOUND, WRONG_STATE (running or
        succeeded), CHANGED, or DUPLICATE_UNIQUE_KEY (retry refused): on any of the last
        four nothing is written."""
        ...

    def edits(self, job_id: int) -> list[JobEdit]:
        """The payload edits of a job, oldest first."""
        ...

    def prune(self, before: float, states: Sequence[str], batch: int = 5000) -> int:
        """Delete jobs in `states` (finished ones only) that finished before `before`, with
        their attempts, in batches; then the records of stopped or dead pools whose last
        heartbeat is before `before` and which hold no running job. Returns the jobs
        deleted."""
        ...

    def count_prunable(self, before: float, states: Sequence[str]) -> int:
        """How many jobs `prune(before, states)` would delete now (a read: `--dry-run`)."""
        ...

    def delete(self, ids: Sequence[int], *, force: bool = False) -> dict[int, ActionOutcome]:
        """Delete jobs and their attempts, in one transaction. Per id: DELETED (succeeded,
        failed or cancelled; with `force` also pending), NOT_FOUND, or WRONG_STATE with the
        job's state (pending without `force`; running, always: cancel it first)."""
        ...

    # ---- reads
    def get(self, job_id: int) -> Job | None: ...
    def get_many(self, ids: Sequence[int]) -> list[Job]: ...
    def states(self, ids: Sequence[int]) -> dict[int, JobState]: ...
    def attempts(self, job_id: int) -> list[Attempt]: ...
    def output(
        self, job_id: int, attempt: int, *, after: int = 0, limit: int = 1000
    ) -> list[OutputChunk]:
        """An attempt's live output chunks with seq > `after`, in order."""
        ...

    def progress_of(self, ids: Sequence[int]) -> dict[int, JobProgress]:
        """The latest progress of each job's current attempt, for the jobs that have one."""
        ...

    def dependencies(self, ids: Sequence[int]) -> dict[int, list[tuple[int, JobState | None]]]:
        """For each of `ids` that runs after other jobs: those jobs (id order) with their
        states (None: deleted since)."""
        ...

    def dependents(self, job_id: int, limit: int = 1000) -> list[tuple[int, JobState]]:
        """The jobs that run (or ran) after this one, in id order, with their states."""
        ...

    def list_jobs(self, now: float, filter: JobFilter = ...) -> list[Job]: ...
    def count_jobs(self, now: float, filter: JobFilter = ...) -> int: ...
    def matching_ids(self, now: float, filter: JobFilter = ...) -> list[int]: ...
    def counts(self) -> dict[str, int]: ...
    def stats(self, now: float) -> QueueStats: ...
    def throughput(self, now: float, buckets: int, width: float) -> list[int]: ...
    def errors(self, *, after: int = 0, limit: int = 20) -> list[FailedAttempt]: ...
    def paused_queues(self) -> list[str]: ...

    # ---- lifecycle events (written by the backend itself with each change)
    def events(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        kinds: Sequence[str] | None = None,
        type_glob: str | None = None,
        queue: str | None = None,
        since: float | None = None,
        until: int | None = None,
        newest: bool = False,
    ) -> list[Event]: ...
    def last_event_id(self) -> int: ...
    def prune_events(
        self, before: float | None, keep: int | None = None, batch: int = 5000
    ) -> int: ...

    # ---- change, identity, administration
    def change_token(self) -> int: ...
    def snapshot(self) -> AbstractContextManager[None]: ...
    def waker(self) -> Waiter: ...
    def check_identity(self, force: bool = False) -> None: ...
    def maintain(self) -> None: ...
    def backup(self, target: str) -> None: ...
    def metric_totals(self, now: float) -> dict[str, list[tuple[Any, ...]]]: ...

    # ---- the per-minute history (jobq.rollup)
    def roll_up(self, now: float) -> list[int]:
        """Write the minutes due at `now` (rollup.minutes_due) that no one wrote yet, each
        once whoever else tries (its `rolled` row inserted first, ON CONFLICT DO NOTHING),
        the newest with a depth sample; return the minutes this call wrote."""
        ...

    def rollup(self, since: float, until: float) -> list[RollupRow]:
        """The stored rows of the minutes in [since, until), in minute order."""
        ...

    def rollup_live(self, now: float) -> list[RollupRow]:
        """Rows computed now, not written, for the minutes after the last one rolled up
        (at most the previous and the current one), marked `live`; the current one with a
        depth sample at `now`."""
        ...

    def prune_rollup(self, before: float) -> int:
        """Delete the history of the minutes before `before`; return the rows deleted."""
        ...

    # ---- limits across pools (jobq.limits)
    def limits(self) -> list[LimitStatus]: ...
    def put_limit(self, limit: Limit, now: float) -> None: ...
    def remove_limit(self, key: str) -> bool: ...

    # ---- schedules (jobq.schedules)
    def schedules(self) -> list[Schedule]: ...
    def put_schedule(self, s: Schedule, now: float, *, replace: bool = False) -> bool: ...
    def remove_schedule(self, name: str) -> bool: ...
    def pause_schedule(self, name: str, paused: bool) -> bool: ...
    def next_schedule_at(self) -> float | None: ...
    def fire_schedules(
        self, now: float, next_after: Callable[[Schedule, float], float]
    ) -> list[tuple[str, int]]: ...
    def prepare_export(self) -> None: ...
    def export_rows(
        self, table: str, batch: int = 5000
    ) -> Generator[list[tuple[object, ...]], None, None]: ...
    def import_rows(
        self,
        tables: Sequence[tuple[str, Iterable[list[tuple[object, ...]]]]],
        *,
        replace: bool = False,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict[str, int]: ...
    def doctor(self) -> dict[str, object]: ...
    def close(self) -> None: ...

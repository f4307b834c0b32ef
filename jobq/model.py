"""The frozen records read from a queue file: Job, Attempt, WorkerInfo, QueueStats.

States, outcomes, defaults and NewJob live in `jobq.basics` (re-exported here), which is cheap
to import: `jobq enqueue` never loads this module or `dataclasses`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from .basics import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_PAYLOAD_LIMIT,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT,
    FINISHED_STATES,
    PRIORITY_NAMES,
    VIEWS,
    JobState,
    NewJob,
    Outcome,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: CLI start-up
if TYPE_CHECKING:
    from .basics import JSONValue


def __getattr__(name: str) -> object:
    # `from jobq.model import JSONValue` at run time, without importing typing on every read
    # command's start-up (jobq.basics builds it on first use)
    if name == "JSONValue":
        from . import basics

        return basics.JSONValue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PAYLOAD_LIMIT",
    "DEFAULT_QUEUE",
    "DEFAULT_TIMEOUT",
    "FINISHED_STATES",
    "PRIORITY_NAMES",
    "VIEWS",
    "Attempt",
    "Event",
    "EventKind",
    "FailedAttempt",
    "JSONValue",
    "Job",
    "JobEdit",
    "JobState",
    "NewJob",
    "Outcome",
    "QueueStats",
    "WorkerInfo",
]


@dataclass(frozen=True, slots=True)
class Job:
    """One job as stored; `payload` and `result` are parsed from their JSON text on access."""

    id: int
    type: str
    queue: str
    payload_json: str
    priority: int
    state: JobState
    run_at: float
    attempts: int
    max_attempts: int | None
    timeout: float | None
    unique_key: str | None
    result_json: str | None
    last_error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    worker_id: str | None
    lease_token: str | None
    lease_until: float | None
    cancel_requested: bool

    @property
    def payload(self) -> JSONValue:
        """The payload, parsed."""
        value: JSONValue = json.loads(self.payload_json)
        return value

    @property
    def result(self) -> JSONValue:
        """The handler's return value, parsed (None when there is none)."""
        if self.result_json is None:
            return None
        value: JSONValue = json.loads(self.result_json)
        return value

    def tries(self) -> str:
        """ "attempts/max": the limit is the job's own, or fixed on it by its first claim
        (its handler's, else 4); "?" before a first claim when the job has none of its own."""
        return f"{self.attempts}/{self.max_attempts if self.max_attempts is not None else '?'}"

    def timeout_text(self) -> str:
        """The attempt timeout as people read it ("60s", "none"), or who will decide it."""
        if self.timeout is None:
            return "its handler's, else 300s (fixed when first claimed)"
        return "none" if self.timeout == 0 else f"{self.timeout:g}s"

    def view(self, now: float) -> str:
        """The state, or the derived view `scheduled` / `retrying` for a pending job not yet due."""
        if self.state is JobState.PENDING and self.run_at > now:
            return "retrying" if self.attempts > 0 else "scheduled"
        return self.state.value

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape used by `--json` output (field names of DESIGN.md §2)."""
        return {
            "id": self.id,
            "type": self.type,
            "queue": self.queue,
            "payload": self.payload,
            "priority": self.priority,
            "state": self.state.value,
            "run_at": self.run_at,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "unique_key": self.unique_key,
            "result": self.result,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "worker_id": self.worker_id,
            "lease_until": self.lease_until,
            "cancel_requested": self.cancel_requested,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt of a job, from the history table."""

    id: int
    job_id: int
    attempt: int
    worker_id: str | None
    started_at: float
    finished_at: float
    outcome: Outcome
    error: str | None
    traceback: str | None
    output: str | None

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape used in `attempts_history`."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "worker_id": self.worker_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome.value,
            "error": self.error,
            "traceback": self.traceback,
            "output": self.output,
        }


@dataclass(frozen=True, slots=True)
class JobEdit:
    """One edit of a job's payload (`jobq edit`): when, by whom, the payload it replaced."""

    job_id: int
    at: float
    user: str
    host: str
    old_payload_json: str
    retried: bool

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape used in `jobq show --json`'s `edits`."""
        from .values import format_iso

        try:
            old: JSONValue = json.loads(self.old_payload_json)
        except ValueError:  # a payload written by hand that is not JSON: shown as its text
            old = self.old_payload_json
        return {"at": format_iso(self.at), "user": self.user, "host": self.host,
                "old_payload": old, "retried": self.retried}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A failed attempt joined with its job's type and queue, for `jobq errors`."""

    attempt: Attempt
    type: str
    queue: str

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape used by `jobq errors --json`."""
        d = self.attempt.to_dict()
        d["type"] = self.type
        d["queue"] = self.queue
        return d


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker pool as registered in the workers table."""

    id: str
    name: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    concurrency: int
    queues: tuple[str, ...]
    types: tuple[str, ...]
    jobs_done: int
    status: str
    current_jobs: tuple[int, ...]
    proc_key: str | None = None  # lifecycle.proc_key of its supervisor
    # the pool's --type globs; `types` then holds its handler names only (None: a record from
    # before the two were apart, whose `types` holds both)
    type_globs: tuple[str, ...] | None = None

    def status_at(self, now: float) -> str:
        """Its status word (running, stopping, stopped, dead): dead when its process is gone
        (same host) or its heartbeat is stale (another host), whatever its row still says."""
        from . import lifecycle

        return lifecycle.pool_status(
            self.status, self.proc_key, self.heartbeat_at, now, lifecycle.this_host()
        )

    def alive(self, now: float) -> bool:
        """Whether the pool is running or stopping (see `status_at`)."""
        from . import lifecycle

        return self.status_at(now) in lifecycle.LIVE_STATUSES

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape used by `jobq workers --json`."""
        return {
            "id": self.id,
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "concurrency": self.concurrency,
            "queues": list(self.queues),
            "types": list(self.types),
            "type_globs": None if self.type_globs is None else list(self.type_globs),
            "jobs_done": self.jobs_done,
            "status": self.status,
            "current_jobs": list(self.current_jobs),
        }


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts per state (and views), per queue and per type, plus recent throughput."""

    by_state: dict[str, int]
    scheduled: int
    retrying: int
    by_queue: dict[str, dict[str, int]]
    by_type: dict[str, dict[str, int]]
    paused_queues: tuple[str, ...]
    finished_last_minute: int
    failed_last_minute: int

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape used by `jobq stats --json`."""
        return {
            "by_state": dict(self.by_state),
            "scheduled": self.scheduled,
            "retrying": self.retrying,
            "by_queue": {k: dict(v) for k, v in self.by_queue.items()},
            "by_type": {k: dict(v) for k, v in self.by_type.items()},
            "paused_queues": list(self.paused_queues),
            "finished_last_minute": self.finished_last_minute,
            "failed_last_minute": self.failed_last_minute,
        }


class EventKind(str, enum.Enum):
    """What a lifecycle event says happened to a job (jobq/store/sqlite/events.py says when
    each is written)."""

    CREATED = "created"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    CRASHED = "crashed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRIED = "retried"
    RELEASED = "released"
    """Taken back unstarted, or interrupted by a shutdown (attempt not used up); not in the
    default kinds: every pool shutdown would fill a feed with them."""

    def __str__(self) -> str:
        return self.value


DEFAULT_EVENT_KINDS = tuple(k for k in EventKind if k is not EventKind.RELEASED)


def iso_micro(ts: float) -> str:
    """A time as ISO 8601 UTC with microseconds: 2026-12-02T00:23:44.123456Z."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Event:
    """One lifecycle event of a job, as `jobq events` prints it and `Queue.events` yields it.

    `id` increases with every event and is never reused; `at` is seconds since the epoch;
    `attempt` the attempt it concerns (0 before any); `error` the first line of the error of a
    failed attempt; `duration` the seconds an ended attempt ran; `worker_id` who ran it.
    """

    id: int
    kind: EventKind
    at: float
    job_id: int
    type: str
    queue: str
    attempt: int
    error: str | None = None
    duration: float | None = None
    worker_id: str | None = None

    def to_dict(self) -> dict[str, JSONValue]:
        """The JSON shape of `jobq events` (one object per line), times in ISO 8601 UTC."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "at": iso_micro(self.at),
            "job_id": self.job_id,
            "type": self.type,
            "queue": self.queue,
            "attempt": self.attempt,
            "error": self.error,
            "duration": self.duration,
            "worker_id": self.worker_id,
        }

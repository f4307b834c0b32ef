"""The frozen records read from a queue file: Job, Attempt, WorkerInfo, QueueStats.

States, outcomes, defaults and NewJob live in `jobq.basics` (re-exported here), which is cheap
to import: `jobq enqueue` never loads this module or `dataclasses`.

The records are frozen dataclasses to every reader (`dataclasses.fields`, `replace`, `asdict`
and `is_dataclass` work on them) but are built by `record`, not by `dataclasses.dataclass`:
importing `dataclasses` pulls in `inspect`, `ast`, `dis` and `tokenize`, and generating the
classes costs as much again (issue 15). The dataclass view is built on first use.
"""

from __future__ import annotations

import enum

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
    from collections.abc import Callable

    from .basics import JSONValue


class FrozenRecordError(AttributeError):
    """Assigning to a field of a record (what `dataclasses.FrozenInstanceError` says)."""


class _RecordType(type):
    def __getattr__(cls, name: str) -> object:
        # `dataclasses.is_dataclass(Job)` and `fields(Job)` ask the class: build the view then
        if name in _DATACLASS_ATTRS:
            return _dataclass_view(cls, name)
        raise AttributeError(name)


_DATACLASS_ATTRS = ("__dataclass_fields__", "__dataclass_params__")


def _dataclass_view(cls: type, name: str) -> object:
    """The `dataclasses` metadata of a record, taken from a real dataclass with its fields."""
    import dataclasses

    ns: dict[str, object] = {"__annotations__": dict(vars(cls)["_annotations"])}
    ns.update(vars(cls)["_defaults"])
    twin: type = dataclasses.dataclass(frozen=True)(type(cls.__name__, (), ns))
    for attr in _DATACLASS_ATTRS:
        setattr(cls, attr, getattr(twin, attr))
    return getattr(cls, name)


class _Record:
    """What `dataclass(frozen=True, slots=True)` gives a class, except `__init__` (`record`)."""

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> object:
        if name in _DATACLASS_ATTRS:  # `dataclasses.fields(job)`, `replace(job, …)`
            return getattr(type(self), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenRecordError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenRecordError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, n) for n in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            assert isinstance(other, _Record)
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__match_args__)
        return f"{type(self).__qualname__}({inner})"

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        # pickle and copy: the fields, positionally, through __init__ (setattr is refused)
        return (type(self), self._values())


def _record(cls: type) -> type:
    """`cls` rebuilt as a frozen slotted record: one slot per annotated field, an `__init__`
    taking them in order (a field with a class-level value defaults to it), and equality, hash
    and repr over the fields, as `dataclass(frozen=True, slots=True)` would make it."""
    ns = dict(vars(cls))
    annotations: dict[str, object] = ns.get("__annotations__", {})
    names = tuple(annotations)
    defaults = {n: ns.pop(n) for n in names if n in ns}
    for gone in ("__dict__", "__weakref__"):
        ns.pop(gone, None)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        # compiled on the first instance: `jobq ls` builds only Jobs (start-up, issue 15)
        init = _make_init(new, names, defaults)
        new.__init__ = init  # type: ignore[misc]
        init(self, *args, **kwargs)

    ns.update(__slots__=names, __match_args__=names, __init__=__init__, _annotations=annotations,
              _defaults=defaults)  # fmt: skip
    if cls.__bases__ != (object,):
        raise TypeError(f"record {cls.__name__}: a record derives from nothing")
    new = _RecordType(cls.__name__, (_Record,), ns)
    new.__qualname__ = cls.__qualname__
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return new


def _make_init(
    cls: type, names: tuple[str, ...], defaults: dict[str, object]
) -> Callable[..., None]:
    """A record's `__init__`: its fields in order, each defaulted field with its default."""
    params = ", ".join(f"{n}=_d_{n}" if n in defaults else n for n in names)
    body = "".join(f"    _set(self, {n!r}, {n})\n" for n in names) or "    pass\n"
    scope: dict[str, object] = {"_set": object.__setattr__}
    scope.update({f"_d_{n}": v for n, v in defaults.items()})
    exec(f"def __init__(self, {params}):\n{body}", scope)
    init: Callable[..., None] = scope["__init__"]  # type: ignore[assignment]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


if TYPE_CHECKING:
    from typing import TypeVar

    from typing_extensions import dataclass_transform

    _T = TypeVar("_T")

    @dataclass_transform(frozen_default=True)
    def record(cls: type[_T]) -> type[_T]:
        """Type checkers see what the records are to every reader: frozen dataclasses."""
        return cls
else:
    record = _record


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


@record
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
        import json

        value: JSONValue = json.loads(self.payload_json)
        return value

    @property
    def result(self) -> JSONValue:
        """The handler's return value, parsed (None when there is none)."""
        if self.result_json is None:
            return None
        import json

        value: JSONValue = json.loads(self.result_json)
        return value

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far this running job is (0 to 1, and a short message), from its handler
        in a pool: stored at most once a second, shown by `jobq ls`, `show` and the dashboard.
        ValueError for a fraction outside [0, 1]; RuntimeError outside a worker's attempt."""
        from .liveoutput import report  # here: `jobq ls` start-up does not load it

        report(self.id, self.lease_token, fraction, message)

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


@record
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


@record
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
        import json

        from .values import format_iso

        try:
            old: JSONValue = json.loads(self.old_payload_json)
        except ValueError:  # a payload written by hand that is not JSON: shown as its text
            old = self.old_payload_json
        return {"at": format_iso(self.at), "user": self.user, "host": self.host,
                "old_payload": old, "retried": self.retried}  # fmt: skip


@record
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


@record
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


@record
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
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@record
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

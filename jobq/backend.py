"""The backend seam: what every storage backend offers, and `open_backend` that picks one.

Callers (the Queue facade, the worker pool, the CLI, the dashboard) hold a `Backend` and never
know its files, PRAGMAs or SQL. A location names the backend: a path or `sqlite:PATH` is a SQLite
queue file; `postgresql://…` is the PostgreSQL backend (jobq/store/postgres, which needs
psycopg). The role says what the caller needs, and the backend decides its own settings from it
(for SQLite: busy timeout, producers' turnstile, whether a missing file may be created).

This module is on the start-up path of `jobq enqueue`: no `typing` at run time. `Backend` is a
Protocol for the type checker only; the contract tests (tests/test_store_*.py over the `backend`
fixture) are what a new backend must pass.
"""

from __future__ import annotations

import enum
from collections import namedtuple

from .errors import InvalidInput

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
    from typing import Any, Protocol

    from .basics import JobState, NewJob
    from .lifecycle import Progress
    from .model import Attempt, Event, FailedAttempt, Job, QueueStats, WorkerInfo
    from .schedules import Schedule
    from .waiting import Waiter

    # (job id, token, worker id, started_at, timeout, cancel requested, attempts)
    RunningRow = tuple[int, str, str, float, float, bool, int]


class Role(enum.Enum):
    """What a caller needs from a backend; the backend derives its settings from it."""

    PRODUCER = "producer"
    """Enqueues and acts as an operator (`jobq.Queue`): durable writes that take turns."""
    WORKER = "worker"
    """A pool's supervisor or child: short writes, claims as it can."""
    WORKER_SPIN = "worker-spin"
    """A worker's second handle that never waits for a lock (retries itself right after a wake)."""
    OPERATOR = "operator"
    """Admin commands (doctor, backup): never creates a queue, waits like a producer."""
    READER = "reader"
    """Read-only commands: never creates a queue."""


class Ending(enum.Enum):
    """How a leased attempt ends other than by success (see jobq.lifecycle for the rules)."""

    FAIL = "fail"
    """The handler failed: retried after backoff (if retryable) until attempts are used up."""
    TIMEOUT = "timeout"
    """The attempt ran past its timeout and was killed: counted like FAIL."""
    CRASH = "crash"
    """The worker died or was killed mid-attempt: counted, due again at once."""
    CANCEL = "cancel"
    """An operator's cancel stopped the running attempt: the job ends cancelled."""
    INTERRUPT = "interrupt"
    """A graceful shutdown interrupted the attempt: back to pending, attempt not used up."""
    RELEASE = "release"
    """Claimed but never started: back to pending, attempt not used up."""
    SNOOZE = "snooze"
    """The handler asked to run again later (jobq.Snooze): pending after `delay`, attempt not
    used up; past jobq.control.MAX_SNOOZES snoozes in a job's life it counts like FAIL."""


class ActionResult(str, enum.Enum):
    """What an operator action (cancel, retry, set priority) did to one job."""

    OK = "ok"
    CANCELLED = "cancelled"
    CANCEL_REQUESTED = "cancel requested"
    RETRIED = "retried"
    DELETED = "deleted"
    NOT_FOUND = "not found"
    DUPLICATE_UNIQUE_KEY = "duplicate unique key"
    """retry: a pending or running job of the same type holds its unique key."""
    WRONG_STATE = "wrong state"
    """The job's state does not allow the action; `ActionOutcome.state` says which it is."""

    def __str__(self) -> str:
        return self.value


DONE = (ActionResult.OK, ActionResult.CANCELLED, ActionResult.CANCEL_REQUESTED,
        ActionResult.RETRIED, ActionResult.DELETED)  # fmt: skip


class ActionOutcome:
    """One job's outcome of an operator action: a result and, for WRONG_STATE, the job's state.

    `str()` is the word people see: the result, or the state for WRONG_STATE ("succeeded").
    A plain class, not a dataclass: the store that builds it is on the enqueue path.
    """

    __slots__ = ("result", "state")

    def __init__(self, result: ActionResult, state: JobState | None = None) -> None:
        self.result = result
        self.state = state

    @property
    def done(self) -> bool:
        """Whether the action took effect (or, for a running job, was requested)."""
        return self.result in DONE

    def __str__(self) -> str:
        if self.result is ActionResult.WRONG_STATE and self.state is not None:
            return self.state.value
        return self.result.value

    def __repr__(self) -> str:
        return f"ActionOutcome({self.result.name}" + (
            f", {self.state.value})" if self.state else ")"
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ActionOutcome):
            return (self.result, self.state) == (other.result, other.state)
        if isinstance(other, ActionResult):
            return self.result is other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.result, self.state))


if TYPE_CHECKING:
    from typing import NamedTuple

    class JobFilter(NamedTuple):
        """Which jobs a read selects, and one page of them.

        `state` is a state or a view (scheduled, retrying); `type_glob` a shell-style glob
        (`email:*`, matched case-sensitively as SQLite GLOB does); `search` text in payload, type
        and last error. `order`: "newest" (id descending, `after` = last id seen), "oldest" (id
        ascending), "claim" (priority DESC, run_at, id; `after` = (priority, run_at, id) of the
        last row seen) or "finished" (finished_at DESC, id DESC, finished jobs only; `after` =
        (finished_at, id)). Keyset pagination keeps every page as cheap as the first.
        """

        state: str | None = None
        type_glob: str | None = None
        queue: str | None = None
        search: str | None = None
        limit: int = 50
        order: str = "newest"
        after: tuple[int, float, int] | tuple[float, int] | int | None = None

    class ClaimFilter(NamedTuple):
        """Which due jobs a worker may claim: exact handler names, `--type` globs, queues (None:
        any). Paused queues are always skipped."""

        types: tuple[str, ...] | None = None
        type_globs: tuple[str, ...] | None = None
        queues: tuple[str, ...] | None = None

else:
    # namedtuples, not frozen dataclasses: this module is on `jobq enqueue`'s start-up path, and
    # dataclasses (with inspect) costs it ~10 ms; a namedtuple is as immutable
    JobFilter = namedtuple(
        "JobFilter",
        "state type_glob queue search limit order after",
        defaults=(None, None, None, None, 50, "newest", None),
    )
    JobFilter.__doc__ = "Which jobs a read selects, and one page of them."
    ClaimFilter = namedtuple("ClaimFilter", "types type_globs queues", defaults=(None, None, None))
    ClaimFilter.__doc__ = "Which due jobs a worker may claim: handler names, globs, queues."


ANY = ClaimFilter()
EVERY = JobFilter()


class Location:
    """A parsed `--db` / JOBQ_DB value: which backend, and where."""

    __slots__ = ("kind", "target")

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind  # "sqlite" or "postgresql"
        self.target = target  # the file path, or the connection URL

    def __str__(self) -> str:
        return display_location(self.target)

    def __repr__(self) -> str:
        return f"Location({self.kind!r}, {display_location(self.target)!r})"


_PG_SCHEMES = ("postgresql://", "postgres://")


def is_url(text: str) -> bool:
    """Whether a location names a server (not a file path)."""
    return text.startswith(_PG_SCHEMES)


def parse_location(text: str) -> Location:
    """A path or `sqlite:PATH` → SQLite; `postgresql://…` / `postgres://…` → PostgreSQL."""
    if is_url(text):
        return Location("postgresql", text)
    if text.startswith("sqlite:"):
        path = text[len("sqlite:") :]
        if path.startswith("//"):  # sqlite:///abs/path, as URLs write it
            path = path[2:]
        if not path:
            raise InvalidInput("sqlite: needs a path, e.g. sqlite:/var/lib/jobq.db")
        return Location("sqlite", path)
    return Location("sqlite", text)


def supported(location: str) -> str:
    """Return `location` if a backend of this version serves it, else raise InvalidInput."""
    parse_location(location)  # a path, sqlite:PATH or a postgresql:// URL: all served
    return location


def absolute_location(text: str) -> str:
    """The location with a relative file path made absolute (a server URL is kept as it is)."""
    if is_url(text):
        return text
    import os

    return os.path.abspath(os.path.expanduser(parse_location(text).target))


def display_location(text: str) -> str:
    """The location as it may be printed: a password in a URL (`user:PASSWORD@` or a
    `password=` parameter) becomes `***`."""
    if not is_url(text):
        return text
    scheme, _, rest = text.partition("://")
    rest, mark, query = rest.partition("?")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    if mark:
        params = query.split("&")
        for i, param in enumerate(params):
            if param.partition("=")[0].strip().lower() == "password":
                params[i] = param.partition("=")[0] + "=***"
        query = "&".join(params)
    return f"{scheme}://{userinfo}{at}{host}{slash}{tail}{mark}{query}"


def open_backend(
    location: str,
    role: Role,
    *,
    busy_timeout: float | None = None,
    allow_network_fs: bool | None = None,
    mountinfo: str | None = None,
) -> Backend:
    """Open the backend that `location` names, set up for `role`.

    The keyword arguments override the JOBQ_* configuration for the Python API (`jobq.Queue`);
    a backend ignores those it has no use for. `mountinfo` (tests) replaces
    /proc/self/mountinfo for the network-filesystem check. Raises InvalidInput for a location
    no backend of this version serves, or a PostgreSQL URL without psycopg installed.
    """
    loc = parse_location(supported(location))
    if loc.kind == "postgresql":
        # imported here: `jobq enqueue` on a queue file never loads psycopg
        from .store.postgres import open_postgres

        try:
            return open_postgres(loc.target, role, busy_timeout=busy_timeout)
        except ImportError as e:  # the backend's modules import psycopg when it first opens
            if "psycopg" not in (e.name or str(e)):
                raise
            raise InvalidInput(
                "the PostgreSQL backend needs psycopg: pip install 'jobq[postgres]'"
            ) from None
    from .store.sqlite import open_sqlite

    return open_sqlite(loc.target, role, busy_timeout=busy_timeout,
                       allow_network_fs=allow_network_fs, mountinfo=mountinfo)  # fmt: skip


if TYPE_CHECKING:

    class Backend(Protocol):
        """Every operation callers make on a queue; each is one transaction. `now` is always an
        argument (seconds since the epoch), so tests drive the state machine with numbers."""

        location: str
        """What was opened, as given (print it with display_location)."""

        # ---- producers
        def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[int]: ...
        def enqueue_unique(self, job: NewJob, now: float) -> tuple[int, str | None]: ...
        def enqueue_runs(
            self, runs: Sequence[tuple[NewJob, str, int]], now: float
        ) -> list[int]: ...

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
        def next_run_at(self, filter: ClaimFilter = ...) -> float | None: ...
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
        def running_of(self, worker_prefix: str) -> list[RunningRow]: ...
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
        def waker(self) -> Waiter: ...
        def check_identity(self, force: bool = False) -> None: ...
        def maintain(self) -> None: ...
        def backup(self, target: str) -> None: ...
        def metric_totals(self, now: float) -> dict[str, list[tuple[Any, ...]]]: ...

        # ---- schedules (jobq.schedules)
        def schedules(self) -> list[Schedule]: ...
        def put_schedule(self, s: Schedule, now: float, *, replace: bool = False) -> bool: ...
        def remove_schedule(self, name: str) -> bool: ...
        def pause_schedule(self, name: str, paused: bool) -> bool: ...
        def next_schedule_at(self) -> float | None: ...
        def fire_schedules(
            self, now: float, next_after: Callable[[Schedule, float], float]
        ) -> list[tuple[str, int]]: ...
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

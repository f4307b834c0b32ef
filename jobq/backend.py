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
    from collections.abc import Sequence

    from .basics import JobState
    from .where import Condition

    # (job id, token, worker id, started_at, timeout, cancel requested, attempts)
    RunningRow = tuple[int, str, str, float, float, bool, int]
    # one attempt's flush of live output (jobq.pool.capture): (job id, lease token, attempt,
    # first write of the attempt, [(seq, at, stream, text)], (fraction, message, at) or None)
    OutputWrite = tuple[
        int,
        str,
        int,
        bool,
        Sequence[tuple[int, float, str, str]],
        tuple[float, str | None, float] | None,
    ]


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
    CHANGED = "changed"
    """edit: the job changed (claimed, retried, edited…) since the caller read it."""

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
        `where`: conditions on payload fields, all of which must hold (jobq.where); `since` /
        `until`: created_at >= since and created_at < until (seconds since the epoch).
        """

        state: str | None = None
        type_glob: str | None = None
        queue: str | None = None
        search: str | None = None
        limit: int = 50
        order: str = "newest"
        after: tuple[int, float, int] | tuple[float, int] | int | None = None
        where: tuple[Condition, ...] = ()
        since: float | None = None
        until: float | None = None

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
        "state type_glob queue search limit order after where since until",
        defaults=(None, None, None, None, 50, "newest", None, (), None, None),
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


if TYPE_CHECKING:  # the Protocol (for the type checker only) is in its own module
    from .backend_protocol import Backend as Backend

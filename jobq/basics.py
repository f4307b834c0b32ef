"""The vocabulary of jobq that the enqueue path needs, kept cheap to import.

`jobq enqueue` runs in shell loops, so this module avoids `dataclasses` and `typing` at run time:
states and outcomes are enums (the `re` module loads `enum` anyway), NewJob is a namedtuple.
"""

from __future__ import annotations

import enum
from collections import namedtuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Union

    # A JSON document as Python values.
    JSONValue = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]  # noqa: UP007


def __getattr__(name: str) -> object:
    # JSONValue at run time (for introspection) without importing typing on the enqueue path
    if name == "JSONValue":
        from typing import Union

        value = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]  # noqa: UP007
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class JobState(str, enum.Enum):
    """Where a job is. The schema's CHECK constraint holds the same words."""

    PENDING = "pending"
    """Waiting for `run_at`; a worker's claim moves it to running, `cancel` to cancelled."""
    RUNNING = "running"
    """Leased by a worker; that worker (complete, fail, release), its supervisor (crash, timeout,
    cancel) or any pool's rescuer (expired lease) moves it on."""
    SUCCEEDED = "succeeded"
    """Terminal; only `prune` removes it."""
    FAILED = "failed"
    """Attempts used up; `retry` moves it back to pending."""
    CANCELLED = "cancelled"
    """Cancelled by an operator; `retry` moves it back to pending."""

    def __str__(self) -> str:
        return self.value


FINISHED_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

# Views derived from state and time (DESIGN.md §2), accepted wherever a state filter is.
VIEWS = ("scheduled", "retrying")


class Outcome(str, enum.Enum):
    """How one attempt ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


PRIORITY_NAMES: dict[str, int] = {"low": -10, "normal": 0, "high": 10, "critical": 20}

DEFAULT_QUEUE = "default"
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_TIMEOUT = 300.0
DEFAULT_PAYLOAD_LIMIT = 1024 * 1024


if TYPE_CHECKING:
    from typing import NamedTuple

    class NewJob(NamedTuple):
        """A validated job ready to insert; the first six fields are a bulk insert's batch key."""

        type: str
        queue: str = DEFAULT_QUEUE
        priority: int = 0
        run_at: float | None = None
        max_attempts: int | None = None
        timeout: float | None = None
        unique_key: str | None = None
        payload_json: str = "{}"
        after: tuple[int, ...] = ()  # ids of jobs that must succeed before this one runs

else:
    # A namedtuple rather than a frozen dataclass: enqueue_many builds one per job, and a tuple
    # is created ~5x faster; the first six fields are the "same batch" key of a bulk insert.
    NewJob = namedtuple(
        "NewJob",
        "type queue priority run_at max_attempts timeout unique_key payload_json after",
        defaults=(DEFAULT_QUEUE, 0, None, None, None, None, "{}", ()),
    )
    NewJob.__doc__ = "A validated job ready to insert (what `enqueue` builds from its arguments)."


def same_batch(jobs: Sequence[NewJob]) -> list[tuple[int, int]]:
    """The (start, end) slices of consecutive jobs that differ at most in payload and unique key."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(jobs):
        first = jobs[i]
        key = first[:6]  # type, queue, priority, run_at, max_attempts, timeout
        k = i + 1
        while k < len(jobs) and (jobs[k] is first or jobs[k][:6] == key):
            k += 1
        spans.append((i, k))
        i = k
    return spans


def run_array(texts: Sequence[str]) -> str:
    """The payload array of a run (see the backend's `enqueue_runs`) for canonical payload
    texts: compact JSON text that starts with "{" is an object; anything else travels wrapped."""
    return "[" + ",".join([t if t[:1] == "{" else "[" + t + "]" for t in texts]) + "]"


def runs_of(jobs: Sequence[NewJob]) -> list[tuple[NewJob, str, int]]:
    """Consecutive jobs that differ only in payload, as runs (template, payload array, count) for
    the backend's `enqueue_runs`. None may carry a unique key or dependencies."""
    return [(jobs[i], run_array([j.payload_json for j in jobs[i:k]]), k - i)
            for i, k in same_batch(jobs)]  # fmt: skip


# Buckets of `jobq_run_seconds` (jobq.metrics): the store counts pruned attempts into the same ones
RUN_SECONDS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                      120.0, 300.0, 600.0, 1800.0, 3600.0)  # fmt: skip

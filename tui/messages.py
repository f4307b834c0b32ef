"""What the screens tell the app, as messages: screens never import or call the app.

A screen posts one of these; it bubbles to the app, which runs the action on its writer
connection (after a confirmation where the message asks for one) and reloads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.message import Message

from jobq import ErrorGroup, Job, safe_line

from .data import Filter


@dataclass(frozen=True)
class ScreenOptions:
    """What every screen needs to know about the app that shows it."""

    read_only: bool
    clock: Callable[[], float]  # "now" for countdowns and ages (tests freeze it)
    display_path: str  # the queue file's path as the header shows it


@dataclass
class Reload(Message):
    """The screens now show something else: load it."""


@dataclass
class Retry(Message):
    """Retry failed or cancelled jobs (confirm: None asks when there are several).

    `what` names them in the question ("job 61 (resize)", "3 marked jobs"); empty: a count.
    """

    ids: list[int]
    confirm: bool | None = None
    what: str = ""


@dataclass
class Cancel(Message):
    """Cancel jobs, after a confirmation naming them (`what`, as for Retry)."""

    ids: list[int]
    what: str = ""


@dataclass
class SetPriority(Message):
    """Set the priority of jobs to `value` (a number or a name, as typed)."""

    ids: list[int]
    value: str
    confirm: bool = False
    what: str = ""


@dataclass
class BumpPriority(Message):
    """Move each (job id, current priority) by `delta`."""

    jobs: list[tuple[int, int]]
    delta: int


@dataclass
class TogglePause(Message):
    """Pause a running queue, or resume a paused one."""

    queue: str
    paused: bool


@dataclass
class Bulk(Message):
    """Retry, cancel or reprioritise every job of `tab` matching `filter`, after a count."""

    kind: str
    tab: str
    filter: Filter
    priority: str | None = None


def job_text(job: Job) -> str:
    """A job as questions name it: `job 61 (resize)` (its type made safe)."""
    return f"job {job.id} ({safe_line(job.type, 60)})"


def group_retry(group: ErrorGroup) -> Retry:
    """Retry every job of an error group, asking first with the group named."""
    n = len(group.job_ids)
    what = (f"{'1 job' if n == 1 else f'{n:,} jobs'} of the error group "
            f"{safe_line(group.type, 60)}: {safe_line(group.error, 80)}")  # fmt: skip
    return Retry(list(group.job_ids), confirm=True, what=what)

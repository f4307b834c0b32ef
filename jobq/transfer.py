"""`jobq copy`: move a whole queue between backends (a file and PostgreSQL, either way).

What travels (COPY_TABLES): every job (pending, scheduled, blocked, and the finished history:
succeeded, failed, cancelled) with its snooze count and dependency counts, the links of
`enqueue --after`, every attempt, payload edits, the live output and progress of attempts (what
`jobq logs` shows), the queues' pause settings, limits (with their rate state), schedules, the
per-minute history, the totals kept from pruned attempts, and the event feed, all with their
ids, so `jobq show 1234` names the same job on both sides and a follower of the feed continues
from the id it reached. A job waiting for others still waits on the target. Pools do not travel
(they register again on the target).

Events: the target's triggers fire for every copied job and attempt ("created", "failed"...);
those are dropped before the source's own feed is written, so the target's history is the
source's, once, and the copy itself is no lifecycle event. (Dropping the feed instead would
lose what `jobq events` showed; keeping both would show every job created twice.)

All or nothing: the target writes everything in one transaction, so a copy that fails or is
killed leaves the target as it was. The source is read table by table (it must be quiet: no
running jobs). A target that holds anything of HELD (jobs, queue settings, limits, schedules,
history, totals, events) is refused unless `replace`, which empties it in the same transaction;
a source with running jobs is refused (stop its pools first: a job copied mid-run would run
twice). Identity columns (PostgreSQL) and AUTOINCREMENT (SQLite) are moved past the copied ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .backend import Role, display_location, open_backend
from .errors import InvalidInput, JobqError

# The columns each table travels with, in this order, timestamps as seconds since the epoch;
# every backend exports and imports exactly these (see Backend.export_rows / import_rows).
COPY_COLUMNS: dict[str, tuple[str, ...]] = {
    "queues": ("name", "paused", "paused_at"),
    "jobs": (
        "id", "type", "queue", "payload", "priority", "state", "run_at", "attempts",
        "max_attempts", "timeout", "unique_key", "result", "last_error", "created_at",
        "started_at", "finished_at", "worker_id", "lease_token", "lease_until",
        "cancel_requested", "snoozes", "blocked", "has_dependents",
    ),
    "attempts": (
        "id", "job_id", "attempt", "worker_id", "started_at", "finished_at", "outcome", "error",
        "traceback", "output",
    ),
    "job_deps": ("job_id", "after_id"),
    "job_edits": ("id", "job_id", "at", "user", "host", "old_payload", "retried"),
    "job_output": ("job_id", "attempt", "seq", "at", "stream", "text"),
    "job_progress": ("job_id", "attempt", "fraction", "message", "at"),
    "limits": ("key", "concurrency", "rate_count", "rate_period", "tat", "created_at"),
    "schedules": (
        "name", "cron", "tz", "type", "queue", "payload", "priority", "paused", "next_at",
        "last_at", "last_job_id", "created_at",
    ),
    "rollup": ("minute", "queue", "type", "key", "value"),
    "metric_totals": ("type", "key", "value"),
    "events": (
        "id", "at", "kind", "job_id", "type", "queue", "attempt", "error", "duration", "worker_id",
    ),
}  # fmt: skip
# Parents before children; events last: the target drops the events its own inserts fired
# (a copied job is no new lifecycle event) before it writes the source's.
COPY_TABLES = (
    "queues", "jobs", "attempts", "job_deps", "job_edits", "job_output", "job_progress",
    "limits", "schedules", "rollup", "metric_totals", "events",
)  # fmt: skip


# What makes a target non-empty, as each backend counts it (in this order): anything a copy
# would mix with the source's or collide with. Pools do not count (they register again).
HELD = (
    "jobs", "queue settings", "limits", "schedules", "history rows", "pruned-attempt totals",
    "events",
)  # fmt: skip


class TargetNotEmpty(JobqError):
    """`jobq copy` would overwrite a queue that holds jobs, settings, limits, schedules or
    history."""

    @classmethod
    def of(cls, where: str, held: tuple[int, ...]) -> TargetNotEmpty:
        """The refusal for a target holding `held` (counts in HELD order)."""
        what = ", ".join(f"{n} {name}" for n, name in zip(held, HELD, strict=True) if n)
        return cls(
            f"{where} already holds {what}: copy into an empty queue, or pass --replace to "
            "overwrite it"
        )


class SourceBusy(JobqError):
    """`jobq copy` was asked to copy a queue whose jobs are running."""


@dataclass(frozen=True)
class CopyReport:
    """What one copy moved."""

    source: str
    target: str
    rows: dict[str, int]

    def summary(self) -> str:
        r = self.rows
        counts = f"{r.get('jobs', 0)} jobs, {r.get('attempts', 0)} attempts and "
        counts += f"{r.get('queues', 0)} queue settings"
        more = ", ".join(f"{r[table]} {name}" for table, name in _NAMES.items() if r.get(table))
        also = f" (with {more})" if more else ""
        return f"copied {counts} from {self.source} to {self.target}{also}"


# How the summary names the other tables' rows
_NAMES = {
    "job_deps": "dependencies", "job_edits": "payload edits", "job_output": "output lines",
    "job_progress": "progress records", "limits": "limits", "schedules": "schedules",
    "rollup": "history rows", "metric_totals": "pruned-attempt totals", "events": "events",
}  # fmt: skip


def _test_hold(
    progress: Callable[[str, int], None] | None,
) -> Callable[[str, int], None] | None:
    """Test-only hook, JOBQ_TEST_HOLD_COPY=N:PATH: once N jobs are written (uncommitted), touch
    PATH and sleep until killed (tests/test_copy.py: a killed copy leaves the target as it was)."""
    import os

    hold = os.environ.get("JOBQ_TEST_HOLD_COPY")
    if not hold:
        return progress
    n, _, path = hold.partition(":")

    def held(table: str, written: int) -> None:
        if progress is not None:
            progress(table, written)
        if table == "jobs" and written >= int(n):
            open(path, "w").close()
            import time

            time.sleep(3600)

    return held


def copy_queue(
    source: str,
    target: str,
    *,
    replace: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy the queue at `source` to `target` (locations), all or nothing; see the module doc."""
    from .backend import absolute_location

    progress = _test_hold(progress)
    if absolute_location(source) == absolute_location(target):
        raise InvalidInput("jobq copy: the source and the target are the same queue")
    src = open_backend(source, Role.READER)
    try:
        # every table from one instant of the source, the running check included: a job that
        # ends or an event written while the copy reads cannot land in one table and not another
        src.prepare_export()
        with src.snapshot():
            running = src.counts().get("running", 0)
            if running:
                raise SourceBusy(
                    f"{display_location(source)} has {running} running jobs: stop its pools "
                    "first (a job copied mid-run would run twice)"
                )
            readers = [(table, src.export_rows(table)) for table in COPY_TABLES]
            dst = open_backend(target, Role.PRODUCER)
            try:
                rows = dst.import_rows(readers, replace=replace, progress=progress)
            finally:
                dst.close()
                for _, reader in readers:
                    reader.close()  # end a read cut short while its connection is still open
    finally:
        src.close()
    return CopyReport(display_location(source), display_location(target), rows)

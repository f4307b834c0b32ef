"""Periodic jobs in the queue file (jobq/schedules.py has the rules)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from ...basics import NewJob
from .connection import _translate
from .reads import Reads
from .sql import (
    DUE_SCHEDULES,
    FIRED_SCHEDULE,
    NEXT_SCHEDULE,
    PAUSE_SCHEDULE,
    PUT_SCHEDULE,
    REMOVE_SCHEDULE,
    SCHEDULE,
    SCHEDULES,
)
from .writes import JobWrites

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...schedules import Schedule


def _schedule(r: Sequence[object]) -> Schedule:
    from ...schedules import Schedule

    return Schedule.from_row(r)


class Schedules(Reads):
    """The schedule operations of the Backend protocol."""

    def schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        with self._read() as conn:
            return [_schedule(r) for r in conn.execute(SCHEDULES).fetchall()]

    def put_schedule(self, s: Schedule, now: float, *, replace: bool = False) -> bool:
        """Add a schedule (False if one of that name exists and not `replace`); with `replace`,
        its definition changes and its pause and history are kept."""
        with self._write(durable=True) as conn:
            if not replace and conn.execute(SCHEDULE, {"name": s.name}).fetchone():
                return False
            conn.execute(PUT_SCHEDULE, {
                "name": s.name, "cron": s.cron, "tz": s.tz, "type": s.type, "queue": s.queue,
                "payload": s.payload_json, "priority": s.priority, "paused": int(s.paused),
                "next_at": s.next_at, "now": now,
            })  # fmt: skip
        return True

    def remove_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there is none of that name."""
        with self._write() as conn:
            return conn.execute(REMOVE_SCHEDULE, {"name": name}).rowcount > 0

    def pause_schedule(self, name: str, paused: bool) -> bool:
        """Pause or resume a schedule; False if there is none of that name."""
        with self._write() as conn:
            return conn.execute(PAUSE_SCHEDULE, {"name": name, "paused": int(paused)}).rowcount > 0

    def next_schedule_at(self) -> float | None:
        """When the next unpaused schedule is due (None: none)."""
        try:
            row = self._conn.execute(NEXT_SCHEDULE).fetchone()
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        return None if row is None or row[0] is None else float(row[0])

    def fire_schedules(
        self, now: float, next_after: Callable[[Schedule, float], float]
    ) -> list[tuple[str, int]]:
        """Enqueue one job for each schedule due at `now` and move it to `next_after(s, now)`,
        in one transaction; return (schedule name, job id) of each fired."""
        fired: list[tuple[str, int]] = []
        with self._write(durable=True) as conn:
            for row in conn.execute(DUE_SCHEDULES, {"now": now}).fetchall():
                s = _schedule(row)
                job = NewJob(type=s.type, payload_json=s.payload_json, queue=s.queue,
                             priority=s.priority, run_at=None, max_attempts=None,
                             timeout=None, unique_key=None)  # fmt: skip
                params = JobWrites._job_params(job, now)
                job_id = JobWrites.insert_job(conn, params)
                moved = conn.execute(FIRED_SCHEDULE, {
                    "name": s.name, "slot": s.next_at, "next_at": next_after(s, now),
                    "job_id": job_id,
                }).rowcount  # fmt: skip
                if moved != 1:  # cannot happen under the write lock; never enqueue twice
                    raise RuntimeError(f"schedule {s.name!r} moved while firing")
                fired.append((s.name, job_id))
        return fired

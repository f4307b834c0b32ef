"""Periodic jobs on PostgreSQL (jobq/schedules.py has the rules; as store/sqlite/schedules.py).

Firing locks the due schedules FOR UPDATE SKIP LOCKED: two pools firing at once never both see
a due row, and neither waits for the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .reads import Reads
from .sql import (
    DUE_SCHEDULES,
    FIRED_SCHEDULE,
    INSERT_JOB,
    NEXT_SCHEDULE,
    PAUSE_SCHEDULE,
    PUT_SCHEDULE,
    REMOVE_SCHEDULE,
    SCHEDULE,
    SCHEDULES,
)

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
        return [_schedule(r) for r in self._get(SCHEDULES).fetchall()]

    def put_schedule(self, s: Schedule, now: float, *, replace: bool = False) -> bool:
        """Add a schedule (False if one of that name exists and not `replace`); with `replace`,
        its definition changes and its pause and history are kept."""
        with self._write(durable=True) as conn:
            if not replace and conn.execute(SCHEDULE, {"name": s.name}).fetchone():
                return False
            conn.execute(PUT_SCHEDULE, {
                "name": s.name, "cron": s.cron, "tz": s.tz, "type": s.type, "queue": s.queue,
                "payload": s.payload_json, "priority": s.priority, "paused": s.paused,
                "next_at": s.next_at, "now": now,
            })  # fmt: skip
        return True

    def remove_schedule(self, name: str) -> bool:
        """Delete a schedule; False if there is none of that name."""
        return bool(self._one(REMOVE_SCHEDULE, {"name": name}).rowcount)

    def pause_schedule(self, name: str, paused: bool) -> bool:
        """Pause or resume a schedule; False if there is none of that name."""
        return bool(self._one(PAUSE_SCHEDULE, {"name": name, "paused": paused}).rowcount)

    def next_schedule_at(self) -> float | None:
        """When the next unpaused schedule is due (None: none)."""
        row = self._get(NEXT_SCHEDULE).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def fire_schedules(
        self, now: float, next_after: Callable[[Schedule, float], float]
    ) -> list[tuple[str, int]]:
        """Enqueue one job for each schedule due at `now` and move it to `next_after(s, now)`,
        in one transaction; return (schedule name, job id) of each fired."""
        from .writes import _job_params

        fired: list[tuple[str, int]] = []
        with self._write(durable=True) as conn:
            for row in conn.execute(DUE_SCHEDULES, {"now": now}).fetchall():
                s = _schedule(row)
                from ...basics import NewJob

                job = NewJob(type=s.type, payload_json=s.payload_json, queue=s.queue,
                             priority=s.priority, run_at=None, max_attempts=None,
                             timeout=None, unique_key=None)  # fmt: skip
                got = conn.execute(INSERT_JOB, _job_params(job, now)).fetchone()
                assert got is not None
                moved = conn.execute(FIRED_SCHEDULE, {
                    "name": s.name, "slot": s.next_at, "next_at": next_after(s, now),
                    "job_id": got[0],
                }).rowcount  # fmt: skip
                if moved != 1:  # the row is locked by this transaction: cannot happen
                    raise RuntimeError(f"schedule {s.name!r} moved while firing")
                fired.append((s.name, int(got[0])))
        return fired

"""The pool's side of periodic jobs (jobq.schedules): apply the handlers file's schedules at
start, and fire due schedules (one job per slot, whatever the number of pools)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from ..schedules import Schedule, next_run

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..backend import Backend

log = logging.getLogger("jobq.scheduler")

CHECK_EVERY = 1.0  # seconds between two looks at the next due schedule (a read of one index)


def _next_after(s: Schedule, now: float) -> float:
    return next_run(s.cron, s.tz, now)


class Scheduler:
    """Fires the queue's due schedules from the supervisor loop."""

    def __init__(self, store: Backend, from_file: Sequence[Schedule] = ()) -> None:
        self.store = store
        self.from_file = list(from_file)
        self.next_check = 0.0

    def apply(self, now: float) -> None:
        """Put the handlers file's schedules in the queue. A schedule whose cron line and zone
        are unchanged keeps its next slot (a restart neither skips nor repeats one)."""
        if not self.from_file:
            return
        current = {s.name: s for s in self.store.schedules()}
        for s in self.from_file:
            old = current.get(s.name)
            keep = old is not None and (old.cron, old.tz) == (s.cron, s.tz)
            next_at = old.next_at if keep and old is not None else next_run(s.cron, s.tz, now)
            paused = old.paused if old is not None else False
            self.store.put_schedule(dataclasses.replace(s, next_at=next_at, paused=paused), now,
                                    replace=True)  # fmt: skip
            log.info("schedule %s (%s %s): next run at %s", s.name, s.cron, s.tz,
                     _local(next_at))  # fmt: skip

    def tick(self, mono: float, now: float) -> list[tuple[str, int]]:
        """Fire what is due; returns (schedule, job id) of each job enqueued."""
        if mono < self.next_check:
            return []
        self.next_check = mono + CHECK_EVERY
        due = self.store.next_schedule_at()
        if due is None or due > now:
            return []
        fired = self.store.fire_schedules(now, _next_after)
        for name, job_id in fired:
            log.info("schedule %s: enqueued job %d", name, job_id)
        return fired


def _local(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(t))

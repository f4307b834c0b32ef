"""The supervisor's periodic chores, each a small object with its own timer (Oban's plugins):
renew the leases of healthy children, rescue the jobs of dead pools, heartbeat the pool row,
prune history, roll up each finished minute (jobq.rollup), and keep systemd informed (READY,
WATCHDOG, STATUS).

Time is an argument: each chore takes `now` (wall clock, stored in the queue) and its timer
`mono` (monotonic, for cadence), so tests drive them with plain numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .. import lifecycle, rollup
from ..basics import JobState
from ..errors import JobqError
from .children import RunningRow
from .slots import forget, read_progress
from .systemd import Notifier

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..backend import Backend

log = logging.getLogger("jobq.pool")

HEARTBEAT_EVERY = 5.0  # pool row heartbeat (a write: kept rare so an idle pool stays idle)
RESCUE_EVERY = 2.0  # expired-lease rescue (capped by lease/2)
PRUNE_EVERY = 60.0
STATUS_EVERY = 2.0
PRUNED_STATES = ("succeeded", "failed", "cancelled")


@dataclass(eq=False)
class Every:
    """A cadence on the monotonic clock: due once `period` seconds passed since it last fired."""

    period: float
    last: float = 0.0

    def due(self, mono: float) -> bool:
        """Whether the period has passed; if so, the next one starts at `mono`."""
        if mono - self.last >= self.period:
            self.last = mono
            return True
        return False


class Renewer:
    """Extends the leases of jobs held by children that are alive and not stopped, every
    lease/3 (a SIGSTOPped child's leases expire, so that another pool may rescue its jobs)."""

    def __init__(self, store: Backend, lease_seconds: float) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.every = Every(lease_seconds / 3)

    def renew(self, rows: Sequence[RunningRow], healthy: Collection[str], now: float) -> int:
        """Renew the leases in `rows` held by a worker in `healthy` until `now` + a lease;
        return how many were asked for."""
        leases = [(r[0], r[1]) for r in rows if r[2] in healthy]
        if leases:
            n = self.store.renew(leases, now + self.lease_seconds)
            if n < len(leases):
                log.warning("lease lost: %d of %d lease(s) were no longer ours",
                            len(leases) - n, len(leases))  # fmt: skip
        return len(leases)


class Rescuer:
    """Takes back the jobs of dead pools and expired leases (never this pool's own), every
    RESCUE_EVERY seconds or lease/2, whichever is shorter."""

    def __init__(
        self, store: Backend, here: str | None, own_pool: str, lease_seconds: float
    ) -> None:
        self.store = store
        self.here = here
        self.own_pool = own_pool
        self.every = Every(min(RESCUE_EVERY, lease_seconds / 2))

    def rescue(self, now: float) -> list[tuple[int, JobState]]:
        """Rescue what is due at `now`, logging each job taken back; return (id, new state) of
        each. A dead pool of this host left its slots file: it tells which of its jobs ran
        (jobq.pool.slots)."""
        asked: list[str] = []

        def progress(pool_id: str) -> lifecycle.Progress | None:
            asked.append(pool_id)
            return read_progress(pool_id)

        rescued = self.store.rescue(now, here=self.here, own_pool=self.own_pool, progress=progress)
        for job_id, state in rescued:
            log.warning("rescued job %d from a dead or silent pool -> %s", job_id, state.value)
        for pool_id in asked:  # their jobs are taken back: what they were doing is history
            forget(pool_id)
        return rescued


class Heartbeat:
    """Refreshes the pool row (status, jobs done) every HEARTBEAT_EVERY seconds, and on each
    change of status."""

    def __init__(self, store: Backend, pool_id: str) -> None:
        self.store = store
        self.pool_id = pool_id
        self.every = Every(HEARTBEAT_EVERY)

    def beat(self, now: float, done: int, status: str) -> None:
        """Write the heartbeat; a failure is logged (the next beat tries again)."""
        try:
            self.store.worker_heartbeat(self.pool_id, now, done, status)
        except JobqError as e:
            log.warning("heartbeat failed: %s", e)


class Pruner:
    """Deletes finished jobs and lifecycle events older than the retention, every PRUNE_EVERY
    seconds (never without a retention)."""

    def __init__(self, store: Backend, retention: float | None) -> None:
        self.store = store
        self.retention = retention
        self.every = Every(PRUNE_EVERY)

    def due(self, mono: float) -> bool:
        """Whether a prune is due (see Every.due)."""
        return self.retention is not None and self.every.due(mono)

    def prune(self, now: float) -> int:
        """Delete what finished more than the retention before `now`; return how many."""
        if self.retention is None:
            return 0
        n = self.store.prune(now - self.retention, list(PRUNED_STATES))
        if n:
            log.info("pruned %d finished job(s) older than %gs", n, self.retention)
        # lifecycle events keep the jobs' retention (and a hard cap, which `maintain` checks)
        e = self.store.prune_events(now - self.retention)
        if e:
            log.info("pruned %d event(s) older than %gs", e, self.retention)
        return n


class Roller:
    """Rolls each finished minute up into the queue's history (jobq.rollup) once it is due, and
    prunes the history past the retention (at least a day); checked every rollup.ROLL_EVERY
    seconds, a store call once a minute. Every pool does it: the first one writes the minute."""

    def __init__(self, store: Backend, retention: float | None) -> None:
        self.store = store
        self.keep = rollup.keep_for(retention)
        self.every = Every(rollup.ROLL_EVERY)
        self.due_at = 0.0  # wall clock: when the next minute is due (0: at once, at start)

    def roll(self, now: float) -> list[int]:
        """Roll up what is due at `now`; return the minutes this pool wrote."""
        if now < self.due_at:
            return []
        written = self.store.roll_up(now)
        self.store.prune_rollup(now - self.keep)
        self.due_at = rollup.next_due(now)
        return written


@dataclass(frozen=True, slots=True)
class PoolCounts:
    """What the status line says about a pool."""

    children: int
    running: int
    done: int
    stopping: bool


class SystemdStatus:
    """READY once every child is ready, WATCHDOG=1 at 90% of the watchdog interval, and a STATUS
    line every STATUS_EVERY seconds; nothing when not started by systemd."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.ready_sent = False
        self.status = Every(STATUS_EVERY)
        self.watchdog_at = 0.0
        self.rate_mark = (0.0, 0)
        self.rate = 0.0

    def watchdog_left(self, mono: float) -> float | None:
        """Seconds until the next WATCHDOG=1 is due (None without a watchdog)."""
        wd = self.notifier.watchdog_interval
        return None if wd is None else self.watchdog_at + wd - mono

    def tick(self, mono: float, counts: PoolCounts, all_ready: bool) -> None:
        """Send what is due at `mono`."""
        n = self.notifier
        if not n.enabled:
            return
        if not self.ready_sent and not counts.stopping and all_ready:
            self.ready_sent = n.notify("READY=1", "STATUS=" + self.status_line(mono, counts))
            self.status.last = mono
        wd = n.watchdog_interval
        if wd is not None and mono - self.watchdog_at >= wd * 0.9:
            self.watchdog_at = mono
            n.notify("WATCHDOG=1")
        if self.status.due(mono):
            n.status(self.status_line(mono, counts))

    def status_line(self, mono: float, counts: PoolCounts) -> str:
        """E.g. "4 children, 2 running, 310 done, 12.5 jobs/s" (the rate over >= 1 s)."""
        mark_t, mark_n = self.rate_mark
        if mono - mark_t >= 1.0:
            self.rate = (counts.done - mark_n) / (mono - mark_t)
            self.rate_mark = (mono, counts.done)
        state = "stopping, " if counts.stopping else ""
        return (f"{state}{counts.children} children, {counts.running} running, "
                f"{counts.done} done, {self.rate:.1f} jobs/s")  # fmt: skip

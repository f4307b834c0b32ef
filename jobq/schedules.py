"""Periodic jobs: cron schedules kept in the queue itself, fired by the pools.

A schedule names a cron line (five fields, parsed by cronsim: `*/5 * * * *`, `30 2 * * 1-5`,
`@daily`), a time zone (IANA name, default UTC; DST as cron does it: a skipped 02:30 runs at 03:00,
a repeated one runs once) and the job it enqueues (type, payload, queue, priority).

Exactly one job per due slot, however many pools run: a pool fires a schedule in the same
transaction that moves its `next_at` on, and only while `next_at` is still what it read (SQLite
has one writer at a time; PostgreSQL locks the row, skipping rows another pool holds). None while
no pool runs. After downtime a schedule fires once for all the slots it missed (its job's payload
is the same; `last_at` says which slot), then continues at the next slot after now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import InvalidInput
from .values import _name

MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Schedule:
    """One periodic job as the queue keeps it."""

    name: str
    cron: str
    tz: str
    type: str
    queue: str
    payload_json: str
    priority: int
    paused: bool
    next_at: float
    last_at: float | None = None
    last_job_id: int | None = None
    created_at: float = 0.0

    @classmethod
    def from_row(cls, r: Sequence[object]) -> Schedule:
        """A schedule from a store's row: name, cron, tz, type, queue, payload text, priority,
        paused, next_at, last_at, last_job_id, created_at (times in epoch seconds)."""
        return cls(
            name=str(r[0]), cron=str(r[1]), tz=str(r[2]), type=str(r[3]), queue=str(r[4]),
            payload_json=str(r[5]), priority=int(r[6]), paused=bool(r[7]),  # type: ignore[call-overload]
            next_at=float(r[8]), last_at=None if r[9] is None else float(r[9]),  # type: ignore[arg-type]
            last_job_id=None if r[10] is None else int(r[10]),  # type: ignore[call-overload]
            created_at=float(r[11]),  # type: ignore[arg-type]
        )  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of `jobq schedule ls --json` (times ISO 8601 UTC)."""
        import json

        return {
            "name": self.name,
            "cron": self.cron,
            "tz": self.tz,
            "type": self.type,
            "queue": self.queue,
            "payload": json.loads(self.payload_json),
            "priority": self.priority,
            "paused": self.paused,
            "next_at": _iso(self.next_at),
            "last_at": None if self.last_at is None else _iso(self.last_at),
            "last_job_id": self.last_job_id,
        }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_name(value: object) -> str:
    """A schedule name: 1–200 printable characters, no whitespace (like a job type)."""
    return _name("schedule name", value, MAX_NAME_LENGTH)


def _zone(tz: str) -> timezone | object:
    if tz in ("UTC", "utc", "Z"):
        return timezone.utc
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        if not tz or "\x00" in tz or tz.startswith("/") or ".." in tz:
            raise ValueError
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {tz!r}: use an IANA name, e.g. Europe/Paris"
        ) from None


def next_run(cron: str, tz: str, after: float) -> float:
    """The first slot of `cron` in zone `tz` strictly after `after` (seconds since the epoch)."""
    from cronsim import CronSim, CronSimError

    zone = _zone(tz)
    start = datetime.fromtimestamp(after, tz=zone)  # type: ignore[arg-type]
    try:
        return next(CronSim(cron, start)).timestamp()
    except CronSimError as e:
        raise InvalidInput(f"bad cron line {cron!r}: {e}") from None
    except StopIteration:
        raise InvalidInput(f"cron line {cron!r} never fires") from None


def check_cron(cron: str, tz: str, now: float) -> float:
    """Validate a cron line and zone; return the first slot after `now`."""
    if not isinstance(cron, str) or not cron.strip() or len(cron) > 200:
        raise InvalidInput("a cron line needs five fields, e.g. '*/5 * * * *'")
    if cron.strip().startswith("@reboot"):
        raise InvalidInput("@reboot is not a schedule: use the pool's start-up instead")
    return next_run(cron.strip(), tz, now)


def describe(s: Schedule, now: float) -> str:
    """How long until a schedule's next run, for listings ("in 4m", "paused", "due")."""
    from .values import format_duration

    if s.paused:
        return "paused"
    left = s.next_at - now
    return "due" if left <= 0 else "in " + format_duration(left)

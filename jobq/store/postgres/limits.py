"""Limits across pools on PostgreSQL (jobq/limits.py has the rules; as store/sqlite/limits.py).

Concurrent claims skip each other's job rows (SKIP LOCKED), so a limited claim serialises on the
limit rows it consumes instead: it locks them FOR UPDATE, then counts the running jobs and reads
the rate's TAT — under READ COMMITTED each statement sees every claim committed before the lock
was granted. A claim of unlimited jobs locks no limit row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from ...backend import ANY, ClaimFilter
from ...limits import Limit, LimitStatus, held_now, split_keys, statuses
from ...limits import claim_limited as plan
from .reads import Reads
from .rows import claim_params, claim_shape, row_to_job
from .sql_limits import (
    HAS_LIMITS,
    LIMIT_KEYS,
    LIMITS,
    LOCK_LIMITS,
    LOCK_LIMITS_SKIP,
    PUT_LIMIT,
    REMOVE_LIMIT,
    RUNNING_COUNTS,
    SET_TATS,
    claim_limited_sql,
    next_run_at_limited_sql,
    peek_sql,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model import Job


def claim_limited(
    conn: psycopg.Connection[Any],
    params: dict[str, Any],
    limit: int,
    shape: tuple[bool, bool, bool],
    now: float,
) -> list[Job]:
    """The claim when limits exist (jobq.limits.claim_limited), in one transaction on `conn`."""

    def excluded(keys: set[str]) -> dict[str, Any]:
        types, queues = split_keys(keys)
        return {**params, "held_types": types, "held_queues": queues}

    def peek(held: set[str], n: int) -> list[tuple[str, str]]:
        return conn.execute(peek_sql(n, *shape), excluded(held)).fetchall()

    def lock(keys: list[str], wait: bool) -> list[LimitStatus]:
        rows = conn.execute(LOCK_LIMITS if wait else LOCK_LIMITS_SKIP, {"keys": keys}).fetchall()
        return statuses([Limit(*r) for r in rows], conn.execute(RUNNING_COUNTS).fetchall())

    def take(held: set[str], n: int) -> list[Job]:
        rows = conn.execute(claim_limited_sql(n, *shape), excluded(held)).fetchall()
        return [row_to_job(r) for r in rows]

    def save(tats: Mapping[str, float]) -> None:
        conn.execute(SET_TATS, {"keys": list(tats), "tats": list(tats.values())})

    keys = [r[0] for r in conn.execute(LIMIT_KEYS).fetchall()]
    return plan(keys, limit, now, peek, lock, take, save)


class Limits(Reads):
    """The limit operations of the Backend protocol."""

    def limits(self) -> list[LimitStatus]:
        """Every limit, by key, with its running jobs counted now."""
        with self._read() as conn:
            rows = conn.execute(LIMITS).fetchall()
            return statuses([Limit(*r) for r in rows], conn.execute(RUNNING_COUNTS).fetchall())

    def put_limit(self, limit: Limit, now: float) -> None:
        """Set a limit; one of that key is replaced (and its rate starts afresh)."""
        with self._write(durable=True) as conn:
            conn.execute(PUT_LIMIT, {
                "key": limit.key, "concurrency": limit.concurrency,
                "rate_count": limit.rate_count, "rate_period": limit.rate_period, "now": now,
            })  # fmt: skip

    def remove_limit(self, key: str) -> bool:
        """Delete a limit (its held jobs become claimable); False if there is none."""
        return bool(self._one(REMOVE_LIMIT, {"key": key}).rowcount)

    def next_run_at(self, filter: ClaimFilter = ANY, now: float | None = None) -> float | None:
        """The earliest `run_at` a claim with this filter could lease once due, or None (see
        Reads.next_run_at); with limits, as store/sqlite/limits.py says."""
        value = super().next_run_at(filter)
        if value is None or now is None or value > now:
            return value  # nothing due now: nothing a limit holds
        if not self._get(HAS_LIMITS).fetchone()[0]:
            return value
        with self._read() as conn:
            rows = conn.execute(LIMITS).fetchall()
            counts = conn.execute(RUNNING_COUNTS).fetchall()
            held, wake = held_now(statuses([Limit(*r) for r in rows], counts), now)
            if not held:
                return value
            types, queues = split_keys(held)
            params = {**claim_params(0.0, filter), "held_types": types, "held_queues": queues}
            found = conn.execute(next_run_at_limited_sql(*claim_shape(filter)), params).fetchone()
        times = [float(t) for t in (found[0] if found else None, wake) if t is not None]
        return min(times) if times else None

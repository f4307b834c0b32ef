"""Limits across pools in the queue file (jobq/limits.py has the rules; the claim is in writes)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from ...backend import ANY, ClaimFilter
from .reads import Reads, _claim_params
from .rows import _row_to_job
from .sql import (
    CLAIM_LIMITED,
    HAS_LIMITS,
    LIMIT_KEYS,
    LIMITS,
    LIMITS_OF,
    NEXT_RUN_AT_LIMITED,
    PEEK_DUE,
    PUT_LIMIT,
    REMOVE_LIMIT,
    RUNNING_COUNTS,
    SET_TAT,
)

# jobq.limits (dataclasses) is imported in the functions: `jobq enqueue` never needs it
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...limits import Limit, LimitStatus
    from ...model import Job


def claim_limited(
    conn: sqlite3.Connection, params: dict[str, object], limit: int, now: float
) -> list[Job]:
    """The claim when limits exist (jobq.limits.claim_limited), in the claim's
    transaction: BEGIN IMMEDIATE already serialises claims, so reading a limit row locks it."""
    import json  # here, not at the top: `jobq ls` start-up

    from ...limits import Limit, split_keys, statuses
    from ...limits import claim_limited as plan

    def excluded(keys: set[str]) -> dict[str, object]:
        types, queues = split_keys(keys)
        return {**params, "held_types": json.dumps(types), "held_queues": json.dumps(queues)}

    def peek(held: set[str], n: int) -> list[tuple[str, str]]:
        return conn.execute(PEEK_DUE, {**excluded(held), "limit": n}).fetchall()

    def lock(keys: list[str], wait: bool) -> list[LimitStatus]:
        rows = conn.execute(LIMITS_OF, {"keys": json.dumps(keys)}).fetchall()
        return statuses([Limit(*r) for r in rows], conn.execute(RUNNING_COUNTS).fetchall())

    def take(held: set[str], n: int) -> list[Job]:
        rows = conn.execute(CLAIM_LIMITED, {**excluded(held), "limit": n}).fetchall()
        return [_row_to_job(r) for r in rows]

    def save(tats: Mapping[str, float]) -> None:
        for key, tat in tats.items():
            conn.execute(SET_TAT, {"key": key, "tat": tat})

    return plan([r[0] for r in conn.execute(LIMIT_KEYS)], limit, now, peek, lock, take, save)


class Limits(Reads):
    """The limit operations of the Backend protocol."""

    def limits(self) -> list[LimitStatus]:
        """Every limit, by key, with its running jobs counted now."""
        with self._read() as conn:
            rows = conn.execute(LIMITS).fetchall()
            if not rows:  # the common case, and `jobq ls` then need not load jobq.limits
                return []
            from ...limits import Limit, statuses

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
        with self._write() as conn:
            return conn.execute(REMOVE_LIMIT, {"key": key}).rowcount > 0

    def next_run_at(self, filter: ClaimFilter = ANY, now: float | None = None) -> float | None:
        """The earliest `run_at` of a pending job that `claim` with this filter could lease once
        due, or None (see Reads.next_run_at). With limits, a due job an exhausted limit holds
        does not count: the answer is then the next start a rate allows, or a later run_at, or
        None (a concurrency limit frees up by a commit, which wakes the workers)."""
        import json  # here, not at the top: `jobq ls` start-up

        value = super().next_run_at(filter)
        if value is None or now is None or value > now:
            return value  # nothing due now: nothing a limit holds
        from ...limits import Limit, held_now, split_keys, statuses

        with self._read() as conn:
            if not conn.execute(HAS_LIMITS).fetchone()[0]:
                return value
            rows = conn.execute(LIMITS).fetchall()
            counts = conn.execute(RUNNING_COUNTS).fetchall()
            held, wake = held_now(statuses([Limit(*r) for r in rows], counts), now)
            if not held:
                return value
            types, queues = split_keys(held)
            params = {**_claim_params(filter), "held_types": json.dumps(types),
                      "held_queues": json.dumps(queues)}  # fmt: skip
            found = conn.execute(NEXT_RUN_AT_LIMITED, params).fetchone()[0]
        times = [t for t in (found, wake) if t is not None]
        return float(min(times)) if times else None

"""The statements of limits across pools on PostgreSQL (jobq/limits.py has the rules), beside
sql.py: the claim's variants are built from its CLAIM and NEXT_RUN_AT."""

from __future__ import annotations

from functools import lru_cache

from .sql import _ONLY, CLAIM, NEXT_RUN_AT, claim_sql, due_where

# ---- limits across pools (jobq/limits.py has the rules; store/postgres/limits.py)

_CLAIM_ORDER = "ORDER BY priority DESC, run_at, id"
assert CLAIM.count(_CLAIM_ORDER) == 1
# The jobs of exhausted or unlocked limit keys are left pending.
_NOT_HELD = """AND type <> ALL(%(held_types)s::text[])
      AND queue <> ALL(%(held_queues)s::text[])
    """


@lru_cache(maxsize=64)
def claim_unlimited_sql(
    limit: int, queues: bool = False, types: bool = False, globs: bool = False
) -> str:
    """The claim (claim_sql) when no limit exists: one uncorrelated NOT EXISTS more, computed
    once per statement (no extra round trip, no lock); an empty result with limits present sends
    the claim down the limited path (store/postgres/limits.py)."""
    sql = claim_sql(limit, queues, types, globs)
    return sql.replace(_CLAIM_ORDER, "AND NOT EXISTS (SELECT 1 FROM limits)\n    " + _CLAIM_ORDER)


@lru_cache(maxsize=64)
def claim_limited_sql(
    limit: int, queues: bool = False, types: bool = False, globs: bool = False
) -> str:
    """The claim that leaves the jobs of %(held_types)s and %(held_queues)s pending."""
    return claim_sql(limit, queues, types, globs).replace(_CLAIM_ORDER, _NOT_HELD + _CLAIM_ORDER)


@lru_cache(maxsize=64)
def peek_sql(limit: int, queues: bool = False, types: bool = False, globs: bool = False) -> str:
    """The type and queue of the first due candidates of a claim (nothing locked)."""
    return (f"SELECT type, queue FROM jobs WHERE {due_where(queues, types, globs)}\n    "
            f"{_NOT_HELD}{_CLAIM_ORDER} LIMIT {int(limit)}")  # fmt: skip


HAS_LIMITS = "SELECT EXISTS (SELECT 1 FROM limits)"
LIMITS = "SELECT key, concurrency, rate_count, rate_period, tat FROM limits ORDER BY key"
LIMIT_KEYS = "SELECT key FROM limits ORDER BY key"
# The limit rows a claim consumes, locked in key order (claims locking together never deadlock);
# a later lock of the same claim skips rows another claim holds (see jobq.limits.claim_limited).
LOCK_LIMITS = """
SELECT key, concurrency, rate_count, rate_period, tat FROM limits
WHERE key = ANY(%(keys)s::text[]) ORDER BY key FOR UPDATE
"""
LOCK_LIMITS_SKIP = LOCK_LIMITS.replace("FOR UPDATE", "FOR UPDATE SKIP LOCKED")
# Running jobs by (type, queue): what the concurrency limits count (running jobs only).
RUNNING_COUNTS = "SELECT type, queue, count(*) FROM jobs WHERE state = 'running' GROUP BY 1, 2"
# Setting a limit again replaces it, and starts its rate afresh.
PUT_LIMIT = """
INSERT INTO limits (key, concurrency, rate_count, rate_period, tat, created_at)
VALUES (%(key)s, %(concurrency)s, %(rate_count)s, %(rate_period)s, 0,
        to_timestamp(%(now)s::float8))
ON CONFLICT (key) DO UPDATE SET concurrency = excluded.concurrency,
    rate_count = excluded.rate_count, rate_period = excluded.rate_period, tat = 0
"""
REMOVE_LIMIT = "DELETE FROM limits WHERE key = %(key)s"
SET_TATS = """
UPDATE limits SET tat = t.tat
FROM unnest(%(keys)s::text[], %(tats)s::float8[]) AS t(key, tat) WHERE limits.key = t.key
"""


@lru_cache(maxsize=16)
def next_run_at_limited_sql(queues: bool = False, types: bool = False, globs: bool = False) -> str:
    """NEXT_RUN_AT among the jobs no exhausted limit holds (%(held_types)s, %(held_queues)s)."""
    only = "".join(c for c, given in zip(_ONLY, (queues, types, globs), strict=True) if given)
    return NEXT_RUN_AT.replace("{only}", only + _NOT_HELD.rstrip() + "\n      ")

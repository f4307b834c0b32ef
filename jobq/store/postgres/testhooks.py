"""Views into the PostgreSQL backend that only tests need (query plans): kept off the backend's
public class so that callers cannot come to depend on them."""

from __future__ import annotations

import re

from psycopg import sql

from ...backend import ANY, ClaimFilter
from ...basics import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT
from .connection import Connection
from .rows import claim_params, claim_shape
from .sql_limits import claim_unlimited_sql


def claim_plan(
    backend: object, now: float, filter: ClaimFilter = ANY, *, generic: bool = False
) -> str:
    """The server's plan of a claim of one job at `now` (EXPLAIN, nothing executed). `generic`:
    the plan the server may switch to once psycopg has prepared the statement (its fifth use)."""
    assert isinstance(backend, Connection)
    params = claim_params(now, filter)
    params.update({"worker": "w", "token": "t", "lease_until": now + 30, "limits": None,
                   "default_max_attempts": DEFAULT_MAX_ATTEMPTS,
                   "default_timeout": DEFAULT_TIMEOUT})  # fmt: skip
    text = claim_unlimited_sql(1, *claim_shape(filter))  # the claim that runs with no limit
    if not generic:
        rows = backend._one("EXPLAIN " + text, params).fetchall()
        return "\n".join(str(r[0]) for r in rows)
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    conn = backend._live()
    with conn.transaction():
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute("PREPARE jobq_probe AS " + re.sub(r"%\((\w+)\)s", number, text))
        try:
            values = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
            rows = conn.execute(sql.SQL("EXPLAIN EXECUTE jobq_probe({})").format(values)).fetchall()
        finally:
            conn.execute("DEALLOCATE jobq_probe")
    return "\n".join(str(r[0]) for r in rows)

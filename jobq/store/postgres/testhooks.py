"""Views into the PostgreSQL backend that only tests need (query plans): kept off the backend's
public class so that callers cannot come to depend on them."""

from __future__ import annotations

from ...backend import ANY
from ...basics import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT
from .connection import Connection
from .rows import claim_params
from .sql import CLAIM


def claim_plan(backend: object, now: float) -> str:
    """The server's plan of a claim of one job at `now` (EXPLAIN, nothing executed)."""
    assert isinstance(backend, Connection)
    params = claim_params(now, ANY)
    params.update({"worker": "w", "token": "t", "lease_until": now + 30, "limit": 1,
                   "limits": None, "default_max_attempts": DEFAULT_MAX_ATTEMPTS,
                   "default_timeout": DEFAULT_TIMEOUT})  # fmt: skip
    rows = backend._one("EXPLAIN " + CLAIM, params).fetchall()
    return "\n".join(str(r[0]) for r in rows)

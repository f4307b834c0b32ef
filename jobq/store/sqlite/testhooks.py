"""Views into the SQLite backend that only tests need (query plans, PRAGMAs): kept off the
backend's public class so that callers cannot come to depend on them."""

from __future__ import annotations

from .connection import Connection
from .sql import CLAIM


def claim_plan(backend: object) -> list[str]:
    """The query plan of the claim's inner SELECT (for the test that forbids a table scan)."""
    assert isinstance(backend, Connection)
    sql = (
        "EXPLAIN QUERY PLAN "
        + CLAIM[CLAIM.index("SELECT id FROM jobs INDEXED") :].rsplit(")", 1)[0]
    )
    params = {"now": 0.0, "limit": 1, "types": '["a"]', "globs": None, "queues": None,
              "limits": None}  # fmt: skip
    return [str(r[3]) for r in backend._conn.execute(sql, params).fetchall()]


def synchronous(backend: object) -> int:
    """`PRAGMA synchronous` (2 = FULL) of the connection that committed the latest write (there
    are two when writes take turns)."""
    assert isinstance(backend, Connection)
    value: int = backend._last_writer.execute("PRAGMA synchronous").fetchone()[0]
    return value

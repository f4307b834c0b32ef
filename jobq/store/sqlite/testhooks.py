"""Views into the SQLite backend that only tests need (query plans, PRAGMAs): kept off the
backend's public class so that callers cannot come to depend on them."""

from __future__ import annotations

from collections.abc import Callable

from .connection import Connection
from .sql import CLAIM_UNLIMITED as CLAIM  # the claim that runs with no limit
from .sql import NEXT_RUN_AT


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


def autocheckpoint(backend: object) -> tuple[int, ...]:
    """`PRAGMA wal_autocheckpoint` of the connection, and of its no-wait twin once opened."""
    assert isinstance(backend, Connection)
    conns = [backend._conn] + ([backend._nowait] if backend._nowait is not None else [])
    return tuple(int(c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) for c in conns)


def next_run_at_plan(backend: object) -> list[str]:
    """The query plan of `next_run_at` (for the test that forbids a table scan)."""
    assert isinstance(backend, Connection)
    params = {"types": '["a"]', "globs": None, "queues": None}
    rows = backend._conn.execute("EXPLAIN QUERY PLAN " + NEXT_RUN_AT, params).fetchall()
    return [str(r[3]) for r in rows]


def vm_steps(backend: object, call: Callable[[], object]) -> int:
    """How many SQLite virtual machine instructions `call` costs on the backend's connection
    (in units of 100): a cost that grows with the rows a query visits."""
    assert isinstance(backend, Connection)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    backend._conn.set_progress_handler(count, 100)
    try:
        call()
    finally:
        backend._conn.set_progress_handler(None, 0)
    return steps

"""The storage backends behind jobq.backend's seam (only SQLite in this version: store/sqlite,
the only package that imports sqlite3). Callers open one with `jobq.backend.open_backend`;
`Store` is exported for the SQLite-only tests.

Each public method is one transaction. Writes begin with BEGIN IMMEDIATE: a deferred transaction
that upgrades to a write fails at once with SQLITE_BUSY whatever the busy timeout. Time (`now`) is
always an argument, so tests drive the state machine with a plain number.

A running attempt is a lease: (worker_id, lease_token, lease_until). Every write that ends or
renews an attempt names its token, and a stale token changes 0 rows ("fencing").
"""

from __future__ import annotations

from .sqlite.actions import Store
from .sqlite.sql import DEFAULT_BUSY_TIMEOUT

__all__ = ["DEFAULT_BUSY_TIMEOUT", "Store"]

"""The SQLite backend: one WAL-mode queue file, and the only package that imports sqlite3.

connection (open, PRAGMAs, transactions, file identity) · admin (backup, doctor bodies) · reads ·
writes (the state machine) · sql (every statement, named) · schema (migrations) · filecheck
(refusals before any write) · waker (inotify on the real -wal) · turnstile (producers take
turns) · checkpoint (WAL bound) · testhooks (query plans and PRAGMAs, for tests only).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from ...backend import Role
    from .actions import Store


def open_sqlite(
    path: str,
    role: Role,
    *,
    mountinfo: str | None = None,
    busy_timeout: float | None = None,
    allow_network_fs: bool | None = None,
) -> Store:
    """Open the queue file at `path` set up for `role` (see jobq.backend.Role).

    Producers, operators and readers wait JOBQ_BUSY_TIMEOUT for a lock and take turns (the
    turnstile); readers and operators never create a missing file. Workers wait the default busy
    timeout and claim as they can (in a fair queue behind a flood of producers a pool would get
    one turn in twenty); WORKER_SPIN never waits. Every role honours JOBQ_ALLOW_NETWORK_FS.
    `busy_timeout` and `allow_network_fs` override the configuration (the Python API's
    arguments); `mountinfo` replaces /proc/self/mountinfo (tests).
    """
    from ... import config
    from ...backend import Role
    from .actions import Store
    from .sql import DEFAULT_BUSY_TIMEOUT

    worker = role in (Role.WORKER, Role.WORKER_SPIN)
    if role is Role.WORKER_SPIN:
        busy_timeout = 0.0
    elif busy_timeout is None:
        busy_timeout = DEFAULT_BUSY_TIMEOUT
        if not worker:
            busy_timeout = config.env_seconds(config.ENV_BUSY_TIMEOUT, DEFAULT_BUSY_TIMEOUT)
    if allow_network_fs is None:
        allow_network_fs = config.env_flag(config.ENV_ALLOW_NETWORK_FS)
    return Store(
        path,
        busy_timeout=busy_timeout,
        allow_network_fs=allow_network_fs,
        mountinfo=mountinfo,
        create=role in (Role.PRODUCER, Role.WORKER, Role.WORKER_SPIN),
        turnstile=not worker,
        autocheckpoint=not worker,  # a pool's supervisor keeps the WAL bounded (checkpoint.py)
    )

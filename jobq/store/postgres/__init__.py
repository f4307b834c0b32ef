"""The PostgreSQL backend: a queue in a schema of a PostgreSQL database, and the only package
that imports psycopg.

connection (URL, settings per role, schema check, transactions, errors) · schema (migrations,
change trigger) · sql (every statement, named) · rows (records, filter values) · reads · writes
(the state machine) · actions (operators, pools, rescue) · waker (LISTEN/NOTIFY).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...backend import Role
    from .actions import PgStore


def open_postgres(url: str, role: Role, *, busy_timeout: float | None = None) -> PgStore:
    """Open the queue that `url` names (`postgresql://…[?schema=NAME]`, default schema `jobq`),
    set up for `role` (see jobq.backend.Role).

    PRODUCER and WORKER roles create the schema and its tables when missing; READER and OPERATOR
    never create anything. Locks are waited for up to `busy_timeout` seconds (default
    JOBQ_BUSY_TIMEOUT, else 30 s; a worker waits 30 s, WORKER_SPIN not at all), then
    DatabaseBusy. An unreachable server raises ServerUnavailable (exit 75).
    """
    from ... import config
    from ...backend import Role
    from .actions import PgStore

    default = 30.0
    if busy_timeout is None:
        busy_timeout = default
        if role not in (Role.WORKER, Role.WORKER_SPIN):
            busy_timeout = config.env_seconds(config.ENV_BUSY_TIMEOUT, default)
    return PgStore(url, role, busy_timeout=busy_timeout)

"""Wake-ups on commits to a PostgreSQL queue: LISTEN on the schema's channel.

Every write transaction of the store notifies the channel `jobq:<schema>` (a trigger,
schema.py); PostgreSQL delivers it at commit, so a waiter never wakes before the change is
visible. `PgWaker` holds its own
autocommit connection that only LISTENs: `fileno()` is its socket, for select. Nothing is lost
while it is armed: a notification committed after the LISTEN waits in the socket.

When the server goes away (restart, network cut), the socket becomes readable at end of file:
`drain()` notices, closes the connection and reports a wake-up, so the caller re-reads (and
meets the outage itself, as a TemporaryFailure from its own backend). From then on `fileno()` is
-1 (callers then use `wait`), and `wait`/`drain` reconnect with backoff (50 ms doubling to
`MAX_BACKOFF`), never faster, never raising: a successful reconnect is reported as a wake-up too,
since notifications sent during the outage were lost with the connection.
"""

from __future__ import annotations

import contextlib
import select
import time
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0
CONNECT_TIMEOUT = 5  # seconds: a server that does not answer must not block a waiter for long


class PgWaker:
    """Wait until a transaction on the queue commits, or a timeout passes (jobq.Waiter).

    `conninfo` is what psycopg.connect takes (a URL or key=value string, without jobq's own
    `schema=` parameter); `channel` the queue's NOTIFY channel (schema.channel_of);
    `connect_kwargs` extra connection parameters (the connection is autocommit whatever they
    say). Construction never raises for an unreachable server: the waker starts disconnected
    and reconnects.
    """

    def __init__(self, conninfo: str, channel: str, **connect_kwargs: Any) -> None:
        self._conninfo = conninfo
        self._kwargs = {**connect_kwargs, "autocommit": True}
        self._kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
        self._channel = channel
        self._conn: psycopg.Connection[Any] | None = None
        self._heard = False  # a notification psycopg received while running a statement
        self._backoff = FIRST_BACKOFF
        self._next_try = 0.0  # monotonic time of the next reconnection attempt
        self._closed = False
        self.reconnects = 0  # successful reconnections (for tests and logs)
        self._connect()

    def __enter__(self) -> PgWaker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up."""
        return self._conn is not None

    def fileno(self) -> int:
        """The LISTEN connection's socket (for select), or -1 while disconnected."""
        if self._conn is None:
            return -1
        try:
            return self._conn.fileno()
        except psycopg.Error:
            self._lost()
            return -1

    def close(self) -> None:
        """Stop listening and close the connection."""
        self._closed = True
        self._drop()

    def wait(self, timeout: float) -> bool:
        """Block until a commit is notified, the connection was lost or came back (the caller
        must re-read), or `timeout` seconds pass; True unless the timeout passed."""
        deadline = time.monotonic() + timeout
        while not self._closed:
            if self._conn is None:
                if self._reconnect_if_due():
                    return True
                left = min(deadline, self._next_try) - time.monotonic()
                if deadline - time.monotonic() <= 0:
                    return False
                time.sleep(max(0.0, left))
                continue
            if self.drain():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            fd = self.fileno()
            if fd < 0:
                continue
            try:
                select.select([fd], [], [], left)
            except (OSError, ValueError):  # closed under us: treat as lost
                self._lost()
        return False

    def drain(self) -> bool:
        """Consume what arrived without blocking: True if a commit was notified, or the
        connection was lost or re-established (the caller must re-read)."""
        if self._closed:
            return False
        conn = self._conn
        if conn is None:
            return self._reconnect_if_due()
        heard, self._heard = self._heard, False
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                heard = True
        except psycopg.Error:
            self._lost()
            return True
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            self._lost()
            return True
        return heard

    # ---- connection ---------------------------------------------------------------------------

    def _connect(self) -> bool:
        try:
            conn = psycopg.connect(self._conninfo, **self._kwargs)
        except psycopg.Error:
            self._schedule_retry()
            return False
        try:
            conn.add_notify_handler(self._on_notify)
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._schedule_retry()
            return False
        self._conn = conn
        self._backoff = FIRST_BACKOFF
        return True

    def _on_notify(self, _notify: psycopg.Notify) -> None:
        self._heard = True

    def _schedule_retry(self) -> None:
        self._next_try = time.monotonic() + self._backoff
        self._backoff = min(MAX_BACKOFF, self._backoff * 2)

    def _reconnect_if_due(self) -> bool:
        if self._closed or time.monotonic() < self._next_try:
            return False
        if self._connect():
            self.reconnects += 1
            return True
        return False

    def _lost(self) -> None:
        self._drop()
        # the first attempt at once: a restarted server is often back within a second
        self._backoff = FIRST_BACKOFF
        self._next_try = time.monotonic()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()

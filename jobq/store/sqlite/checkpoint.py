"""Keeping the WAL bounded whatever the readers do.

SQLite's automatic checkpoint (PASSIVE, after a commit that leaves 1000 pages in the WAL) copies
frames into the database but never waits. The WAL restarts at its front only when that copy is
complete and no reader still uses a snapshot older than the newest frame; with readers looping
back to back (`jobq stats` in a loop, dashboards, scripts) there is almost always one, so every
commit appends and the file grows without bound (measured: 0 -> 38 MiB in 20 s with 2 looping
readers, 4 workers and 200 jobs/s; 34-54 MiB within one 10,000-job drain).

A `wal_checkpoint(TRUNCATE)` closes the gap: it takes the write lock, copies every frame, then
waits (through the busy handler) until every reader has moved to the newest snapshot — which a
reader does as soon as its short transaction ends, and every reader that starts meanwhile reads
the database file alone — and truncates the WAL to zero bytes. The wait holds up writers, so it
is bounded: PATIENCE at first, doubled after each checkpoint that ran out of it (readers whose
transactions are longer than that: big scans, a loaded machine), up to MAX_PATIENCE, or
URGENT_PATIENCE once the WAL nears the contract's 64 MiB; the next try comes RETRY_AFTER later,
and a checkpoint that gave up has still copied what it could.

Who runs it: the pool's supervisor, between its ticks, once the WAL passes RESTART_ABOVE (writes
at rate come from pools, and its loop is off the workers' path); and, as a backstop for writers
without a pool (producers only, with readers), any writing connection that finds the WAL past
BACKSTOP_ABOVE when it checks, at its first commit and every CHECK_EVERY commits (one stat()).
A pool's own connections turn SQLite's automatic checkpoint off (`wal_autocheckpoint = 0`): it
runs inside the commit that crosses 1000 pages, so a claim would wait for its copy and fsyncs.
The supervisor runs that PASSIVE copy instead, past COPY_ABOVE, between its ticks: it never waits
for readers, so the WAL restarts without the TRUNCATE's wait whenever readers allow.
`journal_size_limit` makes every ordinary restart of the WAL (no readers in the way) also shrink
a file that one big transaction has blown up.
"""

from __future__ import annotations

import os
import sqlite3
import time

# SQLite's automatic checkpoint runs once the WAL holds 1000 pages (4 MiB with jobq's 4 KiB
# pages). A WAL much past that has failed to restart, and then every commit retries a checkpoint
# (with its fsyncs) that cannot finish: so act soon after, not only near the 64 MiB contract.
# journal_size_limit (sql.JOURNAL_SIZE_LIMIT, set on every connection): 4 MiB
COPY_ABOVE = 4 * 2**20  # the supervisor copies the WAL back (PASSIVE) past this: SQLite's own
# automatic checkpoint point (1000 pages), which a pool's connections do not run themselves
RESTART_ABOVE = 5 * 2**20  # the supervisor checkpoints (TRUNCATE) past this WAL size
BACKSTOP_ABOVE = 8 * 2**20  # any writer does, past this (a pool's supervisor normally acts first)
CHECK_EVERY = 16  # commits between a writer's checks of the WAL size
PATIENCE = 0.1  # seconds a checkpoint may wait for the writer, then for readers (holds up writers)
MAX_PATIENCE = 0.8  # ... doubling after each failure up to this (lease renewals wait meanwhile)
URGENT_ABOVE = 32 * 2**20  # nearing the 64 MiB contract: the patience may double further, up to
URGENT_PATIENCE = 3.2  # this (a 2 s lease renewed every 0.67 s may then expire: rescued, not lost)
RETRY_AFTER = 0.5  # seconds before trying again after a checkpoint that ran out of patience


def wal_bytes(path: str) -> int:
    """Size of the queue file's WAL (0 when there is none)."""
    try:
        return os.stat(path + "-wal").st_size
    except OSError:
        return 0


class WalBound:
    """Truncating checkpoints for one queue file, on a connection of their own.

    A connection of its own: its busy timeout is the current patience (not the caller's 30 s),
    and a checkpoint cannot run inside a transaction another thread has open on the caller's
    connection.
    Opened on first need, so most processes never open it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._not_before = 0.0  # monotonic time before which we do not retry after a failure
        self._patience = PATIENCE
        self._conn_patience = PATIENCE
        # writes since the last size check (see Connection._write); the first commit checks
        # too, so that one-shot writers (`jobq enqueue` in a shell loop) bound the WAL as well
        self.commits = CHECK_EVERY - 1

    def close(self) -> None:
        """Close the checkpoint connection, if it was opened."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def bound(self, limit: int) -> tuple[int, int, int] | None:
        """`truncate` if the WAL is past `limit` bytes and no failed checkpoint is on hold;
        None if nothing was tried."""
        size = wal_bytes(self.path)
        if size <= limit or time.monotonic() < self._not_before:
            return None
        return self.truncate(urgent=size > URGENT_ABOVE)

    def copy(self, limit: int) -> tuple[int, int, int] | None:
        """A `wal_checkpoint(PASSIVE)` if the WAL is past `limit` bytes: it copies what it can
        and never waits, for readers or for the lock of another checkpoint, nor holds up a
        writer; once every frame is copied, the next write starts the WAL again at its front
        (unless a reader still uses it: then `bound` truncates it). None if nothing was tried."""
        if wal_bytes(self.path) <= limit:
            return None
        conn = self._conn
        if conn is None:
            conn = self._conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=self._patience, check_same_thread=False
            )
            self._conn_patience = self._patience
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return (busy, log, done)

    def truncate(self, urgent: bool = False) -> tuple[int, int, int]:
        """Run one bounded `wal_checkpoint(TRUNCATE)`: (busy, WAL frames, frames checkpointed).

        busy = 1 means readers or a writer outlasted the patience: the frames that could be
        copied were, the WAL was not truncated, `bound` tries nothing for RETRY_AFTER seconds, and
        the next checkpoint waits twice as long.
        """
        patience = min(self._patience, URGENT_PATIENCE if urgent else MAX_PATIENCE)
        conn = self._conn
        if conn is None or self._conn_patience != patience:
            self.close()  # its busy timeout is fixed when it opens: no SQL built from a number
            conn = self._conn = sqlite3.connect(
                self.path, isolation_level=None, timeout=patience, check_same_thread=False
            )
            self._conn_patience = patience
        # Only one checkpoint runs at a time, and SQLite does not wait for that lock: with a big
        # WAL, writers attempt a PASSIVE one after every commit, so we would often find it taken
        # (busy, log -1: nothing done). Retry finely until the patience is spent. Once the pragma
        # gets further (log >= 0), its own waits have used the busy timeout: stop there.
        deadline = time.monotonic() + patience
        while True:
            busy, log, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy or log >= 0 or time.monotonic() >= deadline:
                break
            time.sleep(0.0005)
        if busy:
            self._not_before = time.monotonic() + RETRY_AFTER
            self._patience = min(URGENT_PATIENCE, patience * 2)
        else:
            self._patience = PATIENCE
        return (busy, log, done)

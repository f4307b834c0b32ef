"""Opening a queue file safely, transactions, error translation, change tokens and wakers
(the bodies of backup and doctor: admin.py)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from ... import config
from ...errors import (
    CorruptFile,
    DatabaseBusy,
    DiskFull,
    FileReplaced,
    JobqError,
    QueueFileError,
)
from .checkpoint import BACKSTOP_ABOVE, CHECK_EVERY, COPY_ABOVE, RESTART_ABOVE, WalBound
from .filecheck import (
    check_existing,
    check_no_orphan_wal,
    check_not_network,
    check_same_file,
    hold,
    release,
)
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from .sql import (
    DEFAULT_BUSY_TIMEOUT,
    JOURNAL_SIZE_LIMIT,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from .turnstile import Turnstile
    from .waker import Waker

# SQLite primary result codes (sqlite3 exposes them only from Python 3.11)
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26

IDENTITY_EVERY = 1.0  # seconds between two checks that the path still names the open file


def _translate(e: sqlite3.Error, path: str) -> JobqError:
    """Turn a sqlite3 error into the jobq error a person can act on."""
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    msg = str(e)
    if primary in (SQLITE_BUSY, SQLITE_LOCKED) or "locked" in msg:
        return DatabaseBusy(f"{path} stayed locked by another process past the busy timeout")
    if primary == SQLITE_FULL or "disk is full" in msg:
        return DiskFull(f"no space left for {path}: free some disk space and retry")
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB) or "malformed" in msg:
        return CorruptFile(f"{path} is damaged ({msg}); run `jobq doctor`, restore a backup")
    if primary in (SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM):
        return QueueFileError(f"cannot write {path}: {msg}")
    if primary == SQLITE_IOERR or "disk I/O" in msg:
        return QueueFileError(f"I/O error on {path}: {msg}")
    return JobqError(f"{path}: {msg}")


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _configure(conn: sqlite3.Connection, autocheckpoint: bool = True) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(JOURNAL_SIZE_LIMIT)  # a WAL restarted at its front is also cut back
    if not autocheckpoint:
        # A pool's connections: SQLite's automatic checkpoint runs inside the commit that
        # crosses 1000 WAL pages, so a claim (or the end of a job) would wait for its copy and
        # fsyncs; the pool's supervisor bounds the WAL instead (checkpoint.py), off their path.
        # Measured on an idle pool: commit→start median 0.48-0.58 ms without, 0.63-0.76 with.
        conn.execute("PRAGMA wal_autocheckpoint = 0")


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply missing migrations inside one IMMEDIATE transaction (safe under concurrent opens)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # re-read under the write lock: another process may have migrated meanwhile
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for statements in MIGRATIONS[version:]:
            for sql in statements:
                conn.execute(sql)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _create_file(path: str, busy_timeout: float) -> None:
    """Create a fully migrated queue file at `path` atomically (link a finished temp file).

    Several processes may race here; exactly one link succeeds and the others open its file,
    so no process ever sees a half-initialised queue file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    import tempfile  # here, not at the top: off the start-up path of `jobq enqueue`

    fd, tmp = tempfile.mkstemp(prefix=".jobq-new-", suffix=".db", dir=directory)
    os.close(fd)
    try:
        os.chmod(tmp, 0o600 & ~_umask())
        conn = sqlite3.connect(tmp, isolation_level=None, timeout=busy_timeout)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            _migrate(conn)
        finally:
            conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; its file is complete
        except OSError:
            # filesystems without hard links: rename is atomic but may replace a racing winner's
            # empty file only if it does not exist yet
            if not os.path.exists(path):
                os.replace(tmp, path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                os.unlink(tmp + suffix)


def _retry_locked(step: Callable[[], object], timeout: float) -> None:
    """Run `step`, retrying while SQLite reports the file locked, for up to `timeout` seconds.

    Only for opening an old rollback-journal file: switching it to WAL needs the file to itself,
    and SQLite answers "locked" at once (no busy handler) when several processes upgrade it
    together, or when two migrations deadlock on their lock upgrades.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class Connection:
    """A connection to one queue file: validation, creation, migrations, transactions.

    `turnstile=True` makes this connection's writes take turns with every other such writer, in
    arrival order (see turnstile.py); `jobq.Queue` asks for it. The worker pool does not: its
    writes are short, and in a fair queue behind a flood of producers it would get one turn in
    twenty and fall behind them. Its writes still wait for the turn-holder's transaction, which
    retries finely (see _begin_in_turn), so the two kinds of writer share the lock roughly
    evenly (measured in bench/contention.py).

    `path` is the path as given (messages name it, and `check_identity` re-reads it); SQLite,
    every side file (-wal, -shm, -lock) and every watch use `real_path`, its symlinks resolved
    once at open: SQLite resolves them itself, so a watch or a -lock beside the link would
    watch or lock nothing.
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        allow_network_fs: bool = False,
        mountinfo: str | None = None,
        create: bool = True,
        turnstile: bool = False,
        autocheckpoint: bool = True,
    ) -> None:
        self.path = self.location = path
        self._autocheckpoint = autocheckpoint
        real = self.real_path = os.path.realpath(path)
        self._nowait: sqlite3.Connection | None = None  # see _begin_in_turn
        self._nowait_durable = False
        self._wal = WalBound(path)
        self._in_snapshot = False  # inside snapshot(): reads join its transaction
        if not allow_network_fs:
            if mountinfo is None:
                check_not_network(real)
            else:
                check_not_network(real, mountinfo)
        exists = check_existing(path)
        if not exists:
            if not create:
                raise QueueFileError(f"no queue file at {path}")
            check_no_orphan_wal(path, real)
            _create_file(real, busy_timeout)
            check_existing(path)
        try:
            before = os.stat(real)
        except OSError as e:
            raise QueueFileError(f"cannot access {path}: {e.strerror}") from None
        try:
            self._conn = sqlite3.connect(
                real, isolation_level=None, timeout=busy_timeout, check_same_thread=False
            )
            _configure(self._conn, autocheckpoint)
            self._last_writer = self._conn
            self._sync = "NORMAL"
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                _retry_locked(lambda: _migrate(self._conn), busy_timeout)
            mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                _retry_locked(lambda: self._conn.execute("PRAGMA journal_mode = WAL"), busy_timeout)
        except sqlite3.Error as e:
            raise _translate(e, path) from None
        # from now on, header checks in this process must not drop this connection's locks
        self._held: tuple[int, int] | None = hold(real)
        self._identity = self._held  # the file SQLite opened (see check_identity)
        self._identity_checked = time.monotonic()
        # A connection that must not wait (busy_timeout 0) does not queue up either.
        fair = turnstile and busy_timeout > 0 and not config.env_off(config.ENV_TURNSTILE)
        self._fair = fair
        self._busy_timeout = busy_timeout
        self._turnstile: Turnstile | None = None  # made at the first write (readers never do)
        if (before.st_dev, before.st_ino) != self._identity:
            self.close()  # replaced while we opened it: which one SQLite has is anyone's guess
            raise FileReplaced(f"{path} was replaced while being opened; try again")

    def check_identity(self, force: bool = False) -> None:
        """Raise FileReplaced if the path no longer names the file this connection has open.

        One stat, at most once every IDENTITY_EVERY seconds unless `force`: cheap enough for the
        loop of a pool, a worker or the dashboard. (SQLite's descriptor cannot be fstat'ed from
        Python, so the identity recorded at open is compared with a fresh stat of the path.)
        """
        mono = time.monotonic()
        if not force and mono - self._identity_checked < IDENTITY_EVERY:
            return
        self._identity_checked = mono
        check_same_file(self.path, self._identity)

    def _still_named(self) -> bool:
        try:
            check_same_file(self.path, self._identity)
        except FileReplaced:
            return False
        return True

    def _empty_wal(self) -> None:
        """Copy the log into the file we have open and truncate it to zero bytes.

        SQLite finds the -wal by name and, once the file has moved, no longer checkpoints or
        deletes it on close (it cannot tell whose log it would delete). Left as it is, the
        first process to open the file now at the path (a restored backup, a new queue) would
        read our file's pages out of it: a mix of two files, "malformed" at best. An empty log
        holds nothing to mix. Best effort: if another process of the old file still reads, the
        checkpoint gives up after the busy timeout, and that process empties it when it stops.
        """
        with suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @property
    def fair(self) -> bool:
        """Whether this connection's writers queue up in arrival order (see turnstile.py)."""
        gate = self._gate()
        return gate is not None and gate.usable()

    def _gate(self) -> Turnstile | None:
        if self._turnstile is None and self._fair:
            from .turnstile import PATIENCE, Turnstile  # here: a reader never writes

            self._turnstile = Turnstile(self.real_path, patience=min(PATIENCE, self._busy_timeout))
        return self._turnstile

    def close(self) -> None:
        """Close the connection (emptying the write-ahead log first if the file was replaced)."""
        if self._held is not None and not self._still_named():
            self._empty_wal()
        self._conn.close()
        if self._nowait is not None:
            self._nowait.close()
        if self._turnstile is not None:
            self._turnstile.close()
        self._wal.close()
        held, self._held = self._held, None
        if held is not None:
            release(held)

    def _set_sync(self, mode: str) -> None:
        if self._sync != mode:
            self._conn.execute(f"PRAGMA synchronous = {mode}")
            self._sync = mode

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction; `durable` commits with synchronous=FULL (fsync of the WAL)."""
        if self._in_snapshot:
            raise RuntimeError("a write inside snapshot(): end the snapshot first")
        conn = self._conn
        gate = self._gate()
        if gate is not None:
            gate.enter()  # wait our turn in arrival order, not in SQLite's busy handler
        try:
            try:
                if gate is not None:
                    conn = self._begin_in_turn(durable)
                else:
                    self._set_sync("FULL" if durable else "NORMAL")
                    conn.execute("BEGIN IMMEDIATE")
                self._last_writer = conn
            except sqlite3.Error as e:
                raise _translate(e, self.path) from None
            try:
                yield conn
                conn.execute("COMMIT")
                self._wal.commits += 1
            except sqlite3.Error as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _translate(e, self.path) from None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            if gate is not None:
                gate.leave()
        if self._wal.commits >= CHECK_EVERY:
            self._wal.commits = 0
            # Outside the turn, as it may wait for readers. The write has committed whatever
            # happens here: a checkpoint that fails is only tried again CHECK_EVERY commits on.
            with suppress(sqlite3.Error):
                self._wal.bound(BACKSTOP_ABOVE)

    def bound_wal(self, limit: int = RESTART_ABOVE) -> tuple[int, int, int] | None:
        """Truncate the WAL with a bounded checkpoint if it is past `limit` bytes (see
        checkpoint.py): (busy, frames, frames checkpointed), or None if nothing was needed."""
        try:
            return self._wal.bound(limit)
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None

    def _begin_in_turn(self, durable: bool) -> sqlite3.Connection:
        """BEGIN IMMEDIATE once it is our turn; return the connection that holds the lock.

        The lock is free or about to be (a worker outside the turnstile may hold it for a
        moment), and the busy handler's first sleep of 1 ms would hold up everyone queued behind
        us. So retry every 0.1 ms on a second connection without a busy handler, for up to 50 ms;
        then wait the ordinary way.
        """
        if self._nowait is None:
            self._nowait = sqlite3.connect(
                self.real_path, isolation_level=None, timeout=0, check_same_thread=False
            )
            _configure(self._nowait, self._autocheckpoint)
            self._nowait_durable = False  # _configure set NORMAL
        nowait = self._nowait
        if self._nowait_durable != durable:  # one statement fewer per write, as _set_sync does
            nowait.execute(
                "PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = NORMAL"
            )
            self._nowait_durable = durable
        deadline = time.monotonic() + 0.05
        while True:
            try:
                nowait.execute("BEGIN IMMEDIATE")
                return nowait
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    break
            time.sleep(0.0001)
        self._set_sync("FULL" if durable else "NORMAL")
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """The reads inside see the file at one instant: one read transaction around them (a
        snapshot inside a snapshot is the outer one). Keep it short: while it is open, the WAL
        cannot be checkpointed past it."""
        if self._in_snapshot:
            yield
            return
        with self._read():
            self._in_snapshot = True
            try:
                yield
            finally:
                self._in_snapshot = False

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, ended at once so the WAL can always be checkpointed (inside
        snapshot(): part of its transaction)."""
        conn = self._conn
        if self._in_snapshot:
            try:
                yield conn
            except sqlite3.Error as e:
                raise _translate(e, self.path) from None
            return
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None

    @property
    def synchronous(self) -> int:
        """Deprecated for tests: `store.sqlite.testhooks.synchronous(backend)`."""
        from .testhooks import synchronous

        return synchronous(self)

    def change_token(self) -> int:
        """A number that changes whenever another connection commits (`PRAGMA data_version`)."""
        try:
            value: int = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        return value

    data_version = change_token  # the older name

    def waker(self) -> Waker:
        """A waker on this file's commits (inotify on the real -wal), armed now: no commit
        after this call is missed."""
        from .waker import Waker

        return Waker(self.real_path)

    def maintain(self) -> None:
        """Periodic upkeep a pool runs: copy the WAL back into the file (the pool's connections
        do not: see _configure), and keep it bounded whatever the readers do."""
        try:
            self._wal.copy(COPY_ABOVE)  # PASSIVE: waits for no one, holds up no writer
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        self.bound_wal()

    def backup(self, out_path: str) -> None:
        """Write a consistent copy of the queue file to `out_path`, appearing atomically."""
        from .admin import backup  # its body loads when it runs: start-up of every command

        backup(self, out_path)

    def doctor(self) -> dict[str, object]:
        """Integrity check and schema report."""
        from .admin import doctor

        return doctor(self)

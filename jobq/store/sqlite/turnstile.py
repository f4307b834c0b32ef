"""A turnstile in front of SQLite's write lock: writers go through in the order they arrive.

Why: a writer that finds the file locked waits in SQLite's busy handler, which sleeps 1, 2, 5,
10 … 100 ms between tries and lets newcomers take the lock meanwhile. Under contention (20 shell
loops enqueueing while workers drain) the median write waits 0.2 ms but a few wait seconds.
Connections opened for `jobq.Queue` (producers, operators) use it; the worker pool's do not (see
Connection).

How: a side file `<queue file>-lock`. A writer takes a ticket t: it appends one byte to the file
(O_APPEND), and the file offset after its own write is unique to it. It locks byte t % SLOTS of
the file (an open-file-description lock, which the kernel drops if the process dies), waits
until its predecessor's byte (t - 1) is free, runs its transaction and unlocks its byte, which
wakes exactly its successor. Nobody polls, and a writer can overtake only one that has taken
its ticket but not yet locked its byte (a window of one system call).

Correctness never depends on it: SQLite's own lock still keeps writers apart; the turnstile only
orders them, so anything odd makes a writer step past it to SQLite directly: a predecessor that
is stopped (SIGSTOP) or slower than `patience`, a byte still held from a ticket SLOTS earlier,
a side file that cannot be opened, a platform without OFD locks (not Linux).
"""

from __future__ import annotations

import fcntl
import os
import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    import threading

SLOTS = 1 << 20  # tickets are taken modulo SLOTS; the side file is emptied when it grows past it
PATIENCE = 2.0  # seconds a writer waits for its predecessor before going to SQLite directly

_SETLK = getattr(fcntl, "F_OFD_SETLK", None)
_SETLKW = getattr(fcntl, "F_OFD_SETLKW", None)


def _flock(kind: int, offset: int) -> bytes:
    # struct flock {short l_type, l_whence; off_t l_start, l_len; pid_t l_pid;} (l_pid 0: OFD)
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)


def _try_lock(fd: int, kind: int, offset: int) -> bool:
    try:
        fcntl.fcntl(fd, _SETLK, _flock(kind, offset))  # type: ignore[arg-type]
    except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: someone holds it
        return False
    return True


def _unlock(fd: int, offset: int) -> None:
    fcntl.fcntl(fd, _SETLK, _flock(fcntl.F_UNLCK, offset))  # type: ignore[arg-type]


class Turnstile:
    """The fair entry to one queue file's write lock, for one connection."""

    def __init__(self, db_path: str, patience: float = PATIENCE) -> None:
        self.path = db_path + "-lock"
        self.patience = patience
        self._fd = -1
        self._held = -1  # the byte this writer holds while it is inside
        self._waiter: _Waiter | None = None
        self.enabled = _SETLK is not None and _SETLKW is not None
        self.stepped_aside = 0  # times a writer went to SQLite without its turn (for tests)

    def usable(self) -> bool:
        """Whether writers through this turnstile wait in turn (its side file opens)."""
        return self.enabled and self._open() >= 0

    def _open(self) -> int:
        if self._fd < 0:
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
            try:
                self._fd = os.open(self.path, flags, 0o600)
            except OSError:
                self.enabled = False  # e.g. a read-only directory: SQLite alone orders writers
        return self._fd

    def enter(self) -> None:
        """Wait for this writer's turn (at most `patience` seconds); call `leave` afterwards."""
        if not self.enabled or self._open() < 0:
            return
        fd = self._fd
        try:
            os.write(fd, b".")
            ticket = os.lseek(fd, 0, os.SEEK_CUR)  # this write's end: nobody else's
            if ticket >= SLOTS:
                os.ftruncate(fd, 0)  # tickets restart; a collision only makes one step aside
            mine = ticket % SLOTS
            if not _try_lock(fd, fcntl.F_WRLCK, mine):
                self.stepped_aside += 1  # the byte of a ticket SLOTS ago is still held
                return
            self._held = mine
            before = (ticket - 1) % SLOTS
            if _try_lock(fd, fcntl.F_RDLCK, before):
                _unlock(fd, before)  # the predecessor is done (or never was)
            elif not self._wait_for(before):
                self.stepped_aside += 1
        except OSError:  # e.g. a full disk refuses the ticket's byte: SQLite orders this one
            self.stepped_aside += 1
            self.leave()

    def _wait_for(self, offset: int) -> bool:
        # The wait itself is a blocking lock request, which no timeout can interrupt: it runs
        # in a helper thread, and if it outlasts our patience we go on and leave it waiting.
        waiter = self._waiter
        if waiter is None or waiter.stuck:
            waiter = self._waiter = _Waiter(self.path)
        return waiter.wait(offset, self.patience)

    def leave(self) -> None:
        """Let the next writer in."""
        if self._held >= 0:
            held, self._held = self._held, -1
            try:
                _unlock(self._fd, held)
            except OSError:
                self.enabled = False

    def close(self) -> None:
        """Close the side file (which releases any byte still held)."""
        self._held = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None


class _Waiter:
    """A helper thread that waits on one byte at a time, with its own open file."""

    def __init__(self, path: str) -> None:
        import queue  # here: only contended writers need a thread
        import threading

        self._fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        self._requests: queue.SimpleQueue[tuple[int, threading.Event] | None] = queue.SimpleQueue()
        self.stuck = False
        self._thread = threading.Thread(target=self._run, name="jobq-turnstile", daemon=True)
        self._thread.start()

    def wait(self, offset: int, timeout: float) -> bool:
        """Whether the byte at `offset` was free within `timeout` seconds."""
        import threading

        done = threading.Event()
        self._requests.put((offset, done))
        if done.wait(timeout):
            return True
        self.stuck = True  # still waiting on a stopped predecessor: the next wait gets a new one
        self._requests.put(None)  # and this one ends once it is through
        return False

    def _run(self) -> None:
        fd = self._fd
        try:
            while (request := self._requests.get()) is not None:
                offset, done = request
                try:
                    fcntl.fcntl(fd, _SETLKW, _flock(fcntl.F_RDLCK, offset))  # type: ignore[arg-type]
                    _unlock(fd, offset)
                finally:
                    done.set()  # on an error too: the writer then goes on to SQLite's own lock
        finally:
            os.close(fd)

    def close(self) -> None:
        """End the thread once its current wait (if any) is over."""
        self._requests.put(None)

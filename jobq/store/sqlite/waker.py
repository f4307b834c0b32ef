"""Wake-ups on changes to a queue file, without busy polling.

Every commit by any process appends to the file's `-wal`. On Linux we watch the directory with
inotify (armed synchronously, so no change after construction is missed, and an idle waiter costs
no CPU at all); elsewhere watchfiles' notify backend does the same job. Callers always re-check
their condition after `wait()` returns: a wake-up is a hint, and a slow fallback timeout covers
anything a watcher cannot see.
"""

from __future__ import annotations

import os
import select
import sys
import time
from types import TracebackType

_IN_MODIFY = 0x00000002
_IN_CREATE = 0x00000100
_IN_MOVED_TO = 0x00000080
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


class Waker:
    """Wait until the queue file (or its WAL) changes, or a timeout passes."""

    def __init__(self, db_path: str) -> None:
        # SQLite writes the -wal beside the real file, not beside a symlink to it
        path = os.path.realpath(db_path)
        self._dir = os.path.dirname(path)
        base = os.path.basename(path)
        self._names = {base.encode(), (base + "-wal").encode()}
        self._patterns = [b"\0" + name + b"\0" for name in self._names]
        self._fd = -1
        self._rust: object | None = None
        if sys.platform.startswith("linux"):
            self._fd = _inotify_watch(self._dir)
        if self._fd < 0:
            self._rust = _rust_notify(self._dir)

    def __enter__(self) -> Waker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def fileno(self) -> int:
        """The inotify descriptor (for select), or -1 when another backend is in use."""
        return self._fd

    def close(self) -> None:
        """Stop watching."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._rust is not None:
            self._rust.close()  # type: ignore[attr-defined]
            self._rust = None

    def wait(self, timeout: float) -> bool:
        """Block until the queue file changes or `timeout` seconds pass; True on a change."""
        if self._fd >= 0:
            return self._wait_inotify(timeout)
        if self._rust is not None:
            result = self._rust.watch(0, 5, max(1, int(timeout * 1000)), None)  # type: ignore[attr-defined]
            if isinstance(result, set):
                return any(os.path.basename(p).encode() in self._names for _c, p in result)
            return False
        time.sleep(timeout)
        return False

    def drain(self) -> bool:
        """Consume pending events without blocking; True if one concerned the queue file."""
        return self._read_events() if self._fd >= 0 else False

    def _wait_inotify(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                ready, _, _ = select.select([self._fd], [], [], left)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select itself
                continue
            if ready and self._read_events():
                return True

    def _read_events(self) -> bool:
        # A busy file sends thousands of events a second, and a waiter that sleeps between looks
        # reads them all at once: find our names with one substring search per read (in C), not
        # by parsing every event. In the kernel's records a name is preceded by the last byte of
        # its length field (0: names are short) and padded with at least one NUL, so `\0NAME\0`
        # matches that name exactly (not `NAME-lock`, not `myNAME`).
        hit = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return hit
            if not hit:
                hit = any(p in data for p in self._patterns)


def _inotify_watch(directory: str) -> int:
    try:
        import ctypes

        # the interpreter's own symbols include libc's; ctypes.util.find_library would import
        # subprocess and run `ldconfig -p` at every start of a waiting command
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        if fd < 0:
            return -1
        wd = libc.inotify_add_watch(
            fd, os.fsencode(directory), _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO
        )
        if wd < 0:
            os.close(fd)
            return -1
        return fd
    except (OSError, AttributeError):
        return -1


def _rust_notify(directory: str) -> object | None:
    try:
        from watchfiles._rust_notify import RustNotify

        return RustNotify([directory], False, False, 300, False, True)
    except Exception:
        return None

"""Make sure that no process started for a command job outlives its attempt.

A command runs in its own session and process group. Three things take that tree down:

- **The worker child itself**, when the command ends (success, failure, or the worker being torn
  down): it kills the command's group, and, being a child subreaper (PR_SET_CHILD_SUBREAPER), it
  also inherits and kills every orphan that left the group (`setsid`, a double-forking daemon).
- **The supervisor**, on timeout, cancel or the child's death (jobq.pool kills the group it reads
  from the child's slot).
- **A guardian**: a small process per worker child, in its own session, started at the child's
  first command. It holds the read end of a pipe that only the child can write to, and a shared
  page where the child records the running command (its process group and a run marker). When
  the pipe reaches end-of-file, the child is dead, whoever killed it (a timeout, the supervisor's
  death through PDEATHSIG, `kill -9 -PGID` on the whole pool): if a command was running, the
  guardian kills its group, then every process of the same user whose environment carries the
  child's `_JOBQ_RUN` marker (what escaped the group and lost its subreaper with the child), and
  exits.

The guardian runs this file as a script (`python -I -S guardian.py …`), so this module imports
nothing from jobq. Linux only: elsewhere only the group kill at the end of a command is done.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
import os
import secrets
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable

_PR_SET_CHILD_SUBREAPER = 36
_STATE = struct.Struct("=qq")  # run sequence number (0: no command running), process group
SWEEP_BOUND = 2.0  # seconds the worker spends at most taking a finished command's tree down
MARKER = "_JOBQ_RUN"  # private: not one of the documented JOBQ_* variables


def load_prctl() -> Callable[..., int] | None:
    """libc's prctl on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
        return prctl
    except (OSError, AttributeError):
        return None


prctl = load_prctl()


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a process group; False when it has no member left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Tree:
    """The worker child's side: its guardian, and the clean-up after each command."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self.seq = 0
        self.sid = os.getsid(0)
        self._page: mmap.mmap | None = None
        self._pipe_w = -1
        self.guardian_pid = 0

    @classmethod
    def start(cls) -> Tree | None:
        """Start the guardian and become a child subreaper; None where that is impossible."""
        if prctl is None or not os.path.isdir("/proc/self/task"):
            return None
        tree = cls()
        try:
            tree._start_guardian()
        except OSError:
            tree.close()
            return None
        # after the guardian's launcher exited: the guardian must not become our orphan
        if prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            tree.close()
            return None
        return tree

    def _start_guardian(self) -> None:
        memfd = os.memfd_create("jobq-guardian", os.MFD_CLOEXEC)
        r, w = os.pipe()
        try:
            os.ftruncate(memfd, mmap.PAGESIZE)
            self._page = mmap.mmap(memfd, mmap.PAGESIZE)
            self._pipe_w = w
            # sh backgrounds the guardian and exits at once: the guardian is nobody's child in
            # this process (so our "any child left?" check stays one syscall) and lives in its
            # own session, out of reach of a signal to the pool's process group
            launcher = subprocess.Popen(
                ["/bin/sh", "-c", '"$@" &', "sh", sys.executable, "-I", "-S", __file__,
                 str(os.getpid()), str(r), str(memfd), self.token],
                pass_fds=(r, memfd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            if launcher.wait() != 0:
                raise OSError("cannot start the command guardian")
        finally:
            os.close(r)
            os.close(memfd)

    def close(self) -> None:
        """Let the guardian go (it exits on end-of-file without killing anything)."""
        if self._pipe_w >= 0:
            os.close(self._pipe_w)
            self._pipe_w = -1
        if self._page is not None:
            self._page.close()
            self._page = None

    def begin(self) -> str:
        """Record that a command is about to start; the _JOBQ_RUN marker for its environment."""
        self.seq += 1
        if self._page is not None:
            _STATE.pack_into(self._page, 0, self.seq, 0)
        return f"{self.token}-{self.seq}"

    def started(self, pgid: int) -> None:
        """Record the started command's process group."""
        if self._page is not None:
            _STATE.pack_into(self._page, 0, self.seq, pgid)

    def end(self) -> None:
        """Record that no command runs any more."""
        if self._page is not None:
            _STATE.pack_into(self._page, 0, 0, 0)

    def sweep(self, pgid: int, reap_leader: Callable[[], object]) -> None:
        """Kill what is left of a command whose leader has exited (and is not reaped yet, so
        that `pgid` cannot name another group), and wait until it is gone."""
        kill_group(pgid)
        reap_leader()
        deadline = time.monotonic() + SWEEP_BOUND
        while True:
            try:
                os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                orphans = self._foreign_children()
            except ChildProcessError:
                orphans = []  # no child at all: the usual case, one syscall
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill_group(os.getpgid(pid))
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            if not orphans and not kill_group(pgid, 0):
                return
            if time.monotonic() > deadline:
                return  # e.g. a process stuck in uninterruptible sleep: the guardian remains
            time.sleep(0.001)

    def _foreign_children(self) -> list[int]:
        """Our children in another session: orphans of commands re-parented to us (a Python
        handler's own children share our session and are left alone)."""
        out: list[int] = []
        try:
            tasks = os.listdir("/proc/self/task")
        except OSError:
            return out
        for tid in tasks:
            try:
                with open(f"/proc/self/task/{tid}/children", "rb") as f:
                    pids = [int(p) for p in f.read().split()]
            except OSError:
                continue
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if os.getsid(pid) != self.sid:
                        out.append(pid)
        return out


# ---- the guardian process -----------------------------------------------------------------------


def _marked(marker: bytes, uid: int, me: int) -> list[int]:
    """Pids of this user's processes with an environment entry that starts with `marker`
    (which starts with a NUL byte, as every entry but the first follows one)."""
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if marker in b"\0" + env:
            out.append(int(entry))
    return out


def guard(pipe_r: int, page: mmap.mmap, token: str) -> None:
    """Wait for the worker child's death; then take down the command it was running."""
    while True:
        try:
            if not os.read(pipe_r, 4096):
                break
        except InterruptedError:
            continue
    seq, pgid = _STATE.unpack_from(page, 0)
    if not seq:
        return
    if pgid > 0:
        kill_group(pgid)
    # what left the group: found by the marker its environment inherited (\0 ends every entry)
    marker = b"\0" + f"{MARKER}={token}-".encode()
    uid, me = os.getuid(), os.getpid()
    for _ in range(50):
        pids = _marked(marker, uid, me)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    """`guardian.py WORKER_PID PIPE_FD PAGE_FD TOKEN` (started by Tree, not by people)."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    _worker, pipe_r, page_fd, token = int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    page = mmap.mmap(page_fd, mmap.PAGESIZE)
    os.close(page_fd)
    guard(pipe_r, page, token)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Run one job of a command handler.

The command runs without a shell (argv was split shell-style when the handler was loaded), in a
new session so that its whole process group can be killed on timeout or cancel. The payload goes
to its stdin as JSON and nothing from the payload ever reaches its command line. Exit 0: stdout
is the result (JSON if it parses, else text). Non-zero: the last stderr line is the error and the
stderr tail is kept as the attempt's traceback; 100 fails the job now (no retry), 101 snoozes it
(jobq.control).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable, Sequence

from ..backend import absolute_location
from ..control import DEFAULT_SNOOZE, EXIT_FAIL_NOW, EXIT_SNOOZE, Snooze
from ..values import _reject_constant
from .executor import (
    OUTPUT_LIMIT,
    RESULT_LIMIT,
    Result,
    dropped_marker,
    one_line,
    truncated_result,
)
from .guardian import MARKER, Tree, kill_group, prctl

log = logging.getLogger("jobq.commands")

_PR_SET_PDEATHSIG = 1
PROGRESS_FD = 3  # where a command may write progress lines (JOBQ_PROGRESS_FD in its environment)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies; False elsewhere."""
    if prctl is None:
        return False
    return prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def stdout_to_result(data: bytes, truncated: bool) -> str | None:
    """The result JSON of a command's stdout: its JSON if it parses, else the text as a string."""
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return None
    if truncated:
        return truncated_result(text)
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:  # InvalidInput (NaN, Infinity) is one too
        value = text
    out = json.dumps(value, ensure_ascii=False)
    return truncated_result(out) if len(out) > RESULT_LIMIT else out


class _Tail:
    """The last `limit` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > 2 * self.limit:
            cut = len(self.data) - self.limit
            self.dropped += cut
            del self.data[:cut]

    def text(self) -> str | None:
        data = bytes(self.data[-self.limit :])
        dropped = self.dropped + len(self.data) - len(data)
        if not data and not dropped:
            return None
        text = data.decode("utf-8", "replace")
        return dropped_marker(dropped, "bytes") + text if dropped else text


class _Head:
    """The first `limit` bytes of a stream, and whether there was more."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk


def command_env(job_id: int, job_type: str, attempt: int, db_path: str) -> dict[str, str]:
    """The environment of a command: ours plus JOBQ_JOB_ID, JOBQ_JOB_TYPE, JOBQ_ATTEMPT, JOBQ_DB."""
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env["JOBQ_JOB_ID"] = str(job_id)
    env["JOBQ_JOB_TYPE"] = job_type
    env["JOBQ_ATTEMPT"] = str(attempt)
    env["JOBQ_DB"] = absolute_location(db_path)
    return env


_tree: Tree | None = None
_tree_pid = 0  # the process the tree belongs to


def _guard() -> Tree | None:
    """This process's Tree (guardian + subreaper), started at its first guarded command."""
    global _tree, _tree_pid
    if _tree_pid != os.getpid():
        _tree, _tree_pid = Tree.start(), os.getpid()
        if _tree is None and sys.platform.startswith("linux"):
            log.warning("no command guardian: a command's escaped processes may outlive it")
    return _tree


class _Command:
    """A started command: its pid (= its process group), its pipes, and its exit status;
    with `progress`, a pipe on its descriptor PROGRESS_FD too (`self.progress`, else -1)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], progress: bool = False) -> None:
        r0, self.stdin = os.pipe()
        self.stdout, w1 = os.pipe()
        self.stderr, w2 = os.pipe()
        actions: list[tuple[int, int] | tuple[int, int, int]] = [
            (os.POSIX_SPAWN_DUP2, r0, 0),
            (os.POSIX_SPAWN_DUP2, w1, 1),
            (os.POSIX_SPAWN_DUP2, w2, 2),
        ]
        ours = [r0, w1, w2]
        self.progress = -1
        if progress:
            self.progress, w3 = os.pipe()
            if w3 == PROGRESS_FD:  # dup2 onto itself would leave it close-on-exec
                w3, old = os.dup(w3), w3
                os.close(old)
            actions.append((os.POSIX_SPAWN_DUP2, w3, PROGRESS_FD))
            ours.append(w3)
        # our pipes are close-on-exec; any other fd left inheritable must not leak either
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()]
        try:
            # posix_spawn: a vfork-style start whose cost does not grow with this process's size
            self.pid = os.posix_spawnp(argv[0], list(argv), env, file_actions=actions, setsid=True)
        except BaseException:
            self.close()
            raise
        finally:
            for fd in ours:
                os.close(fd)
        self.returncode: int | None = None

    def wait(self) -> int:
        """Reap the command (blocking); its exit code, -N for signal N."""
        if self.returncode is None:
            while True:
                try:
                    _, status = os.waitpid(self.pid, 0)
                except InterruptedError:
                    continue
                except ChildProcessError:
                    status = 0  # reaped by someone else: unknown, as subprocess assumes
                break
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def close(self) -> None:
        """Close our ends of its pipes."""
        for name in ("stdin", "stdout", "stderr", "progress"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


def _inheritable_fds() -> list[int]:
    """Our file descriptors above 2 that an exec would hand down (normally none)."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return []
    out = []
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                if os.get_inheritable(fd):
                    out.append(fd)
    return out


def run_command(
    argv: Sequence[str],
    *,
    payload_json: str,
    env: dict[str, str],
    on_start: Callable[[int], None] | None = None,
    guard: bool = False,
    live: Callable[[str, bytes], None] | None = None,
    progress: Callable[[float, str | None], None] | None = None,
) -> Result:
    """Run `argv` with the payload on stdin; `on_start(pgid)` is called once it runs.

    When it exits, whatever is left in its process group is killed. With `guard` (worker
    children), this process also becomes its commands' subreaper and starts a guardian, so that
    processes that left the group die with the command too, and everything dies if this process
    is killed while the command runs (jobq.guardian). `live(stream, data)` receives what the
    command writes to its stdout and stderr as it comes (the worker's live output); with
    `progress`, the command may report progress on descriptor PROGRESS_FD (its environment says
    which: JOBQ_PROGRESS_FD), one line each: `0.4 40 of 100 resized` (or `40% …`).
    """
    tree = _guard() if guard else None
    if tree is not None:
        env = {**env, MARKER: tree.begin()}
    if progress is not None:
        env = {**env, "JOBQ_PROGRESS_FD": str(PROGRESS_FD)}
    try:
        cmd = _Command(argv, env, progress is not None)
    except OSError as e:
        if tree is not None:
            tree.end()
        return Result(False, error=f"cannot run {argv[0]!r}: {e.strerror or e}")
    if tree is not None:
        tree.started(cmd.pid)
    if on_start is not None:
        on_start(cmd.pid)  # a new session: the process group id is the pid
    stdout, stderr = _Head(RESULT_LIMIT + 1), _Tail(OUTPUT_LIMIT)

    def take_down() -> None:
        # the command has exited but is not reaped: its pid still names its group
        if cmd.returncode is None:
            if tree is not None:
                tree.sweep(cmd.pid, cmd.wait)
            else:
                kill_group(cmd.pid)
                cmd.wait()

    try:
        _pump(cmd, payload_json.encode("utf-8"), stdout, stderr, take_down, live,
              None if progress is None else _ProgressLines(progress).add)  # fmt: skip
        if cmd.returncode is None:
            _wait_exited(cmd.pid)  # it closed its pipes but runs on
        take_down()
    finally:
        cmd.close()
        if cmd.returncode is None:  # we are being torn down: take the tree with us
            kill_group(cmd.pid)
            take_down()
        if tree is not None:
            tree.end()
    rc = cmd.wait()
    err_text = stderr.text()
    if rc == 0:
        result = stdout_to_result(bytes(stdout.data), stdout.truncated)
        return Result(True, result_json=result, output=err_text)
    if rc == EXIT_SNOOZE:
        seconds = snooze_seconds(bytes(stdout.data))
        return Result(False, error=f"snoozed for {seconds:g}s", output=err_text, snooze=seconds)
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        error = f"command killed by signal {-rc} ({name})"
    else:
        error = f"command exited with status {rc}"
    last = one_line(err_text or "")
    if last:
        error += f": {last}"
    out_text = bytes(stdout.data).decode("utf-8", "replace") or None
    return Result(False, error=error, traceback=err_text, output=out_text,
                  retryable=rc != EXIT_FAIL_NOW)  # fmt: skip


def snooze_seconds(stdout: bytes) -> float:
    """The seconds a snoozing command asked for: its stdout's first line, else the default (also
    for a line that is not a number of seconds jobq.Snooze accepts)."""
    first = stdout.decode("utf-8", "replace").strip().split("\n", 1)[0].strip()
    try:
        return Snooze(float(first)).seconds
    except ValueError:
        return DEFAULT_SNOOZE


class _ProgressLines:
    """A command's progress reports, one line each (`0.4 message` or `40% message`); a line
    that is not one is ignored (the command's output is untrusted)."""

    MAX_LINE = 4096

    def __init__(self, report: Callable[[float, str | None], None]) -> None:
        self.report = report
        self.buf = b""

    def add(self, chunk: bytes) -> None:
        *lines, self.buf = (self.buf + chunk).split(b"\n")
        if len(self.buf) > self.MAX_LINE:
            self.buf = b""
        for line in reversed(lines):  # only the newest counts
            parsed = parse_progress(line)
            if parsed is not None:
                self.report(*parsed)
                return


def parse_progress(line: bytes) -> tuple[float, str | None] | None:
    """A progress line of a command, checked; None if it is not one."""
    from ..liveoutput import check_progress

    word, _, message = line.decode("utf-8", "replace").strip().partition(" ")
    try:
        fraction = float(word[:-1]) / 100 if word.endswith("%") else float(word)
        return check_progress(fraction, message.strip() or None)
    except ValueError:
        return None


def _tee(
    sink: Callable[[bytes], None], live: Callable[[str, bytes], None], stream: str
) -> Callable[[bytes], None]:
    def both(chunk: bytes) -> None:
        sink(chunk)
        live(stream, chunk)

    return both


def _wait_exited(pid: int) -> None:
    """Block until the command exits, without reaping it."""
    while True:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


def _exited(pid: int) -> bool:
    """Whether the command has exited, without reaping it (its pid must keep naming its group)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pump(
    cmd: _Command,
    data: bytes,
    stdout: _Head,
    stderr: _Tail,
    on_exit: Callable[[], None],
    live: Callable[[str, bytes], None] | None = None,
    progress: Callable[[bytes], None] | None = None,
) -> None:
    """Feed stdin and collect stdout/stderr until the command exits and its pipes are drained;
    `on_exit()` as soon as it exits (what it left behind could hold the pipes open)."""
    sel = selectors.DefaultSelector()
    sinks: dict[int, Callable[[bytes], None]] = {cmd.stdout: stdout.add, cmd.stderr: stderr.add}
    if live is not None:
        sinks = {cmd.stdout: _tee(stdout.add, live, "stdout"),
                 cmd.stderr: _tee(stderr.add, live, "stderr")}  # fmt: skip
    if progress is not None and cmd.progress >= 0:
        sinks[cmd.progress] = progress
    for fd in sinks:
        sel.register(fd, selectors.EVENT_READ)
    view = memoryview(data)
    if view:
        os.set_blocking(cmd.stdin, False)
        sel.register(cmd.stdin, selectors.EVENT_WRITE)
    else:
        os.close(cmd.stdin)
        cmd.stdin = -1
    pidfd = -1
    try:
        pidfd = os.pidfd_open(cmd.pid)
        sel.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pass
    exited_at: float | None = None
    try:
        while sinks or (view and cmd.stdin >= 0):
            timeout = 0.1 if pidfd < 0 else None
            if exited_at is not None:
                # a process out of our reach may hold the pipes open: drain briefly only
                timeout = 0.2 - (time.monotonic() - exited_at)
                if timeout <= 0:
                    break
            for key, _ in sel.select(timeout):
                fd = int(key.fd)
                if fd == pidfd:
                    sel.unregister(pidfd)
                    on_exit()
                    exited_at = time.monotonic()
                elif fd == cmd.stdin:
                    try:
                        n = os.write(fd, view[:65536])
                    except BrokenPipeError:
                        n = len(view)  # the command does not read its stdin: fine
                    view = view[n:]
                    if not view:
                        sel.unregister(fd)
                        os.close(fd)
                        cmd.stdin = -1
                else:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        sinks[fd](chunk)
                    else:
                        sel.unregister(fd)
                        del sinks[fd]
            if pidfd < 0 and exited_at is None and _exited(cmd.pid):
                on_exit()
                exited_at = time.monotonic()
    finally:
        sel.close()
        if pidfd >= 0:
            os.close(pidfd)

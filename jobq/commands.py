"""Run one job of a command handler.

The command runs without a shell (argv was split shell-style when the handler was loaded), in a
new session so that its whole process group can be killed on timeout or cancel. The payload goes
to its stdin as JSON and nothing from the payload ever reaches its command line. Exit 0: stdout
is the result (JSON if it parses, else text). Non-zero: the last stderr line is the error and the
stderr tail is kept as the attempt's traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from .executor import OUTPUT_LIMIT, RESULT_LIMIT, Result, one_line

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
        return prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies; False elsewhere."""
    if _prctl is None:
        return False
    return _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def stdout_to_result(data: bytes, truncated: bool) -> str | None:
    """The result JSON of a command's stdout: its JSON if it parses, else the text as a string."""
    text = data.decode("utf-8", "replace").strip()
    if not text:
        return None
    if truncated:
        return json.dumps(
            {"truncated": True, "chars": len(text), "head": text[:1024]}, ensure_ascii=False
        )
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        value = text
    out = json.dumps(value, ensure_ascii=False)
    if len(out) > RESULT_LIMIT:
        out = json.dumps({"truncated": True, "chars": len(out), "head": out[:1024]})
    return out


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
        return f"[… {dropped:,} earlier bytes dropped]\n{text}" if dropped else text


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
    env["JOBQ_DB"] = os.path.abspath(db_path)
    return env


def run_command(
    argv: Sequence[str],
    *,
    payload_json: str,
    env: dict[str, str],
    on_start: Callable[[int], None] | None = None,
) -> Result:
    """Run `argv` with the payload on stdin; `on_start(pgid)` is called once it runs."""
    parent = os.getpid()

    def child_setup() -> None:  # runs in the forked child before exec; this worker has no threads
        set_parent_death_signal()
        if os.getppid() != parent:  # our worker died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
            close_fds=True,
            preexec_fn=child_setup if _prctl is not None else None,
        )
    except OSError as e:
        return Result(False, error=f"cannot run {argv[0]!r}: {e.strerror or e}")
    if on_start is not None:
        on_start(proc.pid)  # start_new_session: the process group id is the pid
    stdout, stderr = _Head(RESULT_LIMIT + 1), _Tail(OUTPUT_LIMIT)
    try:
        _pump(proc, payload_json.encode("utf-8"), stdout, stderr)
        rc = proc.wait()
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if proc.returncode is None:  # we are being torn down: take the group with us
            _kill_group(proc.pid)
            proc.wait()
    err_text = stderr.text()
    if rc == 0:
        result = stdout_to_result(bytes(stdout.data), stdout.truncated)
        return Result(True, result_json=result, output=err_text)
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
    return Result(False, error=error, traceback=err_text, output=out_text)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _pump(proc: subprocess.Popen[bytes], data: bytes, stdout: _Head, stderr: _Tail) -> None:
    """Feed stdin and collect stdout/stderr until the command exits and its pipes are drained."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    sel = selectors.DefaultSelector()
    sinks: dict[int, Callable[[bytes], None]] = {
        proc.stdout.fileno(): stdout.add,
        proc.stderr.fileno(): stderr.add,
    }
    for fd in sinks:
        sel.register(fd, selectors.EVENT_READ)
    stdin_fd = proc.stdin.fileno()
    view = memoryview(data)
    if view:
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    pidfd = -1
    try:
        pidfd = os.pidfd_open(proc.pid)
        sel.register(pidfd, selectors.EVENT_READ)
    except (AttributeError, OSError):
        pass
    exited_at: float | None = None
    try:
        while sinks or (view and not proc.stdin.closed):
            # after the command exits, a grandchild may hold its pipes open: drain briefly only
            timeout = 0.1 if pidfd < 0 else None
            if exited_at is not None:
                timeout = 0.2 - (time.monotonic() - exited_at)
                if timeout <= 0:
                    break
            for key, _ in sel.select(timeout):
                fd = int(key.fd)
                if fd == pidfd:
                    sel.unregister(pidfd)
                    exited_at = time.monotonic()
                elif fd == stdin_fd:
                    try:
                        n = os.write(fd, view[:65536])
                    except BrokenPipeError:
                        n = len(view)  # the command does not read its stdin: fine
                    view = view[n:]
                    if not view:
                        sel.unregister(fd)
                        proc.stdin.close()
                else:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        sinks[fd](chunk)
                    else:
                        sel.unregister(fd)
                        del sinks[fd]
            if pidfd < 0 and exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
    finally:
        sel.close()
        if pidfd >= 0:
            os.close(pidfd)
        if not proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()

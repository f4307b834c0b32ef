"""Run one job of a Python handler: call it, capture its output, turn its value into a result.

The timeout of an attempt is not enforced here: the supervisor kills the whole child process
when a job overruns (a Python thread cannot be interrupted safely in the middle of C code).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from ..control import Fail, Snooze
from ..handlers import HandlerFunc
from ..model import Job

OUTPUT_LIMIT = 64 * 1024  # characters of captured output kept per attempt (the last ones)
RESULT_LIMIT = 64 * 1024  # characters of result JSON kept; above it, a truncation marker
TRACEBACK_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Result:
    """How one attempt ended, as the worker records it."""

    ok: bool
    result_json: str | None = None
    error: str | None = None
    traceback: str | None = None
    output: str | None = None
    retryable: bool = True  # False: jobq.Fail, the job fails now whatever attempts are left
    snooze: float | None = None  # jobq.Snooze: due again in this many seconds, not counted


def dropped_marker(count: int, unit: str) -> str:
    """The line that opens a kept tail: `[… 1,234 earlier bytes dropped]` (or characters)."""
    return f"[… {count:,} earlier {unit} dropped]\n"


def truncated_result(text: str) -> str:
    """The result JSON standing in for `text` over the size limit: its size and first characters."""
    return json.dumps(
        {"truncated": True, "chars": len(text), "head": text[:1024]}, ensure_ascii=False
    )


class TailBuffer(io.TextIOBase):
    """A text stream that keeps only the last `limit` characters written to it."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        super().__init__()
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self._parts.append(s)
        self._size += len(s)
        if self._size > 2 * self.limit:
            self._compact()
        return len(s)

    def _compact(self) -> None:
        text = "".join(self._parts)
        cut = len(text) - self.limit
        if cut > 0:
            self._dropped += cut
            text = text[cut:]
        self._parts = [text]
        self._size = len(text)

    def reset(self) -> None:
        """Forget everything written so far."""
        self._parts.clear()
        self._size = 0
        self._dropped = 0

    def getvalue(self) -> str | None:
        """The kept text (None when nothing was written), saying how much was dropped."""
        if not self._size:
            return None
        self._compact()
        text = self._parts[0] if self._parts else ""
        return dropped_marker(self._dropped, "characters") + text if self._dropped else text


def result_to_json(value: object, limit: int = RESULT_LIMIT) -> str | None:
    """The result JSON of a return value; None stays None. Raises TypeError/ValueError when the
    value is not JSON (an object, NaN...). A result over `limit` characters is replaced by a
    marker object holding its size and first characters."""
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return truncated_result(text) if len(text) > limit else text


def one_line(text: str, limit: int = 500) -> str:
    """The last non-empty line of `text`, cut to `limit` characters."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _kept_traceback() -> str:
    """The traceback of the exception being handled, its tail kept within the limit."""
    tb = traceback.format_exc()
    if len(tb) > TRACEBACK_LIMIT:
        tb = dropped_marker(len(tb) - TRACEBACK_LIMIT, "characters") + tb[-TRACEBACK_LIMIT:]
    return tb


class _Tee(io.TextIOBase):
    """One of a handler's text streams: into the attempt's kept tail, and its live output."""

    def __init__(self, buffer: TailBuffer, stream: str) -> None:
        super().__init__()
        self.buffer_ = buffer
        self.stream = stream
        self.live: Callable[[str, str], None] | None = None

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        n = self.buffer_.write(s)
        if self.live is not None and s:
            self.live(self.stream, s)
        return n


class Executor:
    """Runs Python handlers in this process with stdout, stderr and logging captured.

    What is captured: whatever Python code writes to `sys.stdout` / `sys.stderr` (print, the
    handler's threads too) and every `logging` record that reaches the root logger. Not captured:
    writes to the file descriptors 1 and 2 themselves (a subprocess the handler starts without
    redirecting it, C extensions, `os.write(1, …)`): they go to the pool's own stdout/stderr.
    """

    def __init__(self) -> None:
        self._buffer = TailBuffer()
        self._out, self._err, self._log = (_Tee(self._buffer, name)
                                           for name in ("stdout", "stderr", "log"))  # fmt: skip
        self._log_handler = logging.StreamHandler(self._log)
        self._log_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def run(
        self, func: HandlerFunc, job: Job, live: Callable[[str, str], None] | None = None
    ) -> Result:
        """Call `func(payload, job)` and say how it went; `live(stream, text)` receives its
        output as it is written."""
        buf = self._buffer
        buf.reset()
        self._out.live = self._err.live = self._log.live = live
        root = logging.getLogger()
        root.addHandler(self._log_handler)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self._out, self._err
        try:
            value = func(job.payload, job)
        except Fail as e:  # the handler says: no point retrying
            return Result(False, error=one_line(str(e)) or "failed (jobq.Fail)",
                          traceback=_kept_traceback(), output=buf.getvalue(),
                          retryable=False)  # fmt: skip
        # BaseException: a handler's KeyboardInterrupt, GeneratorExit, CancelledError or own
        # subclass fails its attempt like any error (the child ignores SIGINT, so none of these
        # comes from outside); letting one kill the child would make a poison pill of it
        except BaseException as e:
            tb = _kept_traceback()
            summary = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            return Result(False, error=one_line(summary), traceback=tb, output=buf.getvalue())
        finally:
            sys.stdout, sys.stderr = saved
            root.removeHandler(self._log_handler)
            self._out.live = self._err.live = self._log.live = None
        if isinstance(value, Snooze):
            return Result(False, error=f"snoozed for {value.seconds:g}s", output=buf.getvalue(),
                          snooze=value.seconds)  # fmt: skip
        try:
            result_json = result_to_json(value)
        except (TypeError, ValueError) as e:
            return Result(
                False,
                error=f"handler returned a value that is not JSON-serialisable: {e}",
                output=buf.getvalue(),
            )
        return Result(True, result_json=result_json, output=buf.getvalue())

"""Handlers for the chaos, reliability and hostile-input tests: `jobq work --app tests.chaosapp`.

Each handler takes what it needs from its payload, so one pool serves every test.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import jobq

# Escape sequences and markup that must never reach a terminal raw (test_hostile.py).
CSI = "\x1b[2J"  # clear screen
OSC0_BEL = "\x1b]0;pwned-title\x07"  # window title, BEL-terminated
OSC8_ST = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # hyperlink, ST-terminated
OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # write the clipboard
DCS = "\x1bP1$tpwned\x1b\\"  # device control string
C1_CSI = "\x9b31m"  # 8-bit CSI
CONTROLS = "bell\x07 back\x08 cr\r nul\x00"
BIDI = "abc\u202edcba\u2066iso\u2069"
MARKUP = "[@click=app.quit]click me[/] [link=https://x]link[/link] [/] [bold]x[/bold] trailing\\"
HOSTILE = " ".join([CSI, OSC0_BEL, OSC8_ST, OSC52, DCS, C1_CSI, CONTROLS, BIDI, MARKUP])

# Raw sequences whose presence in terminal bytes means an injection got through.
RAW_SEQUENCES = {
    "CSI 2J": b"\x1b[2J",
    "OSC 0": b"\x1b]0;pwned",
    "OSC 8": b"\x1b]8;;https://evil",
    "OSC 52": b"\x1b]52;",
    "DCS": b"\x1bP1$t",
    "C1 CSI": "\x9b".encode(),  # U+009B encoded as UTF-8 (C2 9B)
    "C1 CSI raw": b"\x9b31m",
    "BEL": b"bell\x07",
    "BS": b"back\x08",
    "NUL": b"nul\x00",
    "RLO": "\u202e".encode(),
    "LRI": "\u2066".encode(),
}


def _append_line(path: str, line: str) -> None:
    """Append one line durably: O_APPEND, one write, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@jobq.handler("chaos.ledger")
def ledger(payload: dict[str, object], job: jobq.Job) -> dict[str, object]:
    """Record (job id, attempt, pid) in the ledger, then work for a moment."""
    _append_line(str(payload["ledger"]), f"{job.id} {job.attempts} {os.getpid()}\n")
    time.sleep(float(payload.get("sleep", 0.0)))  # type: ignore[arg-type]
    return {"pid": os.getpid()}


@jobq.handler("chaos.sleep")
def sleep(payload: dict[str, object], job: jobq.Job) -> dict[str, object]:
    """Sleep, recording the start in the ledger (if any) so the test knows who runs what."""
    if payload.get("ledger"):
        _append_line(str(payload["ledger"]), f"{job.id} {job.attempts} {os.getpid()}\n")
    time.sleep(float(payload.get("seconds", 1.0)))  # type: ignore[arg-type]
    return {"pid": os.getpid(), "attempt": job.attempts}


@jobq.handler("chaos.hostile", max_attempts=1)
def hostile(payload: dict[str, object], job: jobq.Job) -> None:
    """Print hostile text and fail with hostile text in the error and traceback."""
    print(HOSTILE)
    print(HOSTILE, file=sys.stderr)
    raise RuntimeError(HOSTILE)


@jobq.handler("chaos.echo")
def echo(payload: dict[str, object], job: jobq.Job) -> object:
    """Print hostile text and return the payload as the result."""
    print(HOSTILE)
    return payload


@jobq.handler("chaos.bigtrace", max_attempts=1)
def bigtrace(payload: dict[str, object], job: jobq.Job) -> None:
    """Fail with a huge multi-line error (a 50,000-line traceback)."""
    lines = int(payload.get("lines", 50_000))  # type: ignore[call-overload]
    raise RuntimeError("\n".join(f"line {i} of a very long error" for i in range(lines)))


@jobq.handler("chaos.suicide")
def suicide(payload: dict[str, object], job: jobq.Job) -> None:
    """SIGKILL the worker child running this job on its first attempt (a poison pill once)."""
    if job.attempts == 1:
        os.kill(os.getpid(), signal.SIGKILL)


@jobq.handler("chaos.mark")
def mark(payload: dict[str, object], job: jobq.Job) -> None:
    """Record (job id, attempt, pid) in the ledger without fsync: an instant job."""
    with open(str(payload["ledger"]), "a") as f:
        f.write(f"{job.id} {job.attempts} {os.getpid()}\n")


class _OwnStop(BaseException):
    """A handler's own BaseException subclass."""


def _base_kinds() -> list[BaseException]:
    import asyncio

    return [KeyboardInterrupt(), GeneratorExit(), asyncio.CancelledError(), SystemExit(3),
            _OwnStop("own")]  # fmt: skip


@jobq.handler("chaos.base")
def base(payload: dict[str, object], job: jobq.Job) -> dict[str, object]:
    """Like chaos.ledger, but the first attempt raises a BaseException (kind by job id)."""
    _append_line(str(payload["ledger"]), f"{job.id} {job.attempts} {os.getpid()}\n")
    if job.attempts == 1:
        raise _base_kinds()[job.id % 5]
    return {"pid": os.getpid()}

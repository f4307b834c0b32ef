"""Handlers for the dependency tests (`jobq work --app tests.depsapp`).

`deps.step` appends `start ID ATTEMPT TIME` and, when it returns, `end ID ATTEMPT TIME` to the
ledger named in its payload (one short O_APPEND write each, so lines never interleave), sleeps
`sleep` seconds between them (`sleep_first`: only on the first attempt) and raises when `fail`
is true.
"""

from __future__ import annotations

import os
import time

import jobq


def _line(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@jobq.handler("deps.step", max_attempts=1)
def step(payload: dict[str, object], job: jobq.Job) -> None:
    """Record the start, work for a moment, record the end (or fail)."""
    ledger = str(payload["ledger"])
    _line(ledger, f"start {job.id} {job.attempts} {time.time():.6f}\n")
    pause = float(payload.get("sleep", 0.0))  # type: ignore[arg-type]
    if job.attempts == 1:
        pause += float(payload.get("sleep_first", 0.0))  # type: ignore[arg-type]
    time.sleep(pause)
    if payload.get("fail"):
        raise RuntimeError(f"step {job.id} fails on purpose")
    _line(ledger, f"end {job.id} {job.attempts} {time.time():.6f}\n")

"""Handlers for the benchmark's pools: `jobq work --app jobq_app` (bench/ is on PYTHONPATH)."""

from __future__ import annotations

import os
import time

import jobq


@jobq.handler("noop")
def noop(payload: object, job: jobq.Job) -> None:
    """Do nothing: measures the queue, not the work."""


@jobq.handler("stamp")
def stamp(payload: dict[str, object], job: jobq.Job) -> None:
    """Record enqueue→start latency: CLOCK_MONOTONIC is system-wide, so it compares across
    processes with the `t` the producer read just before enqueueing."""
    started = time.monotonic()
    out = os.path.join(str(payload["out"]), f"stamp-{os.getpid()}.txt")
    with open(out, "a") as f:
        f.write(f"{payload['i']} {started - float(payload['t']):.6f}\n")  # type: ignore[arg-type]


@jobq.handler("flaky")
def flaky(payload: object, job: jobq.Job) -> None:
    """Fail the first attempt (the retry is due after the 5 s backoff), succeed the second."""
    if job.attempts == 1:
        raise RuntimeError("first attempt fails")

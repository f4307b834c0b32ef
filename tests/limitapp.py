"""Handlers for tests/test_limits.py: each run appends `start T ID` and `end T ID` (T: time.time(),
one clock for every pool on this machine) to the ledger named in the payload, with O_APPEND (one
short write is atomic), and sleeps payload["seconds"] in between."""

from __future__ import annotations

import os
import time

import jobq
from jobq.model import JSONValue


def _mark(payload: JSONValue, job: jobq.Job, what: str) -> None:
    assert isinstance(payload, dict) and isinstance(payload["ledger"], str)
    fd = os.open(payload["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{what} {time.time():.6f} {job.id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _run(payload: JSONValue, job: jobq.Job) -> None:
    assert isinstance(payload, dict)
    _mark(payload, job, "start")
    seconds = payload.get("seconds", 0)
    assert isinstance(seconds, (int, float))
    time.sleep(float(seconds))
    _mark(payload, job, "end")


@jobq.handler("limited")
def limited(payload: JSONValue, job: jobq.Job) -> None:
    """A job of the type the tests limit."""
    _run(payload, job)


@jobq.handler("free")
def free(payload: JSONValue, job: jobq.Job) -> None:
    """A job no limit applies to (unless a queue limit does)."""
    _run(payload, job)

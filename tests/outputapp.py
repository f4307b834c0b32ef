"""Handlers of the live-output tests (`--app tests.outputapp`): they write output, report
progress, and wait for a gate file the test creates (named in the payload's "gate")."""

from __future__ import annotations

import logging
import os
import sys
import time

import jobq
from jobq.model import JSONValue


def _gate(payload: JSONValue, timeout: float = 60.0) -> None:
    assert isinstance(payload, dict) and isinstance(payload.get("gate"), str)
    deadline = time.monotonic() + timeout
    while not os.path.exists(payload["gate"]):
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.02)


@jobq.handler("out.py")
def out_py(payload: JSONValue, job: jobq.Job) -> str:
    """Print, log, report progress; wait for the gate; print again and report the end."""
    print("py line 1")
    print("py err 1", file=sys.stderr)
    logging.getLogger("resizer").warning("a log record")
    job.progress(0.4, "40 of 100 resized")
    _gate(payload)
    print("py line 2")
    job.progress(1.0, "done")
    return "ok"


@jobq.handler("out.big")
def out_big(payload: JSONValue, job: jobq.Job) -> None:
    """Print `lines` numbered lines of 100 characters, then THE END."""
    assert isinstance(payload, dict)
    n = payload["lines"]
    assert isinstance(n, int)
    for i in range(n):
        sys.stdout.write(f"{i:09d} " + "x" * 89 + "\n")
    print("THE END")


@jobq.handler("out.ctl")
def out_ctl(payload: JSONValue, job: jobq.Job) -> None:
    """Print control characters: an ESC colour sequence, a tab, a bell, a CR."""
    print("\x1b[31mred\x1b[0m\tafter-tab\x07bell\rcr")


@jobq.handler("out.forever")
def out_forever(payload: JSONValue, job: jobq.Job) -> None:
    """Print a numbered line every 50 ms until the gate opens."""
    assert isinstance(payload, dict) and isinstance(payload.get("gate"), str)
    i = 0
    while not os.path.exists(payload["gate"]):
        print(f"tick {i}")
        i += 1
        time.sleep(0.05)


@jobq.handler("out.snooze")
def out_snooze(payload: JSONValue, job: jobq.Job) -> object:
    """Print, wait for the gate, then snooze for an hour (the attempt is given back)."""
    print("before the snooze")
    _gate(payload)
    return jobq.Snooze(3600)

"""Waiting for jobs to finish (`Queue.wait`, `jobq wait`) without slowing the workers down.

A busy pool commits thousands of times a second, and every commit wakes every waiter: a waiter
that read its jobs at each one cost about as much CPU as the pool itself. So a waiter reads the
states of the jobs still open (`Backend.states`: no payloads) at most once per `step` while
commits keep coming — the step starts at WAIT_FIRST_STEP and doubles up to WAIT_MAX_STEP, and
the commits in between cost nothing — and not at all when the change token says that nothing
was committed since its last read. Jobs that are finished already cost one read and no waker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .basics import FINISHED_STATES
from .errors import JobNotFound, TemporaryFailure, WaitTimeout

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: CLI start-up
if TYPE_CHECKING:
    from .backend import Backend
    from .model import Job

WAIT_FIRST_STEP = 0.002  # seconds from a wake-up to the read, the first time
WAIT_MAX_STEP = 0.25  # and at most, while commits keep coming
WAIT_FALLBACK = 1.0  # look at least this often, whatever the waker says
# A commit's WAL write (what wakes us) comes before the commit is visible: until the change
# token moves, or for this long, keep looking at the step's pace instead of waiting for an event.
WAIT_SETTLE = 0.25


def wait_for(
    backend: Backend, ids: Sequence[int], timeout: float | None, location: str
) -> list[Job]:
    """Block until every job of `ids` is finished; return them in that order.

    Raises WaitTimeout after `timeout` seconds, JobNotFound for an id not in the queue.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    unique = sorted(set(ids))
    open_ids = _still_open(backend, unique, location)
    if not open_ids:  # finished already: no waker to set up (a shell loop's common case)
        done = _all_finished(backend, ids)
        if done is not None:
            return done
        open_ids = unique
    token: int | None = None
    step = WAIT_FIRST_STEP
    woken_at: float | None = None  # a wake-up whose commit we have not read yet
    with backend.waker() as waker:  # armed before the read that decides to sleep
        while True:
            try:
                now_token = backend.change_token()
                if now_token != token:
                    token, woken_at = now_token, None
                    open_ids = _still_open(backend, open_ids, location)
                    if not open_ids:
                        done = _all_finished(backend, ids)
                        if done is not None:
                            return done
                        open_ids = _still_open(backend, unique, location)  # one was retried
                        continue
            except TemporaryFailure:
                # away for a while (a server restarting): the waker reconnects and wakes us;
                # an outage that outlasts the timeout is said as it is (exit 75)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise
                waker.wait(WAIT_FALLBACK if left is None else min(WAIT_FALLBACK, left))
                token = None
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"timed out waiting for job {open_ids[0]}")
            if waker.drain():
                # commits since the last look: read once `step` has passed (below)
                woken_at = time.monotonic() if woken_at is None else woken_at
            elif woken_at is None or time.monotonic() - woken_at > WAIT_SETTLE:
                # nothing new: sleep until a process commits (the waker sees its WAL write)
                woken_at = None
                if not waker.wait(WAIT_FALLBACK if left is None else min(WAIT_FALLBACK, left)):
                    continue
                woken_at = time.monotonic()
            # let the commits of a busy pool pile up for `step`: one read for all of them
            time.sleep(step if left is None else min(step, left))
            step = min(step * 2, WAIT_MAX_STEP)


def _all_finished(backend: Backend, ids: Sequence[int]) -> list[Job] | None:
    """The jobs, in the order of `ids`, if every one is finished; else None."""
    jobs = backend.get_many(ids)
    if len(jobs) < len(set(ids)) or any(j.state not in FINISHED_STATES for j in jobs):
        return None
    by_id = {j.id: j for j in jobs}
    return [by_id[i] for i in ids]


def _still_open(backend: Backend, ids: Sequence[int], location: str) -> list[int]:
    """Those of `ids` not finished yet (JobNotFound for one that does not exist)."""
    states = backend.states(ids)
    if len(states) < len(ids):
        missing = sorted(set(ids) - set(states))
        raise JobNotFound(f"no job {missing[0]} in {location}")
    return [i for i in ids if states[i] not in FINISHED_STATES]

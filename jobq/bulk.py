"""Bulk enqueue (`Queue.enqueue_many`, `jobq enqueue --ndjson`): runs of jobs, and reading a large
batch on a helper thread while its transaction inserts what has been read.

A run is (template, payloads, count): `count` jobs with every field of `template` but the payload,
whose payloads are the elements of the JSON array text `payloads` (see the backend's
`enqueue_runs`). Building runs (validating, serialising) is Python; inserting them is the
database's work, during which SQLite (and psycopg, waiting for the server) release the GIL. So a
batch of at least PIPELINE_FROM jobs is built in chunks on a helper thread while this one inserts
the chunks built: the two share the cores of a small machine (50,000 jobs: 0.23 -> 0.17 s). It is
one transaction still: all or nothing, whatever fails on either side.
"""

from __future__ import annotations

import queue
import threading

from .basics import NewJob, runs_of
from .errors import InvalidInput

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from .queue import Queue

    Run = tuple[NewJob, str, int]

PIPELINE_FROM = 8192
FIRST_CHUNK = 2048  # small: the inserting starts early
MAX_CHUNK = 16384

_DONE = object()


class _GiveUp(Exception):
    """`build` could not make runs of a chunk: roll back, and let the caller take the batch."""


def chunks(n: int) -> Iterator[tuple[int, int]]:
    """(start, end) of the chunks of n items: a small first one, then a quarter of what is left
    (at most MAX_CHUNK), so that what is inserted after the last chunk is built is small too."""
    size, start = FIRST_CHUNK, 0
    while start < n:
        yield start, min(start + size, n)
        start += size
        size = max(FIRST_CHUNK, min(MAX_CHUNK, (n - start) // 4))


def pipelined(
    q: Queue, build: Callable[[int, int], list[Run] | None], n: int, now: float
) -> list[int] | None:
    """Insert the runs that `build(start, end)` makes of each chunk of n items, built on a helper
    thread while this one inserts, in one durable transaction; return the new ids in order.

    `build` returns None where it cannot make runs of a chunk (the caller's slower path must
    take the batch): then nothing is written and this returns None. An exception it raises
    rolls the transaction back and is raised here. Returns only once the helper has stopped.
    """
    box: queue.SimpleQueue[object] = queue.SimpleQueue()
    stop = threading.Event()

    def builder() -> None:
        try:
            for start, end in chunks(n):
                if stop.is_set():
                    return
                runs = build(start, end)
                if runs is None:
                    box.put(None)
                    return
                for run in runs:
                    box.put(run)
            box.put(_DONE)
        except BaseException as e:  # the inserting thread raises it (and rolls back)
            box.put(e)

    helper = threading.Thread(target=builder, name="jobq-bulk-builder", daemon=True)

    def runs() -> Iterator[Run]:
        # The helper starts once the transaction is open: opening it (the turnstile, BEGIN)
        # waits on system calls, each of which would hand the GIL to the helper.
        helper.start()
        while (item := box.get()) is not _DONE:
            if item is None:
                raise _GiveUp
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    try:
        return q.insert_runs(runs(), now)
    except _GiveUp:
        return None
    finally:
        stop.set()  # an insert that failed: the helper stops after its chunk
        if helper.ident is not None:
            helper.join()


def enqueue_many(q: Queue, jobs: Iterable[object], now: float) -> list[int]:
    """`Queue.enqueue_many`: a list or tuple of at least PIPELINE_FROM items is pipelined, unless
    an item has a unique key or dependencies (each looks up jobs: `Queue.insert`'s work)."""
    if isinstance(jobs, (list, tuple)) and len(jobs) >= PIPELINE_FROM:
        items = jobs

        def build(start: int, end: int) -> list[Run] | None:
            built = _built(q, items[start:end], now, start)
            if any(j.unique_key is not None or j.after for j in built):
                return None
            return runs_of(built)

        ids = pipelined(q, build, len(items), now)
        if ids is not None:
            return ids
    built = _built(q, jobs, now)
    return q.insert(built, now) if built else []


def _built(q: Queue, items: Iterable[object], now: float, before: int = 0) -> list[NewJob]:
    """The items validated into jobs; InvalidInput names the first bad one (1 + its index +
    `before`)."""
    built: list[NewJob] = []
    for n, item in enumerate(items, before + 1):
        try:
            built.append(q.build_job(item, now))
        except InvalidInput as e:
            raise InvalidInput(f"job {n}: {e}") from None
    return built

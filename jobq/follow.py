"""Following a queue like `tail -f`: the one loop every follower uses (`jobq errors -f`,
`jobq events -f`, `Queue.events(follow=True)`), and the lifecycle event feed.

A follower wakes on the backend's waker (inotify on a queue file's WAL, LISTEN/NOTIFY on
PostgreSQL) and re-reads from its cursor; the slow fallback timeout only covers what a waker
cannot see. It never busy-polls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple, TypeVar

from .errors import InvalidInput, TemporaryFailure
from .model import DEFAULT_EVENT_KINDS, Event, EventKind
from .values import validate_queue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .backend import Backend
    from .waiting import Waiter

T = TypeVar("T")

FALLBACK = 1.0  # seconds: a wake-up is a hint; this catches anything a waker missed
PAGE = 1000  # events read per query while catching up

KIND_NAMES = tuple(k.value for k in EventKind)


def follow(
    waker: Waiter,
    poll: Callable[[], Sequence[T]],
    fallback: float = FALLBACK,
    on_away: Callable[[Exception], None] | None = None,
) -> Iterator[T]:
    """Yield what `poll()` returns, again and again; when it returns nothing, wait for a commit
    (or `fallback` seconds) first. Never ends: the caller stops iterating.

    `poll` keeps its own cursor. Arm `waker` before the first read that `poll` continues, so
    that a commit in between is not missed. A temporary failure (a server restarting, a lock
    held too long) is survived: `on_away(error)` is told once per outage, and the follower
    waits for the waker (which reconnects with backoff) and reads on from its cursor.
    """
    away = False
    while True:
        try:
            batch = poll()
        except TemporaryFailure as e:
            if not away and on_away is not None:
                on_away(e)
            away = True
            waker.wait(fallback)
            continue
        away = False
        if batch:
            yield from batch
        else:
            waker.wait(fallback)


def check_kinds(kinds: Iterable[str] | str | None) -> tuple[str, ...]:
    """The kinds named (a list, or one comma-separated string), checked; None: the defaults
    (every kind but `released`)."""
    if kinds is None:
        return tuple(k.value for k in DEFAULT_EVENT_KINDS)
    names = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    out: list[str] = []
    for name in names:
        word = str(name).strip().lower()
        if word not in KIND_NAMES:
            raise InvalidInput(
                f"unknown event kind {str(name)!r}: use one or more of {', '.join(KIND_NAMES)}"
            )
        if word not in out:
            out.append(word)
    if not out:
        raise InvalidInput(f"no event kind given: use one or more of {', '.join(KIND_NAMES)}")
    return tuple(out)


class FeedArgs(NamedTuple):
    """The checked arguments of an event feed (see `jobq.Queue.events`)."""

    kinds: tuple[str, ...]
    type_glob: str | None
    queue: str | None
    since: float | None
    after_id: int | None
    limit: int


def check_feed(
    *,
    kinds: Iterable[str] | str | None = None,
    type_glob: str | None = None,
    queue: str | None = None,
    since: float | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> FeedArgs:
    """Check an event feed's arguments (InvalidInput), before anything is opened."""
    names = check_kinds(kinds)
    if after_id is not None and (
        isinstance(after_id, bool) or not isinstance(after_id, int) or after_id < 0
    ):
        raise InvalidInput(f"an event id is an integer >= 0, not {after_id!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInput(f"limit must be an integer >= 0, not {limit!r}")
    if since is not None and (
        isinstance(since, bool) or not isinstance(since, (int, float)) or not math.isfinite(since)
    ):
        raise InvalidInput(f"since must be a time in seconds since the epoch, not {since!r}")
    if type_glob is not None and (not isinstance(type_glob, str) or not type_glob):
        raise InvalidInput("a type glob is a non-empty text such as 'email.*'")
    if queue is not None:
        queue = validate_queue(queue)
    return FeedArgs(names, type_glob, queue, since, after_id, limit)


def event_feed(
    backend: Backend,
    *,
    follow: bool = False,
    kinds: Iterable[str] | str | None = None,
    type_glob: str | None = None,
    queue: str | None = None,
    since: float | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> Iterator[Event]:
    """Lifecycle events, oldest first (see `jobq.Queue.events`); the arguments are checked
    now (InvalidInput), the backend read when iteration starts."""
    args = check_feed(kinds=kinds, type_glob=type_glob, queue=queue, since=since,
                      after_id=after_id, limit=limit)  # fmt: skip
    return _feed(backend, follow, *args)


def _feed(
    backend: Backend,
    following: bool,
    kinds: tuple[str, ...],
    type_glob: str | None,
    queue: str | None,
    since: float | None,
    after_id: int | None,
    limit: int,
) -> Iterator[Event]:
    def read(after: int, until: int | None, n: int, newest: bool = False) -> list[Event]:
        return backend.events(after=after, until=until, limit=n, newest=newest, kinds=kinds,
                              type_glob=type_glob, queue=queue, since=since)  # fmt: skip

    waker = backend.waker() if following else None  # armed before the first read
    try:
        if after_id is None:
            # the recent history: the newest `limit` matching events up to the current head
            cursor = backend.last_event_id()
            if limit:
                yield from read(0, cursor, limit, newest=True)
        elif not following:
            yield from read(after_id, None, limit)
            return
        else:
            cursor = after_id
        if waker is None:
            return

        def poll() -> list[Event]:
            # Read up to a head taken first: every event up to it is committed (and on SQLite
            # ids are commit-ordered), so the cursor may pass events that matched no filter.
            nonlocal cursor
            # a queue file replaced under us (a restore): FileReplaced, exit 75, as pools do
            backend.check_identity()
            head = backend.last_event_id()
            if head <= cursor:
                return []
            page = read(cursor, head, PAGE)
            cursor = page[-1].id if len(page) == PAGE else head
            return page

        yield from follow(waker, poll)
    finally:
        if waker is not None:
            waker.close()

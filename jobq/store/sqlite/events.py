"""Lifecycle events: the reads of the `events` table, and keeping it bounded.

The database writes the events itself (triggers of schema 3, jobq/store/sqlite/schema.py), in
the transaction of the change they describe, so no write path of the store knows about them and a
rolled-back change leaves no event. The kinds (jobq.model.EventKind):

- `created`   a job was inserted (enqueue, bulk enqueue);
- `started`   a worker claimed it (its lease begins; `attempt` is the attempt it starts);
- then one event per ended attempt, named by what became of the job:
  `succeeded`; `retrying` (failed or timed out, due again after backoff); `crashed` (its worker
  died or was lost, due again at once); `failed` (final, whatever ended the last attempt: the
  error says what); `cancelled` (stopped by an operator while running); `released` (taken back
  unstarted or interrupted by a shutdown, its attempt not used up: not in the default kinds);
- `cancelled` too when an operator cancels a pending job, and `retried` when an operator moves
  a failed or cancelled job back to pending (attempt 0).

Ordering: SQLite has one writer at a time and ids are rowids (max + 1), so ids are commit-ordered;
pruning always keeps the newest event, so they are never reused: a follower that reads
`id > last` misses nothing and repeats nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .reads import Reads
from .sql import (
    EVENTS_AFTER,
    EVENTS_NEWEST,
    FIRST_EVENT_SINCE,
    LAST_EVENT_ID,
    PRUNE_EVENTS,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from ...model import Event

# The hard cap: the newest this many events are kept whatever the retention (about 150 MiB at
# ~150 bytes a row; a follower more than a million events behind restarts from the oldest kept).
EVENTS_KEEP = 1_000_000
CAP_EVERY = 60.0  # seconds between the cap's checks by a pool (`maintain`)

_NO_LIMIT = 1 << 62


class Events(Reads):
    """`events`, `last_event_id` and `prune_events` of the Backend protocol."""

    _cap_checked: float | None = None

    def events(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        kinds: Sequence[str] | None = None,
        type_glob: str | None = None,
        queue: str | None = None,
        since: float | None = None,
        until: int | None = None,
        newest: bool = False,
    ) -> list[Event]:
        """Events with `after` < id <= `until` matching the filters, in id order: the oldest
        `limit` of them, or with `newest` the newest `limit` (still in id order).

        `kinds` (None: every kind), `type_glob` (SQLite GLOB, as `jobq ls --type`), `queue`,
        `since` (at >= since, seconds since the epoch).
        """
        import json  # here, not at the top: `jobq ls` start-up

        params = {
            "after": after,
            "until": _NO_LIMIT if until is None else until,
            "kinds": None if kinds is None else json.dumps(list(kinds)),
            "glob": type_glob,
            "queue": queue,
            "since": since,
            "limit": limit,
        }
        with self._read() as conn:
            rows = conn.execute(EVENTS_NEWEST if newest else EVENTS_AFTER, params).fetchall()
        if newest:
            rows.reverse()
        from ...model import Event, EventKind  # here: off `jobq enqueue`'s start-up path

        return [Event(r[0], EventKind(r[1]), *r[2:]) for r in rows]

    def last_event_id(self) -> int:
        """The id of the newest event (0 when there is none): every event up to it is
        committed, so a follower may continue from it."""
        with self._read() as conn:
            return int(conn.execute(LAST_EVENT_ID).fetchone()[0])

    def prune_events(self, before: float | None, keep: int | None = None, batch: int = 5000) -> int:
        """Delete events older than `before` (None: no age limit) and all but the newest `keep`
        (None: EVENTS_KEEP), never the newest of all; in batches, so workers never wait behind
        one huge delete. Returns how many."""
        keep = EVENTS_KEEP if keep is None else keep
        with self._read() as conn:
            last = int(conn.execute(LAST_EVENT_ID).fetchone()[0])
            below = last + 1 - keep  # delete ids below this one
            if before is not None:
                first = conn.execute(FIRST_EVENT_SINCE, {"before": before}).fetchone()
                below = max(below, last + 1 if first is None else first[0])
            # never the newest: ids are rowids (max + 1), and a follower's cursor must never
            # see an id again
            below = min(below, last)
        total = 0
        while below > 1:
            with self._write() as conn:
                n = conn.execute(PRUNE_EVENTS, {"below": below, "batch": batch}).rowcount
            total += n
            if n < batch:
                break
        return total

    def maintain(self) -> None:
        """The pool's periodic upkeep, plus the events' hard cap once a minute."""
        super().maintain()
        mono = time.monotonic()
        if self._cap_checked is None or mono - self._cap_checked >= CAP_EVERY:
            self._cap_checked = mono
            self.prune_events(None)

"""Lifecycle events on PostgreSQL: reads of the `events` table, the ids of its feed, bounds.

The triggers of schema 2 (jobq/store/postgres/schema.py) write each event with its transaction
id and no feed id, in the transaction of the change (kinds as on SQLite:
jobq/store/sqlite/events.py). `sequence()` gives feed ids, in (xid, seq) order, to the events
whose transaction and every older one have ended: nothing can commit before them any more, so
ids are dense, increase in the order the feed shows them, and a follower that reads `id > last`
misses and repeats nothing, as on SQLite. Whoever reads runs it first (one at a time, under an
advisory lock); writers never wait for it.

A transaction that stays open anywhere on the server holds the horizon back: events after it
get their ids once it ends.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .reads import Reads
from .rows import glob_regex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model import Event

EVENTS_KEEP = 1_000_000  # the hard cap, as on SQLite
CAP_EVERY = 60.0
_NO_LIMIT = 1 << 62

LOCK_SEQUENCER = "SELECT pg_advisory_xact_lock(hashtext(%(key)s))"

# Feed ids for the settled events, in (xid, seq) order, after the highest given so far.
SEQUENCE_EVENTS = """
WITH todo AS (
    SELECT seq, row_number() OVER (ORDER BY xid, seq) AS n FROM events
    WHERE id IS NULL AND xid < pg_snapshot_xmin(pg_current_snapshot())
), top AS (
    SELECT COALESCE(max(id), 0) AS b FROM events
)
UPDATE events AS e SET id = top.b + todo.n FROM todo, top WHERE e.seq = todo.seq
"""

EVENT_COLUMNS = (
    "id, kind, date_part('epoch', at), job_id, type, queue, attempt, error, duration, worker_id"
)
EVENT_FILTERS = """id > %(after)s AND id <= %(until)s
  AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
  AND (%(glob)s::text IS NULL OR type ~ %(glob)s::text)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(since)s::float8 IS NULL OR at >= to_timestamp(%(since)s::float8))"""
EVENTS_AFTER = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE {EVENT_FILTERS} ORDER BY id LIMIT %(limit)s"
)
EVENTS_NEWEST = (
    f"SELECT {EVENT_COLUMNS} FROM events WHERE {EVENT_FILTERS} ORDER BY id DESC LIMIT %(limit)s"
)
LAST_EVENT_ID = "SELECT COALESCE(max(id), 0) FROM events"
FIRST_EVENT_SINCE = """
SELECT id FROM events WHERE id IS NOT NULL AND at >= to_timestamp(%(before)s::float8)
ORDER BY id LIMIT 1
"""
PRUNE_EVENTS = """
DELETE FROM events WHERE seq IN (
    SELECT seq FROM events WHERE id < %(below)s ORDER BY id LIMIT %(batch)s
)
"""


class Events(Reads):
    """`events`, `last_event_id` and `prune_events` of the Backend protocol."""

    _cap_checked: float | None = None

    def sequence(self) -> int:
        """Give feed ids to the settled events; return the highest id given (0: none)."""
        with self._write() as conn:
            conn.execute(LOCK_SEQUENCER, {"key": "jobq-events:" + self.schema})
            conn.execute(SEQUENCE_EVENTS)
            row = conn.execute(LAST_EVENT_ID).fetchone()
        return int(row[0]) if row else 0

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
        """Events with `after` < id <= `until` matching the filters, in id order (see the
        SQLite backend's `events`): only those with a feed id (`sequence`)."""
        params: dict[str, Any] = {
            "after": after,
            "until": _NO_LIMIT if until is None else until,
            "kinds": None if kinds is None else list(kinds),
            "glob": None if type_glob is None else glob_regex(type_glob),
            "queue": queue,
            "since": since,
            "limit": limit,
        }
        if until is None:
            self.sequence()
        rows = self._one(EVENTS_NEWEST if newest else EVENTS_AFTER, params).fetchall()
        if newest:
            rows.reverse()
        from ...model import Event, EventKind

        return [Event(r[0], EventKind(r[1]), *r[2:]) for r in rows]

    def last_event_id(self) -> int:
        """The highest feed id, after giving ids to what has settled: every event up to it is
        committed and none will come before it, so a follower may continue from it."""
        return self.sequence()

    def prune_events(self, before: float | None, keep: int | None = None, batch: int = 5000) -> int:
        """Delete events older than `before` (None: no age limit) and all but the newest `keep`
        (None: EVENTS_KEEP), never the newest of all (the next ids continue from it); in
        batches. Events not given an id yet are kept. Returns how many."""
        keep = EVENTS_KEEP if keep is None else keep
        last = self.sequence()
        below = last + 1 - keep
        if before is not None:
            first = self._one(FIRST_EVENT_SINCE, {"before": before}).fetchone()
            below = max(below, last + 1 if first is None else first[0])
        below = min(below, last)
        total = 0
        while below > 1:
            n = self._one(PRUNE_EVENTS, {"below": below, "batch": batch}).rowcount
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

"""The queue's figures for Prometheus (jobq/metrics.py turns them into the exposition format).

Counters come from the attempts history plus `metric_totals`, where a prune adds the attempts it
deletes (keep_totals, in the prune's transaction), so no counter ever goes down.
"""

from __future__ import annotations

import sqlite3

from .connection import _translate
from .reads import Reads
from .sql import (
    KEEP_TOTALS,
    METRIC_ATTEMPTS,
    METRIC_BUCKETS,
    METRIC_BUSY,
    METRIC_DUE,
    METRIC_JOBS,
    METRIC_KEPT,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: CLI start-up
if TYPE_CHECKING:
    from typing import Any


def keep_totals(conn: sqlite3.Connection, ids_json: str) -> None:
    """Add the attempts of the jobs about to be pruned (ids, a JSON array) to metric_totals."""
    conn.execute(KEEP_TOTALS, {"ids": ids_json})


class Metrics(Reads):
    """`metric_totals` of the Backend protocol."""

    def metric_totals(self, now: float) -> dict[str, list[tuple[Any, ...]]]:
        """The figures behind `jobq metrics`, read in one snapshot:

        jobs: (state, queue, type, count); due: (queue, oldest run_at of a due pending job);
        attempts: (type, outcome, count); seconds: (type, total run seconds); buckets: (type,
        index of the first basics.RUN_SECONDS_BOUNDS bound, or their count for +Inf, count);
        busy: (pool id, running jobs). History and pruned totals are summed.
        """
        try:
            with self._read() as conn:
                jobs = conn.execute(METRIC_JOBS).fetchall()
                due = conn.execute(METRIC_DUE, {"now": now}).fetchall()
                live = conn.execute(METRIC_ATTEMPTS).fetchall()
                live_buckets = conn.execute(METRIC_BUCKETS).fetchall()
                kept = conn.execute(METRIC_KEPT).fetchall()
                busy = conn.execute(METRIC_BUSY).fetchall()
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        from ...totals import combine

        return combine(jobs, due, live, live_buckets, kept, busy)

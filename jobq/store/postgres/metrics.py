"""The queue's figures for Prometheus on PostgreSQL (as jobq/store/sqlite/metrics.py)."""

from __future__ import annotations

from typing import Any

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


def keep_totals(conn: Any, ids: list[int]) -> None:
    """Add the attempts of the jobs about to be pruned to metric_totals."""
    conn.execute(KEEP_TOTALS, {"ids": ids})


class Metrics(Reads):
    """`metric_totals` of the Backend protocol."""

    def metric_totals(self, now: float) -> dict[str, list[tuple[Any, ...]]]:
        """See jobq/store/sqlite/metrics.py: the same shapes, history and pruned totals summed."""
        with self._read() as conn:
            jobs = conn.execute(METRIC_JOBS).fetchall()
            due = conn.execute(METRIC_DUE, {"now": now}).fetchall()
            live = conn.execute(METRIC_ATTEMPTS).fetchall()
            live_buckets = conn.execute(METRIC_BUCKETS).fetchall()
            kept = conn.execute(METRIC_KEPT).fetchall()
            busy = conn.execute(METRIC_BUSY).fetchall()
        from ...totals import combine

        return combine(jobs, due, live, live_buckets, kept, busy)

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
        attempts: dict[tuple[str, str], float] = {}
        seconds: dict[str, float] = {}
        buckets: dict[tuple[str, int], float] = {}
        for t, outcome, n, secs in live:
            attempts[(t, outcome)] = attempts.get((t, outcome), 0) + n
            seconds[t] = seconds.get(t, 0.0) + float(secs or 0.0)
        for t, b, n in live_buckets:
            buckets[(t, int(b))] = buckets.get((t, int(b)), 0) + n
        for t, key, value in kept:
            kind, _, rest = key.partition(":")
            if kind == "attempts":
                attempts[(t, rest)] = attempts.get((t, rest), 0) + value
            elif kind == "seconds":
                seconds[t] = seconds.get(t, 0.0) + value
            elif kind == "bucket":
                buckets[(t, int(rest))] = buckets.get((t, int(rest)), 0) + value
        return {
            "jobs": [tuple(r) for r in jobs],
            "due": [(q, float(t)) for q, t in due],
            "attempts": [(t, o, int(n)) for (t, o), n in sorted(attempts.items())],
            "seconds": sorted(seconds.items()),
            "buckets": [(t, b, int(n)) for (t, b), n in sorted(buckets.items())],
            "busy": [tuple(r) for r in busy],
        }

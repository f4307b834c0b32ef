"""The figures behind `jobq metrics`, put together the same way by every backend: a backend reads
the live rows and the totals a prune kept (`metric_totals`), this module sums them.

No import of prometheus_client here: the stores use it, and `jobq enqueue` loads the stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Row = Sequence["Any"]


def combine(
    jobs: Iterable[Row],
    due: Iterable[Row],
    live: Iterable[Row],
    live_buckets: Iterable[Row],
    kept: Iterable[Row],
    busy: Iterable[Row],
) -> dict[str, list[tuple[Any, ...]]]:
    """The Backend.metric_totals answer from a backend's rows:

    jobs: (state, queue, type, count); due: (queue, oldest run_at of a due pending job);
    attempts: (type, outcome, count); seconds: (type, total run seconds); buckets: (type,
    index of the first basics.RUN_SECONDS_BOUNDS bound, or their count for +Inf, count);
    busy: (pool id, running jobs). `live` rows are (type, outcome, count, seconds), `kept` rows
    (type, key, value) with keys 'attempts:<outcome>', 'seconds', 'bucket:<i>'.
    """
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
        "due": [(q, float(at)) for q, at in due],
        "attempts": [(t, o, int(n)) for (t, o), n in sorted(attempts.items())],
        "seconds": sorted(seconds.items()),
        "buckets": [(t, b, int(n)) for (t, b), n in sorted(buckets.items())],
        "busy": [tuple(r) for r in busy],
    }

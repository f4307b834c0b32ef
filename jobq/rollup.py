"""The queue's per-minute history (the dashboard's Metrics view), kept by the pools in the queue.

What a minute keeps (`rollup` table, one row per figure: minute, queue, type, key, value):

- `succeeded`, `failed` (ended for good) and `retried` (failed, timed out or crashed, and due
  again) attempts per queue and type, from the attempts that finished in the minute;
- `run:<i>` per type: how many attempts that ran to an end (succeeded, failed, timed out) took a
  time in bucket i (`bucket_of`), so that percentiles can be taken over any number of minutes
  (an hour, a day), not only per minute;
- `depth` (due pending jobs) and `oldest` (seconds the oldest of them has waited) per queue,
  sampled when the minute is rolled up (GRACE..GRACE+ROLL_EVERY seconds after it ended), with a
  `sampled` row; a queue with no row in a sampled minute had none due;
- a `rolled` row (queue and type ''), written first: the minute's key.

Several pools (and hosts) never count twice: a minute is computed from the attempts and jobs
tables once it has ended, and written in one transaction that first inserts its `rolled` row
with ON CONFLICT DO NOTHING; whoever finds that row already there writes nothing. Any pool's
maintenance may do it. A pool rolls up the minutes no one rolled up in the last BACKFILL minutes
(their counts: the attempts are history), but samples the depth only of the minute that just
ended: a minute when no pool ran has no depth sample, and the chart shows a gap there, not 0.
Attempts are counted by their finish time as the worker's clock gave it: an attempt written more
than GRACE seconds after its minute ended (a host whose clock is behind) is not counted.

This module is backend-neutral: the stores read the rows (jobq/store/*/rollup.py), this module
turns them into figures and charts' series.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .backend import Backend

MINUTE = 60
GRACE = 5.0  # seconds after a minute's end before it is rolled up: late commits still count
BACKFILL = 60  # minutes a pool looks back for minutes nobody rolled up
KEEP_AT_LEAST = 24 * 3600.0  # the history is kept at least this long, whatever the retention
KEEP_WITHOUT_RETENTION = 30 * 24 * 3600.0  # a pool without --retention keeps this much
ROLL_EVERY = 5.0  # seconds between a pool's checks whether a minute is due (a clock read)

ROLLED, LIVE, SAMPLED = "rolled", "live", "sampled"
SUCCEEDED, FAILED, RETRIED = "succeeded", "failed", "retried"
DEPTH, OLDEST = "depth", "oldest"
RUN = "run:"
RAN = ("succeeded", "failed", "timeout")  # attempts whose run time counts (a crash's does not)

# (minute, queue, type, key, value): a stored row; queue or type '' where not per queue / type
RollupRow = tuple[int, str, str, str, float]


def minute_of(t: float) -> int:
    """The start of the minute holding `t` (seconds since the epoch)."""
    return int(t // MINUTE) * MINUTE


def minutes_due(now: float, last_rolled: int | None) -> list[int]:
    """The minutes a roll-up at `now` writes, oldest first: those ended GRACE seconds ago, after
    `last_rolled` (the newest minute already written), at most BACKFILL of them."""
    latest = minute_of(now - GRACE) - MINUTE
    first = latest - (BACKFILL - 1) * MINUTE
    if last_rolled is not None:
        first = max(first, int(last_rolled) + MINUTE)
    return list(range(first, latest + 1, MINUTE))


def next_due(now: float) -> float:
    """When the minute after the last one due at `now` is due (GRACE after its end)."""
    return minute_of(now - GRACE) + 2 * MINUTE + GRACE


def keep_for(retention: float | None) -> float:
    """How long the history is kept for a pool with this retention (None: none set)."""
    return max(KEEP_WITHOUT_RETENTION if retention is None else retention, KEEP_AT_LEAST)


# ---- run-time buckets: the same arithmetic in Python and in both stores' SQL


def bucket_of(seconds: float) -> int:
    """The run-time bucket of a duration: 0 below 10 µs, else its decimal order and first two
    digits in microseconds by steps of 5 (10, 15, …, 95: 18 buckets a decade, each upper bound
    at most 1.5 times its lower one). Digits, not logarithms: SQLite has no math functions."""
    us = math.floor(max(seconds, 0.0) * 1_000_000 + 0.5)  # SQL round(): halves away from 0
    if us < 10:
        return 0
    digits = str(us)
    return len(digits) * 18 + int(digits[:2]) // 5 - 37


def bucket_bounds(index: int) -> tuple[float, float]:
    """The run times, in seconds, that bucket `index` holds: [low, high)."""
    if index <= 0:
        return (0.0, 0.00001)
    order, step = divmod(index - 1, 18)
    low = (10 + 5 * step) * 10**order
    return (low / 1_000_000, (low + 5 * 10**order) / 1_000_000)


def percentile(buckets: Mapping[int, float], q: float) -> float | None:
    """The `q` quantile (0..1) of the run times counted in `buckets` (index → count), read
    between its bucket's bounds; None without any."""
    total = sum(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for index in sorted(buckets):
        n = buckets[index]
        if n > 0 and seen + n >= rank:
            low, high = bucket_bounds(index)
            return low + (high - low) * max(0.0, rank - seen) / n
        seen += n
    return bucket_bounds(max(buckets))[1]


# ---- a minute's rows from what the stores read


def minute_rows(
    minute: int,
    attempts: Iterable[Sequence[object]],
    depth: Iterable[Sequence[object]] | None,
    now: float,
    marker: str = ROLLED,
) -> list[RollupRow]:
    """A minute's rows: `attempts` are (queue, type, outcome, final, bucket, count) of the
    attempts that finished in it (`final`: the job's last attempt, and the job failed); `depth`
    (queue, due pending jobs, oldest run_at) sampled at `now`, or None (no sample). The marker
    row comes first (value `now`)."""
    counts: dict[tuple[str, str, str], float] = {}
    for queue, type_, outcome, final, bucket, n in attempts:
        q, t, b, k = str(queue), str(type_), int(bucket), int(n)  # type: ignore[call-overload]
        kind = SUCCEEDED if outcome == "succeeded" else FAILED if final else RETRIED
        counts[(q, t, kind)] = counts.get((q, t, kind), 0) + k
        if outcome in RAN:
            counts[("", t, f"{RUN}{b}")] = counts.get(("", t, f"{RUN}{b}"), 0) + k
    rows: list[RollupRow] = [(minute, "", "", marker, now)]
    rows += [(minute, q, t, k, v) for (q, t, k), v in sorted(counts.items())]
    if depth is not None:
        rows.append((minute, "", "", SAMPLED, now))
        for queue, n, oldest in sorted(depth, key=lambda r: str(r[0])):
            rows.append((minute, str(queue), "", DEPTH, float(n)))  # type: ignore[arg-type]
            rows.append((minute, str(queue), "", OLDEST, max(0.0, now - float(oldest))))  # type: ignore[arg-type]
    return rows


# ---- what the dashboard charts


SPANS = {"hour": (60, MINUTE), "day": (96, 15 * MINUTE)}  # span: (points, seconds per point)


@dataclass(frozen=True, slots=True)
class Point:
    """One step of a chart: a minute (hour view) or 15 minutes (day view)."""

    start: int
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    depth: dict[str, int] | None = None
    """Due pending jobs per queue (the step's largest sample); None: no pool sampled it."""
    oldest: dict[str, float] | None = None
    """Seconds the oldest due job of each queue had waited (the largest sample), or None."""
    runs: dict[str, dict[int, float]] = field(default_factory=dict)
    """Run-time buckets per type (`bucket_of`), summed over the step."""
    rolled: bool = False
    """Whether any minute of the step was rolled up (or is live): else nothing is known."""

    def p(self, type_: str, q: float) -> float | None:
        """The `q` quantile of the type's run times in this step."""
        return percentile(self.runs.get(type_, {}), q)


@dataclass(frozen=True, slots=True)
class History:
    """The series of the Metrics view over one span ending now."""

    span: str
    step: int
    points: list[Point]
    queues: list[str]
    types: list[str]
    stored: int = 0
    """Minutes of the span rolled up by pools (the live ones aside)."""

    @property
    def empty(self) -> bool:
        """Nothing to chart yet: no pool rolled up a minute of the span, and the live minutes
        have neither an ended attempt nor a due job."""
        return not self.stored and not any(
            p.succeeded or p.failed or p.retried or p.depth or p.runs for p in self.points
        )


@dataclass(slots=True)
class _Step:
    """A point being summed (mutable; frozen into a Point at the end)."""

    rolled: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    depth: dict[str, float] | None = None
    oldest: dict[str, float] | None = None
    runs: dict[str, dict[int, float]] = field(default_factory=dict)

    def sampled(self) -> tuple[dict[str, float], dict[str, float]]:
        """The step has a depth sample (rows come in any order): its depth and oldest dicts."""
        if self.depth is None or self.oldest is None:
            self.depth, self.oldest = {}, {}
        return self.depth, self.oldest

    def point(self, start: int) -> Point:
        c = self.counts
        depth = None if self.depth is None else {q: int(v) for q, v in self.depth.items()}
        return Point(start, c.get(SUCCEEDED, 0), c.get(FAILED, 0), c.get(RETRIED, 0), depth,
                     self.oldest, self.runs, self.rolled)  # fmt: skip


def history(rows: Iterable[RollupRow], now: float, span: str = "hour") -> History:
    """Sum stored (and live) rows into the span's points, oldest first, the last one holding
    the current minute. Counts and run-time buckets add up; depth and oldest age keep the
    largest sample of the step (a peak stays visible in the day view)."""
    n, step = SPANS[span]
    last = minute_of(now) // step * step
    first = last - (n - 1) * step
    acc = [_Step() for _ in range(n)]
    queues: set[str] = set()
    types: set[str] = set()
    stored = 0
    for minute, queue, type_, key, value in rows:
        i = (int(minute) - first) // step
        if not 0 <= i < n:
            continue
        a = acc[i]
        if key in (ROLLED, LIVE):
            a.rolled = True
            stored += key == ROLLED
        elif key == SAMPLED:
            a.sampled()
        elif key in (SUCCEEDED, FAILED, RETRIED):
            a.counts[key] = a.counts.get(key, 0) + int(value)
            types.add(type_)
        elif key in (DEPTH, OLDEST):
            d = a.sampled()[0 if key == DEPTH else 1]
            d[queue] = max(d.get(queue, 0.0), value)
            queues.add(queue)
        elif key.startswith(RUN):
            per = a.runs.setdefault(type_, {})
            b = int(key[len(RUN) :])
            per[b] = per.get(b, 0.0) + value
            types.add(type_)
    points = [a.point(first + i * step) for i, a in enumerate(acc)]
    return History(span, step, points, sorted(queues), sorted(types), stored)


class HistoryReader:
    """Reads the dashboard's History: stored minutes are fetched once each (a minute is written
    once, in order), the live minutes (`Backend.rollup_live`) at most every `live_every`
    seconds, since at a busy queue they cost what a roll-up does."""

    def __init__(self, live_every: float = 5.0, mono: Callable[[], float] = time.monotonic) -> None:
        self.live_every = live_every
        self._mono = mono
        self._stored: list[RollupRow] = []
        self._through: int | None = None  # the newest stored minute fetched
        self._live: tuple[float, list[RollupRow]] | None = None

    def read(self, backend: Backend, now: float, span: str = "hour") -> History:
        """The History of `span` ending at `now`."""
        n, step = SPANS["day"]
        since = minute_of(now) // step * step - (n - 1) * step  # the day view's first minute
        start = since if self._through is None else max(since, self._through + MINUTE)
        new = backend.rollup(start, minute_of(now) + MINUTE)
        self._stored = [r for r in self._stored if r[0] >= since] + new
        if new:
            self._through = max(r[0] for r in new)
        mono = self._mono()
        if self._live is None or mono - self._live[0] >= self.live_every:
            self._live = (mono, backend.rollup_live(now))
        stored = {r[0] for r in self._stored if r[3] == ROLLED}
        live = [r for r in self._live[1] if r[0] not in stored]
        return history([*self._stored, *live], now, span)

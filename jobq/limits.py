"""Limits that hold across pools: at most N running at once, at most R started per period.

A limit is kept in the queue (table `limits`) under a key: a job type (`resize`, exact, no glob)
or `queue:NAME` (every job of that queue). It applies to every pool and host claiming from the
queue, because it is enforced inside the claim's transaction:

- **concurrency N**: the running jobs of the key are counted from the jobs table at claim time
  (so a pool killed with jobs in hand frees them when its jobs are rescued); a claim takes at
  most N minus that count.
- **rate R/period**: GCRA (the generic cell rate algorithm) with no burst: one "theoretical
  arrival time" (TAT) per limit; a start is allowed at `now >= TAT` and moves TAT to
  `max(TAT, now) + period / R`. So `100/min` starts one job every 0.6 s at most, and any window
  of length `period` (half-open) holds at most R starts, whatever the number of pools.

A job under both a type and a queue limit is held while either is exhausted. Jobs held by a
limit stay pending; an idle worker sleeps until the next possible start (the TAT) or until a
commit wakes it (a running job of the key ending). Times are the claimers' wall clocks: on
several hosts, rate limits are as exact as their clocks agree.

This module is backend-neutral: parsing, the GCRA arithmetic, the claim plan the stores follow
(`claim_limited`) and the texts of "why is it waiting".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from .errors import InvalidInput
from .model import record  # not dataclasses: `jobq ls` start-up (jobq.model)
from .values import validate_queue, validate_type

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .model import Job

QUEUE_PREFIX = "queue:"
# Rate units: seconds per unit. "/s" and "/sec", "/m" and "/min", "/h" and "/hour".
UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
         "h": 3600.0, "hour": 3600.0}  # fmt: skip
_RATE = r"\s*(\d{1,9})\s*/\s*(\d{0,9})\s*([a-z]+)\s*"  # `re` loads in parse_rate only
MAX_CONCURRENCY = 2**31 - 1


@record
class Limit:
    """One limit as the queue keeps it: `key` is a type or `queue:NAME`; `tat` is the GCRA
    theoretical arrival time of the rate (epoch seconds; 0 before any start)."""

    key: str
    concurrency: int | None
    rate_count: int | None = None
    rate_period: float | None = None
    tat: float = 0.0

    @property
    def interval(self) -> float | None:
        """Seconds between two starts under the rate (None: no rate)."""
        if self.rate_count is None or self.rate_period is None:
            return None
        return self.rate_period / self.rate_count

    @property
    def rate_text(self) -> str | None:
        """The rate as `jobq limit --rate` takes it, e.g. `100/min` (None: no rate)."""
        if self.rate_count is None or self.rate_period is None:
            return None
        return f"{self.rate_count}/{_unit_text(self.rate_period)}"

    def next_start(self, now: float) -> float | None:
        """When the rate allows the next start, if later than `now` (else None)."""
        return self.tat if self.interval is not None and self.tat > now else None

    def allowance(self, running: int, now: float) -> int | None:
        """How many jobs of the key may start now (None: unbounded)."""
        allowed: int | None = None
        if self.concurrency is not None:
            allowed = max(self.concurrency - running, 0)
        if self.interval is not None:
            by_rate = 1 if now >= self.tat else 0  # no burst: one start per interval
            allowed = by_rate if allowed is None else min(allowed, by_rate)
        return allowed

    def consumed(self, started: int, now: float) -> float:
        """The TAT after `started` jobs started at `now`."""
        interval = self.interval
        if interval is None or started <= 0:
            return self.tat
        return max(self.tat, now) + started * interval


@record
class LimitStatus:
    """A limit with the number of its jobs running now (`jobq limit ls`, why-waiting)."""

    limit: Limit
    running: int

    def to_dict(self, now: float) -> dict[str, object]:
        """The JSON shape of `jobq limit ls --json`."""
        nxt = self.limit.next_start(now)
        return {
            "key": self.limit.key,
            "concurrency": self.limit.concurrency,
            "rate": self.limit.rate_text,
            "running": self.running,
            "next_start_in": None if nxt is None else round(nxt - now, 3),
        }

    def holds(self, now: float) -> str | None:
        """Why this limit holds its jobs back now, as `held by limit …` (None: it does not)."""
        lim = self.limit
        if lim.concurrency is not None and self.running >= lim.concurrency:
            return f"held by limit {lim.key}: {self.running} of {lim.concurrency} running"
        nxt = lim.next_start(now)
        if nxt is not None:
            return f"held by limit {lim.key}: rate {lim.rate_text}, next start in {nxt - now:.1f} s"
        return None


def _unit_text(period: float) -> str:
    for name in ("s", "min", "hour"):
        if period == UNITS[name]:
            return name
    for name, secs in (("hour", 3600.0), ("min", 60.0), ("s", 1.0)):
        if period % secs == 0:
            return f"{int(period // secs)}{name}"
    return f"{period:g}s"


def parse_key(text: str) -> str:
    """A limit key: a job type (exact) or `queue:NAME`; InvalidInput otherwise."""
    if text.startswith(QUEUE_PREFIX):
        return QUEUE_PREFIX + validate_queue(text[len(QUEUE_PREFIX) :])
    if any(c in text for c in "*?["):
        raise InvalidInput(f"limit key {text!r}: a limit names one type exactly (no glob)")
    return validate_type(text)


def parse_rate(text: str) -> tuple[int, float]:
    """`100/min` → (100, 60.0). Units: /s (/sec), /min (/m), /hour (/h), optionally with a
    multiple (`5/10s`); the count is ≥ 1. InvalidInput otherwise."""
    import re

    m = re.fullmatch(_RATE, text.lower())
    unit = UNITS.get(m.group(3)) if m else None
    if m is None or unit is None or int(m.group(1)) < 1 or m.group(2) == "0":
        raise InvalidInput(f"rate {text!r}: expected COUNT/UNIT, e.g. 100/min, 5/s, 1000/hour "
                           "(units: s, min, hour)")  # fmt: skip
    return int(m.group(1)), unit * (int(m.group(2)) if m.group(2) else 1)


def make_limit(key: str, concurrency: int | None, rate: str | None) -> Limit:
    """A checked limit from user input (CLI, API, TOML); InvalidInput for a bad value."""
    key = parse_key(key)
    if concurrency is None and rate is None:
        raise InvalidInput(f"limit {key}: give --concurrency N, --rate COUNT/UNIT or both")
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidInput(f"limit {key}: concurrency must be an integer ≥ 1, not {concurrency!r}")
    count, period = parse_rate(rate) if rate is not None else (None, None)
    return Limit(key, concurrency, count, period)


def keys_of(job_type: str, queue: str) -> tuple[str, str]:
    """The limit keys that may apply to a job of `job_type` in `queue`."""
    return job_type, QUEUE_PREFIX + queue


def split_keys(keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """Keys as (types, queue names), for a claim's exclusions."""
    types, queues = [], []
    for k in sorted(keys):
        if k.startswith(QUEUE_PREFIX):
            queues.append(k[len(QUEUE_PREFIX) :])
        else:
            types.append(k)
    return types, queues


def running_by_key(counts: Iterable[tuple[str, str, int]], keys: Iterable[str]) -> dict[str, int]:
    """Running jobs per limit key from (type, queue, count) rows of running jobs."""
    wanted = set(keys)
    out = dict.fromkeys(wanted, 0)
    for job_type, queue, n in counts:
        for k in keys_of(job_type, queue):
            if k in wanted:
                out[k] += int(n)
    return out


def statuses(limits: Sequence[Limit], counts: Iterable[tuple[str, str, int]]) -> list[LimitStatus]:
    """Each limit with its running count."""
    running = running_by_key(counts, [lim.key for lim in limits])
    return [LimitStatus(lim, running[lim.key]) for lim in limits]


def held_now(limits: Sequence[LimitStatus], now: float) -> tuple[set[str], float | None]:
    """The keys exhausted now, and the earliest time a rate-held one may start again."""
    held: set[str] = set()
    wake: float | None = None
    for s in limits:
        if s.limit.allowance(s.running, now) == 0:
            held.add(s.limit.key)
            nxt = s.limit.next_start(now)
            conc = s.limit.concurrency
            if nxt is not None and (conc is None or s.running < conc):
                wake = nxt if wake is None else min(wake, nxt)
    return held, wake


# The store's side of a limited claim (see claim_limited), each inside the claim's transaction.
Peek = Callable[[set[str], int], list[tuple[str, str]]]  # (excluded keys, n) → (type, queue)s
Lock = Callable[[list[str], bool], list[LimitStatus]]  # (keys, wait) → those locked, counted
Take = Callable[[set[str], int], "list[Job]"]  # (excluded keys, at most n) → claimed jobs
Save = Callable[[Mapping[str, float]], None]  # new TAT per key


def claim_limited(
    all_keys: Sequence[str], n: int, now: float, peek: Peek, lock: Lock, take: Take, save: Save
) -> list[Job]:
    """Claim up to `n` jobs when limits exist, inside one transaction of the store.

    Limit rows are locked only for the keys of the jobs the claim is about to take (`peek`
    looks at the first due candidates without locking): a claim of unlimited jobs takes no lock.
    The first keys are locked waiting (in key order: no deadlock between such claims), any later
    ones without waiting (a key another claim holds is left alone this time). A key stays
    excluded from the claim unless it is locked and has room; the batch is capped by the
    smallest room of a locked key, so it never exceeds a remaining concurrency or rate.
    """
    known = set(all_keys)
    held: set[str] = set()
    locked: dict[str, LimitStatus] = {}
    first = True
    while True:
        involved = {
            k for t, q in peek(held, n) for k in keys_of(t, q) if k in known and k not in locked
        }
        if not involved:
            break
        counted = lock(sorted(involved), first)
        first = False
        for s in counted:
            locked[s.limit.key] = s
            if s.limit.allowance(s.running, now) == 0:
                held.add(s.limit.key)
        held |= involved - {s.limit.key for s in counted}  # skipped (held by another claim)
    # Rounds of claims, each capped by the smallest room left: a key whose room runs out is
    # excluded from the next round. A round that takes fewer than its cap found nothing more.
    rooms = {k: r for k, s in locked.items() if k not in held
             and (r := s.limit.allowance(s.running, now)) is not None}  # fmt: skip
    excluded = held | (known - set(locked))
    jobs: list[Job] = []
    while len(jobs) < n:
        cap = min([n - len(jobs), *rooms.values()])
        got = take(excluded, cap) if cap > 0 else []
        jobs += got
        for j in got:
            for k in keys_of(j.type, j.queue):
                if k in rooms:
                    rooms[k] -= 1
                    if rooms[k] <= 0:
                        del rooms[k]
                        excluded.add(k)
        if len(got) < cap or cap <= 0:
            break
    if jobs:
        started: dict[str, int] = {}
        for j in jobs:
            for k in keys_of(j.type, j.queue):
                if k in locked and locked[k].limit.interval is not None:
                    started[k] = started.get(k, 0) + 1
        if started:
            save({k: locked[k].limit.consumed(c, now) for k, c in started.items()})
    return jobs


def describe_hold(
    job_type: str, queue: str, limits: Sequence[LimitStatus], now: float
) -> str | None:
    """Why a due job of `job_type` in `queue` is held by a limit now (None: it is not)."""
    keys = keys_of(job_type, queue)
    for s in limits:
        if s.limit.key in keys and (text := s.holds(now)) is not None:
            return text
    return None

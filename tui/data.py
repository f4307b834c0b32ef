"""Loaders: what the dashboard shows, read from a queue file one short query at a time.

Every function here takes a `jobq.Queue` and plain values and returns frozen dataclasses; the
widgets only render them. Lists are read one page at a time with keyset pagination (`after=`),
so a file of a million jobs costs no more than one of a hundred.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from jobq import (
    Attempt,
    Diagnosis,
    ErrorGroup,
    FailedAttempt,
    Job,
    JobNotFound,
    JobState,
    Queue,
    WorkerInfo,
    diagnose_job,
    format_duration,
    group_errors,
    pool_alive,
)

JOB_TABS = ("pending", "running", "failed", "succeeded", "cancelled")
TABS = (*JOB_TABS, "workers", "errors")
TAB_TITLES = {"pending": "Pending", "running": "Running", "failed": "Failed",
              "succeeded": "Succeeded", "cancelled": "Cancelled", "workers": "Workers",
              "errors": "Errors"}  # fmt: skip
# Pending pages in claim order (what runs next comes first); Succeeded by finish time, latest
# first (the order of its "finished … ago" column); the others newest first. Only Succeeded:
# the finish-time index holds every finished job, and succeeded ones are most of them, so a
# page of them is found at once; a page of the few failed ones could scan all of it.
ORDERS = {"pending": "claim", "succeeded": "finished"}
PAGE_SIZE = 60  # more than a tall terminal shows; a DataTable row costs ~125 µs
ERROR_SAMPLE = 500  # the errors view groups this many of the latest failed attempts
SPARK_BUCKETS = 30
SPARK_WIDTH = 2.0  # seconds per sparkline bucket: one minute in all

Cursor = tuple[int, float, int] | tuple[float, int] | int


@dataclass(frozen=True, slots=True)
class Filter:
    """What `/` narrows the lists to: a type glob, a queue, and text in payload or errors."""

    type_glob: str | None = None
    queue: str | None = None
    search: str | None = None

    def __bool__(self) -> bool:
        return bool(self.type_glob or self.queue or self.search)

    def describe(self) -> str:
        """The filter as the user would type it."""
        parts = []
        if self.type_glob:
            parts.append(f"type:{self.type_glob}")
        if self.queue:
            parts.append(f"queue:{self.queue}")
        if self.search:
            parts.append(self.search)
        return " ".join(parts)


def parse_filter(text: str) -> Filter:
    """Parse `type:GLOB queue:NAME free text`; a bare word with a `*` or `?` is a type glob."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    type_glob = queue = None
    rest: list[str] = []
    for w in words:
        if w.startswith("type:") and len(w) > 5:
            type_glob = w[5:]
        elif w.startswith("queue:") and len(w) > 6:
            queue = w[6:]
        elif ("*" in w or "?" in w) and not rest and type_glob is None:
            type_glob = w
        else:
            rest.append(w)
    return Filter(type_glob, queue, " ".join(rest) or None)


@dataclass(frozen=True, slots=True)
class Request:
    """What the dashboard is looking at: the loader reads exactly this, and nothing more."""

    tab: str = "pending"
    filter: Filter = Filter()
    after: Cursor | None = None  # where the current page starts (None: the first page)
    page_size: int = PAGE_SIZE
    detail_id: int | None = None
    tail: bool = False  # the error tail is open


@dataclass(frozen=True, slots=True)
class HeaderData:
    """The header line: counts per state, throughput, pools, paused queues."""

    counts: dict[str, int]
    throughput: list[int]
    pools_alive: int
    slots: int
    busy: int
    paused: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Detail:
    """Everything about one job, and why it is waiting if it is (`jobq.diagnose_job`)."""

    job: Job
    attempts: list[Attempt]
    waiting: Diagnosis | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent-enough picture for one redraw (each part is one short read)."""

    request: Request
    header: HeaderData
    jobs: list[Job] = field(default_factory=list)
    total: int = 0
    has_more: bool = False
    workers: list[WorkerInfo] = field(default_factory=list)
    groups: list[ErrorGroup] = field(default_factory=list)
    errors: list[FailedAttempt] = field(default_factory=list)
    detail: Detail | None = None
    load_ms: float = 0.0


def cursor_of(tab: str, job: Job) -> Cursor:
    """The keyset cursor just after `job` in the tab's order."""
    order = ORDERS.get(tab)
    if order == "claim":
        return (job.priority, job.run_at, job.id)
    if order == "finished":
        return (job.finished_at or 0.0, job.id)
    return job.id


class Counts:
    """Jobs per state, cheap to keep fresh.

    Nothing is recounted while the file is unchanged (`PRAGMA data_version`): a count per state
    depends on nothing else. When it has changed, the small, fast-moving states (pending,
    running, failed) are recounted every time, and a state whose count is slow to take (900,000
    succeeded jobs cost ~40 ms of CPU) at most every `slow_every` seconds; while `defer_slow` is
    set (the user is pressing keys), at most every `slow_max` seconds, and so is the throughput
    sparkline (a scan of the last minute of finished jobs, ~20 ms while 4 workers drain).
    """

    def __init__(
        self,
        slow_ms: float = 8.0,
        slow_every: float = 2.0,
        slow_max: float = 10.0,
    ) -> None:
        self.slow_ms = slow_ms
        self.slow_every = slow_every
        self.slow_max = slow_max
        self.defer_slow = False
        self._value: dict[str, int] = {}
        self._cost: dict[str, float] = {}
        self._at: dict[str, float] = {}
        self._version: int | None = None
        self._stale: set[str] = set()  # slow states not recounted since the file changed
        self._spark: tuple[float, list[int]] | None = None  # (monotonic time, throughput)

    def get(self, q: Queue) -> dict[str, int]:
        """Fresh-enough counts for every state."""
        version = q.data_version()
        if version != self._version:
            self._version = version
            todo = [state.value for state in JobState]
        else:
            todo = [state.value for state in JobState if state.value in self._stale]
        mono = time.monotonic()
        every = self.slow_max if self.defer_slow else self.slow_every
        for s in todo:
            slow = self._cost.get(s, 0.0) > self.slow_ms
            if s not in self._value or not slow or mono - self._at[s] >= every:
                t0 = time.perf_counter()
                self._value[s] = q.count(s)
                self._cost[s] = (time.perf_counter() - t0) * 1000
                self._at[s] = mono
                self._stale.discard(s)
            else:
                self._stale.add(s)
        return dict(self._value)

    def throughput(self, q: Queue, now: float) -> list[int]:
        """The sparkline's jobs finished per bucket (kept a little while `defer_slow` is set)."""
        mono = time.monotonic()
        if self.defer_slow and self._spark is not None and mono - self._spark[0] < self.slow_max:
            return list(self._spark[1])
        values = q.throughput(SPARK_BUCKETS, SPARK_WIDTH, now=now)
        self._spark = (mono, values)
        return list(values)


def load_header(
    q: Queue, now: float, workers: list[WorkerInfo], counts: Counts | None = None
) -> HeaderData:
    """Counts per state, the throughput sparkline and the live pools."""
    alive = [w for w in workers if pool_alive(w, now)]
    if counts is None:
        per_state, spark = q.counts(), q.throughput(SPARK_BUCKETS, SPARK_WIDTH, now=now)
    else:
        per_state, spark = counts.get(q), counts.throughput(q, now)
    return HeaderData(
        counts=per_state,
        throughput=spark,
        pools_alive=len(alive),
        slots=sum(w.concurrency for w in alive),
        busy=sum(len(w.current_jobs) for w in alive),
        paused=tuple(q.paused_queues()),
    )


def load_page(q: Queue, req: Request) -> tuple[list[Job], bool]:
    """One page of the tab's jobs from `req.after`, and whether more follow."""
    f = req.filter
    jobs = q.list(req.tab, type=f.type_glob, queue=f.queue, search=f.search,
                  limit=req.page_size + 1, order=ORDERS.get(req.tab, "newest"),
                  after=req.after)  # fmt: skip
    return jobs[: req.page_size], len(jobs) > req.page_size


def count_tab(q: Queue, req: Request, counts: dict[str, int]) -> int:
    """Jobs in the tab: free from the header's counts unless a filter narrows them."""
    if not req.filter:
        return counts.get(req.tab, 0)
    f = req.filter
    return q.count(req.tab, type=f.type_glob, queue=f.queue, search=f.search)


duration = format_duration  # the dashboard's name for it (widgets import it from here)


def load(q: Queue, req: Request, now: float, counts: Counts | None = None) -> Snapshot:
    """Read everything `req` needs for one redraw."""
    t0 = time.perf_counter()
    workers = q.workers()
    header = load_header(q, now, workers, counts)
    snap_jobs: list[Job] = []
    has_more = False
    total = 0
    groups: list[ErrorGroup] = []
    if req.tab in JOB_TABS:
        snap_jobs, has_more = load_page(q, req)
        total = count_tab(q, req, header.counts)
    elif req.tab == "errors":
        groups = group_errors(q.errors(limit=ERROR_SAMPLE))
        total = len(groups)
    else:
        total = len(workers)
    errors = q.errors(limit=200) if req.tail else []
    detail = None
    if req.detail_id is not None:
        detail = load_detail(q, req.detail_id, now, header.paused, workers)
    return Snapshot(req, header, snap_jobs, total, has_more, workers, groups, errors, detail,
                    (time.perf_counter() - t0) * 1000)  # fmt: skip


def load_detail(
    q: Queue, job_id: int, now: float, paused: tuple[str, ...], workers: list[WorkerInfo]
) -> Detail | None:
    """The job, its attempts and why it waits; None if it no longer exists."""
    try:
        job = q.get(job_id)
    except JobNotFound:
        return None
    after = q.dependencies(job_id) if job.state is JobState.PENDING else []
    return Detail(job, q.attempts(job_id), diagnose_job(job, workers, paused, now, after))

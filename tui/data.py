"""Loaders: what the dashboard shows, read from a queue file one short query at a time.

Every function here takes a `jobq.Queue` and plain values and returns frozen dataclasses; the
widgets only render them. Lists are read one page at a time with keyset pagination (`after=`),
so a file of a million jobs costs no more than one of a hundred.
"""

from __future__ import annotations

import shlex
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from jobq import (
    Attempt,
    Condition,
    Diagnosis,
    ErrorGroup,
    FailedAttempt,
    History,
    HistoryReader,
    InvalidInput,
    Job,
    JobEdit,
    JobNotFound,
    JobProgress,
    JobState,
    Queue,
    WorkerInfo,
    diagnose_job,
    format_duration,
    group_errors,
    parse_colon,
    parse_time,
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
    """What `/` narrows the lists to: a type glob, a queue, text in payload or errors, payload
    field conditions (jobq.where) and creation time bounds (`since`/`until` as typed: a
    duration back from the moment of each load, or an ISO time)."""

    type_glob: str | None = None
    queue: str | None = None
    search: str | None = None
    where: tuple[Condition, ...] = ()
    since: str | None = None
    until: str | None = None

    def __bool__(self) -> bool:
        return bool(self.type_glob or self.queue or self.search or self.where or self.since
                    or self.until)  # fmt: skip

    def describe(self) -> str:
        """The filter as the user would type it."""
        parts = []
        if self.type_glob:
            parts.append(f"type:{self.type_glob}")
        if self.queue:
            parts.append(f"queue:{self.queue}")
        parts += [shlex.quote(c.colon()) for c in self.where]
        if self.since:
            parts.append(f"since:{self.since}")
        if self.until:
            parts.append(f"until:{self.until}")
        if self.search:
            parts.append(self.search)
        return " ".join(parts)

    def query(self, now: float) -> dict[str, Any]:
        """Keyword arguments of `Queue.list/count/matching_ids` (a relative since/until is
        counted back from `now`)."""
        since = None if self.since is None else parse_time(self.since, now, "since:")
        until = None if self.until is None else parse_time(self.until, now, "until:")
        return {"type": self.type_glob, "queue": self.queue, "search": self.search,
                "where": self.where, "since": since, "until": until}  # fmt: skip


def parse_filter(text: str) -> Filter:
    """Parse `type:GLOB queue:NAME payload.PATH:[OP]VALUE since:2h until:30m free text`; a bare
    word with a `*` or `?` is a type glob. A malformed `payload…`, `since:` or `until:` token
    raises InvalidInput (the filter bar shows it and stays open)."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    type_glob = queue = since = until = None
    where: list[Condition] = []
    rest: list[str] = []
    for w in words:
        if w.startswith("type:") and len(w) > 5:
            type_glob = w[5:]
        elif w.startswith("queue:") and len(w) > 6:
            queue = w[6:]
        elif w.startswith(("payload.", "payload:")):
            where.append(parse_colon(w))
        elif w.startswith(("since:", "until:")):
            word, bound = w[:5], w[6:]
            parse_time(bound, 0.0, f"{word}:")  # checked now, counted from each load's time
            if word == "since":
                since = bound
            else:
                until = bound
        elif ("*" in w or "?" in w) and not rest and type_glob is None:
            type_glob = w
        else:
            rest.append(w)
    return Filter(type_glob, queue, " ".join(rest) or None, tuple(where), since, until)


def filter_error(text: str) -> str | None:
    """Why `text` is not a filter, or None if it is (the filter bar's check)."""
    try:
        parse_filter(text)
    except InvalidInput as e:
        return str(e)
    return None


@dataclass(frozen=True, slots=True)
class Request:
    """What the dashboard is looking at: the loader reads exactly this, and nothing more."""

    tab: str = "pending"
    filter: Filter = Filter()
    after: Cursor | None = None  # where the current page starts (None: the first page)
    page_size: int = PAGE_SIZE
    detail_id: int | None = None
    tail: bool = False  # the error tail is open
    metrics: str | None = None  # the Metrics view is open on this span ("hour", "day")


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
    """Everything about one job, and why it is waiting if it is (`jobq.diagnose_job`); the
    last lines of its latest attempt's live output and its progress."""

    job: Job
    attempts: list[Attempt]
    waiting: Diagnosis | None
    output: tuple[str, ...] = ()  # the last OUTPUT_LINES lines of the attempt's live output
    output_attempt: int = 0
    output_dropped: int = 0  # lines before them, not kept here (`jobq logs` has them all)
    progress: JobProgress | None = None
    edits: list[JobEdit] = field(default_factory=list)  # its payload edits (`jobq edit`)


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
    progress: dict[int, JobProgress] = field(default_factory=dict)  # running jobs on the page
    history: History | None = None  # the Metrics view's (request.metrics)


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
        # (tab, filter) -> (count, its cost in ms, monotonic time it was taken)
        self._filtered: dict[tuple[str, Filter], tuple[int, float, float]] = {}

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

    def filtered(self, q: Queue, req: Request, now: float) -> int:
        """Jobs of the tab matching its filter, recounted like a slow state: a payload filter
        over a million jobs is a scan of every row of the tab (~1 s), while the page of them
        on screen is found as soon as it is full."""
        key = (req.tab, req.filter)
        mono = time.monotonic()
        every = self.slow_max if self.defer_slow else self.slow_every
        kept = self._filtered.get(key)
        if kept is not None and kept[1] > self.slow_ms and mono - kept[2] < every:
            return kept[0]
        t0 = time.perf_counter()
        n = q.count(req.tab, **req.filter.query(now))
        self._filtered = {key: (n, (time.perf_counter() - t0) * 1000, mono)}  # one filter kept
        return n

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


def load_page(q: Queue, req: Request, now: float | None = None) -> tuple[list[Job], bool]:
    """One page of the tab's jobs from `req.after`, and whether more follow."""
    query = req.filter.query(time.time() if now is None else now)
    jobs = q.list(req.tab, limit=req.page_size + 1, order=ORDERS.get(req.tab, "newest"),
                  after=req.after, **query)  # fmt: skip
    return jobs[: req.page_size], len(jobs) > req.page_size


def count_tab(
    q: Queue,
    req: Request,
    counts: dict[str, int],
    now: float | None = None,
    keeper: Counts | None = None,
) -> int:
    """Jobs in the tab: free from the header's counts unless a filter narrows them (then
    recounted at most as often as a slow state when `keeper` is given)."""
    if not req.filter:
        return counts.get(req.tab, 0)
    at = time.time() if now is None else now
    if keeper is not None:
        return keeper.filtered(q, req, at)
    return q.count(req.tab, **req.filter.query(at))


duration = format_duration  # the dashboard's name for it (widgets import it from here)


def load(
    q: Queue,
    req: Request,
    now: float,
    counts: Counts | None = None,
    output: OutputTail | None = None,
    history: HistoryReader | None = None,
) -> Snapshot:
    """Read everything `req` needs for one redraw (`output`: the detail view's live output as
    read so far, kept by the loader between loads; `history` keeps the Metrics view's rows
    between loads)."""
    t0 = time.perf_counter()
    with q.snapshot():  # the header's counts and the list from one instant
        workers = q.workers()
        header = load_header(q, now, workers, counts)
        snap_jobs: list[Job] = []
        has_more = False
        total = 0
        groups: list[ErrorGroup] = []
        if req.tab in JOB_TABS:
            snap_jobs, has_more = load_page(q, req, now)
            total = count_tab(q, req, header.counts, now, counts)
        elif req.tab == "errors":
            groups = group_errors(q.errors(limit=ERROR_SAMPLE))
            total = len(groups)
        else:
            total = len(workers)
        errors = q.errors(limit=200) if req.tail else []
        detail = None
        if req.detail_id is not None:
            detail = load_detail(q, req.detail_id, now, header.paused, workers, output)
        running = [j.id for j in snap_jobs if j.state is JobState.RUNNING]
        progress = q.progress_many(running) if running else {}
        charted = None
        if req.metrics is not None:
            charted = (history or HistoryReader()).read(q.backend, now, req.metrics)
    return Snapshot(req, header, snap_jobs, total, has_more, workers, groups, errors, detail,
                    (time.perf_counter() - t0) * 1000, progress, charted)  # fmt: skip


def load_detail(
    q: Queue,
    job_id: int,
    now: float,
    paused: tuple[str, ...],
    workers: list[WorkerInfo],
    output: OutputTail | None = None,
) -> Detail | None:
    """The job, its attempts, why it waits, and for a running job its attempt's live output
    (only what is new since the last load, with `output`) and progress; None if it no longer
    exists."""
    try:
        job = q.get(job_id)
    except JobNotFound:
        return None
    lines: tuple[str, ...] = ()
    dropped = 0
    progress = None
    if job.state is JobState.RUNNING:  # a finished attempt's output is in its history
        tail = OutputTail() if output is None else output
        lines, dropped = tail.read(q, job.id, job.attempts)
        progress = q.progress(job.id)
    held = q.limits() if job.state == "pending" else []
    after = q.dependencies(job_id) if job.state is JobState.PENDING else []
    return Detail(job, q.attempts(job_id), diagnose_job(job, workers, paused, now, held, after),
                  lines,
                  job.attempts, dropped, progress, q.edits(job_id))  # fmt: skip


OUTPUT_LINES = 500  # lines of live output the detail view keeps (the newest)


class OutputTail:
    """The newest OUTPUT_LINES lines of one attempt's live output, read a little at a time:
    each load reads only the chunks written since the last one (the loader keeps this object
    between loads)."""

    def __init__(self, keep: int = OUTPUT_LINES) -> None:
        self.keep = keep
        self.key: tuple[int, int] | None = None
        self.seq = 0
        self.lines: deque[str] = deque(maxlen=keep)
        self.partial = ""  # a line not ended yet
        self.count = 0  # complete lines seen

    def read(self, q: Queue, job_id: int, attempt: int) -> tuple[tuple[str, ...], int]:
        """The kept lines (the last one maybe unfinished) and how many earlier ones were let go."""
        if self.key != (job_id, attempt):
            self.key, self.seq, self.partial, self.count = (job_id, attempt), 0, "", 0
            self.lines.clear()
        if attempt > 0:
            for chunk in q.output(job_id, attempt, after=self.seq):
                self.seq = chunk.seq
                *done, self.partial = (self.partial + chunk.text).split("\n")
                self.lines.extend(done)
                self.count += len(done)
        shown = (*self.lines, self.partial) if self.partial else tuple(self.lines)
        return shown, self.count - len(self.lines)

"""`jobq.Queue`: the Python API over one queue file."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

from . import config
from .backend import ActionOutcome, JobFilter, Role, display_location, open_backend
from .basics import (
    DEFAULT_PAYLOAD_LIMIT,
    DEFAULT_QUEUE,
    VIEWS,
    JobState,
    NewJob,
)
from .errors import InvalidInput, JobNotFound
from .queue_actions import Actions
from .values import (
    dump_json,
    new_job,
    parse_at,
    parse_duration,
    validate_after,
    validate_queue,
    validate_type,
)

ENQUEUE_FIELDS = frozenset(
    {"type", "payload", "priority", "queue", "delay", "run_at", "max_attempts", "timeout",
     "unique_key", "after"}
)  # fmt: skip


def validate_state(state: str | None) -> str | None:
    """Return `state` if it names a state or a view (scheduled, retrying)."""
    if state is None:
        return None
    if state in VIEWS or state in {s.value for s in JobState}:
        return state
    names = ", ".join([s.value for s in JobState] + list(VIEWS))
    raise InvalidInput(f"unknown state {state!r}: use one of {names}")


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .backend import Backend
    from .basics import JSONValue
    from .limits import LimitStatus
    from .liveoutput import JobProgress, OutputChunk
    from .model import Attempt, Event, FailedAttempt, Job, JobEdit, QueueStats, WorkerInfo
    from .waiting import Waiter
    from .where import Condition

    _Ids = list[int]
    _Jobs = list[Job]
    _Attempts = list[Attempt]
    _Chunks = list[OutputChunk]
    _ProgressOf = dict[int, JobProgress]
    _Names = list[str]
    _Errors = list[FailedAttempt]
    _Workers = list[WorkerInfo]
    _Outcomes = dict[int, ActionOutcome]
    _Limits = list[LimitStatus]
    _Edits = list[JobEdit]


class Queue(Actions):
    """A queue file: enqueue jobs, inspect them, and act on them as an operator."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float | None = None,
        payload_limit: int | None = None,
        allow_network_fs: bool | None = None,
        mountinfo: str | None = None,
        create: bool = True,
    ) -> None:
        """Open the queue (a file path, `sqlite:PATH`, or a server URL), creating a missing file
        unless `create` is False (then it is a QueueFileError).

        `busy_timeout` and `allow_network_fs` override JOBQ_BUSY_TIMEOUT and
        JOBQ_ALLOW_NETWORK_FS; `mountinfo` replaces /proc/self/mountinfo (tests).
        """
        self.path = config.resolve_db_path(os.fspath(path) if path is not None else None)
        if payload_limit is None:
            payload_limit = config.env_positive_int(config.ENV_PAYLOAD_LIMIT, DEFAULT_PAYLOAD_LIMIT)
        self.payload_limit = payload_limit
        self.backend: Backend = open_backend(
            self.path, Role.PRODUCER if create else Role.READER, busy_timeout=busy_timeout,
            allow_network_fs=allow_network_fs, mountinfo=mountinfo)  # fmt: skip
        self._valid_types: set[str] = set()
        self._valid_queues: set[str] = set()

    @staticmethod
    def _known(name: object, names: set[str]) -> bool:
        # a JSON list or object is not hashable: it is simply not a known name
        return isinstance(name, str) and name in names

    def _remember(self, type: str) -> str:
        # validated names are cached: enqueue_many of 100k jobs of one type validates it once
        if len(self._valid_types) < 10_000:
            self._valid_types.add(type)
        return type

    def _remember_queue(self, queue: object) -> str:
        name = validate_queue(queue)
        if len(self._valid_queues) < 10_000:
            self._valid_queues.add(name)
        return name

    def close(self) -> None:
        """Close the connection to the queue file."""
        self.backend.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- enqueue ------------------------------------------------------------------------------

    def new_job(
        self,
        type: str,
        payload: JSONValue = None,
        *,
        priority: int | str = 0,
        queue: str = DEFAULT_QUEUE,
        delay: float | str | None = None,
        run_at: float | str | None = None,
        max_attempts: int | None = None,
        timeout: float | str | None = None,
        unique_key: str | None = None,
        payload_json: str | None = None,
        now: float | None = None,
        after: int | Sequence[int] | None = None,
    ) -> NewJob:
        """Validate the arguments of one job (raises InvalidInput) without writing anything."""
        if delay is not None and run_at is not None:
            raise InvalidInput("give either a delay or a run_at time, not both")
        when: float | None = None
        if delay is not None:
            when = (time.time() if now is None else now) + parse_duration(delay, "delay")
        elif run_at is not None:
            when = parse_at(run_at)
        if payload_json is None:
            payload_json = dump_json({} if payload is None else payload, "payload",
                                     self.payload_limit)  # fmt: skip
        elif len(payload_json.encode("utf-8", "surrogatepass")) > self.payload_limit:
            raise InvalidInput(f"payload is over the limit of {self.payload_limit:,} bytes")
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
            raise InvalidInput("unique key must be a non-empty string")
        job = new_job(type, payload_json, queue=queue, priority=priority, run_at=when,
                      max_attempts=max_attempts, timeout=timeout,
                      unique_key=unique_key)  # fmt: skip
        return job if after is None else job._replace(after=validate_after(after))

    def enqueue(
        self,
        type: str,
        payload: JSONValue = None,
        *,
        priority: int | str = 0,
        queue: str = DEFAULT_QUEUE,
        delay: float | str | None = None,
        run_at: float | str | None = None,
        max_attempts: int | None = None,
        timeout: float | str | None = None,
        unique_key: str | None = None,
        after: int | Sequence[int] | None = None,
    ) -> int:
        """Add one job durably (fsynced before returning) and return its id.

        With `unique_key`, while a job of the same type with that key is pending or running,
        nothing is inserted and that job's id is returned instead; `enqueue_unique` tells the
        two cases apart. With `after` (job ids), it runs only once all of those succeeded, and
        ends cancelled if one fails or is cancelled (InvalidInput if one does not exist).
        """
        now = time.time()
        job = self.new_job(type, payload, priority=priority, queue=queue, delay=delay,
                           run_at=run_at, max_attempts=max_attempts, timeout=timeout,
                           unique_key=unique_key, now=now, after=after)  # fmt: skip
        return self.backend.enqueue([job], now)[0]

    def enqueue_unique(
        self,
        type: str,
        payload: JSONValue = None,
        *,
        unique_key: str,
        priority: int | str = 0,
        queue: str = DEFAULT_QUEUE,
        delay: float | str | None = None,
        run_at: float | str | None = None,
        max_attempts: int | None = None,
        timeout: float | str | None = None,
        after: int | Sequence[int] | None = None,
    ) -> tuple[int, bool]:
        """Add one job unless a job of the same type with `unique_key` is pending or running
        (`after` as in `enqueue`). Returns (id, created): False when the id is an existing job's."""
        now = time.time()
        job = self.new_job(type, payload, priority=priority, queue=queue, delay=delay,
                           run_at=run_at, max_attempts=max_attempts, timeout=timeout,
                           unique_key=unique_key, now=now, after=after)  # fmt: skip
        if job.unique_key is None:
            raise InvalidInput("enqueue_unique needs a unique key")
        job_id, existing = self.backend.enqueue_unique(job, now)
        return job_id, existing is None

    def enqueue_many(
        self, jobs: Iterable[tuple[str, JSONValue] | Mapping[str, object] | NewJob]
    ) -> _Ids:
        """Add many jobs in one transaction, all or nothing; return their ids in order. Each
        item is a (type, payload) pair, a mapping with the keys of `enqueue`, or a NewJob. (The
        items of a large list or tuple are read on a helper thread: jobq.bulk.)"""
        from . import bulk  # here: threads, on no other command's path

        return bulk.enqueue_many(self, jobs, time.time())

    def insert(self, jobs: Sequence[NewJob], now: float) -> _Ids:
        """Insert validated jobs (from `new_job`) in one durable transaction; return their ids
        (a job whose unique key is held: that job's id)."""
        return self.backend.enqueue(jobs, now)

    def insert_unique(self, job: NewJob, now: float) -> tuple[int, str | None]:
        """Insert one validated job unless its (type, unique key) is held: (id, None) for a new
        job, else (the holder's id, its state)."""
        return self.backend.enqueue_unique(job, now)

    def insert_runs(self, runs: Iterable[tuple[NewJob, str, int]], now: float) -> _Ids:
        """Insert runs (template, payload array text, count) in one durable transaction; return
        the ids in order (see the backend's `enqueue_runs`)."""
        return self.backend.enqueue_runs(runs, now)

    def build_job(self, item: object, now: float) -> NewJob:
        """Validate one item of `enqueue_many` (a NewJob, a (type, payload) pair or a mapping)."""
        if isinstance(item, NewJob):
            return item
        if isinstance(item, tuple) and len(item) == 2:
            # the common bulk case, kept lean: (type, payload) with every default
            type_, payload = item
            if not self._known(type_, self._valid_types):
                self._remember(validate_type(type_))
            text = dump_json({} if payload is None else payload, "payload", self.payload_limit)
            # every other field is a default: the tuple directly (new_job would re-check each
            # default, ~20% of an enqueue_many of tiny jobs)
            return NewJob(type_, DEFAULT_QUEUE, 0, None, None, None, None, text)
        if isinstance(item, Mapping):
            unknown = set(item) - ENQUEUE_FIELDS
            if unknown:
                raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}")
            if "type" not in item:
                raise InvalidInput("missing field 'type'")
            kwargs = {k: v for k, v in item.items() if k not in ("type", "payload")}
            return self.new_job(item["type"], item.get("payload"), now=now, **kwargs)
        raise InvalidInput("each job must be a (type, payload) pair or a mapping")

    # ---- reads --------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """The job with that id (raises JobNotFound)."""
        job = self.backend.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id} in {self.location}")
        return job

    def dependencies(self, job_id: int) -> list[tuple[int, JobState | None]]:
        """The jobs this one runs after, with their states (None: deleted since)."""
        return self.backend.dependencies([job_id]).get(job_id, [])

    def dependencies_of(self, ids: Sequence[int]) -> dict[int, list[tuple[int, JobState | None]]]:
        """`dependencies` of several jobs in one read (ids without any are left out)."""
        return self.backend.dependencies(ids) if ids else {}

    def dependents(self, job_id: int) -> list[tuple[int, JobState]]:
        """The jobs that run (or ran) after this one, with their states (the first 1000)."""
        return self.backend.dependents(job_id)

    def attempts(self, job_id: int) -> _Attempts:
        """The finished attempts of a job, oldest first."""
        return self.backend.attempts(job_id)

    def output(self, job_id: int, attempt: int | None = None, *, after: int = 0) -> _Chunks:
        """The live output kept for an attempt of a job, in order: chunks with seq > `after`.
        `attempt` None: the job's latest (raises JobNotFound); a given attempt of a job that is
        not there has none. A chunk's stream: stdout, stderr, log or jobq (truncation marker)."""
        from .liveoutput import read_output

        if attempt is None:
            attempt = self.get(job_id).attempts
        return read_output(self.backend, job_id, attempt, after)

    def follow_output(self, job_id: int, attempt: int | None = None) -> Iterator[OutputChunk]:
        """An attempt's output as the pool writes it, until the attempt ends (default: the
        running attempt; for a pending job, its next one; for a finished job, its last one)."""
        from .liveoutput import follow_output

        self.get(job_id)  # JobNotFound now, not at the first iteration
        return follow_output(self.backend, job_id, attempt, self.location)

    def progress(self, job_id: int) -> JobProgress | None:
        """The latest progress its handler reported in the job's current attempt, if any."""
        return self.backend.progress_of([job_id]).get(job_id)

    def progress_many(self, ids: Sequence[int]) -> _ProgressOf:
        """The latest progress of each job's current attempt, for those that reported one."""
        return self.backend.progress_of(ids)

    def list(
        self,
        state: str | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        limit: int = 50,
        order: str = "newest",
        after: tuple[int, float, int] | tuple[float, int] | int | None = None,
        where: Iterable[str | Condition] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> _Jobs:
        """One page of jobs matching the filters (keyset pagination: pass the last row as after).

        `type` is a glob (`email:*`); `search` matches text in payload, type and last error;
        `where` conditions on payload fields (`"payload.user.id=42"`, see jobq.where), all of
        which must hold; `since` / `until` bound created_at (seconds since the epoch:
        created_at >= since, < until).
        """
        f = JobFilter(validate_state(state), type, queue, search, limit, order, after,
                      _conditions(where), since, until)  # fmt: skip
        return self.backend.list_jobs(time.time(), f)

    def count(
        self,
        state: str | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        where: Iterable[str | Condition] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """How many jobs match the filters."""
        f = JobFilter(validate_state(state), type, queue, search,
                      where=_conditions(where), since=since, until=until)  # fmt: skip
        return self.backend.count_jobs(time.time(), f)

    def matching_ids(
        self,
        state: str | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        where: Iterable[str | Condition] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> _Ids:
        """Ids of every job matching the filters (for bulk actions)."""
        f = JobFilter(validate_state(state), type, queue, search,
                      where=_conditions(where), since=since, until=until)  # fmt: skip
        return self.backend.matching_ids(time.time(), f)

    def stats(self) -> QueueStats:
        """Counts per state, queue and type, and recent throughput."""
        return self.backend.stats(time.time())

    def counts(self) -> dict[str, int]:
        """Jobs per state."""
        return self.backend.counts()

    def errors(self, *, after: int = 0, limit: int = 20) -> _Errors:
        """The latest failed attempts, newest first."""
        return self.backend.errors(after=after, limit=limit)

    def events(
        self,
        *,
        follow: bool = False,
        kinds: Iterable[str] | str | None = None,
        type_glob: str | None = None,
        queue: str | None = None,
        since: float | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> Iterator[Event]:
        """Lifecycle events (jobq.Event), oldest first: those after event `after_id`, else the
        newest `limit`; at most `limit` of them unless `follow`, which then yields every new
        event as it is committed, forever (stop iterating to stop). Filters: `kinds` (default
        every kind but "released"), `type_glob`, `queue`, `since` (epoch seconds); checked."""
        from .follow import event_feed

        return event_feed(self.backend, follow=follow, kinds=kinds, type_glob=type_glob,
                          queue=queue, since=since, after_id=after_id, limit=limit)  # fmt: skip

    def workers(self) -> _Workers:
        """Registered worker pools."""
        return self.backend.workers()

    def paused_queues(self) -> _Names:
        """Names of paused queues."""
        return self.backend.paused_queues()

    def throughput(
        self, buckets: int = 30, width: float = 2.0, *, now: float | None = None
    ) -> _Ids:
        """Jobs finished per bucket of `width` seconds up to `now`, oldest bucket first."""
        return self.backend.throughput(time.time() if now is None else now, buckets, width)

    def change_token(self) -> int:
        """A number that changes whenever another process commits to the queue."""
        return self.backend.change_token()

    data_version = change_token  # the older name

    def waker(self) -> Waiter:
        """Wake-ups on commits by any process (`fileno()` for select, `wait`, `drain`, `close`),
        armed now: a commit after this call is never missed. Re-check your condition after one."""
        return self.backend.waker()

    def snapshot(self) -> AbstractContextManager[None]:
        """`with q.snapshot():` the reads inside see the queue at one instant (no writes)."""
        return self.backend.snapshot()

    @property
    def location(self) -> str:
        """The queue's location, fit to print (a password in a URL masked)."""
        return display_location(self.path)

    def backup(self, target: str) -> None:
        """Write a consistent copy of the queue to `target`, safe while others write."""
        self.backend.backup(target)

    def doctor(self) -> dict[str, object]:
        """Integrity check and schema report."""
        return self.backend.doctor()

    def check_identity(self, force: bool = False) -> None:
        """Raise FileReplaced if the path no longer names the file opened (checked at most once a
        second unless `force`)."""
        self.backend.check_identity(force)

    def edit(
        self,
        job_id: int,
        payload: JSONValue = None,
        *,
        retry: bool = False,
        payload_json: str | None = None,
        seen: Job | None = None,
    ) -> Job:
        """Replace the payload of a pending, failed or cancelled job (validated as `enqueue`
        does; give `payload_json` for text already validated) and keep the old one in the job's
        history (`edits`); with `retry`, a failed or cancelled job also goes back to pending, in
        the same transaction. With `seen` (the job as read before editing), refuse if it has
        changed since. Returns the job as it is now.

        Raises JobNotFound, InvalidInput, or InvalidTransition (running or succeeded, changed
        since `seen`, or a retry refused because another job holds its unique key).
        """
        from .edits import edit_job

        return edit_job(self, job_id, payload, retry=retry, payload_json=payload_json, seen=seen)

    def edits(self, job_id: int) -> _Edits:
        """The payload edits of a job (`edit`), oldest first."""
        return self.backend.edits(job_id)

    def wait(self, job_ids: int | Sequence[int], timeout: float | None = None) -> _Jobs:
        """Block until every job is finished; return them. Raises WaitTimeout, JobNotFound.

        Cheap for the workers however busy the file is (see `jobq.waitloop`)."""
        from .waitloop import wait_for

        ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
        return wait_for(self.backend, ids, timeout, self.location)


def _conditions(where: Iterable[str | Condition] | None) -> tuple[Condition, ...]:
    if not where:
        return ()
    from .where import parse_conditions  # only a filtered read pays for it

    return parse_conditions(where)

"""`jobq.Queue`: the Python API over one queue file."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

from . import config
from .backend import ActionOutcome, ActionResult, JobFilter, Role, display_location, open_backend
from .basics import (
    DEFAULT_PAYLOAD_LIMIT,
    DEFAULT_QUEUE,
    FINISHED_STATES,
    VIEWS,
    JobState,
    NewJob,
)
from .errors import InvalidInput, InvalidTransition, JobNotFound, JobqError
from .values import (
    dump_json,
    new_job,
    parse_at,
    parse_duration,
    parse_priority,
    validate_queue,
    validate_type,
)

ENQUEUE_FIELDS = frozenset(
    {"type", "payload", "priority", "queue", "delay", "run_at", "max_attempts", "timeout",
     "unique_key"}
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
    # `jobq enqueue` never loads jobq.model (dataclasses): these are for annotations only
    from .backend import Backend
    from .basics import JSONValue
    from .model import Attempt, Event, FailedAttempt, Job, QueueStats, WorkerInfo
    from .waiting import Waiter

    _Ids = list[int]
    _Jobs = list[Job]
    _Attempts = list[Attempt]
    _Names = list[str]
    _Errors = list[FailedAttempt]
    _Workers = list[WorkerInfo]
    _Outcomes = dict[int, ActionOutcome]
    from .schedules import Schedule

    _Schedules = list[Schedule]


class Queue:
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
        return new_job(type, payload_json, queue=queue, priority=priority, run_at=when,
                       max_attempts=max_attempts, timeout=timeout,
                       unique_key=unique_key)  # fmt: skip

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
    ) -> int:
        """Add one job durably (fsynced before returning) and return its id.

        With `unique_key`, while a job of the same type with that key is pending or running,
        nothing is inserted and that job's id is returned instead; `enqueue_unique` tells the
        two cases apart.
        """
        now = time.time()
        job = self.new_job(type, payload, priority=priority, queue=queue, delay=delay,
                           run_at=run_at, max_attempts=max_attempts, timeout=timeout,
                           unique_key=unique_key, now=now)  # fmt: skip
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
    ) -> tuple[int, bool]:
        """Add one job unless a job of the same type with `unique_key` is pending or running.

        Returns (id, created): created is False when the id is that existing job's.
        """
        now = time.time()
        job = self.new_job(type, payload, priority=priority, queue=queue, delay=delay,
                           run_at=run_at, max_attempts=max_attempts, timeout=timeout,
                           unique_key=unique_key, now=now)  # fmt: skip
        if job.unique_key is None:
            raise InvalidInput("enqueue_unique needs a unique key")
        job_id, existing = self.backend.enqueue_unique(job, now)
        return job_id, existing is None

    def enqueue_many(
        self, jobs: Iterable[tuple[str, JSONValue] | Mapping[str, object] | NewJob]
    ) -> _Ids:
        """Add many jobs in one transaction, all or nothing; return their ids in order.

        Each item is a (type, payload) pair, a mapping with the keys of `enqueue`, or a NewJob.
        """
        now = time.time()
        built: list[NewJob] = []
        for n, item in enumerate(jobs, 1):
            try:
                built.append(self.build_job(item, now))
            except InvalidInput as e:
                raise InvalidInput(f"job {n}: {e}") from None
        if not built:
            return []
        return self.backend.enqueue(built, now)

    def insert(self, jobs: Sequence[NewJob], now: float) -> _Ids:
        """Insert validated jobs (from `new_job`) in one durable transaction; return their ids.
        A job whose unique key is held gets that job's id instead."""
        return self.backend.enqueue(jobs, now)

    def insert_unique(self, job: NewJob, now: float) -> tuple[int, str | None]:
        """Insert one validated job unless its (type, unique key) is held: (id, None) for a new
        job, else (the holder's id, its state)."""
        return self.backend.enqueue_unique(job, now)

    def insert_runs(self, runs: Sequence[tuple[NewJob, str, int]], now: float) -> _Ids:
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

    def attempts(self, job_id: int) -> _Attempts:
        """The finished attempts of a job, oldest first."""
        return self.backend.attempts(job_id)

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
    ) -> _Jobs:
        """One page of jobs matching the filters (keyset pagination: pass the last row as after).

        `type` is a glob (`email:*`); `search` matches text in payload, type and last error.
        """
        f = JobFilter(validate_state(state), type, queue, search, limit, order, after)
        return self.backend.list_jobs(time.time(), f)

    def count(
        self,
        state: str | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        search: str | None = None,
    ) -> int:
        """How many jobs match the filters."""
        f = JobFilter(validate_state(state), type, queue, search)
        return self.backend.count_jobs(time.time(), f)

    def matching_ids(
        self,
        state: str | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        search: str | None = None,
    ) -> _Ids:
        """Ids of every job matching the filters (for bulk actions)."""
        f = JobFilter(validate_state(state), type, queue, search)
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
        every kind but "released"), `type_glob`, `queue`, `since` (seconds since the epoch).
        Arguments are checked at once (InvalidInput)."""
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
        """Wake-ups on commits by any process (`fileno()` for select, `wait`, `drain`,
        `close`): armed now, so a commit after this call is never missed. A wake-up is a hint:
        re-check your condition after it."""
        return self.backend.waker()

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

    # ---- actions ------------------------------------------------------------------------------

    def retry(self, job_id: int) -> None:
        """Move a failed or cancelled job back to pending with its attempts reset."""
        self._one(job_id, self.backend.retry([job_id], time.time())[job_id], "retry")

    def retry_many(self, ids: Sequence[int]) -> _Outcomes:
        """Retry several jobs; per id RETRIED or why not."""
        return self.backend.retry(ids, time.time())

    def cancel(self, job_id: int) -> ActionResult:
        """Cancel a pending job, or ask its worker to stop a running one.

        Returns CANCELLED or CANCEL_REQUESTED (equal to 'cancelled', 'cancel requested').
        """
        outcome = self.backend.cancel([job_id], time.time())[job_id]
        self._one(job_id, outcome, "cancel")
        return outcome.result

    def cancel_many(self, ids: Sequence[int]) -> _Outcomes:
        """Cancel several jobs; per id CANCELLED, CANCEL_REQUESTED or why not."""
        return self.backend.cancel(ids, time.time())

    def set_priority(self, job_id: int, priority: int | str) -> None:
        """Set a job's priority (an integer or low/normal/high/critical)."""
        p = parse_priority(priority)
        self._one(job_id, self.backend.set_priority([job_id], p)[job_id], "reprioritise")

    def set_priority_many(self, ids: Sequence[int], priority: int | str) -> _Outcomes:
        """Set the priority of several jobs."""
        return self.backend.set_priority(ids, parse_priority(priority))

    def pause(self, queue: str) -> None:
        """Stop workers claiming from `queue` (running jobs finish)."""
        self.backend.set_paused(validate_queue(queue), True, time.time())

    def resume(self, queue: str) -> None:
        """Let workers claim from `queue` again."""
        self.backend.set_paused(validate_queue(queue), False, time.time())

    def schedules(self) -> _Schedules:
        """Every schedule, by name, with its next run and the last job it enqueued."""
        return self.backend.schedules()

    def pause_schedule(self, name: str, paused: bool = True) -> bool:
        """Pause a schedule, or resume it; False if there is none of that name.

        A resume first moves the schedule to its next slot after now, still paused: it never
        fires the backlog of slots missed while it was paused (as `jobq schedule resume`)."""
        if paused:
            return self.backend.pause_schedule(name, True)
        import dataclasses

        from .schedules import next_run

        found = [s for s in self.backend.schedules() if s.name == name]
        if not found:
            return False
        now = time.time()
        moved = dataclasses.replace(found[0], next_at=next_run(found[0].cron, found[0].tz, now))
        self.backend.put_schedule(moved, now, replace=True)
        return self.backend.pause_schedule(name, False)

    def prune(
        self, older_than: float | str, states: Sequence[str] = ("succeeded", "failed", "cancelled")
    ) -> int:
        """Delete finished jobs older than `older_than` (seconds or e.g. "7d"); return how many."""
        for s in states:
            if s not in {x.value for x in FINISHED_STATES}:
                raise InvalidInput(
                    f"prune deletes finished jobs only; {s!r} is not a finished state"
                )
        seconds = parse_duration(older_than, "age")
        return self.backend.prune(time.time() - seconds, states)

    def wait(self, job_ids: int | Sequence[int], timeout: float | None = None) -> _Jobs:
        """Block until every job is finished; return them. Raises WaitTimeout, JobNotFound.

        Cheap for the workers however busy the file is (see `jobq.waitloop`)."""
        from .waitloop import wait_for

        ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
        return wait_for(self.backend, ids, timeout, self.location)

    def _one(self, job_id: int, outcome: ActionOutcome, action: str) -> None:
        if outcome.done:
            return
        raise outcome_error(job_id, outcome, action, self.location)


def outcome_error(job_id: int, outcome: ActionOutcome, action: str, location: str) -> JobqError:
    """The error that says why `action` did not happen to a job (one line, for a person)."""
    if outcome.result is ActionResult.NOT_FOUND:
        return JobNotFound(f"no job {job_id} in {location}")
    if outcome.result is ActionResult.DUPLICATE_UNIQUE_KEY:
        return InvalidTransition(f"cannot {action} job {job_id}: a pending or running job of its"
                                 " type holds its unique key")  # fmt: skip
    return InvalidTransition(f"cannot {action} job {job_id}: it is {outcome}")

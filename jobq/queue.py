"""`jobq.Queue`: the Python API over one queue file."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence

from . import config
from .basics import (
    DEFAULT_PAYLOAD_LIMIT,
    DEFAULT_QUEUE,
    FINISHED_STATES,
    VIEWS,
    JobState,
    NewJob,
)
from .errors import InvalidInput, InvalidTransition, JobNotFound, WaitTimeout
from .store import DEFAULT_BUSY_TIMEOUT, Store
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
    from .basics import JSONValue
    from .model import Attempt, FailedAttempt, Job, QueueStats, WorkerInfo

    _Ids = list[int]
    _Jobs = list[Job]
    _Attempts = list[Attempt]
    _Names = list[str]
    _Errors = list[FailedAttempt]
    _Workers = list[WorkerInfo]


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
        """Open the queue file, creating it if needed unless `create` is False (then a missing
        file is a QueueFileError); `mountinfo` replaces /proc/self/mountinfo."""
        self.path = config.resolve_db_path(os.fspath(path) if path is not None else None)
        if busy_timeout is None:
            busy_timeout = config.env_seconds(config.ENV_BUSY_TIMEOUT, DEFAULT_BUSY_TIMEOUT)
        if payload_limit is None:
            payload_limit = config.env_positive_int(config.ENV_PAYLOAD_LIMIT, DEFAULT_PAYLOAD_LIMIT)
        self.payload_limit = payload_limit
        if allow_network_fs is None:
            allow_network_fs = config.env_flag(config.ENV_ALLOW_NETWORK_FS)
        # Producers and operators take turns (the turnstile); workers claim as they can.
        self.store = Store(self.path, busy_timeout=busy_timeout, allow_network_fs=allow_network_fs,
                           mountinfo=mountinfo, create=create, turnstile=True)  # fmt: skip
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
        self.store.close()

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
        return self.store.enqueue([job], now)[0]

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
        job_id, existing = self.store.enqueue_unique(job, now)
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
        return self.store.enqueue(built, now)

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
            return new_job(type_, text)
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
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id} in {self.path}")
        return job

    def attempts(self, job_id: int) -> _Attempts:
        """The finished attempts of a job, oldest first."""
        return self.store.attempts(job_id)

    def list(
        self,
        state: str | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        limit: int = 50,
        order: str = "newest",
        after: tuple[int, float, int] | int | None = None,
    ) -> _Jobs:
        """One page of jobs matching the filters (keyset pagination: pass the last row as after).

        `type` is a glob (`email:*`); `search` matches text in payload, type and last error.
        """
        return self.store.list_jobs(time.time(), state=validate_state(state), type_glob=type,
                                    queue=queue, search=search, limit=limit, order=order,
                                    after=after)  # fmt: skip

    def count(
        self,
        state: str | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        search: str | None = None,
    ) -> int:
        """How many jobs match the filters."""
        return self.store.count_jobs(time.time(), state=validate_state(state), type_glob=type,
                                     queue=queue, search=search)  # fmt: skip

    def matching_ids(
        self,
        state: str | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        search: str | None = None,
    ) -> _Ids:
        """Ids of every job matching the filters (for bulk actions)."""
        return self.store.matching_ids(time.time(), state=validate_state(state), type_glob=type,
                                       queue=queue, search=search)  # fmt: skip

    def stats(self) -> QueueStats:
        """Counts per state, queue and type, and recent throughput."""
        return self.store.stats(time.time())

    def counts(self) -> dict[str, int]:
        """Jobs per state."""
        return self.store.counts()

    def errors(self, *, after: int = 0, limit: int = 20) -> _Errors:
        """The latest failed attempts, newest first."""
        return self.store.errors(after=after, limit=limit)

    def workers(self) -> _Workers:
        """Registered worker pools."""
        return self.store.workers()

    def paused_queues(self) -> _Names:
        """Names of paused queues."""
        return self.store.paused_queues()

    def throughput(
        self, buckets: int = 30, width: float = 2.0, *, now: float | None = None
    ) -> _Ids:
        """Jobs finished per bucket of `width` seconds up to `now`, oldest bucket first."""
        return self.store.throughput(time.time() if now is None else now, buckets, width)

    def data_version(self) -> int:
        """A number that changes whenever another process commits to the file."""
        return self.store.data_version()

    def check_identity(self, force: bool = False) -> None:
        """Raise FileReplaced if the path no longer names the file opened (checked at most once a
        second unless `force`)."""
        self.store.check_identity(force)

    # ---- actions ------------------------------------------------------------------------------

    def retry(self, job_id: int) -> None:
        """Move a failed or cancelled job back to pending with its attempts reset."""
        self._one(job_id, self.store.retry([job_id], time.time())[job_id], "retried", "retry")

    def retry_many(self, ids: Sequence[int]) -> dict[int, str]:
        """Retry several jobs; per id 'retried' or why not."""
        return self.store.retry(ids, time.time())

    def cancel(self, job_id: int) -> str:
        """Cancel a pending job, or ask its worker to stop a running one.

        Returns 'cancelled' or 'cancel requested'.
        """
        outcome = self.store.cancel([job_id], time.time())[job_id]
        if outcome in ("cancelled", "cancel requested"):
            return outcome
        self._one(job_id, outcome, "cancelled", "cancel")
        return outcome

    def cancel_many(self, ids: Sequence[int]) -> dict[int, str]:
        """Cancel several jobs; per id 'cancelled', 'cancel requested' or why not."""
        return self.store.cancel(ids, time.time())

    def set_priority(self, job_id: int, priority: int | str) -> None:
        """Set a job's priority (an integer or low/normal/high/critical)."""
        p = parse_priority(priority)
        if self.store.set_priority([job_id], p)[job_id] == "not found":
            raise JobNotFound(f"no job {job_id} in {self.path}")

    def set_priority_many(self, ids: Sequence[int], priority: int | str) -> dict[int, str]:
        """Set the priority of several jobs."""
        return self.store.set_priority(ids, parse_priority(priority))

    def pause(self, queue: str) -> None:
        """Stop workers claiming from `queue` (running jobs finish)."""
        self.store.set_paused(validate_queue(queue), True, time.time())

    def resume(self, queue: str) -> None:
        """Let workers claim from `queue` again."""
        self.store.set_paused(validate_queue(queue), False, time.time())

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
        return self.store.prune(time.time() - seconds, states)

    def wait(self, job_ids: int | Sequence[int], timeout: float | None = None) -> _Jobs:
        """Block until every job is finished; return them. Raises WaitTimeout, JobNotFound."""
        ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        from .store.sqlite.waker import Waker

        with Waker(self.path) as waker:
            while True:
                jobs = self.store.get_many(ids)
                if len(jobs) < len(set(ids)):
                    missing = sorted(set(ids) - {j.id for j in jobs})
                    raise JobNotFound(f"no job {missing[0]} in {self.path}")
                if all(j.state in FINISHED_STATES for j in jobs):
                    by_id = {j.id: j for j in jobs}
                    return [by_id[i] for i in ids]
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    pending = [j.id for j in jobs if j.state not in FINISHED_STATES]
                    raise WaitTimeout(f"timed out waiting for job {pending[0]}")
                waker.wait(1.0 if left is None else min(1.0, left))

    def _one(self, job_id: int, outcome: str, ok: str, action: str) -> None:
        if outcome == ok:
            return
        if outcome == "not found":
            raise JobNotFound(f"no job {job_id} in {self.path}")
        raise InvalidTransition(f"cannot {action} job {job_id}: it is {outcome}")

"""The job state machine: every write a producer, worker or operator makes."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence

from ...backend import ANY, ActionOutcome, ActionResult, ClaimFilter, Ending
from ...basics import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, JobState, NewJob, Outcome, runs_of
from .reads import Reads
from .rows import _row_to_job
from .sql import (
    CLAIM_UNLIMITED,
    COMPLETE,
    CREATED_EVENTS,
    END_ATTEMPT,
    FIND_UNIQUE,
    HAS_LIMITS,
    INSERT_ATTEMPT,
    INSERT_JOB,
    INSERT_JOBS_BULK,
    LAST_JOB_ID,
    LEASED,
    RENEW,
    STATE_OF,
)
from .sql_deps import (
    CANCEL_AT_ONCE,
    CANCEL_DEPENDENTS,
    INSERT_DEPS,
    INSERT_JOB_AFTER,
    MARK_DEPENDED,
    UNBLOCK,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from ...model import Job

OutcomeLike = Outcome | str


# Test-only hook, JOBQ_TEST_HOLD_BULK=N:PATH: a bulk insert that has written a job with id >= N
# stops inside its transaction, writes its connection's `PRAGMA synchronous` to PATH and sleeps
# until it is killed (tests/test_bulk_storage.py: all or nothing, durability of --ndjson).
_HOLD = os.environ.get("JOBQ_TEST_HOLD_BULK")


def _hold(conn: sqlite3.Connection, last_id: int) -> None:
    assert _HOLD is not None
    n, _, path = _HOLD.partition(":")
    if last_id < int(n):
        return
    with open(path + ".tmp", "w") as f:
        f.write(str(conn.execute("PRAGMA synchronous").fetchone()[0]))
    os.replace(path + ".tmp", path)  # the test never reads a half-written file
    import time

    time.sleep(3600)


def _state_outcome(conn: sqlite3.Connection, job_id: int) -> ActionOutcome:
    row = conn.execute(STATE_OF, {"id": job_id}).fetchone()
    if row is None:
        return ActionOutcome(ActionResult.NOT_FOUND)
    return ActionOutcome(ActionResult.WRONG_STATE, JobState(row[0]))


def _claim_filter(
    types: Sequence[str] | None, globs: Sequence[str] | None, queues: Sequence[str] | None
) -> ClaimFilter:
    return ClaimFilter(None if types is None else tuple(types),
                       None if globs is None else tuple(globs),
                       None if queues is None else tuple(queues))  # fmt: skip


class JobWrites(Reads):
    """A connection to one queue file, with every operation of the job state machine."""

    def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        """Insert jobs in one durable transaction; return their ids.

        A job whose (type, unique key) matches a pending or running job is not inserted: the
        existing job's id is returned in its place.
        """
        with self._write(durable=True) as conn:
            if len(jobs) == 1 and jobs[0].unique_key is None and not jobs[0].after:
                return [self.insert_job(conn, self._job_params(jobs[0], now))]
            if all(j.unique_key is None and not j.after for j in jobs):
                return list(self._insert_runs(conn, runs_of(jobs), now))
            return [self._insert_one(conn, j, now)[0] for j in jobs]

    def enqueue_unique(self, job: NewJob, now: float) -> tuple[int, str | None]:
        """Insert one job durably unless a job of its type with its unique key is pending or
        running; return (id, None) for a new job, else (that job's id, its state)."""
        with self._write(durable=True) as conn:
            return self._insert_one(conn, job, now)

    @staticmethod
    def _insert_one(conn: sqlite3.Connection, j: NewJob, now: float) -> tuple[int, str | None]:
        if j.unique_key is not None:
            row = conn.execute(FIND_UNIQUE, {"type": j.type, "unique_key": j.unique_key}).fetchone()
            if row is not None:
                return row[0], row[1]
        if j.after:
            return JobWrites._insert_after(conn, j, now), None
        return JobWrites.insert_job(conn, JobWrites._job_params(j, now)), None

    @staticmethod
    def insert_job(conn: sqlite3.Connection, params: dict[str, object]) -> int:
        """Insert one job (INSERT_JOB's parameters) and its `created` event; return its id."""
        job_id: int = conn.execute(INSERT_JOB, params).lastrowid  # type: ignore[assignment]
        conn.execute(CREATED_EVENTS, {"first": job_id, "last": job_id})
        return job_id

    @staticmethod
    def _insert_after(conn: sqlite3.Connection, j: NewJob, now: float) -> int:
        """Insert a job that runs after others (`j.after`): blocked by those not succeeded yet;
        cancelled at once if one already failed or was cancelled (endings.dependency_states)."""
        import json  # here, not at the top: `jobq ls` start-up

        from ...endings import dependency_states  # here: most enqueues have no dependencies

        after = sorted(set(j.after))
        found = dict(conn.execute(MARK_DEPENDED, {"ids": json.dumps(after)}).fetchall())
        blocked, dead = dependency_states(after, found)
        params = JobWrites._job_params(j, now)
        params["blocked"] = blocked
        job_id: int = conn.execute(INSERT_JOB_AFTER, params).lastrowid  # type: ignore[assignment]
        conn.execute(CREATED_EVENTS, {"first": job_id, "last": job_id})  # before a cancel's
        conn.execute(INSERT_DEPS, {"id": job_id, "after": json.dumps(after)})
        if dead is not None:
            reason = f"dependency job {dead} {found[dead]}"
            conn.execute(CANCEL_AT_ONCE, {"id": job_id, "now": now, "reason": reason})
        return job_id

    def enqueue_runs(self, runs: Iterable[tuple[NewJob, str, int]], now: float) -> list[int]:
        """Insert runs of jobs in one durable transaction; return their ids, in order.

        A run is (template, payloads, count): `count` jobs with every field of `template` but its
        payload, whose payloads are given by the elements of the JSON array text `payloads`
        (validated and compact, as `values.dump_json` writes them): an object element is a
        payload, an array element holds one payload, e.g. `[{"a":1},[2],[[3]],["s"]]` for
        `{"a":1}`, `2`, `[3]` and `"s"` (`run_array` builds it). Each payload is stored as the
        text it has in the array. Templates must not carry a unique key or dependencies.
        `runs` may be an iterator whose items are still being made (jobq.bulk's helper thread):
        it is read inside the transaction, and an exception it raises rolls everything back.
        """
        if isinstance(runs, (list, tuple)) and not runs:
            return []
        with self._write(durable=True) as conn:
            return list(self._insert_runs(conn, runs, now))

    @staticmethod
    def _insert_runs(
        conn: sqlite3.Connection, runs: Iterable[tuple[NewJob, str, int]], now: float
    ) -> range:
        # Under the write lock, the next ids are seq+1 ... seq+n (AUTOINCREMENT's high-water
        # mark); an id that exists anyway would fail the insert, never be reused.
        seq = conn.execute(LAST_JOB_ID).fetchone()
        start = (seq[0] if seq else 0) + 1
        total = 0
        for template, payloads, count in runs:
            if template.unique_key is not None:
                raise ValueError("a run of jobs cannot carry a unique key")
            if template.after:
                raise ValueError("a run of jobs cannot carry dependencies")
            params = JobWrites._job_params(template, now)
            del params["unique_key"]
            params["payloads"] = payloads
            params["first_id"] = start + total
            inserted = conn.execute(INSERT_JOBS_BULK, params).rowcount
            if inserted != count:  # the caller's array and count disagree: insert nothing
                raise ValueError(f"a run of {count} jobs held {inserted} payloads")
            first = start + total
            conn.execute(CREATED_EVENTS, {"first": first, "last": first + count - 1})
            total += count
            if _HOLD is not None:
                _hold(conn, start + total - 1)
        return range(start, start + total)

    @staticmethod
    def _job_params(j: NewJob, now: float) -> dict[str, object]:
        return {
            "type": j.type,
            "queue": j.queue,
            "payload": j.payload_json,
            "priority": j.priority,
            "run_at": now if j.run_at is None else j.run_at,
            "max_attempts": j.max_attempts,
            "timeout": j.timeout,
            "unique_key": j.unique_key,
            "now": now,
        }

    def claim(
        self,
        worker_id: str,
        now: float,
        lease_seconds: float,
        filter: ClaimFilter = ANY,
        *,
        limit: int = 1,
        limits: Mapping[str, tuple[int | None, float | None]] | None = None,
        types: Sequence[str] | None = None,
        type_globs: Sequence[str] | None = None,
        queues: Sequence[str] | None = None,
    ) -> list[Job]:
        """Lease up to `limit` due jobs in claim order (priority DESC, run_at, id).

        `filter` restricts to exact type names, type globs and queues (`types=`, `type_globs=`,
        `queues=` are the same, kept for older tests); paused queues are skipped. Each claimed job
        gets one attempt counted and its effective max_attempts and timeout written: its own,
        else `limits[type]` (the handler's (max_attempts, timeout)), else the defaults.
        """
        import json  # here, not at the top: `jobq ls` start-up

        if types is not None or type_globs is not None or queues is not None:
            filter = _claim_filter(types, type_globs, queues)
        types, type_globs, queues = filter.types, filter.type_globs, filter.queues
        # os.urandom, what secrets.token_hex uses: importing secrets (hmac, hashlib) costs
        # ~5 ms on every `jobq enqueue`
        token = os.urandom(8).hex()
        params = {
            "worker": worker_id,
            "token": token,
            "lease_until": now + lease_seconds,
            "now": now,
            "limit": limit,
            "types": None if types is None else json.dumps(list(types)),
            "globs": None if type_globs is None else json.dumps(list(type_globs)),
            "queues": None if queues is None else json.dumps(list(queues)),
            "limits": None if not limits else json.dumps({t: list(v) for t, v in limits.items()}),
            "default_max_attempts": DEFAULT_MAX_ATTEMPTS,
            "default_timeout": DEFAULT_TIMEOUT,
        }
        with self._write() as conn:
            jobs = [_row_to_job(r) for r in conn.execute(CLAIM_UNLIMITED, params).fetchall()]
            if not jobs and conn.execute(HAS_LIMITS).fetchone()[0]:
                from .limits import claim_limited

                jobs = claim_limited(conn, params, limit, now)
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return jobs

    def renew(self, leases: Sequence[tuple[int, str]], lease_until: float) -> int:
        """Extend the leases (job id, token) that are still held; return how many were."""
        if not leases:
            return 0
        with self._write() as conn:
            n = 0
            for job_id, token in leases:
                n += conn.execute(
                    RENEW, {"id": job_id, "token": token, "lease_until": lease_until}
                ).rowcount
        return n

    def complete(
        self, job_id: int, token: str, now: float, result_json: str | None, output: str | None
    ) -> bool:
        """Mark a leased job succeeded with its result; False if the lease was lost."""
        with self._write() as conn:
            return self._complete(conn, job_id, token, now, result_json, output)

    def complete_many(
        self, done: Sequence[tuple[int, str, str | None, str | None]], now: float
    ) -> list[bool]:
        """Complete several leased jobs (id, token, result, output) in one transaction."""
        with self._write() as conn:
            return [self._complete(conn, i, t, now, r, o) for i, t, r, o in done]

    @staticmethod
    def _complete(
        conn: sqlite3.Connection,
        job_id: int,
        token: str,
        now: float,
        result_json: str | None,
        output: str | None,
    ) -> bool:
        row = conn.execute(
            COMPLETE, {"id": job_id, "token": token, "now": now, "result": result_json}
        ).fetchone()
        if row is None:
            return False
        conn.execute(
            INSERT_ATTEMPT,
            {
                "job_id": job_id,
                "attempt": row[0],
                "worker_id": row[1],
                "started_at": row[2],
                "now": now,
                "outcome": "succeeded",
                "error": None,
                "traceback": None,
                "output": output,
            },
        )
        if row[3]:  # its dependents wait for one job fewer
            conn.execute(UNBLOCK, {"id": job_id})
        return True

    def end_attempt(
        self,
        job_id: int,
        token: str,
        now: float,
        how: Ending,
        error: str | None = None,
        *,
        traceback: str | None = None,
        output: str | None = None,
        retryable: bool = True,
        rand: float | None = None,
        delay: float | None = None,
    ) -> JobState | None:
        """End a leased attempt other than by success (see `Ending`); return the job's new state,
        or None if the lease was lost (the write is fenced on `token`).

        FAIL and TIMEOUT retry after backoff (`delay` seconds if given, else the default backoff,
        `rand` fixing its jitter) while attempts are left and `retryable`; CRASH makes the job due
        at once; INTERRUPT and RELEASE give it back without using up the attempt; SNOOZE too, due
        in `delay` seconds (past MAX_SNOOZES it counts like FAIL); CANCEL ends it cancelled. A
        requested cancel wins over a retry.
        """
        from ...endings import plan

        p = plan(how, now, error, retryable=retryable, rand=rand, delay=delay)
        with self._write() as conn:
            return self._end_in(conn, job_id, token, now, p.outcome, p.error, traceback, output,
                                p.retry_at, p.counted, force_state=p.force_state,
                                snooze=p.snooze, rand=rand)  # fmt: skip

    def release_many(
        self, leases: Sequence[tuple[int, str]], now: float, reason: str
    ) -> list[JobState | None]:
        """Give back claimed jobs that never started (id, lease token) in one transaction, each
        recorded exactly as `end_attempt(id, token, now, Ending.RELEASE, reason)` records it
        (fenced on its token: a stale one changes nothing); per lease, the job's new state, or
        None if the lease was lost. A stopping worker gives back a whole batch claim this way:
        one commit instead of one per job."""
        from ...endings import plan

        if not leases:
            return []
        p = plan(Ending.RELEASE, now, reason)
        ended: dict[tuple[int, str], JobState | None] = {}
        with self._write() as conn:
            # rows locked in id order, whoever else locks several of them
            for job_id, token in sorted(set(leases)):
                ended[job_id, token] = self._end_in(
                    conn, job_id, token, now, p.outcome, p.error, None, None, p.retry_at,
                    p.counted, force_state=p.force_state,
                )  # fmt: skip
        return [ended[lease] for lease in leases]

    # Older names, kept for tests written before `end_attempt`.
    def fail(
        self,
        job_id: int,
        token: str,
        now: float,
        error: str,
        *,
        traceback: str | None = None,
        output: str | None = None,
        outcome: OutcomeLike = Outcome.FAILED,
        retryable: bool = True,
        rand: float | None = None,
    ) -> JobState | None:
        """Deprecated: `end_attempt(..., Ending.FAIL or Ending.TIMEOUT, ...)`."""
        how = Ending.TIMEOUT if Outcome(outcome) is Outcome.TIMEOUT else Ending.FAIL
        return self.end_attempt(job_id, token, now, how, error, traceback=traceback,
                                output=output, retryable=retryable, rand=rand)  # fmt: skip

    def crash(
        self, job_id: int, token: str, now: float, error: str, output: str | None = None
    ) -> JobState | None:
        """Deprecated: `end_attempt(..., Ending.CRASH, ...)`."""
        return self.end_attempt(job_id, token, now, Ending.CRASH, error, output=output)

    def release(
        self, job_id: int, token: str, now: float, reason: str = "interrupted by shutdown"
    ) -> JobState | None:
        """Deprecated: `end_attempt(..., Ending.INTERRUPT or Ending.RELEASE, ...)`."""
        return self.end_attempt(job_id, token, now, Ending.INTERRUPT, reason)

    def finish_cancelled(
        self, job_id: int, token: str, now: float, output: str | None = None
    ) -> JobState | None:
        """Deprecated: `end_attempt(..., Ending.CANCEL, ...)`."""
        return self.end_attempt(job_id, token, now, Ending.CANCEL, output=output)

    @staticmethod
    def _end_in(
        conn: sqlite3.Connection,
        job_id: int,
        token: str,
        now: float,
        outcome: Outcome,
        error: str | None,
        traceback: str | None,
        output: str | None,
        retry_at: Callable[[int], float] | None,
        count: bool,
        force_state: JobState | None = None,
        *,
        snooze: bool = False,
        rand: float | None = None,
    ) -> JobState | None:
        row = conn.execute(LEASED, {"id": job_id, "token": token}).fetchone()
        if row is None:
            return None
        attempts, max_attempts, worker_id, started_at, cancel_requested, snoozes = row
        from ... import lifecycle  # here: `jobq enqueue` never ends an attempt (dataclasses)

        if snooze:
            snooze, outcome, count, retry_at, error = lifecycle.snooze_or_fail(
                snoozes, now, retry_at, rand, error
            )

        end = lifecycle.end_attempt(
            attempts=attempts,
            max_attempts=max_attempts,
            cancel_requested=bool(cancel_requested),
            outcome=outcome,
            counted=count,
            retry_at=retry_at,
            force_state=force_state,
        )
        state, outcome = end.state, end.outcome
        conn.execute(
            END_ATTEMPT,
            {
                "id": job_id,
                "token": token,
                "state": state.value,
                "attempts": end.attempts,
                "run_at": end.run_at,  # None keeps the old value
                "finished_at": now if end.finished else None,
                "error": error,
                "snoozed": int(snooze),
            },
        )
        conn.execute(
            INSERT_ATTEMPT,
            {
                "job_id": job_id,
                "attempt": attempts,
                "worker_id": worker_id,
                "started_at": started_at,
                "now": now,
                "outcome": outcome.value,
                "error": error,
                "traceback": traceback,
                "output": output,
            },
        )
        if state is JobState.FAILED or state is JobState.CANCELLED:
            cancel_dependents(conn, job_id, state.value, now)
        return state


def cancel_dependents(conn: sqlite3.Connection, job_id: int, how: str, now: float) -> None:
    """Cancel the pending jobs that wait, directly or not, for a job that ended `how` (failed,
    cancelled, deleted), in the caller's transaction."""
    conn.execute(CANCEL_DEPENDENTS, {"id": job_id, "how": how, "now": now})

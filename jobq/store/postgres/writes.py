"""The job state machine on PostgreSQL: enqueue, claim, renew, complete, end an attempt.

The same writes as the SQLite backend (jobq/store/sqlite/writes.py) and the same decisions
(jobq.lifecycle); each hot path is one statement, so one round trip: an enqueue, a bulk run, a
claim of a batch, a renewal of every lease, the completion of a batch. A claim locks its rows
with FOR UPDATE SKIP LOCKED: concurrent claims neither wait for nor take each other's jobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import psycopg

from ...backend import ANY, ClaimFilter, Ending
from ...basics import DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, JobState, NewJob, Outcome, runs_of
from ...endings import dependency_states
from .reads import Reads
from .rows import claim_params, claim_shape, limits_json, pg_text, row_to_job, split_run
from .sql import (
    COMPLETE_MANY,
    END_ATTEMPT,
    FIND_UNIQUE,
    INSERT_JOB,
    INSERT_UNIQUE,
    LEASED,
    LOCK_ERRORS,
    RENEW,
    SNOOZES,
)
from .sql_bulk import BULK_INSERT, INSERT_JOBS_BULK, INSERT_JOBS_TEXTS
from .sql_deps import (
    CANCEL_AT_ONCE,
    CANCEL_DEPENDENTS,
    INSERT_DEPS,
    INSERT_JOB_AFTER,
    LOCK_DEPENDENTS,
    MARK_DEPENDED,
)
from .sql_limits import HAS_LIMITS, claim_unlimited_sql

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model import Job

_ERRORS = (Outcome.FAILED, Outcome.TIMEOUT, Outcome.CRASHED)  # what the errors feed lists


def _job_params(j: NewJob, now: float) -> dict[str, Any]:
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


class JobWrites(Reads):
    """A connection to one queue, with every operation of the job state machine."""

    def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        """Insert jobs in one durable transaction; return their ids.

        A job whose (type, unique key) matches a pending or running job is not inserted: the
        existing job's id is returned in its place.
        """
        if (len(jobs) == 1 and jobs[0].unique_key is None and not jobs[0].after
                and not self._async_commit):  # fmt: skip
            return [self._one(INSERT_JOB, _job_params(jobs[0], now)).fetchone()[0]]
        with self._write(durable=True) as conn:
            if all(j.unique_key is None and not j.after for j in jobs):
                return self._insert_runs(conn, runs_of(jobs), now)
            return [self._insert_one(conn, j, now)[0] for j in jobs]

    def enqueue_unique(self, job: NewJob, now: float) -> tuple[int, str | None]:
        """Insert one job durably unless a job of its type with its unique key is pending or
        running; return (id, None) for a new job, else (that job's id, its state)."""
        if job.unique_key is not None and not job.after and not self._async_commit:
            params = _job_params(job, now)
            while True:  # one statement, one round trip (see INSERT_UNIQUE for the loop)
                got = self._one(INSERT_UNIQUE, params).fetchone()
                if got is not None:
                    return got[0], got[1]
        with self._write(durable=True) as conn:
            return self._insert_one(conn, job, now)

    @staticmethod
    def _insert_one(conn: psycopg.Connection[Any], j: NewJob, now: float) -> tuple[int, str | None]:
        params = _job_params(j, now)
        if j.unique_key is None and not j.after:
            row = conn.execute(INSERT_JOB, params).fetchone()
            assert row is not None
            return row[0], None
        if j.unique_key is not None:
            row = conn.execute(FIND_UNIQUE, params).fetchone()
            if row is not None:
                return row[0], row[1]
            if not j.after:
                while True:  # each try is a fresh snapshot: a job that won a race is seen next
                    got = conn.execute(INSERT_UNIQUE, params).fetchone()
                    if got is not None:
                        return got[0], got[1]
        return JobWrites._insert_after(conn, j, params)

    @staticmethod
    def _insert_after(
        conn: psycopg.Connection[Any], j: NewJob, params: dict[str, Any]
    ) -> tuple[int, str | None]:
        """Insert a job that runs after others (`j.after`), as the SQLite store does
        (jobq/store/sqlite/writes.py): blocked by those not succeeded yet; cancelled at once if
        one already failed or was cancelled. Marking the dependencies locks them: none ends
        before this job and its links are committed (see MARK_DEPENDED). Return (id, None), or
        (the id of the job that holds its unique key, that job's state), as `_insert_one`."""
        after = sorted(set(j.after))
        found = dict(conn.execute(MARK_DEPENDED, {"ids": after}).fetchall())
        blocked, dead = dependency_states(after, found)
        params = dict(params, blocked=blocked)
        while (row := conn.execute(INSERT_JOB_AFTER, params).fetchone()) is None:
            # another producer took the key and committed after FIND_UNIQUE's snapshot: its
            # job is returned, as if found first (with the links and blocked count of its own
            # enqueue; the marks above stay, harmless: a marked job's ending finds no
            # dependent). Each try has a fresh snapshot; a holder that ended frees the key.
            held = conn.execute(FIND_UNIQUE, params).fetchone()
            if held is not None:
                return held[0], held[1]
        job_id: int = row[0]
        conn.execute(INSERT_DEPS, {"id": job_id, "after": after})
        if dead is not None:
            reason = f"dependency job {dead} {found[dead]}"
            conn.execute(CANCEL_AT_ONCE, {"id": job_id, "now": params["now"], "reason": reason})
        return job_id, None

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
            return self._insert_runs(conn, runs, now)

    @staticmethod
    def _insert_runs(
        conn: psycopg.Connection[Any], runs: Iterable[tuple[NewJob, str, int]], now: float
    ) -> list[int]:
        out: list[int] = []
        # the statements write their jobs' created events themselves (schema migration 10);
        # until this transaction ends, the row trigger leaves jobs inserted in it alone
        conn.execute(BULK_INSERT)
        for template, payloads, count in runs:
            if template.unique_key is not None:
                raise ValueError("a run of jobs cannot carry a unique key")
            if template.after:
                raise ValueError("a run of jobs cannot carry dependencies")
            params = _job_params(template, now)
            del params["unique_key"], params["payload"]
            sql = INSERT_JOBS_BULK
            if "\\u0000" in payloads:  # see INSERT_JOBS_TEXTS
                sql, payloads_param = INSERT_JOBS_TEXTS, split_run(payloads)
                params["payloads"] = payloads_param
            else:
                params["payloads"] = payloads
            # binary rows: 100,000 ids come back without a text conversion each
            cur = conn.cursor(binary=True)
            ids = sorted(r[0] for r in cur.execute(sql, params).fetchall())
            if len(ids) != count:  # the caller's array and count disagree: insert nothing
                raise ValueError(f"a run of {count} jobs held {len(ids)} payloads")
            out += ids
        return out

    def claim(
        self,
        worker_id: str,
        now: float,
        lease_seconds: float,
        filter: ClaimFilter = ANY,
        *,
        limit: int = 1,
        limits: Mapping[str, tuple[int | None, float | None]] | None = None,
    ) -> list[Job]:
        """Lease up to `limit` due jobs in claim order (priority DESC, run_at, id).

        `filter` restricts to exact type names, type globs and queues; paused queues are
        skipped. Each claimed job gets one attempt counted and its effective max_attempts and
        timeout written: its own, else `limits[type]` (the handler's (max_attempts, timeout)),
        else the defaults.
        """
        params = claim_params(now, filter)
        params.update({
            "worker": worker_id,
            "token": os.urandom(8).hex(),
            "lease_until": now + lease_seconds,
            "limit": limit,
            "limits": limits_json(dict(limits) if limits else None),
            "default_max_attempts": DEFAULT_MAX_ATTEMPTS,
            "default_timeout": DEFAULT_TIMEOUT,
        })  # fmt: skip
        shape = claim_shape(filter)
        jobs = [
            row_to_job(r) for r in self._one(claim_unlimited_sql(limit, *shape), params).fetchall()
        ]
        if not jobs and self._get(HAS_LIMITS).fetchone()[0]:
            from .limits import claim_limited

            with self._write() as conn:
                jobs = claim_limited(conn, params, limit, shape, now)
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return jobs

    def renew(self, leases: Sequence[tuple[int, str]], lease_until: float) -> int:
        """Extend the leases (job id, token) that are still held; return how many were."""
        if not leases:
            return 0
        cur = self._one(RENEW, {"ids": [i for i, _ in leases], "tokens": [t for _, t in leases],
                                "lease_until": lease_until})  # fmt: skip
        return int(cur.rowcount)

    def complete(
        self, job_id: int, token: str, now: float, result_json: str | None, output: str | None
    ) -> bool:
        """Mark a leased job succeeded with its result; False if the lease was lost."""
        return self.complete_many([(job_id, token, result_json, output)], now)[0]

    def complete_many(
        self, done: Sequence[tuple[int, str, str | None, str | None]], now: float
    ) -> list[bool]:
        """Complete several leased jobs (id, token, result, output) in one transaction."""
        if not done:
            return []
        # sent in id order: with many jobs running the server walks a batch in its order, and
        # rows are locked in id order everywhere (see MARK_DEPENDED in sql_deps.py), else an
        # enqueue after two of these jobs could hold one while this held the other (deadlock)
        order = sorted(range(len(done)), key=lambda i: done[i][0])
        batch = [done[i] for i in order]
        params = {
            "ids": [d[0] for d in batch],
            "tokens": [d[1] for d in batch],
            "results": [d[2] for d in batch],
            "outputs": [pg_text(d[3]) for d in batch],
            "now": now,
        }
        held = {r[0] for r in self._one(COMPLETE_MANY, params).fetchall()}
        out = [False] * len(done)
        for n, i in enumerate(order, 1):
            out[i] = n in held
        return out

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
        err, traceback, output = pg_text(p.error), pg_text(traceback), pg_text(output)
        with self._write() as conn:
            return self._end_in(conn, job_id, token, now, p.outcome, err, traceback, output,
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
                    conn, job_id, token, now, p.outcome, pg_text(p.error), None, None, p.retry_at,
                    p.counted, force_state=p.force_state,
                )  # fmt: skip
        return [ended[lease] for lease in leases]

    def _end_in(
        self,
        conn: psycopg.Connection[Any],
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
        if snooze:  # a snooze past the cap is a failure: it takes the errors lock below
            got = conn.execute(SNOOZES, {"id": job_id, "token": token}).fetchone()
            if got is None:
                return None
            from ... import lifecycle

            snooze, outcome, count, retry_at, error = lifecycle.snooze_or_fail(
                got[0], now, retry_at, rand, error
            )
        if outcome in _ERRORS:
            # The errors feed (`jobq errors -f`) follows attempt ids: an error's id must be
            # taken and committed in turn, or one that took a lower id and committed last would
            # fall behind a follower's "after" for good. Errors are rare; successes never wait.
            # Taken before the job's row lock, as everywhere (a rescue ends its charges first):
            # one order, no deadlock. (A requested cancel may turn it into no error: no harm.)
            conn.execute(LOCK_ERRORS, {"key": "jobq-errors:" + self.schema})
        row = conn.execute(LEASED, {"id": job_id, "token": token}).fetchone()
        if row is None:
            return None
        attempts, max_attempts, worker_id, started_at, cancel_requested, _snoozes = row
        from ... import lifecycle  # here: `jobq enqueue` never ends an attempt (dataclasses)

        end = lifecycle.end_attempt(
            attempts=attempts,
            max_attempts=max_attempts,
            cancel_requested=bool(cancel_requested),
            outcome=outcome,
            counted=count,
            retry_at=retry_at,
            force_state=force_state,
        )
        conn.execute(
            END_ATTEMPT,
            {
                "id": job_id,
                "token": token,
                "state": end.state.value,
                "attempts": end.attempts,
                "run_at": end.run_at,  # None keeps the old value
                "finished_at": now if end.finished else None,
                "error": error,
                "attempt": attempts,
                "worker_id": worker_id,
                "started_at": started_at,
                "now": now,
                "outcome": end.outcome.value,
                "traceback": traceback,
                "output": output,
                "snoozed": int(snooze),
            },
        )
        if end.state is JobState.FAILED or end.state is JobState.CANCELLED:
            cancel_dependents(conn, job_id, end.state.value, now)
        return end.state


def cancel_dependents(conn: psycopg.Connection[Any], job_id: int, how: str, now: float) -> None:
    """Cancel the pending jobs that wait, directly or not, for a job that ended `how` (failed,
    cancelled, deleted), in the caller's transaction (which holds the job's row lock).

    A dependent's enqueue locks the jobs it goes after until it commits, and a statement's
    snapshot is taken before it waits for a lock: so the dependents are first locked (in id
    order, see LOCK_DEPENDENTS), then cancelled by a statement begun after those waits, whose
    snapshot sees the links of every enqueue that held one of them. A job that only such a link
    reaches was not locked first, and its cancel may itself have waited for an enqueue of a job
    after it: the same is done again from the jobs of that kind, until none is left. (One
    statement would leave such a late dependent pending, blocked for good.)"""
    roots, cause = [job_id], how
    while roots:
        locked = {r[0] for r in conn.execute(LOCK_DEPENDENTS, {"ids": roots}).fetchall()}
        if not locked:
            return  # then nothing else waits for them: an enqueue after them waits for us
        params = {"ids": roots, "how": cause, "now": now}
        cancelled = [r[0] for r in conn.execute(CANCEL_DEPENDENTS, params).fetchall()]
        roots, cause = [i for i in cancelled if i not in locked], "cancelled"

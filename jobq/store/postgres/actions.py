"""The PostgreSQL backend's writes beyond a job's own attempt: operators' actions and pools.

`PgStore` is the backend as callers get it from `open_backend`: the reads (reads.py), a job's
writes (writes.py), and here cancel / retry / priority / delete / prune / pause, pools (register,
heartbeat, running jobs, forget) and the rescue of dead pools' jobs, as
jobq/store/sqlite/actions.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ...backend import ActionOutcome, ActionResult
from ...basics import JobState, Outcome
from .edits import Edits
from .events import Events
from .limits import Limits
from .metrics import Metrics, keep_totals
from .output import Output
from .rollup import Rollup
from .schedules import Schedules
from .sql import (
    CANCEL_PENDING,
    COUNT_PRUNABLE,
    DELETE_FINISHED,
    DELETE_FORCED,
    FORGET_POOL,
    HELD,
    LIVE_POOLS,
    MARK_POOL_DEAD,
    POOLS_TO_FORGET,
    PRUNABLE,
    PRUNE_IDS,
    PRUNE_WORKERS,
    REGISTER_WORKER,
    REQUEST_CANCEL,
    RETRY,
    RUNNING_OF,
    SET_PAUSED,
    SET_PRIORITY,
    STATE_OF,
    WORKER_HEARTBEAT,
)
from .sql_deps import LOCK_DEPENDENCIES, RECOUNT_BLOCKED
from .transfer import Transfer
from .writes import JobWrites, cancel_dependents

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ... import lifecycle


def _state_outcome(conn: psycopg.Connection[Any], job_id: int) -> ActionOutcome:
    row = conn.execute(STATE_OF, {"id": job_id}).fetchone()
    if row is None:
        return ActionOutcome(ActionResult.NOT_FOUND)
    return ActionOutcome(ActionResult.WRONG_STATE, JobState(row[0]))


class PgStore(Limits, Events, Output, JobWrites, Transfer, Metrics, Rollup, Schedules, Edits):
    """A connection to one PostgreSQL queue, with every operation of the Backend protocol."""

    def running_of(self, worker_prefix: str) -> list[tuple[int, str, str, float, float, bool, int]]:
        """Running jobs leased by workers whose id starts with `worker_prefix`:
        (id, token, worker_id, started_at, timeout, cancel_requested, attempts)."""
        rows = self._get(RUNNING_OF, {"prefix": worker_prefix}).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def rescue(
        self,
        now: float,
        *,
        here: str | None = None,
        own_pool: str | None = None,
        progress: Callable[[str], lifecycle.Progress | None] | None = None,
    ) -> list[tuple[int, JobState]]:
        """Take back the running jobs of dead pools (at once) and of expired leases whose pool
        is not alive on this host (`here`, a lifecycle.host_key); never `own_pool`'s.

        Of each claim's remaining jobs, those its worker started are charged an attempt
        (crashed) and the others released, when `progress(pool_id)` can tell for a dead pool;
        else all are charged (lifecycle.plan_rescue). Dead pools are marked 'dead'. Returns
        (job id, new state) for every job taken back. Each job's end is fenced on its lease
        token, so two rescuers at once never take the same job twice.
        """
        from ... import lifecycle  # here: `jobq enqueue` never rescues (dataclasses)

        with self._write() as conn:
            pools: dict[str, str] = {}
            for pool_id, status, proc, beat in conn.execute(LIVE_POOLS).fetchall():
                verdict = lifecycle.process_state(proc, here)
                if verdict == "unknown" and (
                    lifecycle.pool_status(status, proc, beat, now, here) == lifecycle.DEAD
                ):
                    verdict = "stale"
                pools[pool_id] = verdict
            held = [
                lifecycle.HeldJob(r[0], r[1], r[2] or "", r[3] or 0.0, (-r[4], r[5], r[0]))
                for r in conn.execute(HELD).fetchall()
            ]
            dead = [p for p, v in pools.items() if v in ("gone", "stale")]
            known = {p: progress(p) for p in dead} if progress is not None else None
            plan = lifecycle.plan_rescue(held, pools, now, own_pool=own_pool, progress=known)
            out: list[tuple[int, JobState]] = []
            for job, why in plan.charge:
                state = self._end_in(conn, job.id, job.token, now, Outcome.CRASHED, why,
                                     None, None, lambda _a: now, True)  # fmt: skip
                if state is not None:
                    out.append((job.id, state))
            for job, why in plan.release:
                state = self._end_in(conn, job.id, job.token, now, Outcome.INTERRUPTED, why,
                                     None, None, lambda _a: now, False)  # fmt: skip
                if state is not None:
                    out.append((job.id, state))
            for pool_id in dead:
                conn.execute(MARK_POOL_DEAD, {"id": pool_id})
        return out

    def cancel(self, ids: Sequence[int], now: float) -> dict[int, ActionOutcome]:
        """Cancel pending jobs; ask the supervisor to stop running ones.

        Per id: CANCELLED (also when it already was), CANCEL_REQUESTED, NOT_FOUND, or
        WRONG_STATE (succeeded or failed).
        """
        out: dict[int, ActionOutcome] = {}
        with self._write() as conn:
            for job_id in ids:
                if conn.execute(CANCEL_PENDING, {"id": job_id, "now": now}).rowcount:
                    out[job_id] = ActionOutcome(ActionResult.CANCELLED)
                    cancel_dependents(conn, job_id, "cancelled", now)
                elif conn.execute(REQUEST_CANCEL, {"id": job_id}).rowcount:
                    out[job_id] = ActionOutcome(ActionResult.CANCEL_REQUESTED)
                else:
                    got = _state_outcome(conn, job_id)
                    if got.state is JobState.CANCELLED:  # already: nothing left to do
                        got = ActionOutcome(ActionResult.CANCELLED)
                    out[job_id] = got
        return out

    def retry(self, ids: Sequence[int], now: float) -> dict[int, ActionOutcome]:
        """Move failed or cancelled jobs back to pending with attempts reset.

        Per id: RETRIED, NOT_FOUND, DUPLICATE_UNIQUE_KEY (a pending or running job of the same
        type holds its unique key), or WRONG_STATE.
        """
        out: dict[int, ActionOutcome] = {}
        with self._write() as conn:
            for job_id in ids:
                conn.execute(LOCK_DEPENDENCIES, {"id": job_id})
                try:  # a savepoint: an enqueue of the same key may commit while this one waits
                    with conn.transaction():
                        moved = conn.execute(RETRY, {"id": job_id, "now": now}).rowcount
                except psycopg.errors.UniqueViolation:  # on the key index: it just took the key
                    out[job_id] = ActionOutcome(ActionResult.DUPLICATE_UNIQUE_KEY)
                    continue
                if moved:
                    out[job_id] = ActionOutcome(ActionResult.RETRIED)
                    # it waits again for its dependencies that have not succeeded (its
                    # dependents cancelled meanwhile stay cancelled: retry them too)
                    conn.execute(RECOUNT_BLOCKED, {"id": job_id})
                    continue
                got = _state_outcome(conn, job_id)
                if got.state in (JobState.FAILED, JobState.CANCELLED):
                    got = ActionOutcome(ActionResult.DUPLICATE_UNIQUE_KEY)
                out[job_id] = got
        return out

    def set_priority(self, ids: Sequence[int], priority: int) -> dict[int, ActionOutcome]:
        """Set the priority of jobs; per id OK or NOT_FOUND."""
        out: dict[int, ActionOutcome] = {}
        with self._write() as conn:
            for job_id in ids:
                n = conn.execute(SET_PRIORITY, {"id": job_id, "priority": priority}).rowcount
                out[job_id] = ActionOutcome(ActionResult.OK if n else ActionResult.NOT_FOUND)
        return out

    def prune(self, before: float, states: Sequence[str], batch: int = 5000) -> int:
        """Delete finished jobs (and their attempts) that finished before `before`.

        Works in batches so that workers are never kept waiting behind one huge delete.
        """
        total = 0
        kept = [s for s in states if s in ("succeeded", "failed", "cancelled")]
        while True:
            with self._write() as conn:
                params = {"before": before, "states": kept, "batch": batch}
                ids = [r[0] for r in conn.execute(PRUNABLE, params).fetchall()]
                if ids:  # their attempts stay counted in the metrics (metrics.py)
                    keep_totals(conn, ids)
                n = conn.execute(PRUNE_IDS, {"ids": ids}).rowcount
                if n < batch:
                    conn.execute(PRUNE_WORKERS, {"before": before})
            total += n
            if n < batch:
                return total

    def count_prunable(self, before: float, states: Sequence[str]) -> int:
        """How many jobs `prune(before, states)` would delete now (a read: `--dry-run`)."""
        kept = [s for s in states if s in ("succeeded", "failed", "cancelled")]
        row = self._one(COUNT_PRUNABLE, {"before": before, "states": kept}).fetchone()
        return int(row[0])

    def delete(self, ids: Sequence[int], *, force: bool = False) -> dict[int, ActionOutcome]:
        """Delete jobs and their attempts. Per id: DELETED (succeeded, failed or cancelled; with
        `force` also pending), NOT_FOUND, or WRONG_STATE (pending without `force`; running
        always: a worker holds it, cancel it first)."""
        statement = DELETE_FORCED if force else DELETE_FINISHED
        out: dict[int, ActionOutcome] = {}
        deletable = ("succeeded", "failed", "cancelled", "pending") if force else (
            "succeeded", "failed", "cancelled")  # fmt: skip
        with self._write() as conn:
            for job_id in ids:
                state = conn.execute(STATE_OF, {"id": job_id}).fetchone()
                if state is not None and state[0] in deletable:
                    keep_totals(conn, [job_id])  # its attempts stay counted
                if conn.execute(statement, {"id": job_id}).rowcount:
                    out[job_id] = ActionOutcome(ActionResult.DELETED)
                    if state is not None and state[0] == "pending":  # nothing left to wait for
                        cancel_dependents(conn, job_id, "deleted", time.time())
                else:
                    out[job_id] = _state_outcome(conn, job_id)
        return out

    def forget_pools(
        self, now: float, *, before: float | None = None, here: str | None = None
    ) -> list[str]:
        """Delete the records of pools stopped or dead at `now` (as `jobq workers` says, seen
        from `here`, a lifecycle.host_key), last heard of before `before` (None: any time), that
        hold no running job; return their ids."""
        from ... import lifecycle

        cutoff = float("inf") if before is None else before
        gone: list[str] = []
        with self._write() as conn:
            for pool_id, status, proc, beat in conn.execute(
                POOLS_TO_FORGET, {"before": cutoff}
            ).fetchall():
                word = lifecycle.pool_status(status, proc, beat, now, here)
                if (
                    word in (lifecycle.STOPPED, lifecycle.DEAD)
                    and conn.execute(FORGET_POOL, {"id": pool_id}).rowcount
                ):
                    gone.append(pool_id)
        return gone

    def set_paused(self, queue: str, paused: bool, now: float) -> None:
        """Pause or resume claiming from a queue."""
        self._one(SET_PAUSED, {"name": queue, "paused": paused, "now": now})

    def register_worker(
        self,
        worker_id: str,
        *,
        name: str,
        host: str,
        pid: int,
        concurrency: int,
        queues: Sequence[str],
        types: Sequence[str],
        now: float,
        type_globs: Sequence[str] | None = None,
        proc_key: str | None = None,
    ) -> None:
        """Record a worker pool in the workers table.

        `types` are its handler names and `type_globs` its `--type` globs ([] for none). None
        keeps the old record, whose `types` mixes both (diagnoses then tell them apart by their
        glob characters). `proc_key` is lifecycle.proc_key() of its supervisor.
        """
        self._one(
            REGISTER_WORKER,
            {
                "id": worker_id,
                "name": name,
                "host": host,
                "pid": pid,
                "now": now,
                "concurrency": concurrency,
                "queues": json.dumps(list(queues)),
                "types": json.dumps(list(types)),
                "proc_key": proc_key,
                "type_globs": None if type_globs is None else json.dumps(list(type_globs)),
            },
        )

    def worker_heartbeat(
        self, worker_id: str, now: float, jobs_done: int, status: str = "running"
    ) -> None:
        """Refresh a pool's heartbeat, job count and status ('running', 'stopping', 'stopped')."""
        self._one(
            WORKER_HEARTBEAT,
            {"id": worker_id, "now": now, "jobs_done": jobs_done, "status": status},
        )

"""The store's writes beyond a job's own attempt: operators' actions and worker pools.

`Store` is the SQLite backend as callers get it from `open_backend`: the reads (reads.py), a job's
writes from enqueue to the end of an attempt (writes.py), and here cancel / retry / priority /
delete / prune / pause, pools (register, heartbeat, running jobs, forget) and the rescue of dead
pools' jobs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

from ...backend import ActionOutcome, ActionResult
from ...basics import JobState, Outcome
from .connection import _translate
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
    PRUNE,
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
from .sql_deps import RECOUNT_BLOCKED
from .transfer import Transfer
from .writes import JobWrites, _state_outcome, cancel_dependents

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from ... import lifecycle


class Store(Limits, Events, Output, JobWrites, Transfer, Metrics, Rollup, Schedules, Edits):
    """A connection to one queue file, with every operation of the job state machine."""

    def running_of(self, worker_prefix: str) -> list[tuple[int, str, str, float, float, bool, int]]:
        """Running jobs leased by workers whose id starts with `worker_prefix`:
        (id, token, worker_id, started_at, timeout, cancel_requested, attempts)."""
        try:
            rows = self._conn.execute(
                RUNNING_OF, {"prefix": worker_prefix, "prefix_end": worker_prefix + "\U0010ffff"}
            ).fetchall()
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        return [(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    def rescue_expired(self, now: float) -> list[tuple[int, JobState]]:
        """Rescue jobs of expired leases and dead pools, as any pool's rescuer would."""
        return self.rescue(now)

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
        else all are charged (lifecycle.plan_rescue). Dead pools are marked
        'dead'. Returns (job id, new state) for every job taken back.
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
            for pool_id, verdict in pools.items():
                if verdict in ("gone", "stale"):
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
                if conn.execute(RETRY, {"id": job_id, "now": now}).rowcount:
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
        import json  # here, not at the top: `jobq ls` start-up

        total = 0
        states_json = json.dumps([s for s in states if s in ("succeeded", "failed", "cancelled")])
        while True:
            with self._write() as conn:
                ids = conn.execute(
                    PRUNABLE, {"before": before, "states": states_json, "batch": batch}
                ).fetchall()
                ids_json = json.dumps([r[0] for r in ids])
                if ids:  # their attempts stay counted in the metrics (metrics.py)
                    keep_totals(conn, ids_json)
                n = conn.execute(PRUNE, {"ids": ids_json}).rowcount
                if n < batch:
                    conn.execute(PRUNE_WORKERS, {"before": before})
            total += n
            if n < batch:
                return total

    def count_prunable(self, before: float, states: Sequence[str]) -> int:
        """How many jobs `prune(before, states)` would delete now (a read: `--dry-run`)."""
        import json  # here, not at the top: `jobq ls` start-up

        states_json = json.dumps([s for s in states if s in ("succeeded", "failed", "cancelled")])
        with self._read() as conn:
            row = conn.execute(COUNT_PRUNABLE, {"before": before, "states": states_json}).fetchone()
        return int(row[0])

    def delete(self, ids: Sequence[int], *, force: bool = False) -> dict[int, ActionOutcome]:
        """Delete jobs and their attempts. Per id: DELETED (succeeded, failed or cancelled; with
        `force` also pending), NOT_FOUND, or WRONG_STATE (pending without `force`; running
        always: a worker holds it, cancel it first)."""
        import json  # here, not at the top: `jobq ls` start-up

        statement = DELETE_FORCED if force else DELETE_FINISHED
        out: dict[int, ActionOutcome] = {}
        deletable = ("succeeded", "failed", "cancelled", "pending") if force else (
            "succeeded", "failed", "cancelled")  # fmt: skip
        with self._write() as conn:
            for job_id in ids:
                state = conn.execute(STATE_OF, {"id": job_id}).fetchone()
                if state is not None and state[0] in deletable:
                    keep_totals(
                        conn, json.dumps([job_id])
                    )  # the metrics' counters keep its attempts
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
        from ... import lifecycle  # here: `jobq enqueue` never needs it (dataclasses)

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
        with self._write() as conn:
            conn.execute(SET_PAUSED, {"name": queue, "paused": int(paused), "now": now})

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
        import json  # here, not at the top: `jobq ls` start-up

        with self._write() as conn:
            conn.execute(
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
        with self._write() as conn:
            conn.execute(
                WORKER_HEARTBEAT,
                {"id": worker_id, "now": now, "jobs_done": jobs_done, "status": status},
            )

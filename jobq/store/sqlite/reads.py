"""The store's read operations: jobs, attempts, lists with keyset pagination, stats."""

from __future__ import annotations

from collections.abc import Sequence

from ...backend import ANY, EVERY, ClaimFilter, JobFilter
from ...basics import JobState
from .connection import Connection
from .rows import _like_escape, _row_to_attempt, _row_to_job, ids_json
from .sql import (
    ATTEMPT_COLUMNS,
    CLAIMABLE,
    ERRORS,
    JOB_COLUMNS,
    NEXT_RUN_AT,
    PAUSED,
    STATES_OF,
    WORKERS,
)
from .sql_deps import DEPENDENCIES, DEPENDENTS
from .sql_where import SINCE, UNTIL, where_sql

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from ...model import Attempt, FailedAttempt, Job, QueueStats, WorkerInfo


class Reads(Connection):
    """Read-only queries; each runs in one short read transaction."""

    def paused_queues(self) -> list[str]:
        """Names of paused queues."""
        with self._read() as conn:
            return [r[0] for r in conn.execute(PAUSED).fetchall()]

    def get(self, job_id: int) -> Job | None:
        """The job with that id, or None."""
        with self._read() as conn:
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _row_to_job(row)

    def get_many(self, ids: Sequence[int]) -> list[Job]:
        """The jobs with these ids that exist, in id order."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
                " ORDER BY id",
                (ids_json(ids),),
            ).fetchall()
        return [_row_to_job(r) for r in rows]

    def states(self, ids: Sequence[int]) -> dict[int, JobState]:
        """The state of each job among `ids` that exists (cheap: no payloads, for waiters)."""
        with self._read() as conn:
            rows = conn.execute(STATES_OF, {"ids": ids_json(ids)}).fetchall()
        return {r[0]: JobState(r[1]) for r in rows}

    def dependencies(self, ids: Sequence[int]) -> dict[int, list[tuple[int, JobState | None]]]:
        """For each of `ids` that runs after other jobs: those jobs (id order) and their states
        (None: deleted since)."""
        out: dict[int, list[tuple[int, JobState | None]]] = {}
        with self._read() as conn:
            rows = conn.execute(DEPENDENCIES, {"ids": ids_json(ids)}).fetchall()
        for job_id, after_id, state in rows:
            known = None if state is None else JobState(state)
            out.setdefault(job_id, []).append((after_id, known))
        return out

    def dependents(self, job_id: int, limit: int = 1000) -> list[tuple[int, JobState]]:
        """The jobs that run (or ran) after this one, in id order, with their states."""
        with self._read() as conn:
            rows = conn.execute(DEPENDENTS, {"id": job_id, "limit": limit}).fetchall()
        return [(r[0], JobState(r[1])) for r in rows]

    def attempts(self, job_id: int) -> list[Attempt]:
        """The finished attempts of a job, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = ? ORDER BY id", (job_id,)
            ).fetchall()
        return [_row_to_attempt(r) for r in rows]

    def list_jobs(self, now: float, filter: JobFilter = EVERY) -> list[Job]:
        """One page of at most `filter.limit` jobs matching the filter, in `filter.order`.

        Keyset pagination (`filter.after`) keeps every page as cheap as the first, even at
        millions of rows.
        """
        f = filter
        where, params = self._filters(now, f)
        after = f.after
        if f.order == "claim":
            if after is not None:
                assert isinstance(after, tuple) and len(after) == 3
                where.append(
                    "(priority < :p OR (priority = :p AND"
                    " (run_at > :r OR (run_at = :r AND id > :i))))"
                )
                params.update({"p": after[0], "r": after[1], "i": after[2]})
            order_by = "priority DESC, run_at, id"
        elif f.order == "finished":
            # newest finish first; (finished_at, id) is the jobs_finished index's own order
            where.append("finished_at IS NOT NULL")
            if after is not None:
                assert isinstance(after, tuple) and len(after) == 2
                where.append("(finished_at < :f OR (finished_at = :f AND id < :i))")
                params.update({"f": after[0], "i": after[1]})
            order_by = "finished_at DESC, id DESC"
        elif f.order == "oldest":
            if after is not None:
                where.append("id > :after")
                params["after"] = after
            order_by = "id"
        else:
            if after is not None:
                where.append("id < :after")
                params["after"] = after
            order_by = "id DESC"
        table = "jobs"
        if f.order == "claim" and f.state == "pending":
            # Without ANALYZE the planner picks jobs_state and sorts every pending row. The
            # partial indexes are in claim order (they need their WHERE as literals): jobs
            # that can run (jobs_pending) and jobs waiting for a dependency (jobs_blocked),
            # one page of each, merged.
            where[0] = "state = 'pending' AND blocked = 0"
            ready = " AND ".join(where)
            where[0] = "state = 'pending' AND blocked > 0"
            waiting = " AND ".join(where)
            page = f"ORDER BY {order_by} LIMIT :limit"
            sql = (
                f"SELECT * FROM (SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_pending"
                f" WHERE {ready} {page}) UNION ALL SELECT * FROM (SELECT {JOB_COLUMNS} FROM"
                f" jobs INDEXED BY jobs_blocked WHERE {waiting} {page}) {page}"
            )
            params["limit"] = f.limit
            with self._read() as conn:
                return [_row_to_job(r) for r in conn.execute(sql, params).fetchall()]
        if f.order == "finished":
            # the planner would rather take jobs_state and sort every succeeded row
            table = "jobs INDEXED BY jobs_finished"
        sql = (
            f"SELECT {JOB_COLUMNS} FROM {table}"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {order_by} LIMIT :limit"
        )
        params["limit"] = f.limit
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_row_to_job(r) for r in rows]

    def count_jobs(self, now: float, filter: JobFilter = EVERY) -> int:
        """How many jobs match the filter (its limit and page ignored)."""
        where, params = self._filters(now, filter)
        sql = "SELECT count(*) FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._read() as conn:
            n: int = conn.execute(sql, params).fetchone()[0]
        return n

    def matching_ids(self, now: float, filter: JobFilter = EVERY) -> list[int]:
        """Ids of every job matching the filter (its limit and page ignored), for bulk actions."""
        where, params = self._filters(now, filter)
        sql = "SELECT id FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._read() as conn:
            return [r[0] for r in conn.execute(sql + " ORDER BY id", params).fetchall()]

    @staticmethod
    def _filters(now: float, f: JobFilter) -> tuple[list[str], dict[str, object]]:
        # Only fixed SQL fragments; every user value travels as a parameter.
        state, type_glob, queue, search = f.state, f.type_glob, f.queue, f.search
        where: list[str] = []
        params: dict[str, object] = {"now": now}
        if state == "scheduled":
            where.append("state = 'pending' AND run_at > :now AND attempts = 0")
        elif state == "retrying":
            where.append("state = 'pending' AND run_at > :now AND attempts > 0")
        elif state is not None:
            where.append("state = :state")
            params["state"] = state
        if type_glob is not None:
            where.append("type GLOB :type_glob")
            params["type_glob"] = type_glob
        if queue is not None:
            where.append("queue = :queue")
            params["queue"] = queue
        if search:
            where.append(
                "(payload LIKE :search ESCAPE '\\' OR last_error LIKE :search ESCAPE '\\'"
                " OR type LIKE :search ESCAPE '\\')"
            )
            params["search"] = "%" + _like_escape(search) + "%"
        if f.where:
            where.extend(where_sql(f.where, params))
        if f.since is not None:
            where.append(SINCE)
            params["since"] = f.since
        if f.until is not None:
            where.append(UNTIL)
            params["until"] = f.until
        return where, params

    def counts(self) -> dict[str, int]:
        """Jobs per state (every state present, zeros included)."""
        with self._read() as conn:
            rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        out = {s.value: 0 for s in JobState}
        out.update({r[0]: r[1] for r in rows})
        return out

    def stats(self, now: float) -> QueueStats:
        """Counts per state, queue and type, the scheduled/retrying views, recent throughput."""
        from ...model import QueueStats

        with self._read() as conn:
            by_state = {s.value: 0 for s in JobState}
            by_queue: dict[str, dict[str, int]] = {}
            by_type: dict[str, dict[str, int]] = {}
            for q, t, s, n in conn.execute(
                "SELECT queue, type, state, count(*) FROM jobs GROUP BY queue, type, state"
            ):
                by_state[s] += n
                by_queue.setdefault(q, {}).setdefault(s, 0)
                by_queue[q][s] += n
                by_type.setdefault(t, {}).setdefault(s, 0)
                by_type[t][s] += n
            scheduled, retrying = conn.execute(
                "SELECT coalesce(sum(attempts = 0), 0), coalesce(sum(attempts > 0), 0) FROM jobs"
                " WHERE state = 'pending' AND run_at > :now",
                {"now": now},
            ).fetchone()
            finished, failed = conn.execute(
                "SELECT count(*), coalesce(sum(state = 'failed'), 0) FROM jobs"
                " WHERE finished_at IS NOT NULL AND finished_at >= :since",
                {"since": now - 60},
            ).fetchone()
            paused = [r[0] for r in conn.execute(PAUSED).fetchall()]
        return QueueStats(
            by_state=by_state,
            scheduled=scheduled,
            retrying=retrying,
            by_queue=by_queue,
            by_type=by_type,
            paused_queues=tuple(paused),
            finished_last_minute=finished,
            failed_last_minute=failed,
        )

    def throughput(self, now: float, buckets: int, width: float) -> list[int]:
        """Jobs finished per bucket of `width` seconds over the last `buckets` buckets."""
        since = now - buckets * width
        out = [0] * buckets
        with self._read() as conn:
            for b, n in conn.execute(
                "SELECT CAST((finished_at - :since) / :width AS INTEGER) AS b, count(*)"
                " FROM jobs WHERE finished_at IS NOT NULL AND finished_at >= :since GROUP BY b",
                {"since": since, "width": width},
            ):
                if 0 <= b < buckets:
                    out[b] += n
        return out

    def errors(self, *, after: int = 0, limit: int = 20) -> list[FailedAttempt]:
        """The latest failed attempts (failed, timeout, crashed), newest first, ids > `after`."""
        from ...model import FailedAttempt

        with self._read() as conn:
            rows = conn.execute(ERRORS, {"after": after, "limit": limit}).fetchall()
        return [FailedAttempt(_row_to_attempt(r[:10]), r[10], r[11]) for r in rows]

    def workers(self) -> list[WorkerInfo]:
        """Every registered pool with the jobs it is running now, newest first."""
        from ...model import WorkerInfo

        with self._read() as conn:
            running: dict[str, list[int]] = {}
            for job_id, wid in conn.execute(
                "SELECT id, worker_id FROM jobs WHERE state = 'running' ORDER BY id"
            ):
                running.setdefault(str(wid).split("/", 1)[0], []).append(job_id)
            rows = conn.execute(WORKERS).fetchall()
        return [
            WorkerInfo(
                id=r[0],
                name=r[1],
                host=r[2],
                pid=r[3],
                started_at=r[4],
                heartbeat_at=r[5],
                concurrency=r[6],
                queues=_names(r[7]),
                types=_names(r[8]),
                jobs_done=r[9],
                status=r[10],
                current_jobs=tuple(running.get(r[0], ())),
                type_globs=None if r[11] is None else _names(r[11]),
                proc_key=r[12],
            )
            for r in rows
        ]

    def has_claimable(self, now: float, filter: ClaimFilter = ANY) -> bool:
        """Whether a job that `claim` with this filter would lease is due now (`--burst`)."""
        params = _claim_params(filter)
        params["now"] = now
        with self._read() as conn:
            return bool(conn.execute(CLAIMABLE, params).fetchone()[0])

    def next_run_at(self, filter: ClaimFilter = ANY) -> float | None:
        """The earliest `run_at` of a pending job that `claim` with this filter could lease once
        due (paused queues skipped), or None if there is none: idle workers sleep until then.

        It may be in the past (a job enqueued since the last claim). Exact when at most
        NEXT_RUN_AT_PRIORITIES distinct priorities are pending; beyond that, the earliest among
        the highest ones (the others start by the caller's fallback poll at the latest)."""
        with self._read() as conn:
            value = conn.execute(NEXT_RUN_AT, _claim_params(filter)).fetchone()[0]
        return None if value is None else float(value)


def _names(packed: str | None) -> tuple[str, ...]:
    # WORKERS packs a pool's JSON lists of names as SQLite unpacks them (see sql.py)
    return () if not packed else tuple(packed.split("\x1f"))


def _claim_params(f: ClaimFilter) -> dict[str, object]:
    """A ClaimFilter as the named parameters of FOR_WORKER."""
    import json  # here, not at the top: `jobq ls` start-up

    return {
        "types": None if f.types is None else json.dumps(list(f.types)),
        "globs": None if f.type_globs is None else json.dumps(list(f.type_globs)),
        "queues": None if f.queues is None else json.dumps(list(f.queues)),
    }

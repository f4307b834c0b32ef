"""The PostgreSQL backend's reads: jobs, attempts, lists with keyset pagination, stats."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...backend import ANY, EVERY, ClaimFilter, JobFilter
from ...basics import JobState
from .connection import Connection
from .rows import claim_params, claim_shape, glob_regex, like_escape, row_to_attempt, row_to_job
from .sql import (
    ATTEMPT_COLUMNS,
    ERRORS,
    JOB_COLUMNS,
    PAUSED,
    STATES_OF,
    WORKERS,
    claimable_sql,
    next_run_at_sql,
)
from .sql_deps import DEPENDENCIES, DEPENDENTS
from .sql_where import SINCE, UNTIL, where_sql

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model import Attempt, FailedAttempt, Job, QueueStats, WorkerInfo


class Reads(Connection):
    """Read-only queries; each is one statement (sent again once if the connection had died),
    or one short transaction."""

    def paused_queues(self) -> list[str]:
        """Names of paused queues."""
        return [r[0] for r in self._get(PAUSED).fetchall()]

    def get(self, job_id: int) -> Job | None:
        """The job with that id, or None."""
        row = self._get(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %(id)s", {"id": job_id})
        got = row.fetchone()
        return None if got is None else row_to_job(got)

    def get_many(self, ids: Sequence[int]) -> list[Job]:
        """The jobs with these ids that exist, in id order."""
        rows = self._get(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id",
            {"ids": list(ids)},
        ).fetchall()
        return [row_to_job(r) for r in rows]

    def attempts(self, job_id: int) -> list[Attempt]:
        """The finished attempts of a job, oldest first."""
        rows = self._get(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts AS a WHERE a.job_id = %(id)s ORDER BY a.id",
            {"id": job_id},
        ).fetchall()
        return [row_to_attempt(r) for r in rows]

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
                # `priority <= p` bounds the walk of the index (priority DESC, run_at, id)
                where.append(
                    "priority <= %(p)s AND (priority < %(p)s OR (run_at, id) >"
                    " (to_timestamp(%(r)s::float8), %(i)s::bigint))"
                )
                params.update({"p": after[0], "r": after[1], "i": after[2]})
            order_by = "priority DESC, run_at, id"
        elif f.order == "finished":
            # newest finish first, walking the jobs_finished index backwards
            where.append("finished_at IS NOT NULL")
            if after is not None:
                assert isinstance(after, tuple) and len(after) == 2
                where.append("(finished_at, id) < (to_timestamp(%(f)s::float8), %(i)s::bigint)")
                params.update({"f": after[0], "i": after[1]})
            order_by = "finished_at DESC, id DESC"
        elif f.order == "oldest":
            if after is not None:
                where.append("id > %(after)s")
                params["after"] = after
            order_by = "id"
        else:
            if after is not None:
                where.append("id < %(after)s")
                params["after"] = after
            order_by = "id DESC"
        sql = (
            f"SELECT {JOB_COLUMNS} FROM jobs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {order_by} LIMIT %(limit)s"
        )
        if f.order == "claim" and f.state == "pending":
            # The partial indexes in claim order hold the jobs that can run (jobs_pending) and
            # those waiting for a dependency (jobs_blocked): one page of each, merged.
            where[0] = "state = 'pending' AND blocked = 0"
            ready = " AND ".join(where)
            where[0] = "state = 'pending' AND blocked > 0"
            waiting = " AND ".join(where)
            page = f"ORDER BY {order_by} LIMIT %(limit)s"
            sql = (
                f"(SELECT {JOB_COLUMNS} FROM jobs WHERE {ready} {page}) UNION ALL"
                f" (SELECT {JOB_COLUMNS} FROM jobs WHERE {waiting} {page})"
                " ORDER BY 5 DESC, 7, 1 LIMIT %(limit)s"
            )
        params["limit"] = f.limit
        return [row_to_job(r) for r in self._get(sql, params).fetchall()]

    def dependencies(self, ids: Sequence[int]) -> dict[int, list[tuple[int, JobState | None]]]:
        """For each of `ids` that runs after other jobs: those jobs (id order) and their states
        (None: deleted since)."""
        out: dict[int, list[tuple[int, JobState | None]]] = {}
        for job_id, after_id, state in self._get(DEPENDENCIES, {"ids": list(ids)}).fetchall():
            known = None if state is None else JobState(state)
            out.setdefault(job_id, []).append((after_id, known))
        return out

    def dependents(self, job_id: int, limit: int = 1000) -> list[tuple[int, JobState]]:
        """The jobs that run (or ran) after this one, in id order, with their states."""
        rows = self._get(DEPENDENTS, {"id": job_id, "limit": limit}).fetchall()
        return [(r[0], JobState(r[1])) for r in rows]

    def count_jobs(self, now: float, filter: JobFilter = EVERY) -> int:
        """How many jobs match the filter (its limit and page ignored)."""
        where, params = self._filters(now, filter)
        sql = "SELECT count(*) FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        n: int = self._get(sql, params).fetchone()[0]
        return n

    def matching_ids(self, now: float, filter: JobFilter = EVERY) -> list[int]:
        """Ids of every job matching the filter (its limit and page ignored), for bulk actions."""
        where, params = self._filters(now, filter)
        sql = "SELECT id FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        return [r[0] for r in self._get(sql + " ORDER BY id", params).fetchall()]

    @staticmethod
    def _filters(now: float, f: JobFilter) -> tuple[list[str], dict[str, Any]]:
        # Only fixed SQL fragments; every user value travels as a parameter.
        state, type_glob, queue, search = f.state, f.type_glob, f.queue, f.search
        where: list[str] = []
        params: dict[str, Any] = {"now": now}
        if state == "scheduled":
            where.append(
                "state = 'pending' AND run_at > to_timestamp(%(now)s::float8) AND attempts = 0"
            )
        elif state == "retrying":
            where.append(
                "state = 'pending' AND run_at > to_timestamp(%(now)s::float8) AND attempts > 0"
            )
        elif state is not None:
            where.append("state = %(state)s")
            params["state"] = state
        if type_glob is not None:
            where.append("type ~ %(type_glob)s")
            params["type_glob"] = glob_regex(type_glob)
        if queue is not None:
            where.append("queue = %(queue)s")
            params["queue"] = queue
        if search:
            # ILIKE: SQLite's LIKE ignores the case of ASCII letters, and so must this
            where.append(
                "(payload::text ILIKE %(search)s OR last_error ILIKE %(search)s"
                " OR type ILIKE %(search)s)"
            )
            params["search"] = "%" + like_escape(search) + "%"
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
        rows = self._get("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
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
            views = conn.execute(
                "SELECT count(*) FILTER (WHERE attempts = 0), count(*) FILTER (WHERE attempts > 0)"
                " FROM jobs WHERE state = 'pending' AND run_at > to_timestamp(%(now)s::float8)",
                {"now": now},
            ).fetchone()
            recent = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'failed') FROM jobs"
                " WHERE finished_at >= to_timestamp(%(since)s::float8)",
                {"since": now - 60},
            ).fetchone()
            paused = [r[0] for r in conn.execute(PAUSED).fetchall()]
        assert views is not None and recent is not None
        return QueueStats(
            by_state=by_state,
            scheduled=views[0],
            retrying=views[1],
            by_queue=by_queue,
            by_type=by_type,
            paused_queues=tuple(paused),
            finished_last_minute=recent[0],
            failed_last_minute=recent[1],
        )

    def throughput(self, now: float, buckets: int, width: float) -> list[int]:
        """Jobs finished per bucket of `width` seconds over the last `buckets` buckets."""
        since = now - buckets * width
        out = [0] * buckets
        for b, n in self._get(
            "SELECT floor((date_part('epoch', finished_at) - %(since)s::float8)"
            " / %(width)s::float8)::bigint AS b, count(*) FROM jobs"
            " WHERE finished_at >= to_timestamp(%(since)s::float8) GROUP BY b",
            {"since": since, "width": width},
        ):
            if 0 <= b < buckets:
                out[b] += n
        return out

    def errors(self, *, after: int = 0, limit: int = 20) -> list[FailedAttempt]:
        """The latest failed attempts (failed, timeout, crashed), newest first, ids > `after`."""
        from ...model import FailedAttempt

        rows = self._get(ERRORS, {"after": after, "limit": limit}).fetchall()
        return [FailedAttempt(row_to_attempt(r[:10]), r[10], r[11]) for r in rows]

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
                queues=tuple(json.loads(r[7])),
                types=tuple(json.loads(r[8])),
                jobs_done=r[9],
                status=r[10],
                current_jobs=tuple(running.get(r[0], ())),
                type_globs=None if r[11] is None else tuple(json.loads(r[11])),
                proc_key=r[12],
            )
            for r in rows
        ]

    def next_run_at(self, filter: ClaimFilter = ANY) -> float | None:
        """The earliest `run_at` of a pending job that `claim` with this filter could lease once
        due (paused queues skipped), or None: idle workers sleep until then. It may be past."""
        params = claim_params(0.0, filter)
        value = self._get(next_run_at_sql(*claim_shape(filter)), params).fetchone()[0]
        return None if value is None else float(value)

    def states(self, ids: Sequence[int]) -> dict[int, JobState]:
        """The state of each job of `ids` that exists (a missing id is absent)."""
        rows = self._get(STATES_OF, {"ids": list(ids)}).fetchall()
        return {int(i): JobState(state) for i, state in rows}

    def has_claimable(self, now: float, filter: ClaimFilter = ANY) -> bool:
        """Whether a job that `claim` with this filter would lease is due now (`--burst`)."""
        sql = claimable_sql(*claim_shape(filter))
        return bool(self._get(sql, claim_params(now, filter)).fetchone()[0])

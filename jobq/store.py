"""The store: every SQL statement of jobq, and the only module that imports sqlite3.

Each public method is one transaction. Writes begin with BEGIN IMMEDIATE: a deferred transaction
that upgrades to a write fails at once with SQLITE_BUSY whatever the busy timeout. Time (`now`) is
always an argument, so tests drive the state machine with a plain number.

A running attempt is a lease: (worker_id, lease_token, lease_until). Every write that ends or
renews an attempt names its token, and a stale token changes 0 rows ("fencing").
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from . import retry
from .errors import (
    CorruptFile,
    DatabaseBusy,
    DiskFull,
    JobqError,
    QueueFileError,
)
from .filecheck import check_existing, check_not_network
from .model import (
    DEFAULT_MAX_ATTEMPTS,
    Attempt,
    FailedAttempt,
    Job,
    JobState,
    NewJob,
    Outcome,
    QueueStats,
    WorkerInfo,
)
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

DEFAULT_BUSY_TIMEOUT = 30.0

JOB_COLUMNS = (
    "id, type, queue, payload, priority, state, run_at, attempts, max_attempts, timeout, "
    "unique_key, result, last_error, created_at, started_at, finished_at, worker_id, "
    "lease_token, lease_until, cancel_requested"
)
ATTEMPT_COLUMNS = (
    "id, job_id, attempt, worker_id, started_at, finished_at, outcome, error, traceback, output"
)

INSERT_JOB = """
INSERT INTO jobs (type, queue, payload, priority, state, run_at, max_attempts, timeout,
                  unique_key, created_at)
VALUES (:type, :queue, :payload, :priority, 'pending', :run_at, :max_attempts, :timeout,
        :unique_key, :now)
"""

FIND_UNIQUE = """
SELECT id FROM jobs WHERE unique_key = :unique_key AND state IN ('pending', 'running')
"""

# The claim: one UPDATE over the first due rows of the partial index, in claim order.
CLAIM = f"""
UPDATE jobs
SET state = 'running', attempts = attempts + 1, worker_id = :worker, lease_token = :token,
    lease_until = :lease_until, started_at = :now, cancel_requested = 0
WHERE id IN (
    SELECT id FROM jobs INDEXED BY jobs_pending
    WHERE state = 'pending' AND run_at <= :now
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
      AND (:globs IS NULL OR EXISTS (SELECT 1 FROM json_each(:globs) AS g
                                     WHERE jobs.type GLOB g.value))
      AND queue NOT IN (SELECT name FROM queues WHERE paused)
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)
RETURNING {JOB_COLUMNS}
"""

RENEW = """
UPDATE jobs SET lease_until = :lease_until
WHERE id = :id AND lease_token = :token AND state = 'running'
"""

COMPLETE = """
UPDATE jobs
SET state = 'succeeded', result = :result, finished_at = :now, lease_token = NULL,
    lease_until = NULL
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING attempts, worker_id, started_at
"""

LEASED = """
SELECT attempts, max_attempts, worker_id, started_at, cancel_requested
FROM jobs WHERE id = :id AND lease_token = :token AND state = 'running'
"""

END_ATTEMPT = """
UPDATE jobs
SET state = :state, attempts = :attempts, finished_at = :finished_at,
    run_at = COALESCE(:run_at, run_at), last_error = COALESCE(:error, last_error),
    lease_token = NULL, lease_until = NULL,
    cancel_requested = 0
WHERE id = :id AND lease_token = :token AND state = 'running'
"""

INSERT_ATTEMPT = """
INSERT INTO attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error,
                      traceback, output)
VALUES (:job_id, :attempt, :worker_id, :started_at, :now, :outcome, :error, :traceback, :output)
"""

EXPIRED = """
SELECT id, lease_token, worker_id FROM jobs
WHERE state = 'running' AND lease_until < :now
ORDER BY lease_until
"""

RUNNING_OF = """
SELECT id, lease_token, worker_id, started_at, timeout, cancel_requested, attempts
FROM jobs WHERE state = 'running' AND worker_id >= :prefix AND worker_id < :prefix_end
"""

CANCEL_PENDING = """
UPDATE jobs SET state = 'cancelled', finished_at = :now, last_error = 'cancelled'
WHERE id = :id AND state = 'pending'
"""

REQUEST_CANCEL = """
UPDATE jobs SET cancel_requested = 1 WHERE id = :id AND state = 'running'
"""

RETRY = """
UPDATE OR IGNORE jobs
SET state = 'pending', attempts = 0, run_at = :now, finished_at = NULL, started_at = NULL,
    result = NULL, cancel_requested = 0
WHERE id = :id AND state IN ('failed', 'cancelled')
"""

SET_PRIORITY = "UPDATE jobs SET priority = :priority WHERE id = :id"

STATE_OF = "SELECT state FROM jobs WHERE id = :id"

PRUNE = """
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE finished_at < :before AND state IN (SELECT value FROM json_each(:states))
    LIMIT :batch
)
"""

PRUNE_WORKERS = """
DELETE FROM workers WHERE heartbeat_at < :before
"""

SET_PAUSED = """
INSERT INTO queues (name, paused, paused_at) VALUES (:name, :paused, :now)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, paused_at = excluded.paused_at
"""

PAUSED = "SELECT name FROM queues WHERE paused ORDER BY name"

ERRORS = f"""
SELECT {", ".join("a." + c.strip() for c in ATTEMPT_COLUMNS.split(","))}, j.type, j.queue
FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
WHERE a.outcome IN ('failed', 'timeout', 'crashed') AND a.id > :after
ORDER BY a.id DESC LIMIT :limit
"""

REGISTER_WORKER = """
INSERT OR REPLACE INTO workers (id, name, host, pid, started_at, heartbeat_at, concurrency,
                                queues, types, jobs_done, status)
VALUES (:id, :name, :host, :pid, :now, :now, :concurrency, :queues, :types, 0, 'running')
"""

WORKER_HEARTBEAT = """
UPDATE workers SET heartbeat_at = :now, jobs_done = :jobs_done, status = :status WHERE id = :id
"""

OutcomeLike = Outcome | str


def _translate(e: sqlite3.Error, path: str) -> JobqError:
    """Turn a sqlite3 error into the jobq error a person can act on."""
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    msg = str(e)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in msg:
        return DatabaseBusy(f"{path} stayed locked by another process past the busy timeout")
    if primary == sqlite3.SQLITE_FULL or "disk is full" in msg:
        return DiskFull(f"no space left for {path}: free some disk space and retry")
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in msg:
        return CorruptFile(f"{path} is damaged ({msg}); run `jobq doctor`, restore a backup")
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return QueueFileError(f"cannot write {path}: {msg}")
    if primary == sqlite3.SQLITE_IOERR or "disk I/O" in msg:
        return QueueFileError(f"I/O error on {path}: {msg}")
    return JobqError(f"{path}: {msg}")


def _row_to_job(r: Sequence[object]) -> Job:
    return Job(
        id=r[0],  # type: ignore[arg-type]
        type=r[1],  # type: ignore[arg-type]
        queue=r[2],  # type: ignore[arg-type]
        payload_json=r[3],  # type: ignore[arg-type]
        priority=r[4],  # type: ignore[arg-type]
        state=JobState(r[5]),
        run_at=r[6],  # type: ignore[arg-type]
        attempts=r[7],  # type: ignore[arg-type]
        max_attempts=r[8],  # type: ignore[arg-type]
        timeout=r[9],  # type: ignore[arg-type]
        unique_key=r[10],  # type: ignore[arg-type]
        result_json=r[11],  # type: ignore[arg-type]
        last_error=r[12],  # type: ignore[arg-type]
        created_at=r[13],  # type: ignore[arg-type]
        started_at=r[14],  # type: ignore[arg-type]
        finished_at=r[15],  # type: ignore[arg-type]
        worker_id=r[16],  # type: ignore[arg-type]
        lease_token=r[17],  # type: ignore[arg-type]
        lease_until=r[18],  # type: ignore[arg-type]
        cancel_requested=bool(r[19]),
    )


def _row_to_attempt(r: Sequence[object]) -> Attempt:
    return Attempt(
        id=r[0],  # type: ignore[arg-type]
        job_id=r[1],  # type: ignore[arg-type]
        attempt=r[2],  # type: ignore[arg-type]
        worker_id=r[3],  # type: ignore[arg-type]
        started_at=r[4],  # type: ignore[arg-type]
        finished_at=r[5],  # type: ignore[arg-type]
        outcome=Outcome(r[6]),
        error=r[7],  # type: ignore[arg-type]
        traceback=r[8],  # type: ignore[arg-type]
        output=r[9],  # type: ignore[arg-type]
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply missing migrations inside one IMMEDIATE transaction (safe under concurrent opens)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # re-read under the write lock: another process may have migrated meanwhile
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for statements in MIGRATIONS[version:]:
            for sql in statements:
                conn.execute(sql)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _create_file(path: str, busy_timeout: float) -> None:
    """Create a fully migrated queue file at `path` atomically (link a finished temp file).

    Several processes may race here; exactly one link succeeds and the others open its file,
    so no process ever sees a half-initialised queue file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".jobq-new-", suffix=".db", dir=directory)
    os.close(fd)
    try:
        os.chmod(tmp, 0o600 & ~_umask())
        conn = sqlite3.connect(tmp, isolation_level=None, timeout=busy_timeout)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            _migrate(conn)
        finally:
            conn.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; its file is complete
        except OSError:
            # filesystems without hard links: rename is atomic but may replace a racing winner's
            # empty file only if it does not exist yet
            if not os.path.exists(path):
                os.replace(tmp, path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(tmp + suffix)
            except FileNotFoundError:
                pass


class Store:
    """A connection to one queue file, with every operation of the job state machine."""

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        allow_network_fs: bool = False,
        mountinfo: str | None = None,
        create: bool = True,
    ) -> None:
        self.path = path
        if not allow_network_fs:
            if mountinfo is None:
                check_not_network(path)
            else:
                check_not_network(path, mountinfo)
        exists = check_existing(path)
        if not exists:
            if not create:
                raise QueueFileError(f"no queue file at {path}")
            _create_file(path, busy_timeout)
            check_existing(path)
        try:
            self._conn = sqlite3.connect(
                path, isolation_level=None, timeout=busy_timeout, check_same_thread=False
            )
            _configure(self._conn)
            self._sync = "NORMAL"
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                _migrate(self._conn)
            mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                self._conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as e:
            raise _translate(e, path) from None

    # ---- plumbing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _set_sync(self, mode: str) -> None:
        if self._sync != mode:
            self._conn.execute(f"PRAGMA synchronous = {mode}")
            self._sync = mode

    @contextmanager
    def _write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction; `durable` commits with synchronous=FULL (fsync of the WAL)."""
        conn = self._conn
        try:
            self._set_sync("FULL" if durable else "NORMAL")
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _translate(e, self.path) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, ended at once so the WAL can always be checkpointed."""
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None

    @property
    def synchronous(self) -> int:
        """The connection's current `PRAGMA synchronous` (2 = FULL), for tests."""
        value: int = self._conn.execute("PRAGMA synchronous").fetchone()[0]
        return value

    def data_version(self) -> int:
        """`PRAGMA data_version`: changes whenever another connection commits."""
        try:
            value: int = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        return value

    # ---- enqueue ------------------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        """Insert jobs in one durable transaction; return their ids.

        A job whose unique key matches a pending or running job is not inserted: the existing
        job's id is returned in its place.
        """
        with self._write(durable=True) as conn:
            if all(j.unique_key is None for j in jobs):
                # AUTOINCREMENT under the write lock: the new ids are seq+1 ... seq+n
                seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
                start = (seq[0] if seq else 0) + 1
                conn.executemany(INSERT_JOB, [self._job_params(j, now) for j in jobs])
                return list(range(start, start + len(jobs)))
            ids: list[int] = []
            for j in jobs:
                if j.unique_key is not None:
                    row = conn.execute(FIND_UNIQUE, {"unique_key": j.unique_key}).fetchone()
                    if row is not None:
                        ids.append(row[0])
                        continue
                cur = conn.execute(INSERT_JOB, self._job_params(j, now))
                ids.append(cur.lastrowid)  # type: ignore[arg-type]
            return ids

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

    # ---- the worker's side of the state machine -------------------------------------------------

    def claim(
        self,
        worker_id: str,
        now: float,
        lease_seconds: float,
        *,
        limit: int = 1,
        types: Sequence[str] | None = None,
        type_globs: Sequence[str] | None = None,
        queues: Sequence[str] | None = None,
    ) -> list[Job]:
        """Lease up to `limit` due jobs in claim order (priority DESC, run_at, id).

        `types` restricts to exact type names, `type_globs` to GLOB patterns, `queues` to queue
        names; paused queues are skipped. Each claimed job gets one attempt counted.
        """
        token = secrets.token_hex(8)
        params = {
            "worker": worker_id,
            "token": token,
            "lease_until": now + lease_seconds,
            "now": now,
            "limit": limit,
            "types": None if types is None else json.dumps(list(types)),
            "globs": None if type_globs is None else json.dumps(list(type_globs)),
            "queues": None if queues is None else json.dumps(list(queues)),
        }
        with self._write() as conn:
            rows = conn.execute(CLAIM, params).fetchall()
        jobs = [_row_to_job(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return jobs

    def claim_plan(self) -> list[str]:
        """The query plan of the claim's inner SELECT (for the test that forbids a table scan)."""
        sql = "EXPLAIN QUERY PLAN " + CLAIM[CLAIM.index("SELECT id FROM jobs INDEXED") :].rsplit(")", 1)[0]
        params = {"now": 0.0, "limit": 1, "types": '["a"]', "globs": None, "queues": None}
        return [str(r[3]) for r in self._conn.execute(sql, params).fetchall()]

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
        return True

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
        default_max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> JobState | None:
        """End a failed attempt: back to pending after backoff, or `failed` when attempts are
        used up (or `cancelled` if a cancel was requested). None if the lease was lost."""

        def retry_at(attempts: int) -> float:
            return now + retry.backoff(attempts, rand)

        return self._end(job_id, token, now, Outcome(outcome), error, traceback, output,
                         retry_at if retryable else None, count=True,
                         default_max=default_max_attempts)  # fmt: skip

    def crash(
        self,
        job_id: int,
        token: str,
        now: float,
        error: str,
        output: str | None = None,
        *,
        outcome: OutcomeLike = Outcome.CRASHED,
        default_max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> JobState | None:
        """End an attempt whose worker died or was killed: counted, and the job is due again at
        once (or `failed` when attempts are used up). None if the lease was lost."""
        return self._end(job_id, token, now, Outcome(outcome), error, None, output,
                         lambda _attempts: now, count=True,
                         default_max=default_max_attempts)  # fmt: skip

    def release(
        self, job_id: int, token: str, now: float, reason: str = "interrupted by shutdown"
    ) -> JobState | None:
        """Give back a leased job without using up its attempt (graceful shutdown)."""
        return self._end(job_id, token, now, Outcome.INTERRUPTED, reason, None, None,
                         lambda _attempts: now, count=False)  # fmt: skip

    def finish_cancelled(
        self, job_id: int, token: str, now: float, output: str | None = None
    ) -> JobState | None:
        """End a leased job as cancelled (its worker was stopped on an operator's request)."""
        with self._write() as conn:
            return self._end_in(conn, job_id, token, now, Outcome.CANCELLED,
                                "cancelled while running", None, output, None, True,
                                force_state=JobState.CANCELLED)  # fmt: skip

    def _end(
        self,
        job_id: int,
        token: str,
        now: float,
        outcome: Outcome,
        error: str | None,
        traceback: str | None,
        output: str | None,
        retry_at: Callable[[int], float] | None,
        *,
        count: bool,
        default_max: int = DEFAULT_MAX_ATTEMPTS,
    ) -> JobState | None:
        with self._write() as conn:
            return self._end_in(
                conn, job_id, token, now, outcome, error, traceback, output, retry_at, count,
                default_max=default_max,
            )

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
        default_max: int = DEFAULT_MAX_ATTEMPTS,
    ) -> JobState | None:
        row = conn.execute(LEASED, {"id": job_id, "token": token}).fetchone()
        if row is None:
            return None
        attempts, max_attempts, worker_id, started_at, cancel_requested = row
        if max_attempts is None:
            max_attempts = default_max
        new_attempts = attempts if count else attempts - 1
        run_at: float | None = None
        finished_at: float | None = now
        if force_state is not None:
            state = force_state
        elif cancel_requested:
            state, outcome = JobState.CANCELLED, Outcome.CANCELLED
        elif retry_at is not None and (new_attempts < max_attempts or not count):
            state, run_at, finished_at = JobState.PENDING, retry_at(new_attempts), None
        else:
            state = JobState.FAILED
        conn.execute(
            END_ATTEMPT,
            {
                "id": job_id,
                "token": token,
                "state": state.value,
                "attempts": new_attempts,
                "run_at": run_at,  # None keeps the old value
                "finished_at": finished_at,
                "error": error,
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
        return state

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
        """End every attempt whose lease expired before `now` as crashed (attempt counted)."""
        with self._write() as conn:
            expired = conn.execute(EXPIRED, {"now": now}).fetchall()
            out: list[tuple[int, JobState]] = []
            for job_id, token, worker_id in expired:
                state = self._end_in(
                    conn, job_id, token, now, Outcome.CRASHED,
                    f"lease expired: worker {worker_id} stopped renewing it",
                    None, None, lambda _a: now, True,
                )  # fmt: skip
                if state is not None:
                    out.append((job_id, state))
        return out

    # ---- the operator's side --------------------------------------------------------------------

    def cancel(self, ids: Sequence[int], now: float) -> dict[int, str]:
        """Cancel pending jobs; ask the supervisor to stop running ones.

        Returns per id: 'cancelled', 'cancel requested', 'not found', or the finished state.
        """
        out: dict[int, str] = {}
        with self._write() as conn:
            for job_id in ids:
                if conn.execute(CANCEL_PENDING, {"id": job_id, "now": now}).rowcount:
                    out[job_id] = "cancelled"
                elif conn.execute(REQUEST_CANCEL, {"id": job_id}).rowcount:
                    out[job_id] = "cancel requested"
                else:
                    row = conn.execute(STATE_OF, {"id": job_id}).fetchone()
                    out[job_id] = "not found" if row is None else row[0]
        return out

    def retry(self, ids: Sequence[int], now: float) -> dict[int, str]:
        """Move failed or cancelled jobs back to pending with attempts reset.

        Returns per id: 'retried', 'not found', 'duplicate unique key', or the current state.
        """
        out: dict[int, str] = {}
        with self._write() as conn:
            for job_id in ids:
                if conn.execute(RETRY, {"id": job_id, "now": now}).rowcount:
                    out[job_id] = "retried"
                    continue
                row = conn.execute(STATE_OF, {"id": job_id}).fetchone()
                if row is None:
                    out[job_id] = "not found"
                elif row[0] in ("failed", "cancelled"):
                    out[job_id] = "duplicate unique key"
                else:
                    out[job_id] = row[0]
        return out

    def set_priority(self, ids: Sequence[int], priority: int) -> dict[int, str]:
        """Set the priority of jobs; returns per id 'ok' or 'not found'."""
        out: dict[int, str] = {}
        with self._write() as conn:
            for job_id in ids:
                n = conn.execute(SET_PRIORITY, {"id": job_id, "priority": priority}).rowcount
                out[job_id] = "ok" if n else "not found"
        return out

    def prune(self, before: float, states: Sequence[str], batch: int = 5000) -> int:
        """Delete finished jobs (and their attempts) that finished before `before`.

        Works in batches so that workers are never kept waiting behind one huge delete.
        """
        total = 0
        states_json = json.dumps([s for s in states if s in ("succeeded", "failed", "cancelled")])
        while True:
            with self._write() as conn:
                n = conn.execute(
                    PRUNE, {"before": before, "states": states_json, "batch": batch}
                ).rowcount
                if n < batch:
                    conn.execute(PRUNE_WORKERS, {"before": before})
            total += n
            if n < batch:
                return total

    def set_paused(self, queue: str, paused: bool, now: float) -> None:
        """Pause or resume claiming from a queue."""
        with self._write() as conn:
            conn.execute(SET_PAUSED, {"name": queue, "paused": int(paused), "now": now})

    def paused_queues(self) -> list[str]:
        """Names of paused queues."""
        with self._read() as conn:
            return [r[0] for r in conn.execute(PAUSED).fetchall()]

    # ---- reads --------------------------------------------------------------------------------

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
                (json.dumps(list(ids)),),
            ).fetchall()
        return [_row_to_job(r) for r in rows]

    def attempts(self, job_id: int) -> list[Attempt]:
        """The finished attempts of a job, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE job_id = ? ORDER BY id", (job_id,)
            ).fetchall()
        return [_row_to_attempt(r) for r in rows]

    def list_jobs(
        self,
        now: float,
        *,
        state: str | None = None,
        type_glob: str | None = None,
        queue: str | None = None,
        search: str | None = None,
        limit: int = 50,
        order: str = "newest",
        after: tuple[int, float, int] | int | None = None,
        ids_only: bool = False,
    ) -> list[Job]:
        """Jobs matching the filters, one page of at most `limit`.

        `order="newest"` pages by id descending (`after` = last id seen); `order="claim"` pages in
        claim order (`after` = (priority, run_at, id) of the last row seen). Keyset pagination
        keeps every page as cheap as the first, even at millions of rows.
        """
        where, params = self._filters(now, state, type_glob, queue, search)
        if order == "claim":
            if after is not None:
                assert isinstance(after, tuple)
                where.append(
                    "(priority < :p OR (priority = :p AND (run_at > :r OR (run_at = :r AND id > :i))))"
                )
                params.update({"p": after[0], "r": after[1], "i": after[2]})
            order_by = "priority DESC, run_at, id"
        elif order == "oldest":
            if after is not None:
                where.append("id > :after")
                params["after"] = after
            order_by = "id"
        else:
            if after is not None:
                where.append("id < :after")
                params["after"] = after
            order_by = "id DESC"
        sql = (
            f"SELECT {JOB_COLUMNS} FROM jobs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY {order_by} LIMIT :limit"
        )
        params["limit"] = limit
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_row_to_job(r) for r in rows]

    def count_jobs(
        self,
        now: float,
        *,
        state: str | None = None,
        type_glob: str | None = None,
        queue: str | None = None,
        search: str | None = None,
    ) -> int:
        """How many jobs match the filters (for bulk-action previews)."""
        where, params = self._filters(now, state, type_glob, queue, search)
        sql = "SELECT count(*) FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._read() as conn:
            n: int = conn.execute(sql, params).fetchone()[0]
        return n

    def matching_ids(
        self,
        now: float,
        *,
        state: str | None = None,
        type_glob: str | None = None,
        queue: str | None = None,
        search: str | None = None,
    ) -> list[int]:
        """Ids of every job matching the filters (for bulk actions)."""
        where, params = self._filters(now, state, type_glob, queue, search)
        sql = "SELECT id FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._read() as conn:
            return [r[0] for r in conn.execute(sql + " ORDER BY id", params).fetchall()]

    @staticmethod
    def _filters(
        now: float,
        state: str | None,
        type_glob: str | None,
        queue: str | None,
        search: str | None,
    ) -> tuple[list[str], dict[str, object]]:
        # Only fixed SQL fragments; every user value travels as a parameter.
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
            for (b, n) in conn.execute(
                "SELECT CAST((finished_at - :since) / :width AS INTEGER) AS b, count(*)"
                " FROM jobs WHERE finished_at IS NOT NULL AND finished_at >= :since GROUP BY b",
                {"since": since, "width": width},
            ):
                if 0 <= b < buckets:
                    out[b] += n
        return out

    def errors(self, *, after: int = 0, limit: int = 20) -> list[FailedAttempt]:
        """The latest failed attempts (failed, timeout, crashed), newest first, ids > `after`."""
        with self._read() as conn:
            rows = conn.execute(ERRORS, {"after": after, "limit": limit}).fetchall()
        return [FailedAttempt(_row_to_attempt(r[:10]), r[10], r[11]) for r in rows]

    # ---- worker pools -------------------------------------------------------------------------

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
    ) -> None:
        """Record a worker pool in the workers table."""
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

    def workers(self) -> list[WorkerInfo]:
        """Every registered pool with the jobs it is running now, newest first."""
        with self._read() as conn:
            running: dict[str, list[int]] = {}
            for job_id, wid in conn.execute(
                "SELECT id, worker_id FROM jobs WHERE state = 'running' ORDER BY id"
            ):
                running.setdefault(str(wid).split("/", 1)[0], []).append(job_id)
            rows = conn.execute(
                "SELECT id, name, host, pid, started_at, heartbeat_at, concurrency, queues, types,"
                " jobs_done, status FROM workers ORDER BY started_at DESC"
            ).fetchall()
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
            )
            for r in rows
        ]

    # ---- admin --------------------------------------------------------------------------------

    def backup(self, out_path: str) -> None:
        """Write a consistent copy of the queue file to `out_path`, appearing atomically."""
        directory = os.path.dirname(os.path.abspath(out_path))
        fd, tmp = tempfile.mkstemp(prefix=".jobq-backup-", suffix=".db", dir=directory)
        os.close(fd)
        try:
            os.chmod(tmp, 0o600 & ~_umask())
            dest = sqlite3.connect(tmp, isolation_level=None)
            try:
                self._conn.backup(dest)
                dest.execute("PRAGMA journal_mode = WAL")
            finally:
                dest.close()
            os.replace(tmp, out_path)
        except sqlite3.Error as e:
            raise _translate(e, out_path) from None
        finally:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(tmp + suffix)
                except FileNotFoundError:
                    pass

    def doctor(self) -> dict[str, object]:
        """Integrity check and schema report."""
        try:
            conn = self._conn
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            fk = conn.execute("PRAGMA foreign_key_check").fetchall()
            report: dict[str, object] = {
                "path": self.path,
                "integrity": "ok" if integrity == ["ok"] else integrity[:20],
                "foreign_key_violations": len(fk),
                "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
                "supported_schema_version": SCHEMA_VERSION,
                "application_id": conn.execute("PRAGMA application_id").fetchone()[0],
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
                "page_count": conn.execute("PRAGMA page_count").fetchone()[0],
                "freelist_count": conn.execute("PRAGMA freelist_count").fetchone()[0],
                "sqlite_version": sqlite3.sqlite_version,
            }
            tables: dict[str, int] = {}
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            ).fetchall():
                tables[name] = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            report["tables"] = tables
            indexes = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'jobs_%'"
                    " ORDER BY name"
                )
            ]
            report["indexes"] = indexes
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        try:
            report["wal_bytes"] = os.path.getsize(self.path + "-wal")
        except OSError:
            report["wal_bytes"] = 0
        return report

    def checkpoint(self) -> tuple[int, int, int]:
        """Run a PASSIVE WAL checkpoint: (busy, wal frames, frames checkpointed)."""
        try:
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None
        return (row[0], row[1], row[2])

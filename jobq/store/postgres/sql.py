"""Every SQL statement of the PostgreSQL backend, as named constants with named parameters.

The SQLite backend's statements (jobq/store/sqlite/sql.py), in PostgreSQL's dialect. Times cross
the seam as float seconds since the epoch: `to_timestamp(%(now)s::float8)` in, `date_part('epoch',
col)` out (exact to the microsecond, the resolution of timestamptz). json columns are read
`::text`, so a payload comes back as the exact text it was enqueued with. Table names are
unqualified: the connection's search_path is the queue's schema (and only it).
"""

from __future__ import annotations

from functools import lru_cache

from .sql_deps import _NO_PENDING_DEPENDENT


def _epoch(col: str) -> str:
    return f"date_part('epoch', {col})"


NOW = "to_timestamp(%(now)s::float8)"

JOB_COLUMNS = (
    "id, type, queue, payload::text, priority, state, "
    f"{_epoch('run_at')}, attempts, max_attempts, timeout, unique_key, result::text, last_error, "
    f"{_epoch('created_at')}, {_epoch('started_at')}, {_epoch('finished_at')}, worker_id, "
    f"lease_token, {_epoch('lease_until')}, cancel_requested"
)
ATTEMPT_COLUMNS = (
    f"a.id, a.job_id, a.attempt, a.worker_id, {_epoch('a.started_at')}, "
    f"{_epoch('a.finished_at')}, a.outcome, a.error, a.traceback, a.output"
)

INSERT_JOB = f"""
INSERT INTO jobs (type, queue, payload, priority, state, run_at, max_attempts, timeout,
                  unique_key, created_at)
VALUES (%(type)s, %(queue)s, %(payload)s::json, %(priority)s, 'pending',
        to_timestamp(%(run_at)s::float8), %(max_attempts)s, %(timeout)s::float8,
        %(unique_key)s, {NOW})
RETURNING id
"""

# Insert a job unless a job of its type holds its unique key. If one commits meanwhile (after
# this statement's snapshot), the insert yields to it (ON CONFLICT on jobs_unique) and neither
# branch returns a row: the caller runs it again, with a snapshot that sees the winner.
INSERT_UNIQUE = f"""
WITH found AS (
    SELECT id, state FROM jobs
    WHERE type = %(type)s AND unique_key = %(unique_key)s AND state IN ('pending', 'running')
), ins AS (
    INSERT INTO jobs (type, queue, payload, priority, state, run_at, max_attempts, timeout,
                      unique_key, created_at)
    SELECT %(type)s, %(queue)s, %(payload)s::json, %(priority)s, 'pending',
           to_timestamp(%(run_at)s::float8), %(max_attempts)s, %(timeout)s::float8,
           %(unique_key)s, {NOW}
    WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (type, unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('pending', 'running') DO NOTHING
    RETURNING id
)
SELECT id, state FROM found UNION ALL SELECT id, NULL FROM ins
"""

# The active job holding a unique key: keys are scoped to the type (index jobs_unique).
FIND_UNIQUE = """
SELECT id, state FROM jobs
WHERE type = %(type)s AND unique_key = %(unique_key)s AND state IN ('pending', 'running')
"""

# The jobs a worker may claim now: due, in its queues and types, not in a paused queue. Type
# globs arrive as anchored regular expressions (rows.glob_regex: SQLite GLOB's semantics). Only
# the conditions a filter has are written in ({only}, see due_where): `$1 IS NULL OR …` would
# make the server's generic plan (psycopg prepares a statement on its fifth use) guess that
# almost no row is due, and sort every due row instead of walking the index.
# (Walked through the partial index jobs_pending, whose WHERE needs its terms as literals.)
DUE_FOR_WORKER = f"""state = 'pending' AND blocked = 0 AND run_at <= {NOW}
      {{only}}AND queue NOT IN (SELECT name FROM queues WHERE paused)"""
_ONLY = (
    "AND queue = ANY(%(queues)s::text[])\n      ",
    "AND type = ANY(%(types)s::text[])\n      ",
    "AND type ~ ANY(%(globs)s::text[])\n      ",
)


def due_where(queues: bool, types: bool, globs: bool) -> str:
    """DUE_FOR_WORKER with the conditions of a filter that has queues, types or globs."""
    only = "".join(c for c, given in zip(_ONLY, (queues, types, globs), strict=True) if given)
    return DUE_FOR_WORKER.replace("{only}", only)


# A claimed job's handler limit (max_attempts: i=0, timeout: i=1) from the claim's %(limits)s, a
# JSON object {type: [max_attempts, timeout]} (null: the handler has none).
HANDLER_LIMIT = (
    "(SELECT (l.value ->> {i})::{cast} FROM json_each(%(limits)s::json) AS l"
    " WHERE l.key = jobs.type)"
)

# The claim: one UPDATE over the first due rows of the partial index, in claim order, skipping
# rows another claim has locked (so concurrent claims never wait for each other nor take the same
# job). MATERIALIZED: the locked ids are chosen once, whatever the planner would inline. It fixes
# the job's effective max_attempts and timeout (job, else handler, else default).
CLAIM = f"""
WITH due AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE {{due}}
    ORDER BY priority DESC, run_at, id
    LIMIT {{limit}}
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs
SET state = 'running', attempts = attempts + 1, worker_id = %(worker)s,
    lease_token = %(token)s, lease_until = to_timestamp(%(lease_until)s::float8),
    started_at = {NOW}, cancel_requested = false,
    max_attempts = COALESCE(max_attempts, {HANDLER_LIMIT.format(i=0, cast="integer")},
                            %(default_max_attempts)s),
    timeout = COALESCE(timeout, {HANDLER_LIMIT.format(i=1, cast="float8")},
                       %(default_timeout)s::float8)
FROM due WHERE jobs.id = due.id
RETURNING jobs.{JOB_COLUMNS}
"""


@lru_cache(maxsize=64)
def claim_sql(limit: int, queues: bool = False, types: bool = False, globs: bool = False) -> str:
    """The claim of at most `limit` jobs with the filter's conditions (see due_where). The limit
    is an int written in: a `LIMIT $1` makes a generic plan guess a tenth of the table."""
    return CLAIM.replace("{due}", due_where(queues, types, globs)).replace(
        "{limit}", str(int(limit))
    )


@lru_cache(maxsize=16)
def claimable_sql(queues: bool = False, types: bool = False, globs: bool = False) -> str:
    """Whether any job a worker could claim now exists (the claim's filter, read-only):
    `--burst`."""
    return f"SELECT EXISTS (SELECT 1 FROM jobs WHERE {due_where(queues, types, globs)})"


# The earliest run_at a worker could claim once due (idle workers sleep until then): the
# pending priorities found by a loose index scan of jobs_pending, then per priority the first
# run_at in that index that passes the filter. Never a scan of every pending job.
NEXT_RUN_AT = """
WITH RECURSIVE pr AS (
    (SELECT priority FROM jobs WHERE state = 'pending' AND blocked = 0 ORDER BY priority DESC
     LIMIT 1)
    UNION ALL
    SELECT (SELECT j.priority FROM jobs AS j
            WHERE j.state = 'pending' AND j.blocked = 0 AND j.priority < pr.priority
            ORDER BY j.priority DESC LIMIT 1)
    FROM pr WHERE pr.priority IS NOT NULL
)
SELECT date_part('epoch', min((
    SELECT run_at FROM jobs
    WHERE state = 'pending' AND blocked = 0 AND priority = pr.priority
      {only}AND queue NOT IN (SELECT name FROM queues WHERE paused)
    ORDER BY run_at LIMIT 1
))) FROM pr WHERE pr.priority IS NOT NULL
"""


@lru_cache(maxsize=16)
def next_run_at_sql(queues: bool = False, types: bool = False, globs: bool = False) -> str:
    """NEXT_RUN_AT with the conditions of a claim filter (see due_where)."""
    only = "".join(c for c, given in zip(_ONLY, (queues, types, globs), strict=True) if given)
    return NEXT_RUN_AT.replace("{only}", only)


STATES_OF = "SELECT id, state FROM jobs WHERE id = ANY(%(ids)s::bigint[])"


RENEW = """
UPDATE jobs SET lease_until = to_timestamp(%(lease_until)s::float8)
FROM unnest(%(ids)s::bigint[], %(tokens)s::text[]) AS l(id, token)
WHERE jobs.id = l.id AND jobs.lease_token = l.token AND jobs.state = 'running'
"""

# Complete a batch of leased jobs and record their attempts in one statement; returns the
# positions (1-based) of those whose lease still held.
COMPLETE_MANY = f"""
WITH d AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::text[], %(results)s::text[],
                         %(outputs)s::text[]) WITH ORDINALITY AS d(id, token, result, output, n)
), done AS (
    UPDATE jobs
    SET state = 'succeeded', result = d.result::json, finished_at = {NOW}, lease_token = NULL,
        lease_until = NULL, cancel_requested = false
    FROM d
    WHERE jobs.id = d.id AND jobs.lease_token = d.token AND jobs.state = 'running'
    RETURNING jobs.id, jobs.attempts, jobs.worker_id, jobs.started_at, d.output, d.n
), rec AS (
    INSERT INTO attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, output)
    SELECT id, attempts, worker_id, started_at, {NOW}, 'succeeded', output FROM done ORDER BY n
)
SELECT n FROM done
"""

# The lease of a job being ended, locked until the end of the transaction.
LEASED = f"""
SELECT attempts, max_attempts, worker_id, {_epoch("started_at")}, cancel_requested, snoozes
FROM jobs WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
FOR UPDATE
"""

# How often a leased job snoozed, read without a row lock (the errors lock must come first)
SNOOZES = """
SELECT snoozes FROM jobs WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
"""

# Taken before an error's attempt row is written, held to the commit (see JobWrites._end_in).
LOCK_ERRORS = "SELECT pg_advisory_xact_lock(hashtext(%(key)s))"

# End an attempt (lifecycle.end_attempt decided how) and record it, in one statement.
END_ATTEMPT = f"""
WITH ended AS (
    UPDATE jobs
    SET state = %(state)s, attempts = %(attempts)s,
        finished_at = to_timestamp(%(finished_at)s::float8),
        run_at = COALESCE(to_timestamp(%(run_at)s::float8), run_at),
        last_error = COALESCE(%(error)s, last_error),
        lease_token = NULL, lease_until = NULL, cancel_requested = false,
        snoozes = snoozes + %(snoozed)s
    WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
    RETURNING id
)
INSERT INTO attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error,
                      traceback, output)
SELECT id, %(attempt)s, %(worker_id)s, to_timestamp(%(started_at)s::float8), {NOW},
       %(outcome)s, %(error)s, %(traceback)s, %(output)s
FROM ended
"""

# Every running job with what the rescuer needs to decide (lifecycle.plan_rescue).
HELD = f"""
SELECT id, lease_token, worker_id, {_epoch("lease_until")}, priority, {_epoch("run_at")}
FROM jobs WHERE state = 'running'
ORDER BY lease_until
"""

# Pools that have not said they stopped: the rescuer checks whether each still lives.
LIVE_POOLS = f"""
SELECT id, status, proc_key, {_epoch("heartbeat_at")} FROM workers
WHERE status NOT IN ('stopped', 'dead')
"""

MARK_POOL_DEAD = """
UPDATE workers SET status = 'dead' WHERE id = %(id)s AND status NOT IN ('stopped', 'dead')
"""

# starts_with, not a range of worker ids: under a linguistic collation (en_US…) "p2/1" sorts
# between "p/" and "p/\U0010ffff", as punctuation weighs nothing at first.
RUNNING_OF = f"""
SELECT id, lease_token, worker_id, {_epoch("started_at")}, timeout, cancel_requested, attempts
FROM jobs WHERE state = 'running' AND starts_with(worker_id, %(prefix)s)
"""

CANCEL_PENDING = f"""
UPDATE jobs SET state = 'cancelled', finished_at = {NOW}, last_error = 'cancelled', blocked = 0
WHERE id = %(id)s AND state = 'pending'
"""

REQUEST_CANCEL = """
UPDATE jobs SET cancel_requested = true WHERE id = %(id)s AND state = 'running'
"""

# SQLite's UPDATE OR IGNORE: a job that another pending or running job of its type holds the
# unique key of stays put (checked first; the index jobs_unique still guards a race).
RETRY = f"""
UPDATE jobs
SET state = 'pending', attempts = 0, run_at = {NOW}, finished_at = NULL, started_at = NULL,
    result = NULL, cancel_requested = false, snoozes = 0
WHERE id = %(id)s AND state IN ('failed', 'cancelled')
  AND (unique_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM jobs AS o WHERE o.type = jobs.type AND o.unique_key = jobs.unique_key
        AND o.state IN ('pending', 'running')))
"""

SET_PRIORITY = "UPDATE jobs SET priority = %(priority)s WHERE id = %(id)s"

STATE_OF = "SELECT state FROM jobs WHERE id = %(id)s"

PRUNE = """
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE finished_at < to_timestamp(%(before)s::float8) AND state = ANY(%(states)s::text[])
    LIMIT %(batch)s
)
"""

COUNT_PRUNABLE = f"""
SELECT count(*) FROM jobs
WHERE finished_at < to_timestamp(%(before)s::float8) AND state = ANY(%(states)s::text[])
  AND {_NO_PENDING_DEPENDENT}
"""

# A pool's children lease jobs as "POOL_ID/GENERATION". A pool still holding a running job keeps
# its record: the rescuer decides from it what to do with that job. (starts_with, not a range
# of ids: text order follows the database's collation, where '/' and '0' need not be neighbours.)
_HOLDS_NO_JOB = """NOT EXISTS (
    SELECT 1 FROM jobs WHERE state = 'running' AND starts_with(worker_id, workers.id || '/')
)"""

# Retention forgets pools that stopped or were found dead (the rescuer of any live pool marks
# them) — never one that still runs, however late its heartbeat.
PRUNE_WORKERS = f"""
DELETE FROM workers
WHERE heartbeat_at < to_timestamp(%(before)s::float8) AND status IN ('stopped', 'dead')
  AND {_HOLDS_NO_JOB}
"""

POOLS_TO_FORGET = f"""
SELECT id, status, proc_key, {_epoch("heartbeat_at")} FROM workers
WHERE heartbeat_at < to_timestamp(%(before)s::float8) ORDER BY id COLLATE "C"
FOR UPDATE
"""

FORGET_POOL = f"DELETE FROM workers WHERE id = %(id)s AND {_HOLDS_NO_JOB}"

DELETE_FINISHED = """
DELETE FROM jobs WHERE id = %(id)s AND state IN ('succeeded', 'failed', 'cancelled')
"""

DELETE_FORCED = """
DELETE FROM jobs WHERE id = %(id)s AND state IN ('succeeded', 'failed', 'cancelled', 'pending')
"""

SET_PAUSED = f"""
INSERT INTO queues (name, paused, paused_at) VALUES (%(name)s, %(paused)s, {NOW})
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, paused_at = excluded.paused_at
"""

PAUSED = 'SELECT name FROM queues WHERE paused ORDER BY name COLLATE "C"'

ERRORS = f"""
SELECT {ATTEMPT_COLUMNS}, j.type, j.queue
FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
WHERE a.outcome IN ('failed', 'timeout', 'crashed') AND a.id > %(after)s
ORDER BY a.id DESC LIMIT %(limit)s
"""

REGISTER_WORKER = f"""
INSERT INTO workers (id, name, host, pid, started_at, heartbeat_at, concurrency, queues, types,
                     type_globs, jobs_done, status, proc_key)
VALUES (%(id)s, %(name)s, %(host)s, %(pid)s, {NOW}, {NOW}, %(concurrency)s, %(queues)s::json,
        %(types)s::json, %(type_globs)s::json, 0, 'running', %(proc_key)s)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, host = excluded.host, pid = excluded.pid,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
    concurrency = excluded.concurrency, queues = excluded.queues, types = excluded.types,
    type_globs = excluded.type_globs, jobs_done = 0, status = 'running',
    proc_key = excluded.proc_key
"""

WORKER_HEARTBEAT = f"""
UPDATE workers SET heartbeat_at = {NOW}, jobs_done = %(jobs_done)s, status = %(status)s
WHERE id = %(id)s
"""

WORKERS = f"""
SELECT id, name, host, pid, {_epoch("started_at")}, {_epoch("heartbeat_at")}, concurrency,
       queues::text, types::text, jobs_done, status, type_globs::text, proc_key
FROM workers ORDER BY started_at DESC
"""

# `jobq doctor`'s row counts of the schema's tables, in one constant statement.
SCHEMA_TABLES = ("jobs", "attempts", "workers", "queues", "metric_totals", "schedules", "events",
                 "job_output", "job_progress", "rollup", "limits",
                 "job_edits", "job_deps")  # fmt: skip
COUNT_TABLES = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in SCHEMA_TABLES)

CHANGE_TOKEN = "SELECT jobq_change_token()"


# ---- metrics (store/postgres/metrics.py, jobq/metrics.py): as the SQLite file's

RUN_SECONDS = "greatest(date_part('epoch', a.finished_at - a.started_at), 0)"
RUN_BUCKET = """
CASE
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 0.005 THEN 0
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 0.01 THEN 1
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 0.025 THEN 2
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 0.05 THEN 3
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 0.1 THEN 4
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 0.25 THEN 5
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 0.5 THEN 6
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 1.0 THEN 7
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 2.5 THEN 8
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 5.0 THEN 9
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 10.0 THEN 10
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 30.0 THEN 11
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 60.0 THEN 12
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 120.0 THEN 13
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 300.0 THEN 14
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 600.0 THEN 15
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 1800.0 THEN 16
    WHEN greatest(date_part('epoch', a.finished_at - a.started_at), 0) <= 3600.0 THEN 17
    ELSE 18
END
"""
KEEP_TOTALS = f"""
INSERT INTO metric_totals (type, key, value)
SELECT j.type, k.key, sum(k.value) FROM (
    SELECT a.job_id, 'attempts:' || a.outcome AS key, 1.0::float8 AS value
    FROM attempts AS a WHERE a.job_id = ANY(%(ids)s)
    UNION ALL
    SELECT a.job_id, 'seconds', {RUN_SECONDS} FROM attempts AS a WHERE a.job_id = ANY(%(ids)s)
    UNION ALL
    SELECT a.job_id, 'bucket:' || ({RUN_BUCKET}), 1.0 FROM attempts AS a
    WHERE a.job_id = ANY(%(ids)s)
) AS k JOIN jobs AS j ON j.id = k.job_id
GROUP BY j.type, k.key
ON CONFLICT (type, key) DO UPDATE SET value = metric_totals.value + excluded.value
"""
PRUNABLE = f"""
SELECT id FROM jobs
WHERE finished_at < to_timestamp(%(before)s::float8) AND state = ANY(%(states)s::text[])
  AND {_NO_PENDING_DEPENDENT}
LIMIT %(batch)s
"""
PRUNE_IDS = "DELETE FROM jobs WHERE id = ANY(%(ids)s)"
METRIC_JOBS = "SELECT state, queue, type, count(*) FROM jobs GROUP BY state, queue, type"
METRIC_DUE = """
SELECT queue, date_part('epoch', min(run_at)) FROM jobs
WHERE state = 'pending' AND run_at <= to_timestamp(%(now)s::float8) GROUP BY queue
"""
METRIC_ATTEMPTS = f"""
SELECT j.type, a.outcome, count(*), sum({RUN_SECONDS}) FROM attempts AS a
JOIN jobs AS j ON j.id = a.job_id GROUP BY j.type, a.outcome
"""
METRIC_BUCKETS = f"""
SELECT j.type, {RUN_BUCKET} AS b, count(*) FROM attempts AS a
JOIN jobs AS j ON j.id = a.job_id GROUP BY j.type, b
"""
METRIC_KEPT = "SELECT type, key, value FROM metric_totals"
METRIC_BUSY = """
SELECT split_part(worker_id, '/', 1), count(*) FROM jobs WHERE state = 'running' GROUP BY 1
"""

# ---- schedules (store/postgres/schedules.py, jobq/schedules.py)

SCHEDULE_COLUMNS = (
    "name, cron, tz, type, queue, payload::text, priority, paused, date_part('epoch', next_at), "
    "date_part('epoch', last_at), last_job_id, date_part('epoch', created_at)"
)
SCHEDULES = f'SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name COLLATE "C"'
SCHEDULE = "SELECT 1 FROM schedules WHERE name = %(name)s"
PUT_SCHEDULE = """
INSERT INTO schedules (name, cron, tz, type, queue, payload, priority, paused, next_at,
                       created_at)
VALUES (%(name)s, %(cron)s, %(tz)s, %(type)s, %(queue)s, %(payload)s::json, %(priority)s,
        %(paused)s, to_timestamp(%(next_at)s::float8), to_timestamp(%(now)s::float8))
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, tz = excluded.tz, type = excluded.type, queue = excluded.queue,
    payload = excluded.payload, priority = excluded.priority, next_at = excluded.next_at
"""
REMOVE_SCHEDULE = "DELETE FROM schedules WHERE name = %(name)s"
PAUSE_SCHEDULE = "UPDATE schedules SET paused = %(paused)s WHERE name = %(name)s"
NEXT_SCHEDULE = "SELECT date_part('epoch', min(next_at)) FROM schedules WHERE NOT paused"
# the due schedules, locked; another pool firing them at the same time skips them
DUE_SCHEDULES = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules
WHERE NOT paused AND next_at <= to_timestamp(%(now)s::float8)
ORDER BY next_at FOR UPDATE SKIP LOCKED
"""
FIRED_SCHEDULE = """
UPDATE schedules SET next_at = to_timestamp(%(next_at)s::float8),
    last_at = to_timestamp(%(slot)s::float8), last_job_id = %(job_id)s
WHERE name = %(name)s AND next_at = to_timestamp(%(slot)s::float8) AND NOT paused
"""

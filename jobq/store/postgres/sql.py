"""Every SQL statement of the PostgreSQL backend, as named constants with named parameters.

The SQLite backend's statements (jobq/store/sqlite/sql.py), in PostgreSQL's dialect. Times cross
the seam as float seconds since the epoch: `to_timestamp(%(now)s::float8)` in, `date_part('epoch',
col)` out (exact to the microsecond, the resolution of timestamptz). json columns are read
`::text`, so a payload comes back as the exact text it was enqueued with. Table names are
unqualified: the connection's search_path is the queue's schema (and only it).
"""

from __future__ import annotations


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

# Bulk insert of jobs that share every column but the payload: the payloads travel as one JSON
# array (a run, see JobWrites.enqueue_runs) that the server unpacks, one statement for the run.
# json (not jsonb) functions return each element as its exact text. Rows are inserted in array
# order, so their identity ids increase in array order: the caller sorts the ids it gets back.
INSERT_JOBS_BULK = f"""
INSERT INTO jobs (type, queue, payload, priority, state, run_at, max_attempts, timeout,
                  created_at)
SELECT %(type)s, %(queue)s,
       CASE json_typeof(e.v) WHEN 'object' THEN e.v WHEN 'array' THEN e.v -> 0 END,
       %(priority)s, 'pending', to_timestamp(%(run_at)s::float8), %(max_attempts)s,
       %(timeout)s::float8, {NOW}
FROM json_array_elements(%(payloads)s::json) WITH ORDINALITY AS e(v, n)
ORDER BY e.n
RETURNING id
"""

# The active job holding a unique key: keys are scoped to the type (index jobs_unique).
FIND_UNIQUE = """
SELECT id, state FROM jobs
WHERE type = %(type)s AND unique_key = %(unique_key)s AND state IN ('pending', 'running')
"""

# The jobs a worker may claim now: due, in its queues and types, not in a paused queue. Type
# globs arrive as anchored regular expressions (rows.glob_regex: SQLite GLOB's semantics).
# (Walked through the partial index jobs_pending, whose WHERE needs the state as a literal.)
DUE_FOR_WORKER = f"""state = 'pending' AND run_at <= {NOW}
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
      AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))
      AND (%(globs)s::text[] IS NULL OR type ~ ANY(%(globs)s::text[]))
      AND queue NOT IN (SELECT name FROM queues WHERE paused)"""

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
    WHERE {DUE_FOR_WORKER}
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
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

# Whether any job a worker could claim now exists (the claim's filter, read-only): `--burst`.
CLAIMABLE = f"SELECT EXISTS (SELECT 1 FROM jobs WHERE {DUE_FOR_WORKER})"

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
SELECT attempts, max_attempts, worker_id, {_epoch("started_at")}, cancel_requested
FROM jobs WHERE id = %(id)s AND lease_token = %(token)s AND state = 'running'
FOR UPDATE
"""

# End an attempt (lifecycle.end_attempt decided how) and record it, in one statement.
END_ATTEMPT = f"""
WITH ended AS (
    UPDATE jobs
    SET state = %(state)s, attempts = %(attempts)s,
        finished_at = to_timestamp(%(finished_at)s::float8),
        run_at = COALESCE(to_timestamp(%(run_at)s::float8), run_at),
        last_error = COALESCE(%(error)s, last_error),
        lease_token = NULL, lease_until = NULL, cancel_requested = false
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

RUNNING_OF = f"""
SELECT id, lease_token, worker_id, {_epoch("started_at")}, timeout, cancel_requested, attempts
FROM jobs WHERE state = 'running' AND worker_id >= %(prefix)s AND worker_id < %(prefix_end)s
"""

CANCEL_PENDING = f"""
UPDATE jobs SET state = 'cancelled', finished_at = {NOW}, last_error = 'cancelled'
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
    result = NULL, cancel_requested = false
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

PRUNE_WORKERS = "DELETE FROM workers WHERE heartbeat_at < to_timestamp(%(before)s::float8)"

SET_PAUSED = f"""
INSERT INTO queues (name, paused, paused_at) VALUES (%(name)s, %(paused)s, {NOW})
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, paused_at = excluded.paused_at
"""

PAUSED = "SELECT name FROM queues WHERE paused ORDER BY name"

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
SCHEMA_TABLES = ("jobs", "attempts", "workers", "queues")
COUNT_TABLES = """
SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM attempts),
       (SELECT count(*) FROM workers), (SELECT count(*) FROM queues)
"""

CHANGE_TOKEN = "SELECT jobq_change_token()"

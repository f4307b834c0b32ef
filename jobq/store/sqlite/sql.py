"""Every SQL statement of jobq, as named constants with named parameters."""

from __future__ import annotations

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

# Bulk insert of jobs that share every column but the payload: the payloads travel as one JSON
# array and SQLite unpacks it in C (about 3x faster than executemany binding row by row). Each
# row's id is given (:first_id + its index in the array), so ids match payloads whatever order
# json_each yields them in.
# Every payload must be stored as exactly the text single enqueue stores, and json_each's `value`
# of a scalar is an SQL value, not that text: 12345678901234567890 comes back as a rounded
# float, -0.0 as 0.0, "x\u0000y" as "x". The `value` of an object or array, though, is its JSON
# text, which SQLite renders verbatim from the input (numbers and strings as written). So an
# object payload is an element as it is, and any other payload travels wrapped in a one-element
# array whose brackets substr() cuts off. A bare scalar element is a caller's mistake: NULL,
# which the NOT NULL payload column refuses.
INSERT_JOBS_BULK = """
INSERT INTO jobs (id, type, queue, payload, priority, state, run_at, max_attempts, timeout,
                  created_at)
SELECT :first_id + key, :type, :queue,
       CASE type WHEN 'object' THEN value
                 WHEN 'array' THEN substr(value, 2, length(value) - 2) END,
       :priority, 'pending', :run_at, :max_attempts, :timeout, :now
FROM json_each(:payloads)
"""

LAST_JOB_ID = "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'"

# The active job holding a unique key: keys are scoped to the type (index jobs_unique).
FIND_UNIQUE = """
SELECT id, state FROM jobs
WHERE type = :type AND unique_key = :unique_key AND state IN ('pending', 'running')
"""

# The pending jobs a worker may claim, due or not: in its queues and types, not in a paused queue.
# (Walked through the partial index jobs_pending, whose WHERE needs the state as a literal.)
FOR_WORKER = """state = 'pending'
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
      AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
      AND (:globs IS NULL OR EXISTS (SELECT 1 FROM json_each(:globs) AS g
                                     WHERE jobs.type GLOB g.value))
      AND queue NOT IN (SELECT name FROM queues WHERE paused)"""

# The jobs a worker may claim now: those due.
DUE_FOR_WORKER = FOR_WORKER + " AND run_at <= :now"

# A claimed job's handler limit (max_attempts: i=0, timeout: i=1) from the claim's :limits, a JSON
# object {type: [max_attempts, timeout]} (null: the handler has none).
HANDLER_LIMIT = (
    "(SELECT json_extract(l.value, '$[{i}]') FROM json_each(:limits) AS l WHERE l.key = jobs.type)"
)

# The claim: one UPDATE over the first due rows of the partial index, in claim order. It fixes
# the job's effective max_attempts and timeout (job, else handler, else default): every later
# reader, a rescuer in another pool included, sees the limits that really apply.
CLAIM = f"""
UPDATE jobs
SET state = 'running', attempts = attempts + 1, worker_id = :worker, lease_token = :token,
    lease_until = :lease_until, started_at = :now, cancel_requested = 0,
    max_attempts = COALESCE(max_attempts, {HANDLER_LIMIT.format(i=0)}, :default_max_attempts),
    timeout = COALESCE(timeout, {HANDLER_LIMIT.format(i=1)}, :default_timeout)
WHERE id IN (
    SELECT id FROM jobs INDEXED BY jobs_pending
    WHERE {DUE_FOR_WORKER}
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
    lease_until = NULL, cancel_requested = 0
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

# Every running job with what the rescuer needs to decide (lifecycle.plan_rescue).
HELD = """
SELECT id, lease_token, worker_id, lease_until, priority, run_at FROM jobs
WHERE state = 'running'
ORDER BY lease_until
"""

# Pools that have not said they stopped: the rescuer checks whether each still lives.
LIVE_POOLS = """
SELECT id, status, proc_key, heartbeat_at FROM workers WHERE status NOT IN ('stopped', 'dead')
"""

MARK_POOL_DEAD = """
UPDATE workers SET status = 'dead' WHERE id = :id AND status NOT IN ('stopped', 'dead')
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

# OR IGNORE: a job of the same type now holds its unique key (jobs_unique); it stays put.
RETRY = """
UPDATE OR IGNORE jobs
SET state = 'pending', attempts = 0, run_at = :now, finished_at = NULL, started_at = NULL,
    result = NULL, cancel_requested = 0
WHERE id = :id AND state IN ('failed', 'cancelled')
"""

SET_PRIORITY = "UPDATE jobs SET priority = :priority WHERE id = :id"

STATE_OF = "SELECT state FROM jobs WHERE id = :id"

# The states of some jobs (`Queue.wait`): a look at the primary key only, no payloads.
STATES_OF = "SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(:ids))"

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
                                queues, types, type_globs, jobs_done, status, proc_key)
VALUES (:id, :name, :host, :pid, :now, :now, :concurrency, :queues, :types, :type_globs, 0,
        'running', :proc_key)
"""

WORKER_HEARTBEAT = """
UPDATE workers SET heartbeat_at = :now, jobs_done = :jobs_done, status = :status WHERE id = :id
"""

# Whether any job a worker could claim now exists (the claim's filter, read-only): `--burst`.
CLAIMABLE = f"""
SELECT EXISTS (
    SELECT 1 FROM jobs INDEXED BY jobs_pending
    WHERE {DUE_FOR_WORKER}
)
"""

# The earliest run_at of a pending job a worker may claim (idle workers sleep until then), in
# O(priorities × log n) through jobs_pending, whose order is (priority DESC, run_at, id): walk the
# distinct priorities (one index probe each, the first NEXT_RUN_AT_PRIORITIES of them) and take
# the first matching row of each, the earliest of that priority. MIN(run_at) over the index would
# visit every pending row.
NEXT_RUN_AT_PRIORITIES = 256
NEXT_RUN_AT = f"""
WITH RECURSIVE prio(p, n) AS (
    SELECT (SELECT priority FROM jobs INDEXED BY jobs_pending WHERE state = 'pending'
            ORDER BY priority DESC LIMIT 1), 1
    UNION ALL
    SELECT (SELECT priority FROM jobs INDEXED BY jobs_pending
            WHERE state = 'pending' AND priority < prio.p ORDER BY priority DESC LIMIT 1), n + 1
    FROM prio WHERE prio.p IS NOT NULL AND n < {NEXT_RUN_AT_PRIORITIES}
)
SELECT min((SELECT run_at FROM jobs INDEXED BY jobs_pending
            WHERE priority = prio.p AND {FOR_WORKER}
            ORDER BY priority DESC, run_at, id LIMIT 1))
FROM prio WHERE p IS NOT NULL
"""

# `jobq doctor`'s row counts of the schema's tables, in one constant statement.
SCHEMA_TABLES = ("jobs", "attempts", "workers", "queues")
COUNT_TABLES = """
SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM attempts),
       (SELECT count(*) FROM workers), (SELECT count(*) FROM queues)
"""

# Every connection: a WAL restarted at its front is also cut back to 4 MiB (store/checkpoint.py)
JOURNAL_SIZE_LIMIT = "PRAGMA journal_size_limit = 4194304"

"""Every SQL statement of jobq, as named constants with named parameters."""

from __future__ import annotations

from .sql_deps import _NO_PENDING_DEPENDENT

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    pass

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

# The `created` events of the jobs just inserted, ids :first to :last, in id order: one statement
# for a whole bulk insert (schema migration 12 says why this is no trigger)
CREATED_EVENTS = """
INSERT INTO events (at, kind, job_id, type, queue, attempt)
SELECT created_at, 'created', id, type, queue, attempts FROM jobs
WHERE id BETWEEN :first AND :last ORDER BY id
"""


# The active job holding a unique key: keys are scoped to the type (index jobs_unique).
FIND_UNIQUE = """
SELECT id, state FROM jobs
WHERE type = :type AND unique_key = :unique_key AND state IN ('pending', 'running')
"""

# The pending jobs a worker may claim, due or not: in its queues and types, not in a paused queue,
# not waiting for a dependency. (Walked through the partial index jobs_pending, whose WHERE needs
# the state and `blocked = 0` as literals.)
FOR_WORKER = """state = 'pending' AND blocked = 0
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

# ---- limits across pools (jobq/limits.py has the rules)

# The claim's ORDER BY, where the limit conditions below are put into it and into PEEK_DUE.
_CLAIM_ORDER = "ORDER BY priority DESC, run_at, id"
assert CLAIM.count(_CLAIM_ORDER) == 1
# The claim when no limit exists: the usual claim plus one uncorrelated NOT EXISTS, evaluated
# once per statement (no extra statement, no round trip); an empty result with limits present
# sends the claim down the limited path (store/sqlite/writes.py) in the same transaction.
CLAIM_UNLIMITED = CLAIM.replace(
    _CLAIM_ORDER, "AND NOT EXISTS (SELECT 1 FROM limits)\n    " + _CLAIM_ORDER
)
HAS_LIMITS = "SELECT EXISTS (SELECT 1 FROM limits)"
# The jobs of exhausted limit keys (:held_types, :held_queues: JSON arrays) are left pending.
_NOT_HELD = """AND type NOT IN (SELECT value FROM json_each(:held_types))
      AND queue NOT IN (SELECT value FROM json_each(:held_queues))
    """
CLAIM_LIMITED = CLAIM.replace(_CLAIM_ORDER, _NOT_HELD + _CLAIM_ORDER)
# The first due candidates of a claim (type and queue only, nothing locked or changed).
PEEK_DUE = f"""
SELECT type, queue FROM jobs INDEXED BY jobs_pending
WHERE {DUE_FOR_WORKER} {_NOT_HELD}{_CLAIM_ORDER}
LIMIT :limit
"""
LIMITS = "SELECT key, concurrency, rate_count, rate_period, tat FROM limits ORDER BY key"
LIMIT_KEYS = "SELECT key FROM limits ORDER BY key"
LIMITS_OF = """
SELECT key, concurrency, rate_count, rate_period, tat FROM limits
WHERE key IN (SELECT value FROM json_each(:keys)) ORDER BY key
"""
# Running jobs by (type, queue): what the concurrency limits count (few rows: running jobs only).
RUNNING_COUNTS = "SELECT type, queue, count(*) FROM jobs WHERE state = 'running' GROUP BY 1, 2"
# Setting a limit again replaces it, and starts its rate afresh.
PUT_LIMIT = """
INSERT INTO limits (key, concurrency, rate_count, rate_period, tat, created_at)
VALUES (:key, :concurrency, :rate_count, :rate_period, 0, :now)
ON CONFLICT (key) DO UPDATE SET concurrency = excluded.concurrency,
    rate_count = excluded.rate_count, rate_period = excluded.rate_period, tat = 0
"""
REMOVE_LIMIT = "DELETE FROM limits WHERE key = :key"
SET_TAT = "UPDATE limits SET tat = :tat WHERE key = :key"
RENEW = """
UPDATE jobs SET lease_until = :lease_until
WHERE id = :id AND lease_token = :token AND state = 'running'
"""

COMPLETE = """
UPDATE jobs
SET state = 'succeeded', result = :result, finished_at = :now, lease_token = NULL,
    lease_until = NULL, cancel_requested = 0
WHERE id = :id AND lease_token = :token AND state = 'running'
RETURNING attempts, worker_id, started_at, has_dependents
"""

LEASED = """
SELECT attempts, max_attempts, worker_id, started_at, cancel_requested, snoozes
FROM jobs WHERE id = :id AND lease_token = :token AND state = 'running'
"""

END_ATTEMPT = """
UPDATE jobs
SET state = :state, attempts = :attempts, finished_at = :finished_at,
    run_at = COALESCE(:run_at, run_at), last_error = COALESCE(:error, last_error),
    lease_token = NULL, lease_until = NULL,
    cancel_requested = 0, snoozes = snoozes + :snoozed
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
UPDATE jobs SET state = 'cancelled', finished_at = :now, last_error = 'cancelled', blocked = 0
WHERE id = :id AND state = 'pending'
"""

REQUEST_CANCEL = """
UPDATE jobs SET cancel_requested = 1 WHERE id = :id AND state = 'running'
"""

# OR IGNORE: a job of the same type now holds its unique key (jobs_unique); it stays put.
RETRY = """
UPDATE OR IGNORE jobs
SET state = 'pending', attempts = 0, run_at = :now, finished_at = NULL, started_at = NULL,
    result = NULL, cancel_requested = 0, snoozes = 0
WHERE id = :id AND state IN ('failed', 'cancelled')
"""

SET_PRIORITY = "UPDATE jobs SET priority = :priority WHERE id = :id"

STATE_OF = "SELECT state FROM jobs WHERE id = :id"

PRUNABLE = f"""
SELECT id FROM jobs
WHERE finished_at < :before AND state IN (SELECT value FROM json_each(:states))
  AND {_NO_PENDING_DEPENDENT}
LIMIT :batch
"""

# The states of some jobs (`Queue.wait`): a look at the primary key only, no payloads.
STATES_OF = "SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(:ids))"

PRUNE = "DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(:ids))"

COUNT_PRUNABLE = f"""
SELECT count(*) FROM jobs
WHERE state IN (SELECT value FROM json_each(:states)) AND finished_at < :before
  AND {_NO_PENDING_DEPENDENT}
"""

# A pool's children lease jobs as "POOL_ID/GENERATION": ids from 'POOL_ID/' up to 'POOL_ID0'
# ('0' follows '/') are its workers'. A pool still holding a running job keeps its record: the
# rescuer decides from it what to do with that job.
_HOLDS_NO_JOB = """NOT EXISTS (
    SELECT 1 FROM jobs WHERE state = 'running'
    AND worker_id >= workers.id || '/' AND worker_id < workers.id || '0'
)"""

# Retention forgets pools that stopped or were found dead (the rescuer of any live pool marks
# them) — never one that still runs, however late its heartbeat.
PRUNE_WORKERS = f"""
DELETE FROM workers
WHERE heartbeat_at < :before AND status IN ('stopped', 'dead') AND {_HOLDS_NO_JOB}
"""

POOLS_TO_FORGET = """
SELECT id, status, proc_key, heartbeat_at FROM workers
WHERE heartbeat_at < :before ORDER BY id
"""

FORGET_POOL = f"DELETE FROM workers WHERE id = :id AND {_HOLDS_NO_JOB}"

DELETE_FINISHED = """
DELETE FROM jobs WHERE id = :id AND state IN ('succeeded', 'failed', 'cancelled')
"""

DELETE_FORCED = """
DELETE FROM jobs WHERE id = :id AND state IN ('succeeded', 'failed', 'cancelled', 'pending')
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
    SELECT (SELECT priority FROM jobs INDEXED BY jobs_pending
            WHERE state = 'pending' AND blocked = 0 ORDER BY priority DESC LIMIT 1), 1
    UNION ALL
    SELECT (SELECT priority FROM jobs INDEXED BY jobs_pending
            WHERE state = 'pending' AND blocked = 0 AND priority < prio.p
            ORDER BY priority DESC LIMIT 1), n + 1
    FROM prio WHERE prio.p IS NOT NULL AND n < {NEXT_RUN_AT_PRIORITIES}
)
SELECT min((SELECT run_at FROM jobs INDEXED BY jobs_pending
            WHERE priority = prio.p AND {FOR_WORKER}
            ORDER BY priority DESC, run_at, id LIMIT 1))
FROM prio WHERE p IS NOT NULL
"""

# NEXT_RUN_AT among the jobs no exhausted limit holds (jobq/limits.py).
assert NEXT_RUN_AT.count(_CLAIM_ORDER + " LIMIT 1") == 1
NEXT_RUN_AT_LIMITED = NEXT_RUN_AT.replace(
    _CLAIM_ORDER + " LIMIT 1", _NOT_HELD + _CLAIM_ORDER + " LIMIT 1"
)

# `jobq doctor`'s row counts of the schema's tables, in one constant statement.
SCHEMA_TABLES = ("jobs", "attempts", "workers", "queues", "metric_totals", "schedules", "events",
                 "job_output", "job_progress", "rollup", "limits",
                 "job_edits", "job_deps")  # fmt: skip
COUNT_TABLES = "SELECT " + ", ".join("(SELECT count(*) FROM " + t + ")" for t in SCHEMA_TABLES)

# Every connection: a WAL restarted at its front is also cut back to 4 MiB (store/checkpoint.py)
JOURNAL_SIZE_LIMIT = "PRAGMA journal_size_limit = 4194304"

# ---- metrics (store/sqlite/metrics.py, jobq/metrics.py)

# An ended attempt's run time, and the index of its jobq_run_seconds bucket: the first of
# basics.RUN_SECONDS_BOUNDS it is within, 18 for +Inf (tests/test_metrics.py checks the bounds)
RUN_SECONDS = "max(a.finished_at - a.started_at, 0)"
RUN_BUCKET = """
CASE
    WHEN max(a.finished_at - a.started_at, 0) <= 0.005 THEN 0
    WHEN max(a.finished_at - a.started_at, 0) <= 0.01 THEN 1
    WHEN max(a.finished_at - a.started_at, 0) <= 0.025 THEN 2
    WHEN max(a.finished_at - a.started_at, 0) <= 0.05 THEN 3
    WHEN max(a.finished_at - a.started_at, 0) <= 0.1 THEN 4
    WHEN max(a.finished_at - a.started_at, 0) <= 0.25 THEN 5
    WHEN max(a.finished_at - a.started_at, 0) <= 0.5 THEN 6
    WHEN max(a.finished_at - a.started_at, 0) <= 1.0 THEN 7
    WHEN max(a.finished_at - a.started_at, 0) <= 2.5 THEN 8
    WHEN max(a.finished_at - a.started_at, 0) <= 5.0 THEN 9
    WHEN max(a.finished_at - a.started_at, 0) <= 10.0 THEN 10
    WHEN max(a.finished_at - a.started_at, 0) <= 30.0 THEN 11
    WHEN max(a.finished_at - a.started_at, 0) <= 60.0 THEN 12
    WHEN max(a.finished_at - a.started_at, 0) <= 120.0 THEN 13
    WHEN max(a.finished_at - a.started_at, 0) <= 300.0 THEN 14
    WHEN max(a.finished_at - a.started_at, 0) <= 600.0 THEN 15
    WHEN max(a.finished_at - a.started_at, 0) <= 1800.0 THEN 16
    WHEN max(a.finished_at - a.started_at, 0) <= 3600.0 THEN 17
    ELSE 18
END
"""

# A prune adds the attempts of the jobs it deletes to metric_totals, so no counter goes down
KEEP_TOTALS = f"""
INSERT INTO metric_totals (type, key, value)
SELECT j.type, k.key, k.value FROM (
    SELECT a.job_id, 'attempts:' || a.outcome AS key, 1.0 AS value
    FROM attempts AS a WHERE a.job_id IN (SELECT value FROM json_each(:ids))
    UNION ALL
    SELECT a.job_id, 'seconds', {RUN_SECONDS} FROM attempts AS a
    WHERE a.job_id IN (SELECT value FROM json_each(:ids))
    UNION ALL
    SELECT a.job_id, 'bucket:' || ({RUN_BUCKET}), 1.0 FROM attempts AS a
    WHERE a.job_id IN (SELECT value FROM json_each(:ids))
) AS k JOIN jobs AS j ON j.id = k.job_id
WHERE true
ON CONFLICT (type, key) DO UPDATE SET value = value + excluded.value
"""

METRIC_JOBS = "SELECT state, queue, type, count(*) FROM jobs GROUP BY state, queue, type"
METRIC_DUE = """
SELECT queue, min(run_at) FROM jobs WHERE state = 'pending' AND run_at <= :now GROUP BY queue
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
SELECT substr(worker_id, 1, instr(worker_id || '/', '/') - 1), count(*)
FROM jobs WHERE state = 'running' GROUP BY 1
"""

# ---- schedules (store/sqlite/schedules.py, jobq/schedules.py)

SCHEDULE_COLUMNS = (
    "name, cron, tz, type, queue, payload, priority, paused, next_at, last_at, last_job_id, "
    "created_at"
)
SCHEDULES = f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = :name"
PUT_SCHEDULE = """
INSERT INTO schedules (name, cron, tz, type, queue, payload, priority, paused, next_at,
                       created_at)
VALUES (:name, :cron, :tz, :type, :queue, :payload, :priority, :paused, :next_at, :now)
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, tz = excluded.tz, type = excluded.type, queue = excluded.queue,
    payload = excluded.payload, priority = excluded.priority, next_at = excluded.next_at
"""
REMOVE_SCHEDULE = "DELETE FROM schedules WHERE name = :name"
PAUSE_SCHEDULE = "UPDATE schedules SET paused = :paused WHERE name = :name"
NEXT_SCHEDULE = "SELECT min(next_at) FROM schedules WHERE NOT paused"
DUE_SCHEDULES = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE NOT paused AND next_at <= :now ORDER BY next_at
"""
# moves a fired schedule on, only from the slot the firing pool read
FIRED_SCHEDULE = """
UPDATE schedules SET next_at = :next_at, last_at = :slot, last_job_id = :job_id
WHERE name = :name AND next_at = :slot AND NOT paused
"""

# ---- lifecycle events (jobq/store/sqlite/events.py; the triggers that write them: schema 3)

EVENT_COLUMNS = "id, kind, at, job_id, type, queue, attempt, error, duration, worker_id"

# The filters of `jobq events`; NULL leaves one out. No index but the id: a read walks from its
# cursor (or back from :until), and the table is capped (events.EVENTS_KEEP).
EVENT_FILTERS = """id > :after AND id <= :until
  AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
  AND (:glob IS NULL OR type GLOB :glob)
  AND (:queue IS NULL OR queue = :queue)
  AND (:since IS NULL OR at >= :since)"""

EVENTS_AFTER = f"""
SELECT {EVENT_COLUMNS} FROM events WHERE {EVENT_FILTERS} ORDER BY id LIMIT :limit
"""

EVENTS_NEWEST = f"""
SELECT {EVENT_COLUMNS} FROM events WHERE {EVENT_FILTERS} ORDER BY id DESC LIMIT :limit
"""

LAST_EVENT_ID = "SELECT COALESCE(max(id), 0) FROM events"

# The first event at or after :before, walking from the oldest: ids and times rise together,
# so the walk stops at the retention's edge and costs what the delete will.
FIRST_EVENT_SINCE = "SELECT id FROM events WHERE at >= :before ORDER BY id LIMIT 1"

PRUNE_EVENTS = """
DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id < :below ORDER BY id LIMIT :batch)
"""

DROP_EVENTS_AFTER = "DELETE FROM events WHERE id > :mark"

# A pool's queues, types and globs are JSON lists of names (printable: never U+001F), unpacked
# by SQLite so that `jobq ls` with pools alive does not import json (issue 15's start-up)
_LIST = "(SELECT group_concat(value, char(31)) FROM (SELECT value FROM json_each({}) ORDER BY key))"
WORKERS = (
    "SELECT id, name, host, pid, started_at, heartbeat_at, concurrency,"
    f" {_LIST.format('queues')}, {_LIST.format('types')}, jobs_done, status,"
    f" CASE WHEN type_globs IS NOT NULL THEN coalesce({_LIST.format('type_globs')}, '') END,"
    " proc_key FROM workers ORDER BY started_at DESC"
)

"""The SQL of bulk enqueue (`enqueue_runs`: `enqueue_many`, `jobq enqueue --ndjson`), as named
constants with named parameters."""

from __future__ import annotations

from .sql import NOW

# The bulk inserts' own `created` events, in id order (schema migration 10: the row trigger is
# told to skip these rows by `SET LOCAL jobq.bulk_insert = 'on'`, BULK_INSERT)
_CREATED_EVENTS = """), created AS (
INSERT INTO events (at, kind, job_id, type, queue, attempt)
SELECT created_at, 'created', id, type, queue, attempts FROM ins ORDER BY id
)
SELECT id FROM ins
"""
BULK_INSERT = "SET LOCAL jobq.bulk_insert = 'on'"

# Bulk insert of jobs that share every column but the payload: the payloads travel as one JSON
# array (a run, see JobWrites.enqueue_runs) that the server unpacks, one statement for the run.
# json (not jsonb) functions return each element as its exact text. Rows are inserted in array
# order, so their identity ids increase in array order: the caller sorts the ids it gets back.
INSERT_JOBS_BULK = (
    f"""
WITH ins AS (
INSERT INTO jobs (type, queue, payload, priority, state, run_at, max_attempts, timeout,
                  created_at)
SELECT %(type)s, %(queue)s,
       CASE json_typeof(e.v) WHEN 'object' THEN e.v WHEN 'array' THEN e.v -> 0 END,
       %(priority)s, 'pending', to_timestamp(%(run_at)s::float8), %(max_attempts)s,
       %(timeout)s::float8, {NOW}
FROM json_array_elements(%(payloads)s::json) WITH ORDINALITY AS e(v, n)
ORDER BY e.n
RETURNING id, created_at, type, queue, attempts
"""
    + _CREATED_EVENTS
)

# The same from the payloads as a text array (rows.split_run), for a run whose array holds a
# \u0000 escape: every json function but the input check refuses to take such text apart.
INSERT_JOBS_TEXTS = (
    f"""
WITH ins AS (
INSERT INTO jobs (type, queue, payload, priority, state, run_at, max_attempts, timeout,
                  created_at)
SELECT %(type)s, %(queue)s, e.v::json, %(priority)s, 'pending', to_timestamp(%(run_at)s::float8),
       %(max_attempts)s, %(timeout)s::float8, {NOW}
FROM unnest(%(payloads)s::text[]) WITH ORDINALITY AS e(v, n)
ORDER BY e.n
RETURNING id, created_at, type, queue, attempts
"""
    + _CREATED_EVENTS
)

"""The statements of `jobq copy` (store/sqlite/transfer.py): the columns of
jobq.transfer.COPY_COLUMNS, written out (tests/test_copy.py checks that they match), each table
read in its primary key's order."""

from __future__ import annotations

EXPORT_ROWS = {
    "queues": "SELECT name, paused, paused_at FROM queues ORDER BY name",
    "jobs": (
        "SELECT id, type, queue, payload, priority, state, run_at, attempts, max_attempts, "
        "timeout, unique_key, result, last_error, created_at, started_at, finished_at, "
        "worker_id, lease_token, lease_until, cancel_requested, snoozes, blocked, "
        "has_dependents FROM jobs ORDER BY id"
    ),
    "attempts": (
        "SELECT id, job_id, attempt, worker_id, started_at, finished_at, outcome, error, "
        "traceback, output FROM attempts ORDER BY id"
    ),
    "job_deps": "SELECT job_id, after_id FROM job_deps ORDER BY job_id, after_id",
    "job_edits": (
        "SELECT id, job_id, at, user, host, old_payload, retried FROM job_edits ORDER BY id"
    ),
    "job_output": (
        "SELECT job_id, attempt, seq, at, stream, text FROM job_output ORDER BY job_id, "
        "attempt, seq"
    ),
    "job_progress": (
        "SELECT job_id, attempt, fraction, message, at FROM job_progress ORDER BY job_id"
    ),
    "limits": (
        "SELECT key, concurrency, rate_count, rate_period, tat, created_at FROM limits ORDER BY key"
    ),
    "schedules": (
        "SELECT name, cron, tz, type, queue, payload, priority, paused, next_at, last_at, "
        "last_job_id, created_at FROM schedules ORDER BY name"
    ),
    "rollup": (
        "SELECT minute, queue, type, key, value FROM rollup ORDER BY minute, queue, type, key"
    ),
    "metric_totals": "SELECT type, key, value FROM metric_totals ORDER BY type, key",
    "events": (
        "SELECT id, at, kind, job_id, type, queue, attempt, error, duration, worker_id FROM "
        "events ORDER BY id"
    ),
}
IMPORT_ROWS = {
    "queues": "INSERT INTO queues (name, paused, paused_at) VALUES (?, ?, ?)",
    "jobs": (
        "INSERT INTO jobs (id, type, queue, payload, priority, state, run_at, attempts, "
        "max_attempts, timeout, unique_key, result, last_error, created_at, started_at, "
        "finished_at, worker_id, lease_token, lease_until, cancel_requested, snoozes, blocked, "
        "has_dependents) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " ?, ?)"
    ),
    "attempts": (
        "INSERT INTO attempts (id, job_id, attempt, worker_id, started_at, finished_at, "
        "outcome, error, traceback, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "job_deps": "INSERT INTO job_deps (job_id, after_id) VALUES (?, ?)",
    "job_edits": (
        "INSERT INTO job_edits (id, job_id, at, user, host, old_payload, retried) VALUES (?, ?,"
        " ?, ?, ?, ?, ?)"
    ),
    "job_output": (
        "INSERT INTO job_output (job_id, attempt, seq, at, stream, text) VALUES (?, ?, ?, ?, ?, ?)"
    ),
    "job_progress": (
        "INSERT INTO job_progress (job_id, attempt, fraction, message, at) VALUES (?, ?, ?, ?, ?)"
    ),
    "limits": (
        "INSERT INTO limits (key, concurrency, rate_count, rate_period, tat, created_at) VALUES"
        " (?, ?, ?, ?, ?, ?)"
    ),
    "schedules": (
        "INSERT INTO schedules (name, cron, tz, type, queue, payload, priority, paused, "
        "next_at, last_at, last_job_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "rollup": "INSERT INTO rollup (minute, queue, type, key, value) VALUES (?, ?, ?, ?, ?)",
    "metric_totals": "INSERT INTO metric_totals (type, key, value) VALUES (?, ?, ?)",
    "events": (
        "INSERT INTO events (id, at, kind, job_id, type, queue, attempt, error, duration, "
        "worker_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
}

# What --replace deletes first, children before parents (the workers stay: they register
# again, and a target's running pools refuse the copy anyway)
EMPTY_QUEUE = (
    "DELETE FROM events",
    "DELETE FROM metric_totals",
    "DELETE FROM rollup",
    "DELETE FROM schedules",
    "DELETE FROM limits",
    "DELETE FROM job_progress",
    "DELETE FROM job_output",
    "DELETE FROM job_edits",
    "DELETE FROM job_deps",
    "DELETE FROM attempts",
    "DELETE FROM jobs",
    "DELETE FROM queues",
)

# What makes a target non-empty (jobq.transfer.HELD names them in this order): jobs (attempts,
# edits, output and links go with them), queue settings, limits, schedules, history, the totals
# of pruned attempts, events
HELD = """
SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM queues), (SELECT count(*) FROM limits),
       (SELECT count(*) FROM schedules), (SELECT count(*) FROM rollup),
       (SELECT count(*) FROM metric_totals), (SELECT count(*) FROM events)
"""
RUNNING = "SELECT count(*) FROM jobs WHERE state = 'running'"

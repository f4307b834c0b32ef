"""The SQL of dependencies (`enqueue --after`) on PostgreSQL, as the SQLite file's
(jobq/store/sqlite/sql_deps.py), with named parameters."""

from __future__ import annotations

NOW = "to_timestamp(%(now)s::float8)"

# A new job's dependencies, marked as having dependents and so locked until the job and its
# links are committed: an ending waits for that, then sees the mark (and the trigger
# jobq_unblock, or the store's cancel of dependents, sees the links). An ending that came first
# is seen here: the state returned is the latest committed one. Locked in id order, as an
# ending locks a job and then its dependents (which have higher ids) in id order: an enqueue
# after X and X's dependent Y, and X's ending, never wait for each other in a cycle (an UPDATE
# alone locks in the order it finds the rows, which is where they lie in the table).
MARK_DEPENDED = """
WITH locked AS MATERIALIZED (
    SELECT id FROM jobs WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id FOR NO KEY UPDATE
)
UPDATE jobs SET has_dependents = true FROM locked WHERE jobs.id = locked.id
RETURNING jobs.id, jobs.state
"""

# With a unique key another producer may hold: the insert yields to a job that took the key
# (ON CONFLICT on jobs_unique waits for that job's transaction) and returns no row; the caller
# then reads the holder with a fresh snapshot (see JobWrites._insert_after).
INSERT_JOB_AFTER = f"""
INSERT INTO jobs (type, queue, payload, priority, state, run_at, max_attempts, timeout,
                  unique_key, created_at, blocked)
VALUES (%(type)s, %(queue)s, %(payload)s::json, %(priority)s, 'pending',
        to_timestamp(%(run_at)s::float8), %(max_attempts)s, %(timeout)s::float8,
        %(unique_key)s, {NOW}, %(blocked)s)
ON CONFLICT (type, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'running') DO NOTHING
RETURNING id
"""

INSERT_DEPS = """
INSERT INTO job_deps (job_id, after_id) SELECT %(id)s, unnest(%(after)s::bigint[])
"""

CANCEL_AT_ONCE = f"""
UPDATE jobs SET state = 'cancelled', finished_at = {NOW}, last_error = %(reason)s, blocked = 0
WHERE id = %(id)s AND state = 'pending'
"""

# The pending jobs that wait, directly or not, for any of %(ids)s (jobs that failed or were
# cancelled), locked in id order before the cancel below changes them (see MARK_DEPENDED: the
# same order as an enqueue's; writes.cancel_dependents says why in a statement of its own).
LOCK_DEPENDENTS = """
WITH RECURSIVE doomed(id) AS (
    SELECT d.job_id FROM job_deps AS d JOIN jobs AS j ON j.id = d.job_id
    WHERE d.after_id = ANY(%(ids)s::bigint[]) AND j.state = 'pending'
    UNION
    SELECT d.job_id FROM doomed
    JOIN job_deps AS d ON d.after_id = doomed.id JOIN jobs AS j ON j.id = d.job_id
    WHERE j.state = 'pending'
)
SELECT id FROM jobs WHERE id IN (SELECT id FROM doomed) AND state = 'pending'
ORDER BY id FOR NO KEY UPDATE
"""

# Those jobs cancelled, each naming the first job it waits for that took it down: one of
# %(ids)s, which ended %(how)s, or one cancelled here. Their ids are returned.
CANCEL_DEPENDENTS = f"""
WITH RECURSIVE doomed(id, cause, how) AS (
    SELECT d.job_id, d.after_id, %(how)s::text FROM job_deps AS d
    JOIN jobs AS j ON j.id = d.job_id
    WHERE d.after_id = ANY(%(ids)s::bigint[]) AND j.state = 'pending'
    UNION
    SELECT d.job_id, doomed.id, 'cancelled' FROM doomed
    JOIN job_deps AS d ON d.after_id = doomed.id JOIN jobs AS j ON j.id = d.job_id
    WHERE j.state = 'pending'
), one AS (
    SELECT DISTINCT ON (id) id, cause, how FROM doomed ORDER BY id, cause
)
UPDATE jobs
SET state = 'cancelled', finished_at = {NOW}, blocked = 0,
    last_error = 'dependency job ' || one.cause || ' ' || one.how
FROM one WHERE jobs.id = one.id AND jobs.state = 'pending'
RETURNING jobs.id
"""

# A job's dependencies, locked against endings (in id order, see MARK_DEPENDED) before a retry
# moves it back to pending and RECOUNT_BLOCKED counts them: an ending in progress is waited for
# and then counted, and one that comes after sees the job pending and unblocks it. (Otherwise
# a success not committed yet would be counted as running, while its own unblocking had found
# the job still failed: the retried job would wait for it for good.)
LOCK_DEPENDENCIES = """
SELECT a.id FROM job_deps AS d JOIN jobs AS a ON a.id = d.after_id
WHERE d.job_id = %(id)s ORDER BY a.id FOR SHARE OF a
"""

RECOUNT_BLOCKED = """
UPDATE jobs SET blocked = (
    SELECT count(*) FROM job_deps AS d JOIN jobs AS a ON a.id = d.after_id
    WHERE d.job_id = jobs.id AND a.state <> 'succeeded'
)
WHERE id = %(id)s AND state = 'pending'
"""

DEPENDENCIES = """
SELECT d.job_id, d.after_id, a.state FROM job_deps AS d LEFT JOIN jobs AS a ON a.id = d.after_id
WHERE d.job_id = ANY(%(ids)s::bigint[]) ORDER BY d.job_id, d.after_id
"""

DEPENDENTS = """
SELECT d.job_id, j.state FROM job_deps AS d JOIN jobs AS j ON j.id = d.job_id
WHERE d.after_id = %(id)s ORDER BY d.job_id LIMIT %(limit)s
"""

_NO_PENDING_DEPENDENT = """NOT EXISTS (
    SELECT 1 FROM job_deps AS d JOIN jobs AS w ON w.id = d.job_id
    WHERE d.after_id = jobs.id AND w.state = 'pending'
)"""

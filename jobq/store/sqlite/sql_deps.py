"""The SQL of dependencies (`enqueue --after`), as named constants with named parameters: jobs
that run once others succeeded (jobq/endings.py says what an ending does to them)."""

from __future__ import annotations

# jobs.blocked counts a job's dependencies that have not succeeded yet; the claim takes only jobs
# with none (jobs_pending's WHERE).

# A job that waits for `:blocked` of its dependencies (0: all had succeeded already)
INSERT_JOB_AFTER = """
INSERT INTO jobs (type, queue, payload, priority, state, run_at, max_attempts, timeout,
                  unique_key, created_at, blocked)
VALUES (:type, :queue, :payload, :priority, 'pending', :run_at, :max_attempts, :timeout,
        :unique_key, :now, :blocked)
"""

INSERT_DEPS = """
INSERT INTO job_deps (job_id, after_id) SELECT :id, value FROM json_each(:after)
"""

# A new job whose dependency had already failed or was cancelled: it ends at once, cancelled
# (inserted pending first, so that its events are `created` then `cancelled`, as any cancel's)
CANCEL_AT_ONCE = """
UPDATE jobs SET state = 'cancelled', finished_at = :now, last_error = :reason, blocked = 0
WHERE id = :id AND state = 'pending'
"""

# A new job's dependencies, marked as having dependents (so that their endings look for them),
# with their states
MARK_DEPENDED = """
UPDATE jobs SET has_dependents = 1 WHERE id IN (SELECT value FROM json_each(:ids))
RETURNING id, state
"""

# A job with dependents succeeded: each of its pending dependents waits for one job fewer
UNBLOCK = """
UPDATE jobs SET blocked = blocked - 1
WHERE id IN (SELECT job_id FROM job_deps WHERE after_id = :id) AND state = 'pending'
  AND blocked > 0
"""

# A job failed for good, was cancelled or deleted (:how says which): its pending dependents are
# cancelled, and theirs, down the whole tree; each names the dependency that took it down.
CANCEL_DEPENDENTS = """
WITH RECURSIVE doomed(id, cause, how) AS (
    SELECT d.job_id, :id, :how FROM job_deps AS d JOIN jobs AS j ON j.id = d.job_id
    WHERE d.after_id = :id AND j.state = 'pending'
    UNION
    SELECT d.job_id, doomed.id, 'cancelled' FROM doomed
    JOIN job_deps AS d ON d.after_id = doomed.id JOIN jobs AS j ON j.id = d.job_id
    WHERE j.state = 'pending'
)
UPDATE jobs
SET state = 'cancelled', finished_at = :now, blocked = 0,
    last_error = (SELECT 'dependency job ' || cause || ' ' || how FROM doomed
                  WHERE doomed.id = jobs.id LIMIT 1)
WHERE state = 'pending' AND id IN (SELECT id FROM doomed)
"""

# A retried job waits again for its dependencies that have not succeeded (one that no longer
# exists holds nobody back: prune never deletes a job that a pending one waits for)
RECOUNT_BLOCKED = """
UPDATE jobs SET blocked = (
    SELECT count(*) FROM job_deps AS d JOIN jobs AS a ON a.id = d.after_id
    WHERE d.job_id = jobs.id AND a.state <> 'succeeded'
)
WHERE id = :id AND state = 'pending'
"""

# Each of some jobs' dependencies with its state (NULL: deleted since), in id order
DEPENDENCIES = """
SELECT d.job_id, d.after_id, a.state FROM job_deps AS d LEFT JOIN jobs AS a ON a.id = d.after_id
WHERE d.job_id IN (SELECT value FROM json_each(:ids)) ORDER BY d.job_id, d.after_id
"""

# The jobs that wait (or waited) for a job, with their states
DEPENDENTS = """
SELECT d.job_id, j.state FROM job_deps AS d JOIN jobs AS j ON j.id = d.job_id
WHERE d.after_id = :id ORDER BY d.job_id LIMIT :limit
"""

# (a finished job that a pending one waits for is never pruned)
_NO_PENDING_DEPENDENT = """NOT EXISTS (
    SELECT 1 FROM job_deps AS d JOIN jobs AS w ON w.id = d.job_id
    WHERE d.after_id = jobs.id AND w.state = 'pending'
)"""

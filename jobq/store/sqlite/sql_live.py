"""Statements of live output and progress (store/sqlite/output.py) and of the per-minute
history (store/sqlite/rollup.py), apart from sql.py only to keep modules short; the SQL audit
reads every sql*.py of the store."""

# ---- live output and progress of running attempts (store/sqlite/output.py, jobq/liveoutput.py)
# The fence of every write: the job is still leased with this token (a token is set only while
# the job runs), read inside the write's own transaction.
OUTPUT_LEASED = "SELECT 1 FROM jobs WHERE id = :job_id AND lease_token = :token"
# an attempt's first write: what an earlier attempt of the same number left (before a retry)
OUTPUT_CLEAR = "DELETE FROM job_output WHERE job_id = :job_id AND attempt = :attempt"
OUTPUT_INSERT = """
INSERT INTO job_output (job_id, attempt, seq, at, stream, text)
VALUES (:job_id, :attempt, :seq, :at, :stream, :text)
"""
PROGRESS_PUT = """
INSERT INTO job_progress (job_id, attempt, fraction, message, at)
VALUES (:job_id, :attempt, :fraction, :message, :at)
ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, fraction = excluded.fraction,
                                   message = excluded.message, at = excluded.at
"""
OUTPUT_AFTER = """
SELECT job_id, attempt, seq, at, stream, text FROM job_output
WHERE job_id = :job_id AND attempt = :attempt AND seq > :after
ORDER BY seq LIMIT :limit
"""
PROGRESS_OF = """
SELECT p.job_id, p.attempt, p.fraction, p.message, p.at
FROM job_progress AS p JOIN jobs AS j ON j.id = p.job_id AND j.attempts = p.attempt
WHERE p.job_id IN (SELECT value FROM json_each(:ids))
"""


# ---- the per-minute history (store/sqlite/rollup.py, jobq/rollup.py)

# What ended in [start, end), counted per queue, type, outcome, whether it ended its job for good
# (its last attempt, and the job failed) and run-time bucket (jobq.rollup.bucket_of: the decimal
# order and first two digits of the run time in µs, by steps of 5; digits, as SQLite has no math
# functions). Index ranges on finish times: successes from the jobs (jobs_finished: the drain's
# attempts pay for no new index), failures from the attempts (attempts_failures).
ROLLUP_ATTEMPTS = """
SELECT queue, type, outcome, final,
       CASE WHEN us < 10 THEN 0
            ELSE length(us) * 18 + CAST(substr(us, 1, 2) AS INTEGER) / 5 - 37 END AS bucket,
       count(*)
FROM (
    SELECT queue, type, 'succeeded' AS outcome, 0 AS final,
           CAST(round(max(finished_at - started_at, 0) * 1000000) AS INTEGER) AS us
    FROM jobs INDEXED BY jobs_finished  -- not jobs_state: every succeeded job of the history
    WHERE finished_at IS NOT NULL AND finished_at >= :start AND finished_at < :end
      AND state = 'succeeded'
    UNION ALL
    SELECT j.queue, j.type, a.outcome, (j.state = 'failed' AND a.attempt = j.attempts),
           CAST(round(max(a.finished_at - a.started_at, 0) * 1000000) AS INTEGER)
    FROM attempts AS a JOIN jobs AS j ON j.id = a.job_id
    WHERE a.outcome IN ('failed', 'timeout', 'crashed')
      AND a.finished_at >= :start AND a.finished_at < :end
)
GROUP BY queue, type, outcome, final, bucket
"""
# the depth sample: due pending jobs per queue and the oldest one's run_at
ROLLUP_DEPTH = """
SELECT queue, count(*), min(run_at) FROM jobs
WHERE state = 'pending' AND run_at <= :now GROUP BY queue
"""
ROLLUP_LAST = "SELECT max(minute) FROM rollup"
# a minute's key: whoever inserts it writes the minute; anyone else finds it and writes nothing
ROLLUP_MARK = """
INSERT INTO rollup (minute, queue, type, key, value) VALUES (:minute, '', '', 'rolled', :now)
ON CONFLICT DO NOTHING RETURNING minute
"""
ROLLUP_INSERT = "INSERT INTO rollup (minute, queue, type, key, value) VALUES (?, ?, ?, ?, ?)"
ROLLUP_ROWS = """
SELECT minute, queue, type, key, value FROM rollup
WHERE minute >= :since AND minute < :until ORDER BY minute
"""
PRUNE_ROLLUP = "DELETE FROM rollup WHERE minute < :before"

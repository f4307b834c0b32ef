"""Statements of payload edits (store/sqlite/edits.py), apart from sql.py only to keep modules
short; the SQL audit reads every sql*.py of the store."""

# ---- payload edits (store/sqlite/edits.py): what a compare-and-set edit checks, the write, and
# the history

EDIT_SEEN = "SELECT state, attempts, started_at, payload FROM jobs WHERE id = :id"
EDIT_PAYLOAD = "UPDATE jobs SET payload = :payload WHERE id = :id"
INSERT_EDIT = """
INSERT INTO job_edits (job_id, at, user, host, old_payload, retried)
VALUES (:id, :now, :user, :host, :old, :retried)
"""
EDITS_OF = """
SELECT job_id, at, user, host, old_payload, retried FROM job_edits WHERE job_id = :id ORDER BY id
"""

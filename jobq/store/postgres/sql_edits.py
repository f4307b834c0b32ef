"""Statements of payload edits (edits.py), apart from sql.py only to keep modules short."""

from .sql import NOW, _epoch

# ---- payload edits (edits.py): the row, locked (a claim's SKIP LOCKED passes it by), the edit
EDIT_SEEN = f"""SELECT state, attempts, {_epoch("started_at")}, payload::text FROM jobs
WHERE id = %(id)s FOR UPDATE"""
EDIT = f"""WITH e AS (UPDATE jobs SET payload = %(payload)s::json WHERE id = %(id)s)
INSERT INTO job_edits (job_id, at, "user", host, old_payload, retried)
VALUES (%(id)s, {NOW}, %(user)s, %(host)s, %(old)s::json, %(retried)s)"""
EDITS_OF = f"""SELECT job_id, {_epoch("at")}, "user", host, old_payload::text, retried
FROM job_edits WHERE job_id = %(id)s ORDER BY id"""

"""Payload edits in the queue file (jobq/edits.py has the rules)."""

from __future__ import annotations

from ...backend import ActionOutcome, ActionResult
from ...basics import JobState
from .reads import Reads
from .sql import RETRY
from .sql_edits import EDIT_PAYLOAD, EDIT_SEEN, EDITS_OF, INSERT_EDIT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...model import Job, JobEdit


class Edits(Reads):
    """The payload-edit operations of the Backend protocol."""

    def edit_payload(
        self,
        job_id: int,
        payload_json: str,
        now: float,
        *,
        user: str,
        host: str,
        retry: bool = False,
        seen: Job | None = None,
    ) -> ActionOutcome:
        """Replace a pending, failed or cancelled job's payload and record the edit; with
        `retry` also move a failed or cancelled job back to pending. One transaction."""
        from ...edits import RETRYABLE, verdict  # here: every command's start-up loads this store

        # durable: an acknowledged edit is an operator's decision, kept like an enqueue
        with self._write(durable=True) as conn:
            row = conn.execute(EDIT_SEEN, {"id": job_id}).fetchone()
            if row is None:
                return ActionOutcome(ActionResult.NOT_FOUND)
            refused = verdict(row[0], row[1], row[2], row[3], seen)
            if refused is not None:
                return refused
            retried = retry and JobState(row[0]) in RETRYABLE
            # the retry first (the one RETRY statement `jobq retry` runs): if a job holds the
            # unique key it changes nothing, and we return before writing anything
            if retried and not conn.execute(RETRY, {"id": job_id, "now": now}).rowcount:
                return ActionOutcome(ActionResult.DUPLICATE_UNIQUE_KEY)
            conn.execute(EDIT_PAYLOAD, {"id": job_id, "payload": payload_json})
            conn.execute(INSERT_EDIT, {"id": job_id, "now": now, "user": user, "host": host,
                                       "old": row[3], "retried": int(retried)})  # fmt: skip
        return ActionOutcome(ActionResult.RETRIED if retried else ActionResult.OK)

    def edits(self, job_id: int) -> list[JobEdit]:
        """The payload edits of a job, oldest first."""
        from ...model import JobEdit

        with self._read() as conn:
            rows = conn.execute(EDITS_OF, {"id": job_id}).fetchall()
        return [JobEdit(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

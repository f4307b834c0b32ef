"""`jobq edit ID`: change a job's payload in $VISUAL / $EDITOR (or with --payload), then retry.

Its parameters are typer declarations in postponed annotations, as in `jobq.cli.jobs`: the
module does not import typer, so that `jobq.cli.fast` runs it from the same declarations.
"""

from __future__ import annotations

import sys

from .common import _bind_typer, _note, _out, _queue

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up
if TYPE_CHECKING:
    from typing import Annotated

    import typer

    from ..model import Job


def edit(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID", help="The job's id.")],
    retry: Annotated[
        bool,
        typer.Option(
            "--retry", help="Also move a failed or cancelled job back to pending (same write)."
        ),
    ] = False,
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            metavar="JSON|-|@FILE",
            help="The new payload, without an editor: JSON text, - for stdin, or @FILE.",
        ),
    ] = None,
) -> None:
    """Edit a job's payload, then optionally retry it.

    The payload opens in $VISUAL, else $EDITOR, else vi, pretty-printed. Pending (scheduled,
    retrying), failed and cancelled jobs only. An invalid edit is reopened with the error at
    the top; saving an empty or unchanged file cancels (exit 0). The old payload is kept in the
    job's history (`jobq show`). If the job was claimed or changed while the editor was open,
    nothing is written and the path of the kept file is printed. Exit 0 edited or cancelled,
    1 not editable, changed meanwhile or the editor failed, 2 bad input.
    """
    import os

    from ..edits import EditorSession
    from ..errors import JobqError
    from .enqueue import payload_limit, read_payload

    limit = payload_limit()
    if payload is not None:  # checked before the queue is opened: bad input writes nothing
        new = read_payload(payload, sys.stdin.buffer, limit)
        with _queue(ctx) as q:
            job = _editable(q.get(job_id))
            q.edit(job_id, payload_json=new, retry=retry, seen=job)
        _report(job, retry)
        return
    with _queue(ctx) as q:  # closed while the editor is open (a PostgreSQL connection idles)
        job = _editable(q.get(job_id))
    with EditorSession(job_id, job.payload_json, limit) as session:
        edited = session.run(os.environ)
        if edited is None:
            _note("edit cancelled, nothing written")
            return
        try:
            with _queue(ctx) as q:
                q.edit(job_id, payload_json=edited, retry=retry, seen=job)
        except JobqError as e:
            e.args = (f"{e}; your edit is kept in {session.keep()}",)
            raise
    _report(job, retry)


def _editable(job: Job) -> Job:
    from ..edits import EDITABLE
    from ..errors import InvalidTransition

    if job.state not in EDITABLE:  # said before the editor opens, not after
        raise InvalidTransition(f"cannot edit job {job.id}: it is {job.state.value}")
    return job


def _report(before: Job, retry: bool) -> None:
    from ..edits import RETRYABLE

    if retry and before.state in RETRYABLE:
        _out(f"{before.id} edited and retried")
        return
    _out(f"{before.id} edited")
    if retry:
        _note(f"job {before.id} is {before.state.value}: nothing to retry")


def register(app: typer.Typer) -> None:
    """Add `edit` to `app`."""
    _bind_typer(globals())
    app.command("edit")(edit)

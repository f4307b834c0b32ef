"""`jobq logs`: a job's live output (its handler's stdout, stderr and logging), followed like
`tail -f` while it runs. Run by `jobq.cli.fast` without typer (see jobs.py's header)."""

from __future__ import annotations

import os
import sys

from ..errors import InvalidInput
from .common import _bind_typer, _note, _queue

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up
if TYPE_CHECKING:
    from typing import Annotated

    import typer

# -f: the attempt ended and the job is not `succeeded` (failed, cancelled, or pending again for
# a retry): 1, as `jobq wait` says of a job that failed
EXIT_NOT_SUCCEEDED = 1


def _escape(text: str) -> str:
    from ..safetext import safe_text

    # newlines kept; tabs kept as tabs (safe_text would expand them, but a chunk need not start
    # a line, so only the terminal knows the right width)
    return "\t".join(safe_text(part, multiline=True) for part in text.split("\t"))


def logs(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID", help="The job's id.")],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing the running attempt's output (a pending job's next attempt) "
            "until it ends; exit 0 if the job then succeeded, else 1.",
        ),
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option("--attempt", metavar="N", help="Attempt N (1 = the first). Default: latest."),
    ] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Write the output as stored, control characters included (for pipes). "
            "Default: escaped on a terminal, as stored otherwise.",
        ),
    ] = False,
    escape: Annotated[
        bool,
        typer.Option(
            "--escape",
            help="Escape control characters (except newline and tab) even when not on a terminal.",
        ),
    ] = False,
) -> int:
    """Print a job's output, or follow it live.

    Its handler's stdout, stderr and logging records, flushed by the pool about once a second
    while the job runs, capped at about 1 MiB per attempt. With -f, new output is printed as it
    arrives; the command exits when the attempt ends, the job's state on stderr: 0 if the job
    succeeded, 1 otherwise.
    """
    if attempt is not None and attempt < 1:
        raise InvalidInput(f"--attempt must be 1 or more, not {attempt}")
    if raw and escape:
        raise InvalidInput("--raw and --escape cannot be used together")
    out = sys.stdout
    escaped = escape or (not raw and out.isatty())
    with _queue(ctx) as q:
        chunks = q.follow_output(job_id, attempt) if follow else q.output(job_id, attempt)
        try:
            for chunk in chunks:
                out.write(_escape(chunk.text) if escaped else chunk.text)
                if follow:
                    out.flush()
            out.flush()
        except KeyboardInterrupt:
            return 0  # Ctrl-C is how one stops following: not an error (as `jobq events -f`)
        except BrokenPipeError:
            # the reader went away (`jobq logs 5 | head`): nothing more to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        if not follow:
            return 0
        job = q.get(job_id)
    from ..safetext import safe_line

    state = job.state.value
    line = f"jobq: job {job.id} ({safe_line(job.type, 60)}) {state}"
    if state != "succeeded" and job.last_error:
        line += f": {safe_line(job.last_error, 300)}"
    _note(line)
    return 0 if state == "succeeded" else EXIT_NOT_SUCCEEDED


def register(app: typer.Typer) -> None:
    """Add `jobq logs` to `app`."""
    _bind_typer(globals())
    app.command("logs")(logs)

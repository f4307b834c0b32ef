"""What the command modules share: opening the queue file, writing lines, per-id outcomes.

The names keep their leading underscore from the single-module CLI: they are private to
`jobq.cli`, and the command bodies that use them moved unchanged.
"""

from __future__ import annotations

import sys

from ..errors import JobqError

# `jobq wait --timeout` ran out before every job finished: 124, as timeout(1) exits (1 stays
# "a job failed or was cancelled").
EXIT_WAIT_TIMEOUT = 124

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: cheap to import
if TYPE_CHECKING:
    import typer

    from ..backend import ActionOutcome
    from ..queue import Queue


def _bind_typer(namespace: dict[str, object]) -> None:
    """Give a command module the names its postponed annotations use (`typer`, `Annotated`,
    the shared declarations of `jobq.cli.options`), for typer to evaluate them while it
    registers the commands: the module does not import typer itself, so that `jobq.cli.fast`
    can read the same annotations without it."""
    import typing

    import typer

    from . import options

    namespace.update(typer=typer, Annotated=typing.Annotated)
    options.bind(namespace)


def _queue(ctx: typer.Context, create: bool = False) -> Queue:
    """The queue file; only commands that write create it (`create`), the others refuse a
    missing file rather than leave an empty one (and its directories) behind a typo."""
    from ..queue import Queue

    return Queue(ctx.obj, create=create)


def _out(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _note(text: str) -> None:
    sys.stderr.write(text + "\n")


def _now() -> float:
    import time

    return time.time()


def _per_id(outcomes: dict[int, ActionOutcome], action: str, location: str) -> None:
    """Print the ids that worked; raise one JobqError naming every id that did not."""
    from ..queue_actions import outcome_error

    problems = []
    for job_id, outcome in outcomes.items():
        if outcome.done:
            _out(f"{job_id} {outcome}")
        else:
            problems.append(str(outcome_error(job_id, outcome, action, location)))
    if problems:
        raise JobqError("; ".join(problems))

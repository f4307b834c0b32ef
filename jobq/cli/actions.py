"""The operator actions on jobs: retry, cancel, priority — by ids, or by `ls`'s filters in bulk
(jobq/cli/bulk.py).

Like jobq/cli/jobs.py (which lists them in its COMMANDS), the parameters are typer declarations in
postponed annotations, so `jobq.cli.fast` can run retry and cancel without typer; the filters
the three share (and `--where/--since/--until` with `ls`) are declared in jobq/cli/options.py.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import InvalidInput
from .common import _now, _out, _per_id, _queue

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Annotated, Any

    import typer

    from ..queue import Queue
    from .bulk import Filters
    from .options import (
        DryRunOpt,
        SelectQueueOpt,
        SelectSearchOpt,
        SelectStateOpt,
        SelectTypeOpt,
        SinceOpt,
        UntilOpt,
        WhereOpt,
    )


def retry(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None,
        typer.Argument(metavar="[ID]...", show_default=False, help="The jobs to retry."),
    ] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Every failed job (same as --state failed).")
    ] = False,
    state: SelectStateOpt = None,
    type_: SelectTypeOpt = None,
    queue: SelectQueueOpt = None,
    search: SelectSearchOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Move failed or cancelled jobs back to pending.

    Their attempts start again from zero. Instead of ids, `ls`'s filters select the failed and
    cancelled jobs to retry (at least one filter; --dry-run to preview). A bulk action is not one
    transaction: it works 500 jobs at a time and reports how many it retried and how many it
    skipped because their state changed meanwhile.
    """
    if all_failed:
        if state not in (None, "failed"):
            raise InvalidInput("--all-failed is --state failed; drop one of them")
        state = "failed"
    _act(ctx, "retry", ids, dry_run, (state, type_, queue, search, where, since, until))


def cancel(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None,
        typer.Argument(metavar="[ID]...", show_default=False, help="The jobs to cancel."),
    ] = None,
    state: SelectStateOpt = None,
    type_: SelectTypeOpt = None,
    queue: SelectQueueOpt = None,
    search: SelectSearchOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Cancel jobs.

    A pending job is cancelled at once; a running one when its pool has stopped it. Instead of
    ids, `ls`'s filters select the pending and running jobs to cancel (at least one filter;
    --dry-run to preview). A bulk action is not one transaction: it works 500 jobs at a time and
    reports how many it cancelled, how many running ones it asked to stop, and how many it
    skipped because they finished meanwhile.
    """
    _act(ctx, "cancel", ids, dry_run, (state, type_, queue, search, where, since, until))


def priority(
    ctx: typer.Context,
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="[ID]... P",
            help="The jobs' ids (none with filters), then the priority: an integer or low,"
            " normal, high, critical.",
        ),
    ],
    state: SelectStateOpt = None,
    type_: SelectTypeOpt = None,
    queue: SelectQueueOpt = None,
    search: SelectSearchOpt = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Set a job's priority (higher runs first).

    Instead of ids, `ls`'s filters select the pending jobs to reprioritise (at least one filter;
    --dry-run to preview), 500 per transaction (a bulk action is not one transaction).
    """
    from ..values import parse_priority

    *id_texts, value = args
    job_ids = []
    for text in id_texts:
        if not text.isascii() or not text.isdigit():
            raise InvalidInput(f"job ids are integers, not {text!r}")
        job_ids.append(int(text))
    p = parse_priority(value)
    filters = (state, type_, queue, search, where, since, until)
    with _bulk(ctx, job_ids, dry_run, filters) as (q, f):
        if f is None:
            if len(job_ids) == 1:  # the one-job form keeps its error: exit 1 for a missing job
                q.set_priority(job_ids[0], p)
                _out(f"{job_ids[0]} priority {p}")
                return
            outcomes = q.set_priority_many(job_ids, p)
            for i in [i for i, o in outcomes.items() if o.done]:
                _out(f"{i} priority {p}")
            _per_id({i: o for i, o in outcomes.items() if not o.done}, "reprioritise", q.location)
        else:
            from . import bulk

            bulk.run(q, "priority", f, lambda chunk: q.set_priority_many(chunk, p),
                     dry_run=dry_run, what=f" to {p}")  # fmt: skip


def _act(
    ctx: typer.Context,
    verb: str,
    ids: list[int] | None,
    dry_run: bool,
    filters: tuple[Any, Any, Any, Any, Any, Any, Any],
) -> None:
    """retry or cancel: each id (one line per id that was not acted on), or what the filters
    select, in batches (jobq.cli.bulk)."""
    with _bulk(ctx, ids, dry_run, filters) as (q, f):
        many = q.retry_many if verb == "retry" else q.cancel_many
        if f is None:
            _per_id(many(ids or []), verb, q.location)
        else:
            from . import bulk

            bulk.run(q, verb, f, many, dry_run=dry_run)


@contextmanager
def _bulk(
    ctx: typer.Context,
    ids: list[int] | None,
    dry_run: bool,
    filters: tuple[Any, Any, Any, Any, Any, Any, Any],
) -> Iterator[tuple[Queue, Filters | None]]:
    """Check ids against filters (exactly one of them), then open the queue: (queue, the parsed
    filters, or None when ids were given)."""
    given = bool(ids)
    f = None
    if any(x is not None and x != [] for x in filters):
        from .bulk import read_filters

        f = read_filters(*filters, _now())
    if given and f is not None:
        raise InvalidInput("give job ids or filters, not both")
    if not given and f is None:
        from .bulk import FILTER_FLAGS

        raise InvalidInput(f"give job ids, or select jobs with {FILTER_FLAGS}")
    if dry_run and f is None:
        raise InvalidInput("--dry-run previews a selection by filters; drop it or the ids")
    with _queue(ctx) as q:
        yield q, f

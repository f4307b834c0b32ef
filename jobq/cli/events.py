"""`jobq events`: the job lifecycle as NDJSON, the recent history or followed like `tail -f`."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Annotated

import typer

from ..errors import InvalidInput
from .common import _now, _queue


def _since(text: str, now: float) -> float:
    """`--since`: a duration back from now (10m, 2h, 7d) or an ISO 8601 time."""
    from ..where import parse_time  # the one parser, shared with ls/retry/cancel --since

    return parse_time(text, now, "--since")


def ndjson_line(d: Mapping[str, object]) -> str:
    """One JSON object on one line. ensure_ascii escapes every character outside printable
    ASCII (C0, DEL, C1, bidi controls, all non-ASCII): strings from the queue never reach a
    terminal raw."""
    return json.dumps(d, ensure_ascii=True, allow_nan=False)


def events(
    ctx: typer.Context,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new events as they are committed."),
    ] = False,
    type_glob: Annotated[
        str | None, typer.Option("--type", metavar="GLOB", help="Job types matching GLOB.")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", metavar="Q", help="Queue Q only.")] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            metavar="KIND[,KIND]",
            help="created, started, succeeded, retrying, crashed, failed, cancelled, retried, "
            "released. Default: all but released.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DURATION|ISO", help="Events at or after: 10m, 2h, ISO."),
    ] = None,
    after_id: Annotated[
        int | None,
        typer.Option(
            "--after-id",
            metavar="N",
            help="Events after event N (the last id you saw): none missed, none repeated.",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            "-n",
            metavar="N",
            help="At most N events (with -f: of the history printed first). Default: 100.",
        ),
    ] = 100,
) -> None:
    """Print lifecycle events as NDJSON.

    Oldest first: the newest N, or those after --after-id; -f follows like tail -f.
    """
    if after_id is not None and after_id < 0:
        raise InvalidInput(f"--after-id must be an event id >= 0, not {after_id}")
    if limit < 0:
        raise InvalidInput(f"--limit must be >= 0, not {limit}")
    from ..follow import check_feed

    # every filter checked before the queue is opened: bad input writes and opens nothing
    args = check_feed(kinds=None if not kind else ",".join(kind), type_glob=type_glob,
                      queue=queue, since=None if since is None else _since(since, _now()),
                      after_id=after_id, limit=limit)  # fmt: skip
    out = sys.stdout
    with _queue(ctx) as q:
        feed = q.events(follow=follow, kinds=args.kinds, type_glob=args.type_glob,
                        queue=args.queue, since=args.since, after_id=args.after_id,
                        limit=args.limit)  # fmt: skip
        try:
            for ev in feed:
                out.write(ndjson_line(ev.to_dict()) + "\n")
                out.flush()  # a `while read` consumer gets each event at once
        except KeyboardInterrupt:
            return  # Ctrl-C is how one stops following: not an error (as `jobq errors -f`)


def register(app: typer.Typer) -> None:
    """Add `jobq events` to `app`."""
    app.command("events")(events)

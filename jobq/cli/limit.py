"""`jobq limit KEY --concurrency N --rate R`, `jobq limit ls`, `jobq limit rm KEY` (jobq.limits)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InvalidInput
from .common import _note, _now, _out, _queue


def limit(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="TYPE|queue:NAME|ls|rm",
            help="The job type or queue:NAME to limit; `ls` lists limits; `rm KEY` removes one.",
        ),
    ],
    key: Annotated[
        str | None, typer.Argument(metavar="[KEY]", help="With rm: the limit to remove.")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="N",
            help="At most N of its jobs running at once, over every pool (N ≥ 1).",
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            "--rate",
            metavar="COUNT/UNIT",
            help="At most COUNT started per UNIT (s, min, hour; e.g. 100/min, 5/10s).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="ls: one JSON array.")] = False,
) -> None:
    """Limit a job type or a queue across every pool and host.

    `jobq limit resize --concurrency 4` keeps at most 4 resize jobs running at once;
    `jobq limit queue:mail --rate 100/min` starts at most one mail job every 0.6 s. Setting a
    limit again replaces it. Jobs held by a limit stay pending (`jobq show` says why).
    `jobq limit ls [--json]` lists limits with their running jobs; `jobq limit rm KEY` removes
    one (exit 1 if there is none). Exit 2 for bad input (nothing written).
    """
    if target in ("ls", "rm"):
        if concurrency is not None or rate is not None:
            raise InvalidInput(f"jobq limit {target} takes no --concurrency or --rate")
        if target == "ls":
            if key is not None:
                raise InvalidInput(f"jobq limit ls takes no KEY (got {key!r})")
            _ls(ctx, as_json)
        else:
            if key is None:
                raise InvalidInput("jobq limit rm needs the KEY of the limit to remove")
            with _queue(ctx) as q:
                q.remove_limit(key)
            _out(f"removed limit {key}")
        return
    if key is not None:
        raise InvalidInput(f"jobq limit {target}: unexpected argument {key!r}")
    if as_json:
        raise InvalidInput("--json goes with jobq limit ls")
    from ..limits import make_limit

    lim = make_limit(target, concurrency, rate)  # checked before the queue is opened
    with _queue(ctx, create=True) as q:
        q.backend.put_limit(lim, _now())
    _out(f"limit {lim.key}: {_terms(lim.concurrency, lim.rate_text)}")


def _terms(concurrency: int | None, rate: str | None) -> str:
    parts = [] if concurrency is None else [f"at most {concurrency} running"]
    if rate is not None:
        parts.append(f"at most {rate} started")
    return ", ".join(parts)


def _ls(ctx: typer.Context, as_json: bool) -> None:
    from ..safetext import safe_line
    from . import output

    with _queue(ctx) as q:
        rows = q.limits()
    now = _now()
    if as_json:
        _out(output.to_json([s.to_dict(now) for s in rows]))
        return
    if not rows:
        _note("no limits")
        return
    headers = ["KEY", "CONCURRENCY", "RATE", "RUNNING", "HELD"]
    lines = [[safe_line(s.limit.key),
              "-" if s.limit.concurrency is None else str(s.limit.concurrency),
              s.limit.rate_text or "-", str(s.running),
              "no" if (why := s.holds(now)) is None else why.split(": ", 1)[1]]
             for s in rows]  # fmt: skip
    _out(output.table(headers, lines))


def register(app: typer.Typer) -> None:
    """Add the `limit` command to `app`."""
    app.command("limit")(limit)

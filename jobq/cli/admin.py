"""The commands that look after the queue file and its pools: stats, workers, pause, resume,
prune, doctor, backup, db path."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..errors import InvalidInput, QueueFileError
from .common import _note, _now, _out, _queue


def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Counts per state, queue and type, and the last minute's throughput."""
    from . import output

    with _queue(ctx) as q:
        s = q.stats()
    _out(output.to_json(s.to_dict()) if as_json else output.stats_text(s))


def workers(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Registered worker pools: running, stopping, stopped or dead (its process is gone, or from
    another host, no heartbeat for 30 s)."""
    from . import output

    with _queue(ctx) as q:
        pools = q.workers()
    now = _now()
    if as_json:
        rows = []
        for w in pools:
            d = w.to_dict()
            d["status"] = w.status_at(now)
            d["alive"] = w.alive(now)
            rows.append(d)
        _out(output.to_json(rows))
    elif pools:
        _out(output.workers_table(pools, now))
    else:
        _note("no worker pools registered")


def pause(ctx: typer.Context, queue: Annotated[str, typer.Argument(metavar="Q")]) -> None:
    """Stop workers claiming from a queue (running jobs finish)."""
    with _queue(ctx, create=True) as q:
        q.pause(queue)
    _out(f"paused queue {queue}")


def resume(ctx: typer.Context, queue: Annotated[str, typer.Argument(metavar="Q")]) -> None:
    """Let workers claim from a paused queue again."""
    with _queue(ctx, create=True) as q:
        q.resume(queue)
    _out(f"resumed queue {queue}")


def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", metavar="DURATION", help="Finished longer ago than this, e.g. 7d."
        ),
    ],
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            metavar="S",
            help="succeeded, failed or cancelled (repeatable). Default: all three.",
        ),
    ] = None,
) -> None:
    """Delete finished jobs and their history."""
    with _queue(ctx) as q:
        n = q.prune(older_than, tuple(state) if state else ("succeeded", "failed", "cancelled"))
    _out(f"pruned {n} job{'s' if n != 1 else ''}")


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> int:
    """Check the file's integrity and report its schema; exit 1 if anything is wrong."""
    from .. import config
    from ..backend import Role, display_location, open_backend
    from . import output

    path = config.resolve_db_path(ctx.obj)
    report: dict[str, object]
    try:
        backend = open_backend(path, Role.OPERATOR)
        try:
            report = backend.doctor()
        finally:
            backend.close()
        ok = report.get("integrity") == "ok" and report.get("foreign_key_violations") == 0
    except QueueFileError as e:  # refused: not a jobq file, newer, corrupt, network fs, missing
        report, ok = {"path": display_location(path), "error": str(e)}, False
    report = {"ok": ok, **report}
    _out(output.to_json(report) if as_json else output.doctor_text(report))
    return 0 if ok else 1


def backup(
    ctx: typer.Context,
    out: Annotated[str, typer.Argument(metavar="OUT", help="File (or directory) to write.")],
) -> None:
    """Write a consistent copy of the queue file, safe while others write to it."""
    from ..backend import is_url

    with _queue(ctx) as q:
        target = os.path.abspath(os.path.expanduser(out))
        if not is_url(q.path):  # a server's queue is no file: its backend says what to use
            if os.path.isdir(target):
                target = os.path.join(target, os.path.basename(q.path))
            if os.path.exists(target) and os.path.samefile(target, q.path):
                raise InvalidInput(f"{target} is the queue file itself; choose another path")
        q.backup(target)
    _out(target)


def db_path(ctx: typer.Context) -> None:
    """Print the queue file in use (--db, else $JOBQ_DB, else the user data dir)."""
    from ..backend import display_location
    from ..config import resolve_db_path

    _out(display_location(resolve_db_path(ctx.obj)))


COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("stats", stats),
    ("workers", workers),
    ("pause", pause),
    ("resume", resume),
    ("prune", prune),
    ("doctor", doctor),
    ("backup", backup),
]


def register(app: typer.Typer) -> None:
    """Add these commands, and the `db` group, to `app`."""
    for name, func in COMMANDS:
        app.command(name)(func)
    db_app = typer.Typer(help="The queue file.", no_args_is_help=True)
    db_app.command("path")(db_path)
    app.add_typer(db_app, name="db")

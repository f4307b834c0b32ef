"""The commands that look after the queue file and its pools: stats, workers, pause, resume,
prune, delete, doctor, backup, copy, metrics, db path.

Like `jobs`, it does not import typer itself (see there and `jobq.cli.fast`)."""

from __future__ import annotations

import os

from ..errors import InvalidInput, JobqError, QueueFileError
from .common import _bind_typer, _note, _now, _out, _queue

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Annotated, Any

    import typer


def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The counts as one JSON object.")] = False,
) -> None:
    """Count jobs per state, queue and type.

    Also the last minute's throughput and the paused queues.
    """
    from . import output

    with _queue(ctx) as q:
        s = q.stats()
    _out(output.to_json(s.to_dict()) if as_json else output.stats_text(s))


def workers(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of pools.")] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Forget every stopped or dead pool now (a pool still holding a running job "
            "stays until its job is rescued).",
        ),
    ] = False,
) -> None:
    """List the registered worker pools.

    Status: running, stopping, stopped, or dead (its process is gone or, seen from another
    host, no heartbeat for 30 s). Pools that stopped are forgotten after a pool's --retention,
    or at once with --prune.
    """
    from . import output

    if prune:
        from ..lifecycle import host_key

        with _queue(ctx) as q:
            gone = q.backend.forget_pools(_now(), here=host_key())
        if as_json:
            _out(output.to_json({"forgotten": gone}))
        else:
            _out(f"forgot {len(gone)} pool{'s' if len(gone) != 1 else ''}")
        return
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


def pause(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(metavar="Q", help="The queue's name.")],
) -> None:
    """Stop workers claiming from a queue (running jobs finish).

    A queue no job in the file uses yet is paused all the same, with a warning (a typo?).
    """
    from ..safetext import safe_line
    from ..values import validate_queue

    validate_queue(queue)  # before the file is opened (or created): bad input writes nothing
    with _queue(ctx, create=True) as q:
        unused = q.count(queue=queue) == 0
        q.pause(queue)
    if unused:
        _note(f"jobq: warning: no job uses queue {safe_line(queue, 200)!r}; paused it anyway")
    _out(f"paused queue {queue}")


def resume(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(metavar="Q", help="The queue's name.")],
) -> None:
    """Let workers claim from a paused queue again."""
    from ..values import validate_queue

    validate_queue(queue)
    with _queue(ctx, create=True) as q:
        q.resume(queue)
    _out(f"resumed queue {queue}")


PRUNABLE = ("succeeded", "failed", "cancelled")


def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Finished longer ago than this; a unit is required: 7d, 12h, 30m, 90s.",
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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print how many jobs would go; delete nothing.")
    ] = False,
) -> None:
    """Delete finished jobs and their history.

    Also forgets pools that stopped (or died) before the same cut-off.
    """
    from ..values import parse_duration

    seconds = parse_duration(older_than, "--older-than", unit=True)
    states = tuple(state) if state else PRUNABLE
    for s in states:
        if s not in PRUNABLE:
            raise InvalidInput(f"prune deletes finished jobs only; {s!r} is not a finished state")
    with _queue(ctx) as q:
        if dry_run:
            n = q.backend.count_prunable(_now() - seconds, states)
        else:
            n = q.prune(seconds, states)
    plural = "s" if n != 1 else ""
    _out(f"would prune {n} job{plural} (dry run)" if dry_run else f"pruned {n} job{plural}")


def delete(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(metavar="ID...", help="The jobs to delete.")],
    force: Annotated[
        bool, typer.Option("--force", help="Delete pending jobs too (never a running one).")
    ] = False,
) -> None:
    """Delete jobs and their history.

    Succeeded, failed and cancelled jobs go; a pending job needs --force; a running job is
    never deleted (a worker holds it): cancel it first. Exit 1 if any id was not deleted.
    """
    from ..queue_actions import outcome_error

    with _queue(ctx) as q:
        outcomes = q.backend.delete(list(dict.fromkeys(ids)), force=force)
        location = q.location
    problems = []
    for job_id, outcome in outcomes.items():
        if outcome.done:
            _out(f"{job_id} deleted")
            continue
        hint = {"pending": " (use --force)", "running": " (cancel it first: jobq cancel ID)"}
        state = outcome.state.value if outcome.state is not None else ""
        problems.append(f"{outcome_error(job_id, outcome, 'delete', location)}"
                        + hint.get(state, ""))  # fmt: skip
    if problems:
        raise JobqError("; ".join(problems))


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
) -> int:
    """Check the queue's integrity and report its schema.

    Exit 1 if anything is wrong (a refused or damaged file included).
    """
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
    """Write a consistent copy of the queue file.

    Safe while pools and producers write to it.
    """
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


def copy(
    src: Annotated[str, typer.Argument(metavar="SRC", help="Queue to copy: a file or a URL.")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="Where to: a file or a URL.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a target that is not empty.")
    ] = False,
) -> None:
    """Copy a whole queue to another file or server.

    Everything but the pools travels in one transaction (all or nothing), between a file and
    PostgreSQL either way: jobs with their dependencies, edits, attempts and output, paused
    queues, limits, schedules, the per-minute history and the event feed. Ids are kept. A target
    holding jobs, settings, limits, schedules or history is refused unless --replace; a source
    with running jobs is refused (stop its pools first). Exit 1 when refused, 2 for a bad
    location.
    """
    from ..transfer import copy_queue

    report = copy_queue(src, dst, replace=replace)
    _out(report.summary())


def metrics(ctx: typer.Context) -> None:
    """Print the queue's Prometheus metrics.

    The text exposition format, e.g. for node exporter's textfile collector from cron: jobs per
    state/queue/type, oldest due job per queue, attempts and failures per type, run-time
    histograms, busy slots per pool.
    """
    from .. import config
    from ..metrics import exposition

    _out(exposition(config.resolve_db_path(ctx.obj)).rstrip("\n"))


def db_path(
    ctx: typer.Context,
    demo: Annotated[
        bool, typer.Option("--demo", help="Print where `jobq demo` keeps its queue instead.")
    ] = False,
) -> None:
    """Print the queue in use.

    The --db option, else the environment's [env: JOBQ_DB], else jobq.db in the user data dir.
    """
    from ..backend import display_location
    from ..config import resolve_db_path

    if demo:
        from ..demo import demo_db_path

        _out(demo_db_path())
        return
    _out(display_location(resolve_db_path(ctx.obj)))


COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("stats", stats),
    ("workers", workers),
    ("pause", pause),
    ("resume", resume),
    ("prune", prune),
    ("delete", delete),
    ("doctor", doctor),
    ("backup", backup),
    ("copy", copy),
    ("metrics", metrics),
]


def register(app: typer.Typer) -> None:
    """Add these commands, and the `db` group, to `app`."""
    import typer

    _bind_typer(globals())
    for name, func in COMMANDS:
        app.command(name)(func)
    db_app = typer.Typer(help="Show where the queue is.", no_args_is_help=True)
    db_app.command("path")(db_path)
    app.add_typer(db_app, name="db")

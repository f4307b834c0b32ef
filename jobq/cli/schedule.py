"""`jobq schedule add|ls|rm|pause|resume`: periodic jobs kept in the queue (jobq.schedules)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import JobNotFound
from .common import _note, _now, _out, _queue


def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")],
    cron: Annotated[
        str, typer.Argument(metavar="CRON", help="Five cron fields, e.g. '*/5 * * * *'.")
    ],
    type_: Annotated[str, typer.Argument(metavar="TYPE", help="Type of the job it enqueues.")],
    payload: Annotated[
        str, typer.Option("--payload", metavar="JSON|@FILE|-", help="The job's payload.")
    ] = "{}",
    queue: Annotated[
        str, typer.Option("--queue", "-q", metavar="Q", help="The job's queue.")
    ] = "default",
    priority: Annotated[
        str, typer.Option("--priority", metavar="N|NAME", help="The job's priority.")
    ] = "0",
    tz: Annotated[
        str, typer.Option("--tz", metavar="ZONE", help="IANA time zone of the cron line.")
    ] = "UTC",
    replace: Annotated[
        bool, typer.Option("--replace", help="Change a schedule of that name (keeps its pause).")
    ] = False,
) -> None:
    """Add a periodic job.

    The pools enqueue one TYPE job at each CRON slot (none while no pool runs; after downtime,
    one catch-up job). Exit 1 if NAME exists (see --replace), 2 for bad input.
    """
    from ..schedules import Schedule, check_cron, validate_name
    from ..values import parse_priority, validate_queue, validate_type
    from .enqueue import payload_limit, read_payload

    now = _now()
    s = Schedule(
        name=validate_name(name),
        cron=cron.strip(),
        tz=tz,
        type=validate_type(type_),
        queue=validate_queue(queue),
        payload_json=read_payload(payload, sys.stdin.buffer, payload_limit()),
        priority=parse_priority(priority),
        paused=False,
        next_at=check_cron(cron, tz, now),
    )  # everything checked before the queue is opened: bad input writes nothing
    with _queue(ctx, create=True) as q:
        if not q.backend.put_schedule(s, now, replace=replace):
            raise JobNotFound(f"a schedule named {name!r} exists: --replace to change it")
    from ..values import format_duration

    _out(f"schedule {name}: next run in {format_duration(s.next_at - now)}")


def ls(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """List schedules with their next run and last job."""
    from ..schedules import describe
    from . import output

    with _queue(ctx) as q:
        rows = q.backend.schedules()
    if as_json:
        _out(output.to_json([s.to_dict() for s in rows]))
        return
    if not rows:
        _note("no schedules")
        return
    now = _now()
    headers = ["NAME", "CRON", "TZ", "TYPE", "QUEUE", "NEXT", "LAST JOB"]
    lines = [[s.name, s.cron, s.tz, s.type, s.queue, describe(s, now),
              "-" if s.last_job_id is None else str(s.last_job_id)] for s in rows]  # fmt: skip
    _out(output.table(headers, lines))


def _named(ctx: typer.Context, name: str, act: str) -> None:
    with _queue(ctx) as q:
        b = q.backend
        done = b.remove_schedule(name) if act == "rm" else b.pause_schedule(name, act == "pause")
    if not done:
        raise JobNotFound(f"no schedule named {name!r} (see jobq schedule ls)")
    _out({"rm": "removed", "pause": "paused", "resume": "resumed"}[act] + f" schedule {name}")


def rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")],
) -> None:
    """Remove a schedule (jobs it already enqueued stay)."""
    _named(ctx, name, "rm")


def pause(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")],
) -> None:
    """Stop a schedule until it is resumed.

    Slots missed meanwhile are not caught up.
    """
    _named(ctx, name, "pause")


def resume(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")],
) -> None:
    """Let a paused schedule fire again, from its next slot."""
    import dataclasses

    from ..schedules import next_run

    with _queue(ctx) as q:
        b = q.backend
        found = [s for s in b.schedules() if s.name == name]
        if not found:
            raise JobNotFound(f"no schedule named {name!r} (see jobq schedule ls)")
        s = found[0]
        # first move it to its next slot after now, still paused, then resume it: a resume
        # never fires the backlog of slots missed while it was paused
        b.put_schedule(dataclasses.replace(s, next_at=next_run(s.cron, s.tz, _now())), _now(),
                       replace=True)  # fmt: skip
        b.pause_schedule(name, False)
    _out(f"resumed schedule {name}")


def register(app: typer.Typer) -> None:
    """Add the `schedule` group to `app`."""
    group = typer.Typer(help="Periodic jobs (cron schedules kept in the queue).",
                        no_args_is_help=True)  # fmt: skip
    for name, func in (("add", add), ("ls", ls), ("rm", rm), ("pause", pause),
                       ("resume", resume)):  # fmt: skip
        group.command(name)(func)
    app.add_typer(group, name="schedule")

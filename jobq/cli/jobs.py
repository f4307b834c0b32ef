"""The commands that add and read jobs: enqueue (the typer side of it), ls, show, errors, wait;
register() also adds retry, cancel and priority (jobq.cli.actions), in `jobq --help`'s order.

Its parameters are typer declarations in postponed annotations: the module itself does not
import typer (`build_app()` gives it the names when it registers the commands), so that
`jobq.cli.fast` can run ls, show, retry, cancel and wait from the same declarations without it.
"""

from __future__ import annotations

import sys

from .common import EXIT_WAIT_TIMEOUT, _bind_typer, _note, _now, _out, _queue

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Annotated, Any

    import typer

    from ..model import FailedAttempt
    from .options import SinceOpt, UntilOpt, WhereOpt


def enqueue(
    ctx: typer.Context,
    type_: Annotated[
        str | None,
        typer.Argument(metavar="[TYPE]", show_default=False, help="Job type, e.g. email.send."),
    ] = None,
    payload: Annotated[
        str | None,
        typer.Option(
            "--payload",
            metavar="JSON|-|@FILE",
            help="Payload: JSON text, - for stdin, or @FILE. Default: {}.",
        ),
    ] = None,
    priority: Annotated[
        str | None,
        typer.Option(
            "--priority",
            metavar="P",
            help="Integer (higher runs first) or low, normal, high, critical.",
        ),
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", metavar="Q", help="Queue name. Default: default.")
    ] = None,
    delay: Annotated[
        str | None,
        typer.Option(
            "--delay", metavar="DURATION", help="Run no earlier than this from now: 30s, 5m."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="ISO",
            help="Run no earlier than this time, e.g. 2026-12-02T00:23:44.123456Z (naive = UTC).",
        ),
    ] = None,
    max_attempts: Annotated[
        str | None,
        typer.Option("--max-attempts", metavar="N", help="Attempts before failed. Default: 4."),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", metavar="DURATION", help="Per-attempt time limit; 0 = none."),
    ] = None,
    unique_key: Annotated[
        str | None,
        typer.Option(
            "--unique-key",
            metavar="K",
            help="While a job with this key is pending or running, print its id instead.",
        ),
    ] = None,
    ndjson: Annotated[
        str | None,
        typer.Option(
            "--ndjson",
            metavar="-|@FILE",
            help="Read one JSON object per line from stdin (-) or @FILE (type, payload, "
            "priority, queue, delay, run_at, max_attempts, timeout, unique_key, after); "
            "one transaction, all or nothing.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id": N}.')] = False,
    after: Annotated[
        list[str] | None,
        typer.Option(
            "--after",
            metavar="ID[,ID…]",
            help="Run only once these jobs succeeded (repeatable); cancelled if one fails or "
            "is cancelled.",
        ),
    ] = None,
) -> int:
    """Add a job and print its id (only the id)."""
    from .enqueue import EnqueueArgs, enqueue

    a = EnqueueArgs(
        type=type_,
        payload=payload,
        priority=priority,
        queue=queue,
        delay=delay,
        at=at,
        max_attempts=max_attempts,
        timeout=timeout,
        unique_key=unique_key,
        ndjson=ndjson,
        json=as_json,
        after=after or None,
    )
    return enqueue(ctx.obj, a)


def ls(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            "-s",
            metavar="S",
            help="pending, running, succeeded, failed, cancelled, or a view: scheduled, retrying.",
        ),
    ] = None,
    type_: Annotated[
        str | None,
        typer.Option("--type", "-t", metavar="GLOB", help="Job type glob, e.g. 'email.*'."),
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", "-q", metavar="Q", help="Jobs of this queue only.")
    ] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", metavar="TEXT", help="Text in the payload, type or last error."),
    ] = None,
    where: WhereOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", help="At most this many, newest first.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of jobs.")] = False,
) -> None:
    """List jobs, newest first.

    WAITING says why a pending or running job is where it is (`jobq show ID` has the sentence).
    `--where` tests a payload field: a missing field matches only `!=`.
    """
    from ..diagnose import diagnose_job
    from ..values import validate_positive_int
    from . import output

    validate_positive_int(limit, "--limit")
    more: dict[str, Any] = {}
    if where or since is not None or until is not None:  # jobq.where loads only for a filter
        from .bulk import read_filters

        more = read_filters(state, type_, queue, search, where, since, until, _now()).query()
        del more["type"], more["queue"], more["search"]

    with _queue(ctx) as q:
        jobs = q.list(state, type=type_, queue=queue, search=search, limit=limit, **more)
        active = any(j.state in ("pending", "running") for j in jobs)
        pools, paused = (q.workers(), q.paused_queues()) if active and not as_json else ([], [])
        running = [j.id for j in jobs if j.state == "running"]
        progress = q.progress_many(running) if running else {}
        held = q.limits() if active and not as_json else []
        pending = [j.id for j in jobs if j.state == "pending"] if not as_json else []
        deps = q.dependencies_of(pending)
    if as_json:
        _out(output.to_json([output.job_dict(j, progress) for j in jobs]))
        return
    if not jobs:
        _note("no matching jobs")
        return
    now = _now()
    waiting = {j.id: diagnose_job(j, pools, paused, now, held, deps.get(j.id, ())) for j in jobs}
    _out(output.jobs_table(jobs, now, waiting, progress))
    if len(jobs) == limit:
        _note(f"(the newest {limit}; use --limit for more)")


def show(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID", help="The job's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The job with attempts_history.")] = False,
) -> None:
    """Show everything about a job.

    Its fields, payload, result and every attempt (tracebacks, output), and for a pending or
    running job why it is where it is.
    """
    from ..diagnose import diagnose_job
    from . import output

    with _queue(ctx) as q:
        job = q.get(job_id)
        attempts = q.attempts(job_id)
        edits = q.edits(job_id)
        active = job.state in ("pending", "running")
        pools, paused = (q.workers(), q.paused_queues()) if active else ([], [])
        progress = q.progress_many([job.id]) if job.state == "running" else {}
        held = q.limits() if job.state == "pending" else []
        after, dependents = q.dependencies(job_id), q.dependents(job_id)
    now = _now()
    waiting = diagnose_job(job, pools, paused, now, held, after)
    if as_json:
        d = output.job_dict(job, progress)
        if waiting is not None:
            d["waiting"] = waiting.to_dict()
        # the jobs it runs after; those of them it still waits for (none once it runs)
        d["after"] = [i for i, _ in after]
        d["blocked_by"] = (
            [i for i, s in after if s != "succeeded"] if job.state == "pending" else []
        )
        d["dependents"] = [i for i, _ in dependents]
        d["attempts_history"] = [a.to_dict() for a in attempts]
        d["edits"] = [e.to_dict() for e in edits]
        _out(output.to_json(d))
    else:
        _out(
            output.job_detail(job, attempts, now, waiting, progress.get(job.id), after, dependents)
            + output.edits_text(edits)
        )


def errors(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new failures as they happen.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", help="At most this many (the latest).")
    ] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list (with -f: one JSON object per line).")
    ] = False,
) -> None:
    """Show the latest failed attempts, oldest of them first."""
    from ..values import validate_positive_int
    from . import output

    validate_positive_int(limit, "--limit")

    def emit(batch: list[FailedAttempt]) -> None:
        for e in batch:
            _out(output.to_json(e.to_dict(), indent=None) if as_json else output.error_line(e))
        sys.stdout.flush()

    with _queue(ctx) as q:
        if not follow:
            latest = q.errors(limit=limit)[::-1]
            if as_json:
                _out(output.to_json([e.to_dict() for e in latest]))
            elif latest:
                _out("\n".join(output.error_line(e) for e in latest))
            else:
                _note("no failed attempts")
            return
        from ..follow import follow as follow_loop  # the loop `jobq events -f` uses too

        # Watch before the first query, so a failure recorded in between is not missed.
        with q.waker() as waker:
            latest = q.errors(limit=limit)
            last = max((e.attempt.id for e in latest), default=0)
            emit(list(reversed(latest)))

            def away(e: Exception) -> None:  # e.g. a server restarting: said once per outage
                _note(f"jobq: {e}; still following")

            def poll() -> list[FailedAttempt]:
                nonlocal last
                new = q.errors(after=last, limit=1000)
                if new:
                    last = new[0].attempt.id
                return new[::-1]

            try:
                for e in follow_loop(waker, poll, on_away=away):
                    emit([e])
            except KeyboardInterrupt:
                return  # Ctrl-C is how one stops following: not an error


def wait(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(metavar="ID...", help="The jobs to wait for.")],
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            # a literal, not an f-string: jobq.cli.fast evaluates these annotations
            help="Give up after this long (exit 124). Default: wait forever.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Print {"timed_out": …, "jobs": [the jobs as they are]}.'),
    ] = False,
) -> int:
    """Wait until jobs finish.

    Prints each job's state; for a failed or cancelled job, its error on stderr. Exit 0 if
    all succeeded, 1 if any failed or was cancelled, 124 if --timeout ran out first.
    """
    from ..errors import WaitTimeout
    from ..safetext import safe_line
    from ..values import parse_duration
    from . import output

    seconds = None if timeout is None else parse_duration(timeout, "timeout")
    with _queue(ctx) as q:
        try:
            jobs = q.wait(ids, timeout=seconds)
        except WaitTimeout:
            found = {j.id: j for j in q.backend.get_many(ids)}
            jobs = [found[i] for i in dict.fromkeys(ids) if i in found]
    finished = [j for j in jobs if j.state.value in ("succeeded", "failed", "cancelled")]
    timed_out = len(finished) < len(jobs)
    if as_json:
        _out(output.to_json({"timed_out": timed_out, "jobs": [j.to_dict() for j in jobs]}))
    else:
        _out("\n".join(f"{j.id} {j.state.value}" for j in jobs))
    for j in finished:
        if j.state.value != "succeeded":
            why = safe_line(j.last_error, 300) or "-"
            _note(f"jobq: job {j.id} ({safe_line(j.type, 60)}) {j.state.value}: {why}")
    if timed_out:
        left = next(j for j in jobs if j not in finished)
        after = safe_line(timeout, 40)
        _note(f"jobq: error: timed out after {after}: job {left.id} is still {left.state.value}"
              f" ({len(finished)} of {len(jobs)} finished)")  # fmt: skip
        return EXIT_WAIT_TIMEOUT
    return 0 if all(j.state.value == "succeeded" for j in jobs) else 1


def register(app: typer.Typer) -> None:
    """Add these commands to `app`, in the order `jobq --help` lists them."""
    from . import actions  # not at the top: `jobq ls`, `show` and `wait` do not need it

    _bind_typer(globals())
    _bind_typer(vars(actions))  # retry, cancel, priority: their declarations live there
    commands: list[tuple[str, Callable[..., Any]]] = [
        ("enqueue", enqueue), ("ls", ls), ("show", show), ("retry", actions.retry),
        ("cancel", actions.cancel), ("priority", actions.priority), ("errors", errors),
        ("wait", wait),
    ]  # fmt: skip
    for name, func in commands:
        # `jobq priority 7 -5`: a negative priority is an argument, not an unknown option
        settings = {"ignore_unknown_options": True} if name == "priority" else None
        app.command(name, context_settings=settings)(func)

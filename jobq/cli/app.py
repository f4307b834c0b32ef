"""The `jobq` command line: a thin layer over `jobq.Queue`.

`main()` is the one edge where a `JobqError` becomes one line on stderr and its exit code
(0 ok, 1 failure, 2 usage or bad input, 75 busy, disk full or file replaced). Only commands that
write may create the queue file; the others say `no queue file at PATH`. `jobq enqueue` is parsed by
`jobq.clifast` without importing typer, because it runs in shell loops; every other command line
goes to the typer app, which `build_app()` assembles on demand. The command functions below are
plain functions whose annotations (strings, thanks to `from __future__ import annotations`) name
typer; typer resolves them when `build_app()` registers the commands, so importing this module
costs no typer import.

Output: human tables by default, `--json` on every read command. Strings from the queue file go
through `jobq.safetext` (see `jobq.output`) and are written with plain `print`, never as markup.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from ..errors import InvalidInput, JobqError, QueueFileError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from typing import Annotated, Any

    import typer

    from ..backend import ActionOutcome
    from ..model import FailedAttempt
    from ..queue import Queue

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as any Unix tool killed by a closed pipe


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI on `argv` (default: sys.argv[1:]) and exit with its code."""
    args = list(sys.argv[1:] if argv is None else argv) or ["--help"]
    try:
        if "--help" not in args and "-h" not in args:
            from ..config import check_env

            check_env()  # a malformed JOBQ_* variable: one line, exit 2, whatever the command
        code = _run(args)
        sys.stdout.flush()
    except JobqError as e:
        _error(str(e))
        code = e.exit_code
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        # `jobq ls | head`: the reader left. Point stdout at /dev/null so the interpreter's
        # final flush does not raise again, and leave quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


def _error(message: str) -> None:
    from ..safetext import safe_line

    sys.stderr.write(f"jobq: error: {safe_line(message, 2000)}\n")
    sys.stderr.flush()


def _run(args: list[str]) -> int:
    from . import enqueue as clifast

    split = clifast.split_global(args)
    if split is not None and split[1][0] == "enqueue":
        parsed = clifast.parse(split[1][1:])
        if parsed is not None:
            return clifast.enqueue(split[0], parsed)
    return _run_typer(args)


def _run_typer(args: list[str]) -> int:
    import typer
    from typer._click.exceptions import ClickException, UsageError  # typer 0.28 vendors click

    app = build_app()
    try:
        # not standalone: errors come back here instead of click printing and exiting
        rv = app(args=args, prog_name="jobq", standalone_mode=False)
    except typer.Abort:  # click's translation of Ctrl-C and EOF
        return EXIT_INTERRUPTED
    except ClickException as e:  # usage errors: one line, exit 2
        where = e.ctx.command_path if isinstance(e, UsageError) and e.ctx else "jobq"
        _error(f"{e.format_message()} (see '{where} --help')")
        return e.exit_code
    return rv if isinstance(rv, int) else 0


def build_app() -> typer.Typer:
    """The typer app with every command registered (imports typer)."""
    # The commands' annotations are strings naming `typer`; typer evaluates them in this
    # module's namespace while registering, so bind the name here.
    import typing

    import typer

    globals().update(typer=typer, Annotated=typing.Annotated, Any=typing.Any)
    app = typer.Typer(
        name="jobq",
        help="A durable local job queue in one SQLite file.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    for name, func in COMMANDS:
        # `jobq priority 7 -5`: a negative priority is an argument, not an unknown option
        settings = {"ignore_unknown_options": True} if name == "priority" else None
        app.command(name, context_settings=settings)(func)
    app.command(
        "systemd-unit",
        help="Print a systemd unit that runs `jobq work` with these options (Type=notify).",
    )(work)
    db_app = typer.Typer(help="The queue file.", no_args_is_help=True)
    db_app.command("path")(db_path)
    app.add_typer(db_app, name="db")
    return app


# ---- helpers ----------------------------------------------------------------------------------


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
    from ..queue import outcome_error

    problems = []
    for job_id, outcome in outcomes.items():
        if outcome.done:
            _out(f"{job_id} {outcome}")
        else:
            problems.append(str(outcome_error(job_id, outcome, action, location)))
    if problems:
        raise JobqError("; ".join(problems))


# ---- commands ---------------------------------------------------------------------------------


def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="PATH",
            show_default=False,
            help="The queue file. Default: $JOBQ_DB, else the user data dir.",
        ),
    ] = None,
) -> None:
    """A durable local job queue in one SQLite file."""
    ctx.obj = db


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
        typer.Option("--at", metavar="ISO", help="Run no earlier than this time (naive = UTC)."),
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
            metavar="-|FILE",
            help="Read one JSON object per line (type, payload, priority, queue, delay, run_at, "
            "max_attempts, timeout, unique_key); one transaction, all or nothing.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id": N}.')] = False,
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
    queue: Annotated[str | None, typer.Option("--queue", "-q", metavar="Q")] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", metavar="TEXT", help="Text in the payload, type or last error."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many, newest first.")
    ] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of jobs.")] = False,
) -> None:
    """List jobs, newest first; WAITING says why a pending or running job is where it is."""
    from ..diagnose import diagnose_job
    from . import output

    with _queue(ctx) as q:
        jobs = q.list(state, type=type_, queue=queue, search=search, limit=limit)
        active = any(j.state in ("pending", "running") for j in jobs)
        pools, paused = (q.workers(), q.paused_queues()) if active and not as_json else ([], [])
    if as_json:
        _out(output.to_json([j.to_dict() for j in jobs]))
        return
    if not jobs:
        _note("no matching jobs")
        return
    now = _now()
    waiting = {j.id: diagnose_job(j, pools, paused, now) for j in jobs}
    _out(output.jobs_table(jobs, now, waiting))
    if len(jobs) == limit:
        _note(f"(the newest {limit}; use --limit for more)")


def show(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="The job with attempts_history.")] = False,
) -> None:
    """Show everything about a job, its attempts included, and why it waits if it does."""
    from ..diagnose import diagnose_job
    from . import output

    with _queue(ctx) as q:
        job = q.get(job_id)
        attempts = q.attempts(job_id)
        active = job.state in ("pending", "running")
        pools, paused = (q.workers(), q.paused_queues()) if active else ([], [])
    now = _now()
    waiting = diagnose_job(job, pools, paused, now)
    if as_json:
        d = job.to_dict()
        if waiting is not None:
            d["waiting"] = waiting.to_dict()
        d["attempts_history"] = [a.to_dict() for a in attempts]
        _out(output.to_json(d))
    else:
        _out(output.job_detail(job, attempts, now, waiting))


def retry(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...", show_default=False)] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Every failed job matching the filters.")
    ] = False,
    type_: Annotated[str | None, typer.Option("--type", "-t", metavar="GLOB")] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q", metavar="Q")] = None,
    search: Annotated[str | None, typer.Option("--search", metavar="TEXT")] = None,
) -> None:
    """Move failed or cancelled jobs back to pending, attempts reset."""
    if ids and all_failed:
        raise InvalidInput("give job ids or --all-failed, not both")
    if not ids and not all_failed:
        raise InvalidInput("give job ids, or --all-failed [--type/--queue/--search]")
    if ids and (type_ or queue or search):
        raise InvalidInput("--type, --queue and --search filter --all-failed; drop them or the ids")
    with _queue(ctx) as q:
        if ids:
            _per_id(q.retry_many(ids), "retry", q.location)
            return
        matched = q.matching_ids("failed", type=type_, queue=queue, search=search)
        outcomes = q.retry_many(matched) if matched else {}
    done = sum(1 for o in outcomes.values() if o.done)
    _out(f"retried {done} job{'s' if done != 1 else ''}")
    skipped = len(outcomes) - done
    if skipped:  # e.g. a newer job holds the same unique key, or a race with another operator
        _note(
            f"{skipped} not retried (state changed, or a pending or running job of the same"
            " type holds the same unique key)"
        )


def cancel(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(metavar="ID...")],
) -> None:
    """Cancel jobs: pending ones at once, running ones by asking their worker to stop."""
    with _queue(ctx) as q:
        _per_id(q.cancel_many(ids), "cancel", q.location)


def priority(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID")],
    value: Annotated[
        str, typer.Argument(metavar="P", help="Integer or low, normal, high, critical.")
    ],
) -> None:
    """Set a job's priority (higher runs first)."""
    from ..values import parse_priority

    p = parse_priority(value)
    with _queue(ctx) as q:
        q.set_priority(job_id, p)
    _out(f"{job_id} priority {p}")


def errors(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new failures as they happen.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list (with -f: one JSON object per line).")
    ] = False,
) -> None:
    """Show the latest failed attempts, oldest of them first."""
    import json

    from . import output

    def emit(batch: list[FailedAttempt]) -> None:
        for e in batch:
            _out(json.dumps(e.to_dict(), ensure_ascii=True) if as_json else output.error_line(e))
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
        # Watch before the first query, so a failure recorded in between is not missed.
        with q.waker() as waker:
            latest = q.errors(limit=limit)
            last = max((e.attempt.id for e in latest), default=0)
            emit(list(reversed(latest)))
            try:
                while True:
                    waker.wait(1.0)  # a hint; the fallback timeout catches anything missed
                    while True:
                        new = q.errors(after=last, limit=1000)
                        if not new:
                            break
                        last = new[0].attempt.id
                        emit(list(reversed(new)))
            except KeyboardInterrupt:
                return  # Ctrl-C is how one stops following: not an error


def wait(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(metavar="ID...")],
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            help="Give up after this long (exit 1). Default: wait forever.",
        ),
    ] = None,
) -> int:
    """Wait until jobs finish; exit 0 if all succeeded, 1 if any failed or was cancelled."""
    from ..values import parse_duration

    seconds = None if timeout is None else parse_duration(timeout, "timeout")
    with _queue(ctx) as q:
        jobs = q.wait(ids, timeout=seconds)
    for j in jobs:
        _out(f"{j.id} {j.state.value}")
    return 0 if all(j.state.value == "succeeded" for j in jobs) else 1


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
    with _queue(ctx) as q:
        target = os.path.abspath(os.path.expanduser(out))
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


# ---- work, systemd-unit, tui, demo ------------------------------------------------------------


def work(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            envvar="JOBQ_CONCURRENCY",
            show_default=False,
            help="Child processes. Default: the CPU count.",
        ),
    ] = None,
    app: Annotated[
        list[str] | None,
        typer.Option(
            "--app",
            metavar="MODULE",
            show_default=False,
            help="Import this module for its @jobq.handler functions (repeatable). "
            "Env: JOBQ_APP, comma-separated.",
        ),
    ] = None,
    exec_: Annotated[
        list[str] | None,
        typer.Option(
            "--exec",
            metavar="TYPE=COMMAND",
            show_default=False,
            help="Run COMMAND (no shell; payload on stdin) for jobs of TYPE (repeatable). "
            "Env: JOBQ_EXEC, one per line or ;-separated.",
        ),
    ] = None,
    handlers: Annotated[
        str | None,
        typer.Option(
            "--handlers",
            metavar="FILE",
            envvar="JOBQ_HANDLERS",
            show_default=False,
            help="TOML file of command handlers.",
        ),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="Q",
            show_default=False,
            help="Claim only from this queue (repeatable). Default: all. Env: JOBQ_QUEUE, "
            "comma-separated.",
        ),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="GLOB",
            show_default=False,
            help="Claim only types matching this glob (repeatable). Env: JOBQ_TYPE, "
            "comma-separated.",
        ),
    ] = None,
    burst: Annotated[
        bool,
        typer.Option(
            "--burst",
            envvar="JOBQ_BURST",
            help="Exit 0 once no job this pool can run is pending or running.",
        ),
    ] = False,
    shutdown_timeout: Annotated[
        str,
        typer.Option(
            "--shutdown-timeout",
            metavar="DURATION",
            envvar="JOBQ_SHUTDOWN_TIMEOUT",
            help="On SIGTERM, let running jobs finish this long, then interrupt them.",
        ),
    ] = "30s",
    max_jobs_per_child: Annotated[
        int,
        typer.Option(
            "--max-jobs-per-child",
            min=0,
            envvar="JOBQ_MAX_JOBS_PER_CHILD",
            help="Replace a child after this many jobs; 0 = never.",
        ),
    ] = 0,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            envvar="JOBQ_NAME",
            show_default=False,
            help="Pool name shown by `jobq workers`. Default: host and pid.",
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", envvar="JOBQ_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR."),
    ] = "INFO",
    lease: Annotated[
        str,
        typer.Option(
            "--lease",
            metavar="DURATION",
            envvar="JOBQ_LEASE",
            help="Lease length; the supervisor renews it while a job runs.",
        ),
    ] = "30s",
    retention: Annotated[
        str | None,
        typer.Option(
            "--retention",
            metavar="DURATION",
            envvar="JOBQ_RETENTION",
            show_default=False,
            help="Prune finished jobs older than this while running.",
        ),
    ] = None,
) -> None:
    """Run a worker pool: a supervisor and N child processes that claim and run jobs."""
    from ..pool.settings import pool_settings

    settings = pool_settings(
        ctx.obj,
        concurrency=concurrency,
        apps=app,
        execs=exec_,
        handlers=handlers,
        queues=queue,
        type_globs=type_,
        burst=burst,
        shutdown_timeout=shutdown_timeout,
        max_jobs_per_child=max_jobs_per_child,
        name=name,
        log_level=log_level,
        lease=lease,
        retention=retention,
    )
    if ctx.info_name == "systemd-unit":
        render_unit = _optional("jobq.pool.systemd", "render_unit")
        _out(render_unit(settings))
        return
    run_pool = _optional("jobq.pool", "run_pool")
    raise SystemExit(run_pool(settings))


def _optional(module: str, name: str) -> Any:
    """`name` from `module`, or a one-line error if this build does not have that module."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if e.name != module:  # a missing dependency of the module: a real error, let it show
            raise
        raise JobqError(f"this jobq has no {module} module; reinstall jobq") from None


def tui(
    ctx: typer.Context,
    read_only: Annotated[bool, typer.Option("--read-only", help="Disable every action.")] = False,
) -> None:
    """Open the live dashboard."""
    from ..config import resolve_db_path

    make_app = _optional("tui.app", "make_app")
    # refuses a missing (with --read-only), foreign or damaged file before the screen opens
    app = make_app(resolve_db_path(ctx.obj), read_only=read_only)
    app.run()
    if app.fatal is not None:  # e.g. the file was replaced: exit 75, for systemd or a loop
        raise app.fatal


def demo() -> None:
    """Seed a demo queue file, start `work -c 4` on demo handlers, and open the dashboard."""
    run_demo = _optional("jobq.demo", "run_demo")
    raise SystemExit(run_demo())


COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("enqueue", enqueue),
    ("ls", ls),
    ("show", show),
    ("retry", retry),
    ("cancel", cancel),
    ("priority", priority),
    ("errors", errors),
    ("wait", wait),
    ("stats", stats),
    ("workers", workers),
    ("pause", pause),
    ("resume", resume),
    ("prune", prune),
    ("doctor", doctor),
    ("backup", backup),
    ("work", work),
    ("tui", tui),
    ("demo", demo),
]

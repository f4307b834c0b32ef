"""The commands that run things: work (and systemd-unit, its unit file), tui, demo.

The pool, the dashboard and the demo are imported only when their command runs, through
`_optional`, so a build without one of them still answers every other command.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..errors import InvalidInput, JobqError
from .common import _note, _out


def work(
    ctx: typer.Context,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="N",
            envvar="JOBQ_CONCURRENCY",
            show_default=False,
            show_envvar=False,
            help="Child processes. Default: the CPU count. [env: JOBQ_CONCURRENCY]",
        ),
    ] = None,
    app: Annotated[
        list[str] | None,
        typer.Option(
            "--app",
            metavar="MODULE",
            show_default=False,
            help="Import this module (a dotted name, e.g. myapp.tasks) for its @jobq.handler "
            "functions (repeatable). [env: JOBQ_APP, comma-separated]",
        ),
    ] = None,
    exec_: Annotated[
        list[str] | None,
        typer.Option(
            "--exec",
            metavar="TYPE=COMMAND",
            show_default=False,
            help="Run COMMAND (no shell; payload on stdin) for jobs of TYPE (repeatable). "
            "[env: JOBQ_EXEC, one per line or ;-separated]",
        ),
    ] = None,
    handlers: Annotated[
        str | None,
        typer.Option(
            "--handlers",
            metavar="FILE",
            envvar="JOBQ_HANDLERS",
            show_default=False,
            show_envvar=False,
            help="TOML file of command handlers. [env: JOBQ_HANDLERS]",
        ),
    ] = None,
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="Q",
            show_default=False,
            help="Claim only from this queue (repeatable). Default: all. "
            "[env: JOBQ_QUEUE, comma-separated]",
        ),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="GLOB",
            show_default=False,
            help="Claim only types matching this glob (repeatable). "
            "[env: JOBQ_TYPE, comma-separated]",
        ),
    ] = None,
    burst: Annotated[
        bool,
        typer.Option(
            "--burst",
            envvar="JOBQ_BURST",
            show_envvar=False,
            help="Exit 0 once no job this pool can run is pending or running. [env: JOBQ_BURST]",
        ),
    ] = False,
    shutdown_timeout: Annotated[
        str,
        typer.Option(
            "--shutdown-timeout",
            metavar="DURATION",
            envvar="JOBQ_SHUTDOWN_TIMEOUT",
            show_envvar=False,
            help="On SIGTERM, let running jobs finish this long, then interrupt them. "
            "[env: JOBQ_SHUTDOWN_TIMEOUT]",
        ),
    ] = "30s",
    max_jobs_per_child: Annotated[
        int,
        typer.Option(
            "--max-jobs-per-child",
            metavar="N",
            envvar="JOBQ_MAX_JOBS_PER_CHILD",
            show_envvar=False,
            help="Replace a child after this many jobs; 0 = never. [env: JOBQ_MAX_JOBS_PER_CHILD]",
        ),
    ] = 0,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            envvar="JOBQ_NAME",
            show_envvar=False,
            show_default=False,
            help="Pool name shown by `jobq workers`. Default: the host name. [env: JOBQ_NAME]",
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            envvar="JOBQ_LOG_LEVEL",
            show_envvar=False,
            help="DEBUG, INFO, WARNING or ERROR. [env: JOBQ_LOG_LEVEL]",
        ),
    ] = "INFO",
    lease: Annotated[
        str,
        typer.Option(
            "--lease",
            metavar="DURATION",
            envvar="JOBQ_LEASE",
            show_envvar=False,
            help="Lease length; the supervisor renews it while a job runs. [env: JOBQ_LEASE]",
        ),
    ] = "30s",
    retention: Annotated[
        str | None,
        typer.Option(
            "--retention",
            metavar="DURATION",
            envvar="JOBQ_RETENTION",
            show_default=False,
            show_envvar=False,
            help="While running, prune finished jobs, and forget stopped pools, older than "
            "this (e.g. 7d). [env: JOBQ_RETENTION]",
        ),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            metavar="[HOST:]PORT",
            envvar="JOBQ_METRICS",
            show_default=False,
            show_envvar=False,
            help="Serve the queue's Prometheus metrics on http://HOST:PORT/metrics "
            "(HOST defaults to 127.0.0.1). [env: JOBQ_METRICS]",
        ),
    ] = None,
    on_failure: Annotated[
        list[str] | None,
        typer.Option(
            "--on-failure",
            metavar="COMMAND",
            show_default=False,
            help="Run COMMAND (no shell; the job as JSON on stdin) when a job ends failed for "
            "good (repeatable).",
        ),
    ] = None,
) -> None:
    """Run a worker pool.

    A supervisor and N child processes that claim and run jobs; SIGTERM or SIGINT lets running
    jobs finish (up to --shutdown-timeout), a second one stops at once. Start-up errors (a
    handler that cannot be loaded, a command not found, a queue file refused) are one
    `jobq: error:` line: exit 2 for bad options or handlers, 1 for a refused file.
    """
    settings = _settings(ctx, locals())
    run_pool = _optional("jobq.pool", "run_pool")
    _preflight(settings)
    raise SystemExit(run_pool(settings))


def _preflight(settings: Any) -> None:
    """Load the handlers and open the queue once here, so that what stops a pool at start-up
    is this command's one-line error (the pool, which logs, then finds both ready)."""
    from ..backend import Role, absolute_location, open_backend
    from ..pool.loader import load_handlers

    load_handlers(settings.apps, settings.execs, settings.handlers_file)
    open_backend(absolute_location(settings.db_path), Role.WORKER).close()


def _settings(ctx: typer.Context, options: dict[str, Any]) -> Any:
    from ..pool.settings import pool_settings

    concurrency = options["concurrency"]
    if concurrency is not None and concurrency < 1:
        raise InvalidInput(
            f"--concurrency (or JOBQ_CONCURRENCY) must be at least 1, not {concurrency}"
        )
    if options["max_jobs_per_child"] < 0:
        raise InvalidInput(
            "--max-jobs-per-child (or JOBQ_MAX_JOBS_PER_CHILD) must be 0 (never) or more, "
            f"not {options['max_jobs_per_child']}"
        )
    return pool_settings(
        ctx.obj,
        concurrency=concurrency,
        apps=options["app"],
        execs=options["exec_"],
        handlers=options["handlers"],
        queues=options["queue"],
        type_globs=options["type_"],
        burst=options["burst"],
        shutdown_timeout=options["shutdown_timeout"],
        max_jobs_per_child=options["max_jobs_per_child"],
        name=options["name"],
        log_level=options["log_level"],
        lease=options["lease"],
        retention=options["retention"],
        metrics=options["metrics"],
        on_failure=options["on_failure"],
    )


_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|\d{1,10}")


def systemd_unit(ctx: typer.Context, user: str | None = None, **options: Any) -> None:
    """Print a systemd unit for `jobq work` with these options.

    Type=notify, KillMode=mixed, Restart=on-failure, the queue in its environment. As printed
    it is a user service; with --user NAME, a system service that runs as NAME.
    """
    if user is not None and not _USER_NAME.fullmatch(user):
        raise InvalidInput(f"--user {user!r} is not a user name or uid")
    settings = _settings(ctx, options)
    render_unit = _optional("jobq.pool.systemd", "render_unit")
    _out(render_unit(settings, user=user))


_USER_OPTION = inspect.Parameter(
    "user",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        str | None,
        typer.Option(
            "--user",
            metavar="NAME",
            show_default=False,
            help="Run the pool as this user (User=NAME): a system service, for "
            "/etc/systemd/system. Default: a user service.",
        ),
    ],
)
# systemd-unit takes every option of `work`, and --user: typer reads the parameters from the
# signature, so give it work's plus one instead of repeating fourteen options here.
_WORK = inspect.signature(work, eval_str=True)
systemd_unit.__signature__ = _WORK.replace(  # type: ignore[attr-defined]
    parameters=[*_WORK.parameters.values(), _USER_OPTION]
)


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
    serve: Annotated[
        str | None,
        typer.Option(
            "--serve",
            metavar="[HOST:]PORT",
            show_default=False,
            help="Serve the dashboard to web browsers at HOST:PORT (HOST default: 127.0.0.1), "
            "read-only unless --allow-actions. No authentication: see the README.",
        ),
    ] = None,
    allow_actions: Annotated[
        bool,
        typer.Option("--allow-actions", help="With --serve: let browser users act on jobs."),
    ] = False,
    public: Annotated[
        bool,
        typer.Option(
            "--public",
            help="With --serve: allow an address other machines can reach (no authentication).",
        ),
    ] = False,
) -> None:
    """Open the live dashboard.

    In this terminal, or served to web browsers with --serve.
    """
    from ..backend import display_location
    from ..config import resolve_db_path

    if serve is None:
        for flag, given in (("--allow-actions", allow_actions), ("--public", public)):
            if given:
                raise InvalidInput(f"{flag} applies to --serve only")
    elif allow_actions and read_only:
        raise InvalidInput("--allow-actions and --read-only contradict each other")
    if serve is not None:
        parse_address = _optional("tui.serve", "parse_address")
        address = parse_address(serve)  # bad input fails before the location is looked at
        run_server = _optional("tui.serve", "serve")
        run_server(resolve_db_path(ctx.obj), address, allow_actions=allow_actions, public=public)
        return
    make_app = _optional("tui.app", "make_app")
    location = resolve_db_path(ctx.obj)
    # refuses a missing (with --read-only), foreign or damaged file before the screen opens;
    # the header shows a server URL with its password masked
    app = make_app(location, read_only=read_only, display_path=display_location(location))
    app.run()
    from ..safetext import safe_line

    for job_id, path in app.kept_edits:  # the in-app editor was open when the app quit
        _note(f"jobq: your unsaved edit of job {job_id} is kept in {safe_line(path, 500)}")
    if app.fatal is not None:  # e.g. the file was replaced: exit 75, for systemd or a loop
        raise app.fatal


def demo(
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Start on a fresh demo queue (the old one is deleted)."),
    ] = False,
) -> None:
    """Run a demo: a seeded queue, four workers, the dashboard.

    The demo queue is demo.db in the user data dir (next to the default queue, never it);
    quitting the dashboard stops the workers.
    """
    run_demo = _optional("jobq.demo", "run_demo")
    make_app = _optional("tui.app", "make_app")  # this edge loads the dashboard; jobq.demo cannot
    if reset:
        _remove_demo_queue(_optional("jobq.demo", "demo_db_path")())
    raise SystemExit(run_demo(lambda path: make_app(path).run()))


def _remove_demo_queue(path: str) -> None:
    """Delete the demo queue file and its side files (refused while a demo pool runs on it)."""
    import contextlib
    import os
    import time

    if os.path.exists(path):
        from ..queue import Queue

        with Queue(path, create=False) as q:
            live = [w for w in q.workers() if w.alive(time.time())]
        if live:
            raise JobqError(f"a demo pool still runs on {path} (pid {live[0].pid}); stop it first")
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("work", work),
    ("tui", tui),
    ("demo", demo),
]


def register(app: typer.Typer) -> None:
    """Add these commands, then `systemd-unit` (the same options as work), to `app`."""
    for name, func in COMMANDS:
        app.command(name)(func)
    app.command("systemd-unit")(systemd_unit)

"""The commands that run things: work (and systemd-unit, its unit file), tui, demo.

The pool, the dashboard and the demo are imported only when their command runs, through
`_optional`, so a build without one of them still answers every other command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..errors import JobqError
from .common import _out


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
    from ..backend import display_location
    from ..config import resolve_db_path

    make_app = _optional("tui.app", "make_app")
    location = resolve_db_path(ctx.obj)
    # refuses a missing (with --read-only), foreign or damaged file before the screen opens;
    # the header shows a server URL with its password masked
    app = make_app(location, read_only=read_only, display_path=display_location(location))
    app.run()
    if app.fatal is not None:  # e.g. the file was replaced: exit 75, for systemd or a loop
        raise app.fatal


def demo() -> None:
    """Seed a demo queue file, start `work -c 4` on demo handlers, and open the dashboard."""
    run_demo = _optional("jobq.demo", "run_demo")
    make_app = _optional("tui.app", "make_app")  # this edge loads the dashboard; jobq.demo cannot
    raise SystemExit(run_demo(lambda path: make_app(path).run()))


COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("work", work),
    ("tui", tui),
    ("demo", demo),
]


def register(app: typer.Typer) -> None:
    """Add these commands, then `systemd-unit` (the same options as work), to `app`."""
    for name, func in COMMANDS:
        app.command(name)(func)
    app.command(
        "systemd-unit",
        help="Print a systemd unit that runs `jobq work` with these options (Type=notify).",
    )(work)

"""The `jobq` command line: a thin layer over `jobq.Queue`.

`main()` is the one edge where a `JobqError` becomes one line on stderr and its exit code
(0 ok, 1 failure, 2 usage or bad input, 75 busy, disk full or file replaced). Only commands that
write may create the queue file; the others say `no queue file at PATH`. `jobq enqueue` is parsed by
`jobq.cli.enqueue` without importing typer, because it runs in shell loops; every other command
line goes to the typer app, which `build_app()` assembles on demand from the command modules:
`jobs` (enqueue, ls, show, retry, cancel, priority, errors, wait), `admin` (stats, workers, pause,
resume, prune, delete, doctor, backup, db path) and `work` (work, systemd-unit, tui, demo). Only
`build_app()` imports them, so importing this module costs no typer import.

Output: human tables by default, `--json` on every read command. Strings from the queue file go
through `jobq.safetext` (see `jobq.cli.output`) and are written with plain `print`, never as markup.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..errors import JobqError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: enqueue start-up
if TYPE_CHECKING:
    from typing import Annotated

    import typer

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as any Unix tool killed by a closed pipe


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI on `argv` (default: sys.argv[1:]) and exit with its code."""
    args = list(sys.argv[1:] if argv is None else argv) or ["--help"]
    try:
        if not {"--help", "-h", "--version"} & set(args):
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
    from . import fast

    if split is not None:
        code = fast.run(split[0], split[1][0], split[1][1:])
        if code is not None:
            return code
    else:
        text = fast.top_help(args)
        if text is not None:
            sys.stdout.write(text)
            return 0
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
        _error(f"{e.format_message()}{_from_env(e)} (see '{where} --help')")
        return e.exit_code
    return rv if isinstance(rv, int) else 0


def _from_env(e: Exception) -> str:
    """ " (from JOBQ_X)" when the bad value came from an option's environment variable."""
    from typer._click.core import ParameterSource

    param, ctx = getattr(e, "param", None), getattr(e, "ctx", None)
    envvar, name = getattr(param, "envvar", None), getattr(param, "name", None)
    if not isinstance(envvar, str) or ctx is None or name is None:
        return ""
    return (
        f" (from {envvar})" if ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT else ""
    )


def build_app() -> typer.Typer:
    """The typer app with every command registered (imports typer)."""
    # `root`'s annotations are strings naming `typer`; typer evaluates them in this module's
    # namespace while registering, so bind the name here (the command modules import typer
    # themselves: only this function imports them).
    import typing

    import typer

    from . import admin, edit, events, jobs, limit, logs, schedule, work

    globals().update(typer=typer, Annotated=typing.Annotated)
    app = typer.Typer(
        name="jobq",
        help="A durable local job queue in one SQLite file.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    jobs.register(app)  # enqueue, ls, show, retry, cancel, priority, errors, wait
    edit.register(app)  # edit
    admin.register(app)  # stats, workers, pause, resume, prune, delete, doctor, backup; db path
    work.register(app)  # work, tui, demo, systemd-unit
    schedule.register(app)  # schedule add, ls, rm, pause, resume
    events.register(app)  # events
    logs.register(app)  # logs
    limit.register(app)  # limit KEY, limit ls, limit rm
    return app


def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="PATH",
            show_default=False,
            help="The queue: a file path (or sqlite:PATH), or postgresql://… Default: jobq.db "
            "in the user data dir (`jobq db path` prints it). [env: JOBQ_DB]",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print jobq's version and exit.",
        ),
    ] = False,
) -> None:
    """A durable local job queue in one SQLite file."""
    ctx.obj = db


def _print_version(value: bool) -> None:
    if value:
        import typer

        from .. import __version__

        sys.stdout.write(f"jobq {__version__}\n")
        raise typer.Exit()

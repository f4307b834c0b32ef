"""The everyday commands without typer: a parser driven by the commands' own typer declarations.

Operators type `jobq ls`, `show`, `stats`, `retry`, `cancel` and `wait` all day and scripts call
them in loops; importing typer (and its vendored click) costs more than the command itself.
The command functions in `jobs` and `admin` are the one source of truth: their parameters are
declared once, as `Annotated[T, typer.Option(...)]` / `typer.Argument(...)` strings (postponed
annotations), which the typer app evaluates with the real typer (an option several commands
share is a string in `jobq.cli.options` that the annotation names: `since: SinceOpt`). This
module evaluates the same strings against stand-ins that record the declaration, parses a
simple command line with them and calls the same function. Anything it does not understand
exactly — `--help`, a typo, a missing or malformed value, an option kind it does not know — goes
to the typer app instead, so every message a person sees still comes from one place. This
module must not import typer.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up
if TYPE_CHECKING:
    from collections.abc import Callable

# command -> (module in jobq.cli, function): the commands that take this path
COMMANDS = {
    "ls": ("jobs", "ls"),
    "show": ("jobs", "show"),
    "retry": ("actions", "retry"),
    "cancel": ("actions", "cancel"),
    "wait": ("jobs", "wait"),
    "stats": ("admin", "stats"),
    "edit": ("edit", "edit"),
    "logs": ("logs", "logs"),
}
# keyword arguments of typer.Option / typer.Argument this parser honours; any other one (a
# callback, an envvar, a count …) sends the command to typer
_KNOWN = {"metavar", "help", "show_default", "min"}


class Decl:
    """What `typer.Option(...)` / `typer.Argument(...)` was given, recorded without typer."""

    __slots__ = ("flags", "kind", "kwargs")

    def __init__(self, kind: str, flags: tuple[object, ...], kwargs: dict[str, object]) -> None:
        self.kind = kind
        self.flags = flags
        self.kwargs = kwargs


class _Typer:
    """Stands in for the `typer` module while the annotation strings are evaluated."""

    Context = object

    @staticmethod
    def Option(*flags: object, **kwargs: object) -> Decl:
        return Decl("option", flags, kwargs)

    @staticmethod
    def Argument(*flags: object, **kwargs: object) -> Decl:
        return Decl("argument", flags, kwargs)


class _Annotated:
    """Stands in for `typing.Annotated`: `Annotated[T, decl]` becomes `(T, decl)`."""

    def __class_getitem__(cls, item: tuple[object, ...]) -> tuple[object, ...]:
        return item


class Param:
    """One parameter of a command function, as the parser needs it."""

    __slots__ = ("base", "decl", "default", "many", "name", "required")

    def __init__(self, name: str, decl: Decl, annotation: object, default: object,
                 required: bool) -> None:  # fmt: skip
        self.name = name
        self.decl = decl
        text = str(annotation)
        self.many = text.startswith("list[")
        self.base = "int" if "int" in text else "bool" if text == "<class 'bool'>" else "str"
        self.default = default
        self.required = required


class Ctx:
    """The part of typer's Context the command functions use: `obj`, the --db value."""

    __slots__ = ("obj",)

    def __init__(self, obj: str | None) -> None:
        self.obj = obj


def params_of(func: Callable[..., object]) -> list[Param] | None:
    """The parameters after `ctx`, from the function's own declarations; None if one of them
    uses something this parser does not handle."""
    code = func.__code__
    names = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
    positional = code.co_varnames[: code.co_argcount]
    given = func.__defaults__ or ()
    with_default = positional[len(positional) - len(given) :]
    defaults: dict[str, object] = dict(zip(with_default, given, strict=True))
    defaults.update(func.__kwdefaults__ or {})
    scope = {"typer": _Typer, "Annotated": _Annotated, "int": int, "str": str, "bool": bool,
             "list": list, "None": None}  # fmt: skip
    from . import options

    out = []
    for name in names:
        text = func.__annotations__[name]
        if text.endswith("Opt"):  # a declaration shared in jobq.cli.options: its own text
            text = getattr(options, text, text)
        try:
            value = eval(text, scope)
        except Exception:  # a type this parser does not know: leave the command to typer
            return None
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Decl)):
            return None
        annotation, decl = value
        if set(decl.kwargs) - _KNOWN:
            return None
        out.append(Param(name, decl, annotation, defaults.get(name), name not in defaults))
    return out


def _int(text: str, p: Param) -> int | None:
    digits = text[1:] if text.startswith("-") else text
    if not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    low = p.decl.kwargs.get("min")
    if isinstance(low, int) and value < low:
        return None
    return value


def parse(params: list[Param], args: list[str]) -> dict[str, object] | None:
    """Keyword arguments for the command function; None when typer should handle `args`."""
    options: dict[str, Param] = {}
    arguments: list[Param] = []
    for p in params:
        if p.decl.kind == "argument":
            arguments.append(p)
        else:
            for flag in p.decl.flags:
                options[str(flag)] = p
    values: dict[str, object] = {p.name: p.default for p in params}
    positionals: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positionals.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        name, eq, text = arg.partition("=")
        opt = options.get(name)
        if opt is None:
            return None  # --help, a typo, -n5, --no-json …: typer says what it thinks
        if opt.base == "bool":
            if eq:
                return None
            values[opt.name] = True
            continue
        if not eq:
            if i >= len(args):
                return None
            text = args[i]
            i += 1
        if opt.base == "int":
            number = _int(text, opt)
            if number is None:
                return None
            values[opt.name] = number
        elif opt.many:  # a repeatable option (`--where A --where B`): every value, in order
            values[opt.name] = [*(values[opt.name] or ()), text]  # type: ignore[misc]
        else:
            values[opt.name] = text
    for p in arguments:
        if p.many:
            numbers = [_int(t, p) for t in positionals]
            if any(n is None for n in numbers) or (p.required and not numbers):
                return None
            values[p.name] = numbers or p.default
            positionals = []
        elif positionals:
            value: object = positionals.pop(0)
            if p.base == "int":
                value = _int(str(value), p)
                if value is None:
                    return None
            values[p.name] = value
        elif p.required:
            return None
    if positionals:
        return None  # more arguments than the command takes
    return values


def run(db: str | None, command: str, args: list[str]) -> int | None:
    """Run `command` with `args` if this path can; its exit code, or None to use typer."""
    where = COMMANDS.get(command)
    if where is None:
        return None
    import sys  # not importlib (and its warnings): start-up

    __import__(f"jobq.cli.{where[0]}")
    func = getattr(sys.modules[f"jobq.cli.{where[0]}"], where[1])
    params = params_of(func)
    kwargs = None if params is None else parse(params, args)
    if kwargs is None:
        return None
    rv = func(Ctx(db), **kwargs)
    return rv if isinstance(rv, int) else 0


# `jobq --help` (and `-h`, and a bare `jobq`), as the typer app prints it on a terminal of 80
# columns or more (click then wraps at 78): typer and its click cost ~4x a bare interpreter
# start. tests/test_help_texts.py checks that this is, byte for byte, what typer prints; when a
# command is added, paste typer's new text here (the test's failure shows it).
TOP_HELP = """\
Usage: jobq [OPTIONS] COMMAND [ARGS]...

  A durable local job queue in one SQLite file.

Options:
  --db PATH             The queue: a file path (or sqlite:PATH), or
                        postgresql://… Default: jobq.db in the user data dir
                        (`jobq db path` prints it). [env: JOBQ_DB]
  --version             Print jobq's version and exit.
  --install-completion  Install completion for the current shell.
  --show-completion     Show completion for the current shell, to copy it or
                        customize the installation.
  -h, --help            Show this message and exit.

Commands:
  enqueue       Add a job and print its id (only the id).
  ls            List jobs, newest first.
  show          Show everything about a job.
  retry         Move failed or cancelled jobs back to pending.
  cancel        Cancel jobs.
  priority      Set a job's priority (higher runs first).
  errors        Show the latest failed attempts, oldest of them first.
  wait          Wait until jobs finish.
  edit          Edit a job's payload, then optionally retry it.
  stats         Count jobs per state, queue and type.
  workers       List the registered worker pools.
  pause         Stop workers claiming from a queue (running jobs finish).
  resume        Let workers claim from a paused queue again.
  prune         Delete finished jobs and their history.
  delete        Delete jobs and their history.
  doctor        Check the queue's integrity and report its schema.
  backup        Write a consistent copy of the queue file.
  copy          Copy a whole queue to another file or server.
  metrics       Print the queue's Prometheus metrics.
  work          Run a worker pool.
  tui           Open the live dashboard.
  demo          Run a demo: a seeded queue, four workers, the dashboard.
  systemd-unit  Print a systemd unit for `jobq work` with these options.
  events        Print lifecycle events as NDJSON.
  logs          Print a job's output, or follow it live.
  limit         Limit a job type or a queue across every pool and host.
  db            Show where the queue is.
  schedule      Periodic jobs (cron schedules kept in the queue).
"""


def top_help(args: list[str]) -> str | None:
    """The text `jobq --help` prints, if `args` ask for exactly that and the terminal is at
    least 80 columns wide (narrower, click wraps differently: typer prints it); else None."""
    if args not in (["--help"], ["-h"]):
        return None
    import os

    columns = os.environ.get("COLUMNS", "")  # what shutil.get_terminal_size, click's, reads
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    else:
        import sys

        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            width = 80
        width = width or 80
    return TOP_HELP if width >= 80 else None

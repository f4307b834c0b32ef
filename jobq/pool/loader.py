"""Find the handlers a pool runs: `--app` modules, a `--handlers` TOML file, `--exec` pairs.

A handlers file names one table per type:

    [handlers.resize]
    command = "convert -resize 50% - -"
    timeout = "60s"          # or a number of seconds; 0 = none
    max_attempts = 3
    backoff = ["10s", "1m", "10m"]   # or "30s": delays before retries (jobq.control)

    [schedules.nightly-report]       # periodic jobs (jobq.schedules), applied at pool start
    cron = "30 2 * * *"
    tz = "Europe/Paris"
    type = "report"
    payload = { kind = "daily" }

Precedence when a type is defined twice: `--exec` over the handlers file over Python handlers
(the most explicit source wins).
"""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import sys
from collections.abc import Iterable, Mapping

from ..errors import HandlerError, InvalidInput
from ..handlers import REGISTRY, Handler
from ..values import parse_duration, validate_type

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..schedules import Schedule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]


def _module_hint(name: str) -> str:
    """What to give instead of a file path to --app."""
    path = os.path.normpath(name)
    if path.endswith(".py"):
        path = path[:-3]
    if os.path.isabs(path) or path.startswith(".."):
        folder, module = os.path.split(path)
        return f"--app {module}, run from {folder} (or with it on PYTHONPATH)"
    top = path.split(os.sep)[0]
    where = f", run from the directory that holds {top}" if os.sep in path else ""
    return f"--app {path.replace(os.sep, '.')}{where}"


def import_apps(modules: Iterable[str]) -> None:
    """Import `--app` modules (importable from the current directory, like other task runners)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in modules:
        if name.endswith(".py") or "/" in name or os.sep in name:
            raise HandlerError(
                f"--app {name} is a file path; give a dotted module name: {_module_hint(name)}"
            )
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise HandlerError(f"cannot import --app {name}: {e}") from None
        except Exception as e:  # a handler module that raises on import is a usage error
            raise HandlerError(f"importing --app {name} failed: {type(e).__name__}: {e}") from None


def split_command(type_name: str, command: str) -> tuple[str, ...]:
    """Split a command line shell-style (no shell ever runs it)."""
    try:
        argv = tuple(shlex.split(command))
    except ValueError as e:
        raise HandlerError(
            f"handler {type_name!r}: cannot parse command {command!r}: {e}"
        ) from None
    if not argv:
        raise HandlerError(f"handler {type_name!r}: empty command")
    return argv


def parse_exec(spec: str) -> tuple[str, str]:
    """Split `TYPE=COMMAND` (the value of `--exec`)."""
    type_name, sep, command = spec.partition("=")
    if not sep or not type_name.strip() or not command.strip():
        raise HandlerError(f"--exec {spec!r}: expected TYPE=COMMAND, e.g. resize=convert - -")
    return _checked_type(type_name.strip()), command.strip()


def _checked_type(type_name: str) -> str:
    try:
        return validate_type(type_name)
    except InvalidInput as e:
        raise HandlerError(str(e)) from None


def _load_toml(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            doc: dict[str, object] = tomllib.load(f)
            return doc
    except OSError as e:
        raise HandlerError(f"cannot read handlers file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise HandlerError(f"handlers file {path} is not valid TOML: {e}") from None


def handlers_from_toml(path: str) -> dict[str, Handler]:
    """Parse a handlers file into command handlers (a file of only [schedules.NAME] has none)."""
    doc = _load_toml(path)
    table = doc.get("handlers")
    if table is None and isinstance(doc.get("schedules"), dict) and doc["schedules"]:
        return {}
    if not isinstance(table, dict) or not table:
        raise HandlerError(f"handlers file {path} has no [handlers.TYPE] table")
    out: dict[str, Handler] = {}
    for type_name, spec in table.items():
        out[_checked_type(type_name)] = _toml_handler(path, type_name, spec)
    return out


def schedules_from_file(path: str | None) -> list[Schedule]:
    """The `[schedules.NAME]` tables of a handlers file, validated (HandlerError otherwise):
    `cron` and `type` required; `payload` (any TOML value), `queue`, `priority`, `tz`."""
    if path is None:
        return []
    from ..schedules import Schedule, check_cron, validate_name
    from ..values import dump_json, parse_priority, validate_queue

    doc = _load_toml(path)
    table = doc.get("schedules", {})
    if not isinstance(table, dict):
        raise HandlerError(f"{path}: schedules must be a table of [schedules.NAME] tables")
    out = []
    for name, spec in table.items():
        where = f"{path}: [schedules.{name}]"
        if not isinstance(spec, dict):
            raise HandlerError(f"{where} must be a table")
        unknown = set(spec) - {"cron", "type", "payload", "queue", "priority", "tz"}
        if unknown:
            raise HandlerError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        try:
            cron, tz = spec.get("cron"), spec.get("tz", "UTC")
            if not isinstance(cron, str) or not isinstance(tz, str):
                raise InvalidInput("cron and tz must be strings")
            out.append(Schedule(
                name=validate_name(name), cron=cron.strip(), tz=tz,
                type=validate_type(spec.get("type")),
                queue=validate_queue(spec.get("queue", "default")),
                payload_json=dump_json(spec.get("payload", {})),
                priority=parse_priority(spec.get("priority", 0)),
                paused=False, next_at=check_cron(cron, tz, 0.0),
            ))  # fmt: skip
        except InvalidInput as e:
            raise HandlerError(f"{where}: {e}") from None
    return out


def _toml_handler(path: str, type_name: str, spec: object) -> Handler:
    where = f"{path}: [handlers.{type_name}]"
    if not isinstance(spec, dict):
        raise HandlerError(f"{where} must be a table")
    unknown = set(spec) - {"command", "timeout", "max_attempts", "backoff"}
    if unknown:
        raise HandlerError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    command = spec.get("command")
    if isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        argv: tuple[str, ...] = tuple(command)
    elif isinstance(command, str):
        argv = split_command(type_name, command)
    else:
        raise HandlerError(f'{where} needs command = "..."')
    timeout: float | None = None
    if "timeout" in spec:
        try:
            timeout = parse_duration(spec["timeout"], "timeout")
        except InvalidInput as e:
            raise HandlerError(f"{where}: {e}") from None
    max_attempts = spec.get("max_attempts")
    if max_attempts is not None and (
        not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1
    ):
        raise HandlerError(f"{where}: max_attempts must be an integer >= 1")
    backoff = spec.get("backoff")
    if backoff is not None:
        from ..control import check_backoff

        backoff = check_backoff(backoff, where)
    return Handler(type_name, command=argv, max_attempts=max_attempts, timeout=timeout,
                   backoff=backoff)  # fmt: skip


def load_handlers(
    apps: Iterable[str] = (),
    execs: Iterable[tuple[str, str]] = (),
    handlers_file: str | None = None,
) -> dict[str, Handler]:
    """Every handler the pool can run, by type. Raises HandlerError when there is none."""
    import_apps(apps)
    found: dict[str, Handler] = dict(REGISTRY)
    if handlers_file:
        found.update(handlers_from_toml(handlers_file))
    for type_name, command in execs:
        t = _checked_type(type_name)
        found[t] = Handler(t, command=split_command(t, command))
    for h in found.values():
        if h.command is not None:
            check_program(h.type, h.command)
    if not found:
        raise HandlerError("no handlers: give --app MODULE, --exec TYPE=COMMAND or --handlers FILE")
    return found


def check_program(type_name: str, argv: tuple[str, ...]) -> None:
    """Refuse a command handler whose program cannot run: not on PATH, missing, or not an
    executable file (the pool would otherwise fail every one of its jobs)."""
    program = argv[0]
    if "/" not in program:
        if shutil.which(program) is None:
            raise HandlerError(f"handler {type_name!r}: program {program!r} not found on PATH")
        return
    if not os.path.isfile(program):
        raise HandlerError(f"handler {type_name!r}: program {program} not found")
    if not os.access(program, os.X_OK):
        raise HandlerError(f"handler {type_name!r}: program {program} is not executable")


def describe(handlers: Mapping[str, Handler]) -> str:
    """One line listing the handlers, for the start-up log."""
    parts = []
    for t in sorted(handlers):
        h = handlers[t]
        parts.append(f"{t} (command)" if h.command is not None else t)
    return ", ".join(parts)

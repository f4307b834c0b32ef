"""The everyday commands without typer: a parser driven by the commands' own typer declarations.

Operators type `jobq ls`, `show`, `stats`, `retry`, `cancel` and `wait` all day and scripts call
them in loops; importing typer (and its vendored click) costs more than the command itself.
The command functions in `jobs` and `admin` are the one source of truth: their parameters are
declared once, as `Annotated[T, typer.Option(...)]` / `typer.Argument(...)` strings (postponed
annotations), which the typer app evaluates with the real typer. This module evaluates the
same strings against stand-ins that record the declaration, parses a simple command line with
them and calls the same function. Anything it does not understand exactly — `--help`, a typo, a
missing or malformed value, an option kind it does not know — goes to the typer app instead, so
every message a person sees still comes from one place. This module must not import typer.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up
if TYPE_CHECKING:
    from collections.abc import Callable

# command -> (module in jobq.cli, function): the commands that take this path
COMMANDS = {
    "ls": ("jobs", "ls"),
    "show": ("jobs", "show"),
    "retry": ("jobs", "retry"),
    "cancel": ("jobs", "cancel"),
    "wait": ("jobs", "wait"),
    "stats": ("admin", "stats"),
    "edit": ("edit", "edit"),
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
    out = []
    for name in names:
        try:
            value = eval(func.__annotations__[name], scope)
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
    import importlib

    func = getattr(importlib.import_module(f"jobq.cli.{where[0]}"), where[1])
    params = params_of(func)
    kwargs = None if params is None else parse(params, args)
    if kwargs is None:
        return None
    rv = func(Ctx(db), **kwargs)
    return rv if isinstance(rv, int) else 0

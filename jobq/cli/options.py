"""The option declarations several commands share, each written once.

`state: SelectStateOpt = None` in a command's signature means the declaration below. Each alias
is the text of an `Annotated[T, typer.Option(...)]` annotation: mypy reads it as the type alias
it spells, and at run time it is that string, which the two readers of the commands' postponed
annotations evaluate in their own way — `common._bind_typer` with the real typer for the typer
app, `jobq.cli.fast` against its stand-ins (it must not import typer or typing, nor may this
module). Each alias's name ends in `Opt`: that is how both readers tell it from a type.
Options whose help differs from one command to another stay in that command.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: start-up
if TYPE_CHECKING:
    from typing import Annotated, TypeAlias

    import typer

# ls's filters that retry, cancel and priority take with the same help
WhereOpt: TypeAlias = """Annotated[list[str] | None, typer.Option(
    "--where",
    "-w",
    metavar="payload.PATH OP VALUE",
    help="A payload field test, e.g. 'payload.user.id=42', 'payload.n>9'; OP: = != < <="
    ' > >=; repeat to AND them. A JSON number compares as a number, "42" as a string.',
)]"""
SinceOpt: TypeAlias = """Annotated[str | None, typer.Option(
    "--since",
    metavar="DURATION|ISO",
    help="Jobs enqueued at or after this: 30m, 2h, 7d back, or an ISO 8601 time.",
)]"""
UntilOpt: TypeAlias = """Annotated[str | None, typer.Option(
    "--until",
    metavar="DURATION|ISO",
    help="Jobs enqueued before this: 30m, 2h, 7d back, or an ISO 8601 time.",
)]"""

# retry, cancel and priority: the filters that select jobs instead of ids (ls words them as a list)
SelectStateOpt: TypeAlias = """Annotated[str | None, typer.Option(
    "--state", "-s", metavar="S", help="Instead of ids: jobs in this state or view."
)]"""
SelectTypeOpt: TypeAlias = """Annotated[str | None, typer.Option(
    "--type", "-t", metavar="GLOB", help="Instead of ids: types matching."
)]"""
SelectQueueOpt: TypeAlias = """Annotated[str | None, typer.Option(
    "--queue", "-q", metavar="Q", help="Instead of ids: this queue only."
)]"""
SelectSearchOpt: TypeAlias = """Annotated[str | None, typer.Option(
    "--search", metavar="TEXT", help="Instead of ids: text in payload, type or error."
)]"""
DryRunOpt: TypeAlias = """Annotated[bool, typer.Option(
    "--dry-run", help="Print how many jobs the filters select and the first ids; change nothing."
)]"""


def bind(namespace: dict[str, object]) -> None:
    """Add every declaration here to `namespace`, evaluated there (it has `typer` and
    `Annotated`): what typer needs to read a signature that names them."""
    for name, text in list(globals().items()):
        if name.endswith("Opt") and isinstance(text, str):
            namespace[name] = eval(text, namespace)

"""Every command's `--help`, walked from the command tree: summaries in `jobq --help` are whole
(never cut at a period or a width with "..."), no click placeholders (`<int range>`, `<str>`,
`INTEGER RANGE`, `[x>=1]`), every option and argument described, and environment variables
written one way: `[env: JOBQ_…]`."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer.main
from typer._click.core import Context  # typer 0.28 vendors click
from typer.core import TyperArgument, TyperGroup, TyperOption

from jobq.cli.app import build_app, main
from tests.conftest import ROOT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typer._click.core import Command

PLACEHOLDERS = re.compile(
    r"<(?:int|str|float|bool|text|path|file|integer|choice)[^>]*>"  # typer: <int range>, <str>
    r"|\b(?:INTEGER|FLOAT|BOOLEAN)(?: RANGE)?\b"  # click's type names
    r"|\[?\b(?:x|\d+)(?:>=|<=|<|>)(?:x|\d+)\b",  # range annotations: x>=1, 0<=x<=5
)
ENV = re.compile(r"\[env: (JOBQ_[A-Z_]+)[^\]]*\]")


def _commands() -> list[tuple[list[str], Command]]:
    """(path, command) of every command and group under `jobq`, the root included."""
    root = typer.main.get_command(build_app())
    out: list[tuple[list[str], Command]] = []
    todo: list[tuple[list[str], Command]] = [([], root)]
    while todo:
        path, cmd = todo.pop(0)
        out.append((path, cmd))
        if isinstance(cmd, TyperGroup):
            ctx = Context(cmd)
            todo += [([*path, name], cmd.commands[name]) for name in cmd.list_commands(ctx)]
    return out


COMMANDS = _commands()


def _help(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    return out


def _flat(text: str) -> str:
    return " ".join(text.split())


def _first_paragraph(cmd: Command) -> str:
    return _flat((cmd.help or "").split("\n\n")[0])


@pytest.fixture(autouse=True)
def _width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # a common terminal; click wraps at 78 anyway


@pytest.mark.parametrize(
    ("path", "cmd"),
    [(p, c) for p, c in COMMANDS if isinstance(c, TyperGroup)],
    ids=lambda v: " ".join(["jobq", *v]) if isinstance(v, list) else "",
)
def test_summaries_are_whole(
    path: list[str], cmd: TyperGroup, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(path, capsys)
    listing = text.split("Commands:\n", 1)[1]
    summaries: dict[str, str] = {}
    name = ""
    for line in listing.splitlines():
        m = re.match(r"  (\S+)\s+(.*)", line)
        if m:
            name = m.group(1)
            summaries[name] = m.group(2)
        elif line.startswith("   ") and name:
            summaries[name] += " " + line.strip()
    ctx = Context(cmd)
    assert sorted(summaries) == sorted(cmd.list_commands(ctx))
    for name, summary in summaries.items():
        sub = cmd.commands[name]
        assert "..." not in summary, f"jobq {' '.join(path)} --help cuts {name}: {summary!r}"
        assert summary.endswith("."), f"{name}: {summary!r} is not a whole sentence"
        assert _flat(summary) == _first_paragraph(sub), f"{name}: summary is not its help"


@pytest.mark.parametrize(
    ("path", "cmd"), COMMANDS, ids=lambda v: " ".join(["jobq", *v]) if isinstance(v, list) else ""
)
def test_help_has_no_placeholders_and_describes_every_parameter(
    path: list[str], cmd: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(path, capsys)
    bad = PLACEHOLDERS.findall(text)
    assert not bad, f"jobq {' '.join(path)} --help shows {bad}:\n{text}"
    for param in cmd.params:
        if isinstance(param, TyperOption):
            assert param.help, f"jobq {' '.join(path)}: {param.opts[0]} has no description"
            assert not param.show_envvar or not param.envvar, (
                f"{param.opts[0]}: click's own [env var: …] form; write [env: NAME] instead"
            )
        elif isinstance(param, TyperArgument):
            assert getattr(param, "help", None), (
                f"jobq {' '.join(path)}: argument {param.human_readable_name} has no description"
            )


@pytest.mark.parametrize(
    ("path", "cmd"), COMMANDS, ids=lambda v: " ".join(["jobq", *v]) if isinstance(v, list) else ""
)
def test_environment_variables_are_written_one_way(
    path: list[str], cmd: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _flat(_help(path, capsys))
    assert "env var" not in text.lower() and "Env:" not in text and "$JOBQ" not in text, text
    mentioned = set(re.findall(r"JOBQ_[A-Z_]+", text))
    documented = set(ENV.findall(text))
    assert mentioned == documented, f"not as [env: NAME]: {sorted(mentioned - documented)}"
    for param in cmd.params:  # a variable click reads is documented on its option
        if isinstance(param, TyperOption) and isinstance(param.envvar, str):
            assert f"[env: {param.envvar}" in _flat(param.help or ""), param.opts[0]


def test_root_help_in_a_real_process() -> None:
    """The console entry point prints the same whole summaries (no typer rich formatting)."""
    env = dict(os.environ, COLUMNS="80", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "jobq", "--help"], capture_output=True, text=True,
                       env=env, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0 and r.stderr == ""
    assert "..." not in r.stdout.split("Commands:", 1)[1]
    assert "--version" in r.stdout and "[env: JOBQ_DB]" in _flat(r.stdout)


def _typer_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from jobq.cli.app import _run_typer

    capsys.readouterr()
    code = _run_typer(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.parametrize("columns", ["80", "200", ""])
@pytest.mark.parametrize("args", [["--help"], ["-h"], []], ids=lambda a: " ".join(a) or "bare")
def test_the_fast_root_help_is_typers_text(
    args: list[str], columns: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`jobq --help` is printed without typer (jobq.cli.fast.TOP_HELP) on a terminal of 80
    columns or more: it must be, byte for byte, what the typer app prints. When this fails after
    a command was added, set TOP_HELP to the typer text the assertion shows."""
    from jobq.cli import fast

    monkeypatch.setenv("COLUMNS", columns)  # "" = unset: not a terminal, 80 as click assumes
    assert fast.top_help(args or ["--help"]) is not None
    expected = _typer_help(["--help"], capsys)
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, _ = capsys.readouterr()
    assert exc.value.code == 0
    assert out == expected, f"set jobq.cli.fast.TOP_HELP to:\n{expected}"


def test_a_narrow_terminal_gets_typers_own_wrapping(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobq.cli import fast

    monkeypatch.setenv("COLUMNS", "60")
    assert fast.top_help(["--help"]) is None
    text = _help([], capsys)
    assert text == _typer_help(["--help"], capsys) and text != fast.TOP_HELP
    assert max(len(line) for line in text.splitlines()) <= 58  # click wraps at COLUMNS - 2

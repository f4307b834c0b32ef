"""Colours come from the Textual theme: no colour is named in the dashboard's code, and
switching the theme changes the colours the lists are drawn in (every built-in theme works)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from textual.color import Color

from devtools.screenshots import first_load, seeded_app, settle
from tests.conftest import ROOT
from tui.app import JobqApp

pytestmark = pytest.mark.anyio

TUI = ROOT / "tui"
COLOUR_WORD = re.compile(
    r"\b(red|green|yellow|blue|magenta|cyan|white|black|purple|orange|pink|gr[ae]y\d*"
    r"|bright_\w+|dark_\w+|light_\w+|ansi_\w+)\b|#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bcolor\(\d",
    re.IGNORECASE,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (prose may name colours; styles may not)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def colour_names_in_code(root: Path = TUI) -> list[str]:
    """Every string literal (docstrings aside) in root/**.py that names a colour, every
    Style(color=...)/Style(bgcolor=...) given anything but a theme colour, and every colour
    named in root/**.tcss (only $variables of the theme are allowed there)."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) not in skip and COLOUR_WORD.search(node.value):
                    found.append(f"{where}: {node.value!r}")
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Style":
                for kw in node.keywords:
                    if kw.arg in ("color", "bgcolor") and not (
                        isinstance(kw.value, ast.Attribute) and kw.value.attr == "rich_color"
                    ):
                        found.append(f"{where}: Style({kw.arg}=...)")
    for css in sorted(root.rglob("*.tcss")):
        for n, line in enumerate(css.read_text().splitlines(), 1):
            code = re.sub(r"/\*.*?\*/", "", line)
            if COLOUR_WORD.search(code):
                found.append(f"{css.relative_to(root)}:{n}: {line.strip()}")
    return found


def test_no_colour_is_named_in_the_dashboard_code() -> None:
    assert colour_names_in_code() == []


def test_the_audit_finds_a_named_colour(tmp_path: Path) -> None:
    """The audit is not blind: a style naming a colour, in code or CSS, is reported."""
    (tmp_path / "w.py").write_text(
        '"""Docstrings may say red."""\nfrom rich.text import Text\nfrom rich.style import Style\n'
        'a = Text("x", style="bold red")\nb = Style(color="#ff0000")\n'
    )
    (tmp_path / "x.tcss").write_text("#a { color: $error; }\n#b { background: ansi_blue; }\n")
    found = colour_names_in_code(tmp_path)
    assert [f.split(":")[0] for f in found] == ["w.py", "w.py", "w.py", "x.tcss"], found


THEMES = ("textual-dark", "textual-light", "nord")


def _hex(app: JobqApp, variable: str) -> str:
    return Color.parse(app.theme_variables[variable]).hex.lower()


async def test_switching_theme_changes_the_colours_drawn(tmp_path: Path) -> None:
    """The Failed tab's error text is drawn in each theme's own error colour."""
    app = seeded_app(str(tmp_path / "q.db"))
    seen: dict[str, str] = {}
    async with app.run_test(size=(140, 40)) as pilot:
        await first_load(pilot)
        await pilot.press("3")
        await settle(pilot, lambda: app.main.snapshot is not None
                     and app.main.snapshot.request.tab == "failed")  # fmt: skip
        for theme in THEMES:
            app.theme = theme
            await pilot.pause(0.1)  # the theme signal redraws the list
            svg = app.export_screenshot().lower()
            error = _hex(app, "text-error")
            assert f"fill: {error}" in svg or f"fill:{error}" in svg, (theme, error)
            seen[theme] = error
    assert len(set(seen.values())) == len(THEMES), seen

"""The README's citations of tests stay true: every test file and test it names exists.

Citations are code spans: `test_file.py` or `tests/test_file.py`, `test_file.py::test_name`
(a name may end in `*`, a glob, or carry a `[param]`), and a bare `test_name` after a file was
cited (looked up in every test file).
"""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatchcase
from pathlib import Path

from tests.conftest import ROOT

TESTS = ROOT / "tests"
SPAN = re.compile(r"`([^`\n]+)`")
FILE = re.compile(r"^(?:tests/)?(test_\w+\.py)(?:::(test[\w*]*)(?:\[[^\]]*\])?)?$")
BARE = re.compile(r"^(test_[\w*]+)(?:\[[^\]]*\])?$")


def _test_names(path: Path) -> set[str]:
    """Names of the test functions in a test file (module level and in classes)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(
            "test"
        ):
            names.add(node.name)
    return names


def citations(text: str) -> list[tuple[str | None, str | None]]:
    """(file, test name or glob) for every code span that cites a test; either may be None."""
    out: list[tuple[str | None, str | None]] = []
    for span in SPAN.findall(text):
        span = span.strip()
        if m := FILE.match(span):
            out.append((m.group(1), m.group(2)))
        elif m := BARE.match(span):
            out.append((None, m.group(1)))
    return out


def broken_citations(text: str) -> list[str]:
    """The citations in `text` that name no test file or no test."""
    every: dict[str, set[str]] = {p.name: _test_names(p) for p in TESTS.glob("test_*.py")}
    all_names = set().union(*every.values())
    broken = []
    for file, name in citations(text):
        if file is not None and file not in every:
            broken.append(f"{file}: no such test file")
        elif name is not None:
            pool = every[file] if file is not None else all_names
            if not any(fnmatchcase(n, name) for n in pool):
                broken.append(f"{file or 'tests/'}::{name}: no such test")
    return broken


def test_every_test_the_readme_cites_exists() -> None:
    """Each `file.py::name` and bare `test_name` in README.md names a test that exists."""
    text = (ROOT / "README.md").read_text()
    assert len(citations(text)) >= 20, "the README cites few tests: is the parser reading it?"
    assert broken_citations(text) == []


def test_a_stale_citation_is_caught() -> None:
    """Renamed tests, a moved file and a glob matching nothing are each reported."""
    text = (
        "(`test_chaos.py::test_1_chaos_kills_lose_nothing`, `test_gone.py`, "
        "`test_readme.py::test_every_*`, `test_no_such_thing_*`, `test_a_stale_citation_is_caught`)"
    )
    assert broken_citations(text) == [
        "test_chaos.py::test_1_chaos_kills_lose_nothing: no such test",
        "test_gone.py: no such test file",
        "tests/::test_no_such_thing_*: no such test",
    ]

"""Rewrite jobq.cli.fast.TOP_HELP from what the typer app prints for `jobq --help` (run after a
top-level command is added or its summary changes; tests/test_help_texts.py checks they match).

    .venv/bin/python -m devtools.tophelp
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

FAST = Path(__file__).resolve().parent.parent / "jobq" / "cli" / "fast.py"


def typer_text() -> str:
    """`jobq --help` as typer prints it at 80 columns."""
    from jobq.cli.app import _run_typer

    os.environ.pop("COLUMNS", None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = _run_typer(["--help"])
    if code != 0:
        raise SystemExit(f"typer's --help exited {code}")
    return out.getvalue()


def main() -> None:
    text = typer_text()
    if '"""' in text or "\\" in text:
        raise SystemExit("the help text needs escaping: edit TOP_HELP by hand")
    source = FAST.read_text()
    new, n = re.subn(r'TOP_HELP = """\\\n.*?"""', lambda _: 'TOP_HELP = """\\\n' + text + '"""',
                     source, count=1, flags=re.S)  # fmt: skip
    if n != 1:
        raise SystemExit(f"no TOP_HELP in {FAST}")
    FAST.write_text(new)
    print(f"TOP_HELP rewritten ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()

"""Who imports whom: the core loads no UI, `jobq enqueue` loads nothing heavy, only the store
touches sqlite3. Each check runs in a fresh interpreter, where sys.modules tells the truth."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

HEAVY_FOR_ENQUEUE = ("textual", "sqlite_utils", "watchfiles", "pydantic", "typer", "click", "rich")


def _loaded(code: str, env: dict[str, str]) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def _top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_import_jobq_loads_no_ui(jobq_env: dict[str, str]) -> None:
    loaded = _top_level(_loaded("import sys, json, jobq; print(json.dumps(list(sys.modules)))",
                                jobq_env))  # fmt: skip
    assert not loaded & {"textual", "typer", "click", "rich", "tui"}


def test_enqueue_loads_nothing_heavy(jobq_env: dict[str, str], db_path: str) -> None:
    code = (
        "import sys, json\n"
        "from jobq.cli import main\n"
        "try:\n"
        "    main(['enqueue', 'resize', '--payload', '{\"a\": 1}', '--priority', 'high'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print(json.dumps(list(sys.modules)))\n"
    )
    loaded = _top_level(_loaded(code, jobq_env))
    assert not loaded & set(HEAVY_FOR_ENQUEUE), loaded & set(HEAVY_FOR_ENQUEUE)
    from jobq import Queue

    with Queue(db_path) as q:
        assert q.get(1).priority == 10


def test_other_commands_do_use_typer(jobq_env: dict[str, str]) -> None:
    code = (
        "import sys, json\n"
        "from jobq.cli import main\n"
        "try:\n"
        "    main(['db', 'path'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(list(sys.modules)))\n"
    )
    assert "typer" in _top_level(_loaded(code, jobq_env))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_store_imports_sqlite3() -> None:
    store_dir = ROOT / "jobq" / "store" / "sqlite"
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "jobq").rglob("*.py"))
        if store_dir not in p.parents and "sqlite3" in _imports(p)
    ]
    assert offenders == []
    assert any("sqlite3" in _imports(p) for p in store_dir.glob("*.py"))


def test_only_the_cli_imports_typer() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "jobq").rglob("*.py"))
        if (ROOT / "jobq" / "cli") not in p.parents and _imports(p) & {"typer", "click"}
    ]
    assert offenders == []

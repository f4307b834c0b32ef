"""Who imports whom, the layers of README's "How jobq is built" made checkable.

At run time (a fresh interpreter, where sys.modules tells the truth): the core loads no UI and
`jobq enqueue` loads nothing heavy. In the source (the AST of every module): only the SQLite store
imports sqlite3, only the CLI imports typer; the dashboard uses only jobq's public names and the
core never imports the dashboard; jobq's modules form no import cycle; no module is too long.
"""

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


def test_only_the_postgresql_store_imports_psycopg() -> None:
    store_dir = ROOT / "jobq" / "store" / "postgres"
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted([*(ROOT / "jobq").rglob("*.py"), *(ROOT / "tui").rglob("*.py")])
        if store_dir not in p.parents and "psycopg" in _imports(p)
    ]
    assert offenders == []
    assert any("psycopg" in _imports(p) for p in store_dir.glob("*.py"))


def test_enqueue_on_a_file_never_loads_psycopg(jobq_env: dict[str, str]) -> None:
    code = (
        "import sys, json\n"
        "from jobq.cli import main\n"
        "try:\n"
        "    main(['enqueue', 'resize'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print(json.dumps(list(sys.modules)))\n"
    )
    assert "psycopg" not in _top_level(_loaded(code, jobq_env))


def test_only_the_cli_imports_typer() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "jobq").rglob("*.py"))
        if (ROOT / "jobq" / "cli") not in p.parents and _imports(p) & {"typer", "click"}
    ]
    assert offenders == []


def _python_files() -> list[Path]:
    return sorted([*(ROOT / "jobq").rglob("*.py"), *(ROOT / "tui").rglob("*.py")])


def test_no_sqlite_file_is_opened_outside_the_store():
    """Only the store imports sqlite3 (so every connection gets the file checks and pragmas)."""
    store_dir = ROOT / "jobq" / "store" / "sqlite"
    offenders = []
    for path in _python_files():
        if store_dir in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n == "sqlite3" or n.startswith("sqlite3.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# ---- the dashboard is a client of jobq's public API, and the core never loads it --------------


def _imported_modules(path: Path) -> list[tuple[int, str, list[str]]]:
    """Every import statement anywhere in `path` (functions included), absolute module names:
    (line, module, names imported from it; [] for `import module`)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    out: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            out.append((node.lineno, module, [alias.name for alias in node.names]))
    return out


def _tui_deep_imports() -> list[str]:
    import jobq

    public = set(jobq.__all__)
    problems = []
    for path in sorted((ROOT / "tui").rglob("*.py")):
        where = path.relative_to(ROOT)
        for line, module, names in _imported_modules(path):
            if module != "jobq" and not module.startswith("jobq."):
                continue
            if module != "jobq":
                problems.append(f"{where}:{line}: imports {module} (not jobq's public API)")
                continue
            for name in sorted(set(names) - public):
                problems.append(f"{where}:{line}: jobq.{name} is not in jobq.__all__")
    return problems


def test_the_audit_of_tui_imports_sees_real_imports() -> None:
    """The dashboard does import jobq (so the rule below checks something)."""
    assert any(
        module == "jobq"
        for path in (ROOT / "tui").rglob("*.py")
        for _line, module, _names in _imported_modules(path)
    )


def test_the_dashboard_imports_only_jobqs_public_names() -> None:
    """tui/ imports from jobq only `from jobq import NAME` with NAME in jobq.__all__."""
    assert _tui_deep_imports() == []


def test_the_core_never_imports_the_dashboard() -> None:
    """No import statement in jobq/ names tui or textual, not even inside a function: the `tui`
    and `demo` commands load the dashboard by name, through importlib.import_module."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / "jobq").rglob("*.py"))
        for line, module, _names in _imported_modules(path)
        if module.split(".")[0] in ("tui", "textual")
    ]
    assert offenders == []


# ---- no import cycle --------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module, package: str) -> list[str]:
    """Modules imported when the module is: top-level statements and those nested in if / try /
    with / class bodies; not function bodies (run later) nor `if TYPE_CHECKING:` (never run)."""
    found: list[str] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = parts[: len(parts) - node.level + 1]
                    module = ".".join([*base, module] if module else base)
                # `from pkg import mod` imports the submodule pkg.mod when there is one
                found.extend(f"{module}.{alias.name}" for alias in node.names)
                found.append(module)
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.With, ast.ClassDef)):
                visit(node.body)

    visit(tree.body)
    return found


def import_graph(top: str) -> dict[str, set[str]]:
    """Module-level import edges between the modules of package `top` (by its AST)."""
    paths = {_module_name(p): p for p in sorted((ROOT / top).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        targets = {
            # the most specific of our modules that the import names
            max((m for m in paths if imported == m or imported.startswith(m + ".")), key=len)
            for imported in _module_level_imports(tree, package)
            if imported == top or imported.startswith(top + ".")
        }
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    """A three-module loop and a two-module loop are found; a chain is not a cycle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "f"}, "f": set()}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_jobq_modules_import_each_other_without_a_cycle() -> None:
    """Module-level imports among jobq's modules form no cycle (imports inside functions, which
    keep start-up fast, may point back)."""
    graph = import_graph("jobq")
    assert graph["jobq.queue"], "the graph has no edges: is the audit reading the imports?"
    found = cycles(graph)
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


# ---- module size ------------------------------------------------------------------------------

MAX_LINES = 500


def test_no_module_is_over_500_lines() -> None:
    """Every module in jobq/ and tui/ is at most 500 lines long."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in _python_files()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}

"""No SQL is built from user text: an AST audit of every execute() in jobq/store/sqlite/."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

STORE_DIR = ROOT / "jobq" / "store" / "sqlite"
SQL_WORDS = ("SELECT ", "UPDATE ", "INSERT ", "DELETE ", "PRAGMA ", " WHERE ", " FROM ")


def _constants() -> set[str]:
    """Module-level UPPERCASE names of the store's sql modules and the schema (all constants)."""
    names: set[str] = set()
    for path in (STORE_DIR / "sql.py", STORE_DIR / "deps_sql.py", STORE_DIR / "schema.py"):
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id.isupper():
                    names.add(t.id)
    return names


# Parameters that end up in SQL text, with the reason they are safe; each is checked below.
SAFE_PARAMETERS = {
    ("_set_sync", "mode"): "called only with the literals 'FULL' / 'NORMAL'",
}


class SqlAudit:
    """Find every SQL text passed to execute*() and prove it is built from constants only."""

    def __init__(self, path: Path, constants: set[str]) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text())
        self.constants = constants
        self.problems: list[str] = []
        self.calls = 0

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"

    def run(self) -> list[str]:
        for func in ast.walk(self.tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany", "executescript")
                    and node.args
                ):
                    self.calls += 1
                    self.check(node.args[0], func, set())
        self.check_formatting()
        return self.problems

    def assignments(self, func: ast.AST, name: str) -> list[ast.expr] | None:
        """Values assigned to local `name` in `func`; None if it is a loop target or parameter."""
        values: list[ast.expr] = []
        for node in ast.walk(func):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id == name:
                        values.append(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if node.target.id == name and node.value is not None:
                    values.append(node.value)
            elif isinstance(node, (ast.For, ast.comprehension)) and any(
                isinstance(n, ast.Name) and n.id == name for n in ast.walk(node.target)
            ):
                values.append(node.iter)  # an element of a constant sequence is constant
        return values or None

    def list_elements(self, func: ast.AST, name: str) -> list[ast.expr]:
        """Everything put into local list `name`: its literal, .append() args, item assigns."""
        out: list[ast.expr] = []
        for value in self.assignments(func, name) or []:
            out.extend(value.elts if isinstance(value, ast.List) else [value])
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == name
                and node.func.attr in ("append", "insert", "extend")
            ):
                out.append(node.args[-1])
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if (
                        isinstance(t, ast.Subscript)
                        and isinstance(t.value, ast.Name)
                        and t.value.id == name
                    ):
                        out.append(node.value)
        return out

    def check(self, expr: ast.expr, func: ast.AST, seen: set[str]) -> None:
        """Record a problem unless `expr` can only evaluate to text made of constants."""
        if isinstance(expr, ast.Constant):
            if not isinstance(expr.value, (str, int)):
                self.problems.append(f"{self.where(expr)}: non-text constant in SQL")
        elif isinstance(expr, ast.Name):
            if expr.id in self.constants:
                return
            if expr.id in seen:
                return
            seen.add(expr.id)
            fname = getattr(func, "name", "")
            if (fname, expr.id) in SAFE_PARAMETERS:
                return
            values = self.assignments(func, expr.id)
            outer, self.problems = self.problems, []
            if values is None:
                self.problems.append("a parameter")
            for v in values or []:
                self.check(v, func, seen)
            inner, self.problems = self.problems, outer
            if inner:
                self.problems.append(
                    f"{self.where(expr)}: `{expr.id}` in SQL text is not built from constants"
                    f" ({inner[0]})"
                )
        elif isinstance(expr, ast.JoinedStr):
            for part in expr.values:
                if isinstance(part, ast.FormattedValue):
                    self.check(part.value, func, seen)
        elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            self.check(expr.left, func, seen)
            self.check(expr.right, func, seen)
        elif isinstance(expr, ast.IfExp):
            self.check(expr.body, func, seen)
            self.check(expr.orelse, func, seen)
        elif isinstance(expr, ast.Subscript):
            self.check(expr.value, func, seen)  # a slice of constant text is constant text
        elif isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            method = expr.func.attr
            if method == "join" and len(expr.args) == 1:
                self.check(expr.func.value, func, seen)
                arg = expr.args[0]
                if isinstance(arg, ast.Name):
                    for element in self.list_elements(func, arg.id):
                        self.check(element, func, seen)
                elif isinstance(arg, ast.GeneratorExp):
                    # e.g. ", ".join("a." + c for c in ATTEMPT_COLUMNS.split(","))
                    for gen in arg.generators:
                        self.check(gen.iter, func, seen)
                    self.check_generated(arg.elt, arg, func, seen)
                else:
                    self.problems.append(f"{self.where(expr)}: join over {ast.dump(arg)[:60]}")
            elif method in ("strip", "rstrip", "lstrip", "rsplit", "split", "upper", "lower"):
                self.check(expr.func.value, func, seen)
            else:
                self.problems.append(f"{self.where(expr)}: SQL built by .{method}()")
        else:
            self.problems.append(f"{self.where(expr)}: SQL built from {type(expr).__name__}")

    def check_generated(
        self, elt: ast.expr, gen: ast.GeneratorExp, func: ast.AST, seen: set[str]
    ) -> None:
        loop_vars = {
            n.id for g in gen.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)
        }
        for node in ast.walk(elt):
            if isinstance(node, ast.Name) and node.id not in loop_vars:
                self.check(node, func, seen)

    def check_formatting(self) -> None:
        """No SQL-looking text is formatted with % or .format()."""
        for node in ast.walk(self.tree):
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Mod)
                and isinstance(node.left, ast.Constant)
                and _looks_like_sql(node.left.value)
            ):
                self.problems.append(f"{self.where(node)}: SQL formatted with %")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "format"
                and isinstance(node.func.value, ast.Constant)
                and _looks_like_sql(node.func.value.value)
            ):
                self.problems.append(f"{self.where(node)}: SQL formatted with .format()")


def _looks_like_sql(value: object) -> bool:
    return isinstance(value, str) and any(w in value.upper() for w in SQL_WORDS)


def _audit() -> tuple[list[str], int]:
    constants = _constants()
    problems: list[str] = []
    calls = 0
    for path in sorted(STORE_DIR.glob("*.py")):
        audit = SqlAudit(path, constants)
        problems += audit.run()
        calls += audit.calls
    # the SQL constants themselves: f-strings there may only interpolate other constants
    tree = ast.parse((STORE_DIR / "sql.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FormattedValue):
            for name in ast.walk(node.value):
                if isinstance(name, ast.Name) and name.id not in constants and name.id != "c":
                    problems.append(
                        f"jobq/store/sqlite/sql.py:{node.lineno}: {name.id} in a constant"
                    )
    return problems, calls


def test_no_sql_is_built_from_user_text():
    """Every execute()'s SQL is a constant, or built only from constant fragments (not even
    doctor's table names read back from the file)."""
    problems, calls = _audit()
    assert calls > 20, "the audit found too few execute() calls: is it looking at the store?"
    assert problems == []


def test_set_sync_only_gets_literals():
    """The one parameter interpolated into a PRAGMA (`_set_sync(mode)`) only receives literals."""
    seen = 0
    for path in sorted((ROOT / "jobq").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "_set_sync"
            ):
                seen += 1
                arg = node.args[0]
                values = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
                for v in values:
                    assert isinstance(v, ast.Constant) and v.value in ("FULL", "NORMAL", "OFF")
    assert seen >= 1


def test_audit_catches_interpolated_user_text(tmp_path: Path):
    """The audit itself flags the mistakes it is meant to catch."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(conn, name, q):\n"
        "    conn.execute(f'SELECT * FROM jobs WHERE type = {name}')\n"
        "    conn.execute('SELECT * FROM jobs WHERE type = %s' % name)\n"
        "    conn.execute('SELECT * FROM jobs WHERE type = {}'.format(name))\n"
        "    sql = 'SELECT 1 WHERE ' + q\n"
        "    conn.execute(sql)\n"
        "    where = ['a = 1']\n"
        "    where.append(q)\n"
        "    conn.execute('SELECT 1 WHERE ' + ' AND '.join(where))\n"
    )
    audit = SqlAudit(bad, set())
    audit.path = ROOT / "x.py"  # for where()
    problems = audit.run()
    assert len(problems) >= 5, problems

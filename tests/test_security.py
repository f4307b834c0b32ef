"""Security review (issue 6): file permissions, SQL never built from user text, no shell, payload
text never reaches argv, and a read-only dashboard that can act on nothing."""

from __future__ import annotations

import ast
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq.store import Store
from tests.conftest import ROOT, SLOW

STORE_DIR = ROOT / "jobq" / "store" / "sqlite"
SQL_WORDS = ("SELECT ", "UPDATE ", "INSERT ", "DELETE ", "PRAGMA ", " WHERE ", " FROM ")

# ---------------------------------------------------------------------------------------------
# permissions of the queue file and its -wal / -shm


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _with_umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    ("umask", "expected"),
    [(0o022, 0o600), (0o002, 0o600), (0o000, 0o600), (0o077, 0o600), (0o277, 0o400)],
)
def test_queue_file_wal_and_shm_are_private(tmp_path: Path, umask: int, expected: int):
    """Created 0600 whatever a permissive umask says; a stricter umask is respected; the -wal and
    -shm files SQLite creates next to it, and the turnstile's -lock, get the same mode."""
    path = str(tmp_path / "q.db")
    gen = _with_umask(umask)
    next(gen)
    try:
        store = Store(path, turnstile=True)  # as jobq.Queue opens it
        store.enqueue([_job()], 1.0)  # a write: -wal, -shm and -lock exist from here on
        modes = {s: _mode(path + s) for s in ("", "-wal", "-shm", "-lock")}
        store.close()
    finally:
        next(gen, None)
    assert modes == {"": expected, "-wal": expected, "-shm": expected, "-lock": expected}


def test_backup_copy_is_private(tmp_path: Path):
    """`backup` writes its copy 0600 too (it holds every payload)."""
    path = str(tmp_path / "q.db")
    gen = _with_umask(0o022)
    next(gen)
    try:
        store = Store(path)
        store.enqueue([_job()], 1.0)
        store.backup(str(tmp_path / "copy.db"))
        store.close()
    finally:
        next(gen, None)
    assert _mode(str(tmp_path / "copy.db")) == 0o600


def _job():
    from tests.factories import new_job

    return new_job("t", '{"secret": "s3cr3t"}')


# ---------------------------------------------------------------------------------------------
# no SQL built from user text: an AST audit of jobq/store/*.py


def _constants() -> set[str]:
    """Module-level UPPERCASE names of the store's sql module and the schema (all constants)."""
    names: set[str] = set()
    for path in (STORE_DIR / "sql.py", STORE_DIR / "schema.py"):
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


# ---------------------------------------------------------------------------------------------
# no shell anywhere

SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput"), ("os", "execlp"), ("pty", "spawn")}  # fmt: skip


def _python_files() -> list[Path]:
    return sorted([*(ROOT / "jobq").rglob("*.py"), *(ROOT / "tui").rglob("*.py")])


def test_no_shell_is_ever_used():
    """No `shell=True`, os.system, os.popen or subprocess.getoutput in jobq/ or tui/."""
    problems = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "shell" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    problems.append(
                        f"{path.relative_to(ROOT)}:{node.lineno}: shell={ast.unparse(kw.value)}"
                    )
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and (f.value.id, f.attr) in SHELL_CALLS
            ):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {f.value.id}.{f.attr}")
            if isinstance(f, ast.Name) and f.id in ("system", "popen", "getoutput"):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {f.id}()")
    assert problems == []


def test_no_sqlite_file_is_opened_outside_the_store():
    """Only the store imports sqlite3 (so every connection gets the file checks and pragmas)."""
    offenders = []
    for path in _python_files():
        if STORE_DIR in path.parents:
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


# ---------------------------------------------------------------------------------------------
# `jobq tui --read-only` can act on nothing

# Every key that acts, each followed by what a confirmation or prompt would accept; escape then
# closes whatever is left open. Run on every tab, in the detail view and in the error tail.
SEQUENCES = [["r", "y"], ["c", "y"], ["c", "enter"], ["plus"], ["equals_sign"], ["minus"],
             ["p", "5", "enter"], ["P", "y"], ["space"], ["a", "r", "y"], ["a", "c", "y"],
             ["a", "p", "5", "enter"]]  # fmt: skip


def _dump(path: str) -> list[tuple[object, ...]]:
    """Every row of every table, in a stable order (what "nothing changed" means)."""
    import sqlite3  # tests may; only jobq/ may not

    conn = sqlite3.connect(path)
    try:
        out: list[tuple[object, ...]] = []
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            out += [(name, *r) for r in conn.execute(f"SELECT * FROM [{name}] ORDER BY 1")]
        return out
    finally:
        conn.close()


def _seed_every_state(path: str) -> None:
    from tests.factories import make_job

    store = Store(path)
    import time as _time

    now = _time.time()
    store.register_worker("pool-a", name="a", host="h", pid=1, concurrency=1, queues=[],
                          types=[], now=now)  # fmt: skip
    for state in ("pending", "running", "failed", "succeeded", "cancelled"):
        for _ in range(2):
            make_job(store, state, now=now, worker="pool-a/1")
    store.close()


async def _press_everything(app, pilot, tabs: tuple[str, ...]) -> None:
    from tui.data import JOB_TABS, TABS

    async def every_sequence() -> None:
        for seq in SEQUENCES:
            await pilot.press(*seq, "escape")
            while len(app.screen_stack) > depth:
                app.pop_screen()

    for i, tab in enumerate(TABS):
        if tab not in tabs:
            continue
        await pilot.press(str(i + 1))
        depth = len(app.screen_stack)
        await every_sequence()
        if tab in JOB_TABS:
            await pilot.press("enter")  # the detail view of the selected job
            depth = len(app.screen_stack)
            await every_sequence()
            while len(app.screen_stack) > 2:
                app.pop_screen()
    await pilot.press("e")  # the error tail and its retry
    await pilot.press("r", "y", "enter", "y")
    await pilot.pause(0.3)  # let any action thread finish


@pytest.mark.timeout(120)
@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "control"])
def test_tui_read_only_acts_on_nothing(tmp_path: Path, read_only: bool):
    """Read-only: every action key on every tab, detail view and error tail changes nothing.
    The control run (not read-only) proves the same keys do change the file."""
    import asyncio

    pytest.importorskip("textual")
    from tui.app import make_app
    from tui.data import TABS

    # pending, failed (retry/cancel targets) and the error groups by default; every tab when slow
    tabs = TABS if SLOW and read_only else ("pending", "failed", "errors")
    if not read_only:
        tabs = ("pending",)
    path = str(tmp_path / "q.db")
    _seed_every_state(path)
    before = _dump(path)

    async def run() -> None:
        app = make_app(path, read_only=read_only, watch=False)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause(0.3)
            await _press_everything(app, pilot, tabs)
            if read_only:
                assert app._writer is None, "read-only app opened a writer connection"

    asyncio.run(run())
    after = _dump(path)
    if read_only:
        assert after == before
    else:
        assert after != before, "the control run changed nothing: the keys tested nothing"


# ---------------------------------------------------------------------------------------------
# payload text never reaches a command line

RECORDER = """
import json, sys
with open(sys.argv[1], "w") as f:
    json.dump({"argv": sys.argv[1:], "stdin": sys.stdin.read()}, f)
"""


@pytest.mark.timeout(60)
def test_payload_never_reaches_argv(tmp_path: Path, db_path: str, jobq_env: dict[str, str],
                                    jobq_cmd: list[str]):  # fmt: skip
    """A command handler gets exactly its configured argv; the payload, full of shell syntax,
    arrives on stdin only, and nothing in it runs."""
    import json
    import subprocess
    import sys

    pwned = tmp_path / "pwned"
    script = tmp_path / "rec.py"
    script.write_text(RECORDER)
    record = tmp_path / "record.json"
    payload = {
        "cmd": f"; rm -rf {tmp_path}/victim; touch {pwned}",
        "sub": f"$(touch {pwned})",
        "tick": f"`touch {pwned}`",
        "glob": "* ?",
        "quote": "' \" \\",
        "nl": f"\n touch {pwned}",
    }
    (tmp_path / "victim").mkdir()
    store = Store(db_path)
    import time as _time

    store.enqueue([_new("inj", json.dumps(payload))], _time.time())
    spec = f"inj={sys.executable} {script} {record} 'fixed arg'"
    r = subprocess.run([*jobq_cmd, "work", "-c", "1", "--burst", "--exec", spec],
                       env=jobq_env, capture_output=True, timeout=50)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    got = json.loads(record.read_text())
    assert got["argv"] == [str(record), "fixed arg"]
    assert json.loads(got["stdin"]) == payload
    assert not pwned.exists()
    assert (tmp_path / "victim").is_dir()
    job = store.get(1)
    assert job is not None and job.state.value == "succeeded"
    store.close()


def _new(type_: str, payload_json: str):
    from tests.factories import new_job

    return new_job(type_, payload_json)

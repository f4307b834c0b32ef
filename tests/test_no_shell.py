"""No shell anywhere: jobq and the dashboard never run one, and payload text never reaches a
command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jobq.store import Store
from tests.conftest import ROOT

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

"""The CLI's job commands on every backend, in subprocesses as a user runs them: `--db` and
`JOBQ_DB` take a PostgreSQL URL as they take a file, with the same output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _jobq(location: str, *args: str, stdin: str | None = None,
          via_env: bool = False) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    argv = [sys.executable, "-m", "jobq"]
    if via_env:
        env["JOBQ_DB"] = location
    else:
        argv += ["--db", location]
    return subprocess.run([*argv, *args], env=env, input=stdin, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize("via_env", [False, True], ids=["--db", "JOBQ_DB"])
def test_enqueue_ls_show(location: str, via_env: bool) -> None:
    r = _jobq(location, "enqueue", "email.send", "--payload", '{"to": "a@example.com"}',
              "--priority", "high", "--queue", "mail", via_env=via_env)  # fmt: skip
    assert (r.returncode, r.stdout, r.stderr) == (0, "1\n", "")
    lines = "".join(json.dumps({"type": "resize", "payload": {"n": i}}) + "\n" for i in range(3))
    r = _jobq(location, "enqueue", "--ndjson", "-", stdin=lines, via_env=via_env)
    assert (r.returncode, r.stdout) == (0, "2\n3\n4\n"), r.stderr

    r = _jobq(location, "ls", "--json", via_env=via_env)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [(j["id"], j["type"], j["state"]) for j in listed] == [
        (4, "resize", "pending"), (3, "resize", "pending"), (2, "resize", "pending"),
        (1, "email.send", "pending"),
    ]  # fmt: skip
    r = _jobq(location, "ls", "--type", "email.*", via_env=via_env)
    assert r.returncode == 0 and "email.send" in r.stdout and "resize" not in r.stdout

    r = _jobq(location, "show", "1", "--json", via_env=via_env)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert (shown["payload"], shown["priority"], shown["queue"]) == (
        {"to": "a@example.com"}, 10, "mail"
    )  # fmt: skip
    assert shown["attempts_history"] == []
    r = _jobq(location, "show", "99", via_env=via_env)
    assert r.returncode == 1 and r.stderr.startswith("jobq: error: no job 99")


def test_cancel_retry_stats(location: str) -> None:
    assert _jobq(location, "enqueue", "t").stdout == "1\n"
    r = _jobq(location, "cancel", "1")
    assert (r.returncode, r.stdout) == (0, "1 cancelled\n"), r.stderr
    r = _jobq(location, "retry", "1")
    assert (r.returncode, r.stdout) == (0, "1 retried\n"), r.stderr
    r = _jobq(location, "stats", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["by_state"]["pending"] == 1


def test_bad_input_writes_nothing(location: str) -> None:
    r = _jobq(location, "enqueue", "t", "--payload", "{not json")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = _jobq(location, "enqueue", "--ndjson", "-", stdin='{"type": "a"}\n{"type": ""}\n')
    assert r.returncode == 2
    r = _jobq(location, "ls", "--json")
    assert (r.returncode, json.loads(r.stdout or "null")) == (0, []), r.stderr


def test_read_commands_create_no_queue(pg_server: object, tmp_path: Path) -> None:
    from tests.conftest import backend_location

    location = backend_location("postgresql", tmp_path)
    for args in (["ls"], ["show", "1"], ["stats"], ["doctor"]):
        r = _jobq(location, *args)
        said = r.stdout if args == ["doctor"] else r.stderr  # the doctor reports it
        assert r.returncode == 1 and "has no jobq tables" in said, (args, r.stdout, r.stderr)
    r = _jobq(location, "enqueue", "t")  # a writer creates it
    assert (r.returncode, r.stdout) == (0, "1\n"), r.stderr
    assert _jobq(location, "ls").returncode == 0

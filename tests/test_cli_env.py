"""User mistakes in the environment and on the command line: one line on stderr, exit 2, no
traceback, and no queue file created (issue "Engine correctness", item 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def _jobq(tmp_path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    full["PYTHONPATH"] = str(ROOT) + os.pathsep + full.get("PYTHONPATH", "")
    full.pop("NOTIFY_SOCKET", None)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "jobq", "--db", str(tmp_path / "q.db"), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _one_line_exit_2(out: subprocess.CompletedProcess[str], tmp_path: Path, name: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert name in out.stderr, out.stderr
    assert not (tmp_path / "q.db").exists(), "bad input created the queue file"


# Variables every command reads (or may read): checked by every command.
GLOBAL_BAD = [
    ("JOBQ_BUSY_TIMEOUT", "abc"), ("JOBQ_BUSY_TIMEOUT", "-1"), ("JOBQ_BUSY_TIMEOUT", "nan"),
    ("JOBQ_BUSY_TIMEOUT", "inf"), ("JOBQ_PAYLOAD_LIMIT", "abc"), ("JOBQ_PAYLOAD_LIMIT", "0"),
    ("JOBQ_PAYLOAD_LIMIT", "1.5"), ("JOBQ_ALLOW_NETWORK_FS", "maybe"),
    ("JOBQ_TURNSTILE", "sometimes"),
]  # fmt: skip
COMMANDS = [["ls"], ["stats"], ["enqueue", "x"], ["work", "--burst", "--exec", "x=true"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize(("name", "value"), GLOBAL_BAD, ids=lambda v: str(v))
def test_a_malformed_global_variable_is_one_line_and_exit_2(
    tmp_path: Path, name: str, value: str, args: list[str]
) -> None:
    out = _jobq(tmp_path, args, **{name: value})
    _one_line_exit_2(out, tmp_path, name)
    assert out.stderr.startswith("jobq: error: ")


@pytest.mark.parametrize(("name", "value"), [("JOBQ_POLL_INTERVAL", "soon"),
                                             ("JOBQ_POLL_INTERVAL", "0")])  # fmt: skip
def test_a_malformed_poll_interval_is_refused_by_work(
    tmp_path: Path, name: str, value: str
) -> None:
    out = _jobq(tmp_path, ["work", "--burst", "--exec", "x=true"], **{name: value})
    _one_line_exit_2(out, tmp_path, name)


# Variables of `jobq work` alone (typer and pool_settings validate them); `what` is a word the
# message must contain.
WORK_BAD = [
    ("JOBQ_CONCURRENCY", "abc", "JOBQ_CONCURRENCY"), ("JOBQ_CONCURRENCY", "0", "JOBQ_CONCURRENCY"),
    ("JOBQ_BURST", "maybe", "JOBQ_BURST"), ("JOBQ_MAX_JOBS_PER_CHILD", "-3", "JOBQ_MAX_JOBS"),
    ("JOBQ_SHUTDOWN_TIMEOUT", "soon", "shutdown timeout"), ("JOBQ_LEASE", "abc", "lease"),
    ("JOBQ_RETENTION", "forever", "retention"), ("JOBQ_LOG_LEVEL", "loud", "log level"),
    ("JOBQ_QUEUE", "a b", "queue name"), ("JOBQ_TYPE", "a b", "job type"),
    ("JOBQ_EXEC", "noequals", "TYPE=COMMAND"), ("JOBQ_HANDLERS", "/nonexistent.toml", "handlers"),
    ("JOBQ_NAME", " ", "name"), ("JOBQ_APP", "no_such_module_here", "no_such_module_here"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "what"), WORK_BAD, ids=lambda v: str(v))
def test_a_malformed_work_variable_is_one_line_and_exit_2(
    tmp_path: Path, name: str, value: str, what: str
) -> None:
    env = {name: value}
    if name != "JOBQ_EXEC":
        env["JOBQ_EXEC"] = "x=true"
    out = _jobq(tmp_path, ["work"], **env)
    _one_line_exit_2(out, tmp_path, what)


@pytest.mark.parametrize(
    "target",
    ["/nonexistent/dir/x.db", "DIR/missing/x.db", "FILE/x.db"],
    ids=["root", "sub", "file"],
)
def test_backup_to_a_place_that_cannot_hold_it_is_one_line_and_exit_2(
    tmp_path: Path, target: str
) -> None:
    (tmp_path / "plain").write_text("a file, not a directory")
    target = target.replace("DIR", str(tmp_path)).replace("FILE", str(tmp_path / "plain"))
    assert _jobq(tmp_path, ["enqueue", "x"]).returncode == 0
    out = _jobq(tmp_path, ["backup", target])
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith("jobq: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not os.path.exists(target)

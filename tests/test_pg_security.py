"""A password in a postgresql:// location never shows: not in `jobq workers`, the pool's log, an
error, the dashboard header, the command lines of the pool's processes, or a unit file.

Command handlers get the location in JOBQ_DB (their environment, readable by their own user
only), never on a command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobq.errors import InvalidInput
from jobq.pool.settings import PoolSettings
from jobq.pool.systemd import has_password, render_unit

SECRET = "pw-s3cr3t-Zq9"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://bob:{SECRET}@db.example/jobs", True),
        (f"postgres://bob:{SECRET}@/jobs?host=/run/pg", True),
        (f"postgresql:///jobs?user=bob&password={SECRET}", True),
        (f"postgresql:///jobs?user=bob&PASSWORD={SECRET}", True),
        ("postgresql://bob@db.example/jobs", False),
        ("postgresql:///jobs?service=jobq", False),
        ("postgresql://db.example:5432/jobs?sslmode=require&schema=q", False),
    ],
)
def test_has_password(url: str, expected: bool) -> None:
    assert has_password(url) is expected


@pytest.mark.parametrize(
    "url",
    [f"postgresql://bob:{SECRET}@db.example/jobs", f"postgresql:///jobs?password={SECRET}"],
)
def test_a_unit_file_refuses_a_password_in_one_line(url: str) -> None:
    """Decision: refuse (exit 2) rather than write the password into a world-readable unit; the
    message names the two ways to keep it out (PGPASSFILE, a pg_service.conf service)."""
    with pytest.raises(InvalidInput) as caught:
        render_unit(PoolSettings(db_path=url, concurrency=2), executable=["/usr/bin/jobq"])
    message = str(caught.value)
    assert SECRET not in message
    assert "\n" not in message
    assert "PGPASSFILE" in message and "service=" in message
    assert caught.value.exit_code == 2


def test_a_unit_file_for_a_server_without_password() -> None:
    url = "postgresql:///jobs?service=jobq&schema=emails"
    unit = render_unit(
        PoolSettings(db_path=url, concurrency=3, execs=(("x", "true"),)),
        executable=["/usr/bin/jobq"],
        working_directory="/srv",
    )
    assert 'Environment="JOBQ_DB=postgresql:///jobs?service=jobq&schema=emails"' in unit
    assert 'ExecStart=/usr/bin/jobq --db "postgresql:///jobs?service=jobq&schema=emails" work' in (
        unit
    )
    assert "After=network-online.target" in unit and "Wants=network-online.target" in unit
    assert "After=local-fs.target" not in unit


def test_systemd_unit_cli_refuses_a_password(tmp_path: Path) -> None:
    """Through the CLI: one line on stderr, exit 2, nothing on stdout, no password."""
    env = dict(os.environ, JOBQ_DB=f"postgresql://bob:{SECRET}@127.0.0.1:1/jobs")
    r = subprocess.run(
        [sys.executable, "-m", "jobq", "systemd-unit", "--exec", "x=true"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert SECRET not in r.stderr

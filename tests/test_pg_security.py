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

import jobq
from jobq.errors import InvalidInput
from jobq.pool.settings import PoolSettings
from jobq.pool.systemd import has_password, render_unit
from tests.helpers import descendants, wait_until
from tests.pgserver import PgServer

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


# ---- a running pool on a server, its location with a password -----------------------------


ROOT = Path(__file__).resolve().parent.parent


def _pg_ready() -> bool:
    from test_pg_pool import pg_backend_ready

    return pg_backend_ready()


def _all_cmdlines() -> dict[int, str]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    out[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return out


def test_a_running_pool_never_shows_the_password(pg_server: PgServer, tmp_path: Path) -> None:
    """`jobq work` with the URL in JOBQ_DB: no process of the machine (supervisor, children,
    multiprocessing's helpers, guardians, command handlers) has it on its command line; the log,
    `jobq workers` (text and JSON), `jobq errors` and `jobq ls --json` never print it; a command
    handler gets the full URL in JOBQ_DB (its environment), which it needs to reach the queue."""
    if not _pg_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")

    loc = pg_server.location().replace("postgresql:///", f"postgresql://postgres:{SECRET}@/", 1)
    seen = tmp_path / "seen"
    script = tmp_path / "cmd.py"
    script.write_text(
        "import os, sys, time\n"
        f"open({str(seen)!r}, 'a').write(os.environ['JOBQ_DB'] + '\\n')\n"
        "sys.stdin.read()\n"
        "time.sleep(1.5)\n"
        "sys.exit(3 if os.environ['JOBQ_JOB_TYPE'] == 'bad' else 0)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), JOBQ_DB=loc)
    env.pop("NOTIFY_SOCKET", None)
    log = open(tmp_path / "pool.log", "wb")  # noqa: SIM115 - closed below
    pool = subprocess.Popen(
        [sys.executable, "-m", "jobq", "work", "-c", "2", "--exec", f"ok={sys.executable} {script}",
         "--exec", f"bad={sys.executable} {script}", "--log-level", "DEBUG"],
        env=env, stdout=log, stderr=log, start_new_session=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        with jobq.Queue(loc) as q:
            ok = q.enqueue("ok")
            bad = q.enqueue("bad", max_attempts=1)
            wait_until(lambda: seen.exists() and len(seen.read_text().splitlines()) == 2,
                       timeout=60, what="both commands running")  # fmt: skip
            procs = [pool.pid, *descendants(pool.pid)]
            assert len(procs) >= 5  # supervisor, 2 children, 2 commands (and helpers)
            leaks = {pid: c for pid, c in _all_cmdlines().items() if SECRET in c}
            assert leaks == {}, leaks
            wait_until(lambda: q.get(bad).state.value == "failed" and
                       q.get(ok).state.value == "succeeded", timeout=60)  # fmt: skip
        assert seen.read_text().splitlines() == [loc, loc]
        for args in (["workers"], ["workers", "--json"], ["errors"], ["ls", "--json"],
                     ["show", str(bad)], ["doctor"]):  # fmt: skip
            r = subprocess.run([sys.executable, "-m", "jobq", *args], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)  # fmt: skip
            assert SECRET not in r.stdout + r.stderr, args
        pool.terminate()
        assert pool.wait(60) == 0
    finally:
        if pool.poll() is None:
            os.killpg(pool.pid, 9)
            pool.wait(10)
        log.close()
    text = (tmp_path / "pool.log").read_text()
    assert SECRET not in text
    assert "postgres:***@" in text  # the pool does say where it runs, masked

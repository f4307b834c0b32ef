"""A server that is down: `jobq enqueue`, `ls`, `wait` and `work` exit 75 with one line (no
traceback, no password); `jobq wait` and `jobq errors -f` wake on NOTIFY and, once following,
outlive a restart of their server.

Every test here stops or restarts a server of its own.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_pg_pool import pg_backend_ready

import jobq
from jobq.backend import Ending, Role, open_backend
from tests.helpers import wait_until
from tests.pgserver import PgServer, ServerUnavailable, start_server

ROOT = Path(__file__).resolve().parent.parent
SECRET = "pw-s3cr3t-Zq9"


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    """One server for this module, which its tests stop, start and restart."""
    if not pg_backend_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")
    try:
        s = start_server()
    except ServerUnavailable as e:
        pytest.skip(str(e))
    yield s
    s.destroy()


@pytest.fixture
def up(server: PgServer) -> PgServer:
    """The module's server, running."""
    with contextlib.suppress(subprocess.CalledProcessError):  # already running
        server.start()
    return server


def _with_password(loc: str) -> str:
    return loc.replace("postgresql:///", f"postgresql://postgres:{SECRET}@/", 1)


def _env(loc: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), JOBQ_DB=loc)
    env.pop("NOTIFY_SOCKET", None)
    return env


def _jobq(loc: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobq", *args], env=_env(loc), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["enqueue", "x"],
        ["ls"],
        ["wait", "1"],
        ["work", "-c", "1", "--exec", "x=true"],
    ],
    ids=["enqueue", "ls", "wait", "work"],
)
def test_a_stopped_server_is_exit_75_and_one_line(up: PgServer, args: list[str]) -> None:
    loc = _with_password(up.location())
    with jobq.Queue(loc) as q:  # the schema exists: only the server is missing below
        q.enqueue("x")
    up.stop()
    r = _jobq(loc, *args)
    assert r.returncode == 75, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and SECRET not in r.stderr + r.stdout
    assert r.stdout == ""


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
        return proc.stdout.readline()
    finally:
        sel.close()


def test_wait_wakes_on_notify(up: PgServer) -> None:
    """`jobq wait` returns well under a second after the job ends (its fallback poll is 1 s,
    so only the NOTIFY can make it this fast, every time)."""
    loc = up.location()
    lags = []
    with jobq.Queue(loc) as q:
        for _ in range(5):
            job_id = q.enqueue("x")
            b = open_backend(loc, Role.WORKER)
            (job,) = b.claim("t:1:ab/1", time.time(), 60)
            proc = subprocess.Popen([sys.executable, "-m", "jobq", "wait", str(job_id)],
                                    env=_env(loc), stdout=subprocess.PIPE, text=True)  # fmt: skip
            try:
                time.sleep(1.5)  # `jobq wait` is up and waiting (imports, first read)
                assert proc.poll() is None
                t0 = time.monotonic()
                assert job.lease_token is not None
                b.complete_many([(job.id, job.lease_token, None, None)], time.time())
                line = _read_line(proc, 10)
                lags.append(time.monotonic() - t0)
                assert line == f"{job_id} succeeded\n"
                assert proc.wait(10) == 0
            finally:
                proc.kill()
                proc.wait()
                b.close()
    assert sorted(lags)[2] < 0.3 and max(lags) < 0.9, lags


def test_wait_outlives_a_restart(up: PgServer) -> None:
    """`jobq wait` that started fine goes on through a server restart (exit 75 is for a
    server that is down when it starts)."""
    loc = up.location()
    with jobq.Queue(loc) as q:
        job_id = q.enqueue("x")
    proc = subprocess.Popen([sys.executable, "-m", "jobq", "wait", str(job_id)], env=_env(loc),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(1.5)
        up.restart()
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()
        b = open_backend(loc, Role.WORKER)
        try:
            (job,) = b.claim("t:1:ab/1", time.time(), 60)
            assert job.lease_token is not None
            b.complete_many([(job.id, job.lease_token, None, None)], time.time())
        finally:
            b.close()
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out == f"{job_id} succeeded\n" and "Traceback" not in err


def test_errors_follow_wakes_on_notify_and_outlives_a_restart(up: PgServer) -> None:
    loc = up.location()
    b = open_backend(loc, Role.WORKER)
    proc = subprocess.Popen([sys.executable, "-m", "jobq", "errors", "-f"], env=_env(loc),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def fail_one(message: str) -> float:
        with jobq.Queue(loc) as q:
            q.enqueue("x", max_attempts=1)
        (job,) = b.claim("t:1:ab/1", time.time(), 60)
        assert job.lease_token is not None
        t0 = time.monotonic()
        b.end_attempt(job.id, job.lease_token, time.time(), Ending.FAIL, message)
        line = _read_line(proc, 10)
        assert line is not None and message in line, line
        return time.monotonic() - t0

    try:
        time.sleep(1.5)  # following
        lags = [fail_one(f"boom {i}") for i in range(3)]
        assert max(lags) < 0.9, lags
        cpu = _cpu_of(proc.pid)
        time.sleep(2.0)
        assert _cpu_of(proc.pid) - cpu < 0.2, "an idle follower must not poll fast"
        up.restart()
        b.close()
        b = open_backend(loc, Role.WORKER)
        wait_until(lambda: fail_one("after restart") < 5, timeout=30)
        assert proc.poll() is None, "errors -f must go on after a restart"
    finally:
        proc.kill()
        _out, err = proc.communicate(timeout=10)
        b.close()
    assert "Traceback" not in err


def test_a_pool_starts_once_its_server_is_back_after_a_child_respawn(
    up: PgServer, tmp_path: Path
) -> None:
    """Children respawned while the server is down wait for it instead of counting as start-up
    failures (five of those would stop the pool)."""
    loc = up.location()
    with jobq.Queue(loc) as q:
        first = q.enqueue("x")
    log = open(tmp_path / "pool.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobq", "work", "-c", "2", "--exec", "x=true", "--lease", "5s"],
        env=_env(loc), stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        with jobq.Queue(loc) as q:
            wait_until(lambda: q.get(first).state.value == "succeeded", timeout=30)
        up.stop()
        # kill the children: the supervisor respawns them into a server that is down
        from tests.helpers import worker_children

        for pid in worker_children(proc.pid):
            os.kill(pid, 9)
        # long enough for MAX_START_FAILURES respawns (one a second per place) to fail
        time.sleep(8.0)
        assert proc.poll() is None, (tmp_path / "pool.log").read_text()[-2000:]
        up.start()
        with jobq.Queue(loc) as q:
            second = q.enqueue("x")
            wait_until(lambda: q.get(second).state.value == "succeeded", timeout=30)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)
        log.close()
    text = (tmp_path / "pool.log").read_text()
    assert "Traceback" not in text
    assert "keep failing" not in text


def test_cpu_helper_reads_this_process() -> None:
    """The /proc CPU reading the follower test relies on agrees with getrusage."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    assert abs(_cpu_of(os.getpid()) - (r.ru_utime + r.ru_stime)) < 0.1

"""The dashboard on both backends: it starts, shows jobs, follows other processes' changes by its
waker alone (LISTEN/NOTIFY on PostgreSQL), never shows a password, and outlives a server restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import backend_location, need_backend
from test_pg_pool import pg_backend_ready

from devtools.screenshots import SIZE, first_load
from jobq import JobState, Queue
from jobq.backend import Ending, Role, open_backend
from tests.pgserver import PgServer, ServerUnavailable, start_server
from tui.app import JobqApp, make_app

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
FALLBACK = 60.0  # the loader's timer never fires within these tests: only wake-ups count
BOUND = 3.0  # seconds for a change to reach the screen on a loaded 2-core machine
SECRET = "pw-s3cr3t-Zq9"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgresql"])
def loc(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql" and not pg_backend_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")
    need_backend(request.param, request)
    return backend_location(request.param, tmp_path)


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    if not pg_backend_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")
    try:
        server = start_server()
    except ServerUnavailable as e:
        pytest.skip(str(e))
    yield server
    server.destroy()


def seed(loc: str) -> dict[str, int]:
    """A pending, a running and a failed job (through the public API and the backend)."""
    with Queue(loc) as q:
        pending = q.enqueue("email.send", {"to": "a@example.com"}, priority="high")
        running = q.enqueue("report.build", {"month": 11})
        failed = q.enqueue("images.resize", {"path": "x.png"}, max_attempts=1)
    b = open_backend(loc, Role.WORKER)
    try:
        now = time.time()
        from jobq.backend import ClaimFilter

        (r,) = b.claim("seed:1:ab/1", now, 300, ClaimFilter(types=("report.build",)))
        (f,) = b.claim("seed:1:ab/1", now, 300, ClaimFilter(types=("images.resize",)))
        assert f.lease_token is not None
        state = b.end_attempt(f.id, f.lease_token, now, Ending.FAIL, "ValueError: too large")
        assert state is JobState.FAILED and r.id == running
    finally:
        b.close()
    return {"pending": pending, "running": running, "failed": failed}


def _enqueue_elsewhere(loc: str, job_type: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), JOBQ_DB=loc)  # the URL in the environment
    argv = [sys.executable, "-m", "jobq", "enqueue", job_type, "--priority", "critical"]
    out = subprocess.run(argv, check=True, env=env, timeout=30, capture_output=True, text=True)
    return out.stdout.strip()


def _on_screen(app: JobqApp, key: str) -> bool:
    return any(k.value == key for k in app.main.table.rows)


async def _until_on_screen(pilot: object, app: JobqApp, key: str, bound: float) -> float:
    start = time.monotonic()
    while not _on_screen(app, key):
        if time.monotonic() - start > bound:
            pytest.fail(f"job {key} not on screen within {bound} s")
        await pilot.pause(0.01)  # type: ignore[attr-defined]
    return time.monotonic() - start


async def test_dashboard_starts_and_shows_jobs(loc: str) -> None:
    ids = seed(loc)
    app = make_app(loc)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        snap = app.main.snapshot
        assert snap is not None
        counts = snap.header.counts
        assert (counts["pending"], counts["running"], counts["failed"]) == (1, 1, 1)
        assert _on_screen(app, str(ids["pending"]))
        await pilot.press("3")  # the Failed tab
        for _ in range(300):
            if _on_screen(app, str(ids["failed"])):
                break
            await pilot.pause(0.01)
        assert _on_screen(app, str(ids["failed"]))


async def test_dashboard_follows_another_process_without_its_timer(loc: str) -> None:
    seed(loc)
    app = JobqApp(loc, fallback=FALLBACK)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        took = []
        for i in range(3):
            key = _enqueue_elsewhere(loc, f"elsewhere.{i}")
            took.append(await _until_on_screen(pilot, app, key, BOUND))
        assert max(took) < BOUND


async def test_dashboard_header_never_shows_a_password(pg_server: PgServer) -> None:
    if not pg_backend_ready():
        pytest.skip("the PostgreSQL store is not in this build yet")
    loc = pg_server.location().replace("postgresql:///", f"postgresql://postgres:{SECRET}@/", 1)
    seed(loc)
    app = make_app(loc)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        assert SECRET not in app.display_path and "***" in app.display_path
        svg = app.export_screenshot()
        assert SECRET not in svg and "postgres:***@" in svg.replace("&#160;", " ")


async def test_dashboard_goes_on_after_a_server_restart(own_server: PgServer) -> None:
    loc = own_server.location()
    seed(loc)
    app = JobqApp(loc, fallback=FALLBACK)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        own_server.restart()
        await pilot.pause(0.2)
        key = _enqueue_elsewhere(loc, "after.restart")
        # the loader's waker reconnects (backoff <= 2 s) and its wake-up reloads the screen
        took = await _until_on_screen(pilot, app, key, 10.0)
        assert app.fatal is None and app.is_running
        print(f"on screen {took:.2f}s after the enqueue that followed the restart")

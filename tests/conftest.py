"""Shared fixtures: a fresh queue file per test, a fake clock, and wait_until()."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from workerapp import Pools, pools_for

from jobq import Queue
from jobq.backend import Role, open_backend
from jobq.store import Store
from tests import pgserver
from tests.helpers import wait_until as wait_until  # re-exported: many tests import it from here
from tests.pgserver import PgServer, ServerUnavailable, start_server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

ROOT = Path(__file__).resolve().parent.parent
SLOW = os.environ.get("JOBQ_SLOW") == "1"


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """Path of a queue file that does not exist yet."""
    return str(tmp_path / "queue.db")


@pytest.fixture
def store(db_path: str) -> Iterator[Store]:
    """A Store on a fresh queue file."""
    s = Store(db_path)
    yield s
    s.close()


# Every backend the contract tests run on; the next backend adds itself here (and its location).
BACKENDS = ["sqlite", "postgresql"]

# The session's server, once `pg_server` has started it, kept in tests.pgserver: this file is
# loaded twice (as pytest's conftest and as tests.conftest by tests that import its helpers), and
# both copies must see the same server.


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the session (tests/pgserver.py). Without one, the
    PostgreSQL tests skip with the reason, except in CI (`CI` or TESTS_REQUIRE_PG=1 set, as
    .ci/run does), where they fail."""
    try:
        server = start_server()
    except ServerUnavailable as e:
        if os.environ.get("CI") or os.environ.get("TESTS_REQUIRE_PG") == "1":
            pytest.fail(f"CI must run the PostgreSQL tests: {e}")
        pytest.skip(str(e))
    pgserver.SESSION = server
    yield server
    pgserver.SESSION = None
    server.destroy()


def backend_location(kind: str, tmp_path: Path) -> str:
    """A location for a fresh, empty queue of backend `kind` (for postgresql, the `pg_server`
    fixture must be active: ask for it, or call `need_backend` first)."""
    if kind == "sqlite":
        return "sqlite:" + str(tmp_path / "queue.db")
    if kind == "postgresql":
        assert pgserver.SESSION is not None, "the pg_server fixture is not active"
        return pgserver.SESSION.location()
    raise AssertionError(f"no test location for backend {kind!r}")


def need_backend(kind: str, request: pytest.FixtureRequest) -> None:
    """Start what backend `kind` needs for this test (the session's server for postgresql)."""
    if kind == "postgresql":
        request.getfixturevalue("pg_server")


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """Each backend's name in turn, with what it needs started."""
    need_backend(request.param, request)
    return str(request.param)


@pytest.fixture
def location(backend_kind: str, tmp_path: Path) -> str:
    """A fresh, empty queue's location on each backend in turn (a --db / JOBQ_DB value)."""
    return backend_location(backend_kind, tmp_path)


@pytest.fixture
def backend(backend_kind: str, tmp_path: Path) -> Iterator[Backend]:
    """A fresh queue on each backend, opened through `open_backend`, as a pool opens it: the
    contract tests (state machine, rescue, Hypothesis model) run on this fixture only."""
    b = open_backend(backend_location(backend_kind, tmp_path), Role.WORKER)
    yield b
    b.close()


@pytest.fixture
def jobq_env(db_path: str) -> dict[str, str]:
    """Environment for subprocesses: JOBQ_DB set, the repo importable."""
    env = dict(os.environ)
    env["JOBQ_DB"] = db_path
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    return env


@pytest.fixture
def jobq_cmd() -> list[str]:
    """argv prefix that runs the jobq CLI with this interpreter."""
    return [sys.executable, "-m", "jobq"]


@pytest.fixture
def pools(db_path: str, tmp_path: Path) -> Iterator[Pools]:
    """Start worker pools on the test's queue file; every pool is killed at teardown."""
    with pools_for(db_path, tmp_path) as p:
        yield p


@pytest.fixture
def queue(db_path: str) -> Iterator[Queue]:
    """A jobq.Queue on the test's queue file."""
    with Queue(db_path) as q:
        yield q


def set_run_at(location: str, job_id: int, run_at: float) -> None:
    """Time travel for one job: set its run_at (epoch seconds) by plain SQL on either backend
    (tests that would otherwise wait out a backoff)."""
    from jobq.backend import parse_location

    loc = parse_location(location)
    if loc.kind == "sqlite":
        import sqlite3

        conn = sqlite3.connect(loc.target)
        try:
            with conn:
                conn.execute("UPDATE jobs SET run_at = ? WHERE id = ?", (run_at, job_id))
        finally:
            conn.close()
        return
    import psycopg

    from jobq.store.postgres.connection import split_url

    url, schema = split_url(location)
    with psycopg.connect(url) as pg:
        pg.execute("SELECT set_config('search_path', %s, false)", (f'"{schema}"',))
        pg.execute("UPDATE jobs SET run_at = to_timestamp(%s) WHERE id = %s", (run_at, job_id))


def is_sqlite(location: str) -> bool:
    """Whether `location` names a queue file (file-only checks such as PRAGMA integrity_check)."""
    from jobq.backend import parse_location

    return parse_location(location).kind == "sqlite"

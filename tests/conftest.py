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
from tests.helpers import wait_until as wait_until  # re-exported: many tests import it from here

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
BACKENDS = ["sqlite"]


def backend_location(kind: str, tmp_path: Path) -> str:
    """A location for a fresh, empty queue of backend `kind`."""
    if kind == "sqlite":
        return "sqlite:" + str(tmp_path / "queue.db")
    raise AssertionError(f"no test location for backend {kind!r}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh queue on each backend, opened through `open_backend`, as a pool opens it: the
    contract tests (state machine, rescue, Hypothesis model) run on this fixture only."""
    b = open_backend(backend_location(request.param, tmp_path), Role.WORKER)
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

"""Unique keys are scoped to (type, key): store, retry, Python API, the CLI (in a subprocess),
on every backend; and a queue file made by the version-1 schema."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import jobq
from jobq.backend import ActionResult, Role, open_backend
from jobq.store.sqlite.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION
from tests.factories import T0, claim_one, enqueue, make_job, new_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend


@pytest.fixture
def store(backend: Backend) -> Backend:
    """A fresh queue on each backend in turn."""
    return backend


@pytest.fixture
def env(jobq_env: dict[str, str], location: str) -> dict[str, str]:
    """The subprocess environment with JOBQ_DB naming a fresh queue on each backend."""
    return dict(jobq_env, JOBQ_DB=location)


def test_the_same_key_in_two_types_makes_two_jobs(store: Backend) -> None:
    resize = enqueue(store, type="resize", unique_key="K")
    email = enqueue(store, type="email.send", unique_key="K")
    assert email != resize
    assert enqueue(store, type="resize", unique_key="K") == resize
    assert enqueue(store, type="email.send", unique_key="K") == email
    got = store.enqueue([new_job("a", unique_key="k"), new_job("b", unique_key="k"),
                         new_job("a", unique_key="k")], T0)  # fmt: skip
    assert got[0] == got[2] and len(set(got)) == 2


def test_enqueue_unique_says_which_job_holds_the_key(store: Backend) -> None:
    first, existing = store.enqueue_unique(new_job("resize", unique_key="K"), T0)
    assert existing is None
    assert store.enqueue_unique(new_job("resize", unique_key="K"), T0) == (first, "pending")
    claim_one(store, first, T0)
    assert store.enqueue_unique(new_job("resize", unique_key="K"), T0) == (first, "running")
    other, existing = store.enqueue_unique(new_job("email.send", unique_key="K"), T0)
    assert existing is None and other != first


def test_retry_is_blocked_only_by_a_job_of_the_same_type(store: Backend) -> None:
    failed = make_job(store, "failed", type="resize", unique_key="K")
    enqueue(store, type="email.send", unique_key="K")  # another type: no conflict
    assert store.retry([failed.id], T0) == {failed.id: ActionResult.RETRIED}
    cancelled = make_job(store, "cancelled", type="pdf", unique_key="P")
    enqueue(store, type="pdf", unique_key="P")
    assert store.retry([cancelled.id], T0) == {cancelled.id: ActionResult.DUPLICATE_UNIQUE_KEY}


def test_python_api_tells_a_new_job_from_an_existing_one(location: str) -> None:
    with jobq.Queue(location) as q:
        job_id, created = q.enqueue_unique("resize", {"p": 1}, unique_key="K")
        assert created
        assert q.enqueue_unique("resize", {"p": 2}, unique_key="K") == (job_id, False)
        assert q.enqueue("resize", unique_key="K") == job_id
        other, created = q.enqueue_unique("email.send", unique_key="K")
        assert created and other != job_id
        assert q.get(job_id).payload == {"p": 1}


def jobq_run(env: dict[str, str], cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_scopes_keys_by_type_and_says_when_it_returned_an_existing_job(
    env: dict[str, str], jobq_cmd: list[str], location: str
) -> None:
    """The issue: `enqueue email.send --unique-key K` returned a pending resize job's id."""
    jobq_env = env
    r = jobq_run(jobq_env, jobq_cmd, "enqueue", "resize", "--unique-key", "K")
    assert (r.returncode, r.stdout, r.stderr) == (0, "1\n", "")
    r = jobq_run(jobq_env, jobq_cmd, "enqueue", "email.send", "--unique-key", "K")
    assert (r.returncode, r.stdout, r.stderr) == (0, "2\n", "")
    r = jobq_run(jobq_env, jobq_cmd, "enqueue", "resize", "--unique-key", "K")
    assert (r.returncode, r.stdout) == (0, "1\n")
    assert r.stderr == "jobq: job 1 (resize) with unique key K is already pending\n"
    r = jobq_run(jobq_env, jobq_cmd, "enqueue", "resize", "--unique-key", "K", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"id": 1, "existing": True}
    assert "already pending" in r.stderr
    store = open_backend(location, Role.WORKER)
    claim_one(store, 1, time.time() + 1)
    store.close()
    r = jobq_run(jobq_env, jobq_cmd, "enqueue", "resize", "--unique-key", "K")
    assert (r.returncode, r.stdout) == (0, "1\n")
    assert r.stderr == "jobq: job 1 (resize) with unique key K is already running\n"
    r = jobq_run(jobq_env, jobq_cmd, "enqueue", "resize", "--unique-key", "K\x1b[2J", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"id": 3}  # new: no "existing"
    r = jobq_run(jobq_env, jobq_cmd, "enqueue", "resize", "--unique-key", "K\x1b[2J")
    assert r.stdout == "3\n" and "\x1b" not in r.stderr and "already pending" in r.stderr


def test_ndjson_keys_are_per_type_too(env: dict[str, str], jobq_cmd: list[str]) -> None:
    jobq_env = env
    lines = "".join(json.dumps({"type": t, "unique_key": "K"}) + "\n"
                    for t in ("a", "b", "a"))  # fmt: skip
    r = subprocess.run([*jobq_cmd, "enqueue", "--ndjson", "-"], env=jobq_env, input=lines,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (r.returncode, r.stdout) == (0, "1\n2\n1\n"), r.stderr


def _version_1_file(path: str) -> None:
    """A queue file as jobq with schema version 1 made it, with an active keyed job and a pool."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for sql in MIGRATIONS[0]:
        conn.execute(sql)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO jobs (type, queue, payload, state, run_at, unique_key, created_at)"
                 " VALUES ('resize', 'default', '{}', 'pending', 0, 'K', 0)")  # fmt: skip
    conn.execute("INSERT INTO workers (id, name, host, pid, started_at, heartbeat_at,"
                 " concurrency, queues, types) VALUES ('old', 'old', 'h', 1, 0, 0, 2, '[]',"
                 " '[\"resize\", \"re*\"]')")  # fmt: skip
    conn.close()


def test_a_version_1_file_is_migrated_and_keeps_working(
    tmp_path: Path, jobq_env: dict[str, str], jobq_cmd: list[str]
) -> None:
    path = str(tmp_path / "v1.db")
    _version_1_file(path)
    env = {**jobq_env, "JOBQ_DB": path}
    r = jobq_run(env, jobq_cmd, "enqueue", "email.send", "--unique-key", "K")
    assert (r.returncode, r.stdout, r.stderr) == (0, "2\n", "")
    r = jobq_run(env, jobq_cmd, "enqueue", "resize", "--unique-key", "K")
    assert (r.returncode, r.stdout) == (0, "1\n") and "already pending" in r.stderr
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    [index] = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs_unique'").fetchone()
    assert "(type, unique_key)" in index
    # the lookup walks the new index, not the table
    plan = " ".join(str(r[3]) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE type = 'a' AND unique_key = 'k'"
        " AND state IN ('pending', 'running')"))  # fmt: skip
    assert "jobs_unique" in plan, plan
    conn.close()
    # the pool registered by the old version: its types held handler names and globs together
    r = jobq_run(env, jobq_cmd, "workers", "--json")
    [pool] = json.loads(r.stdout)
    assert pool["types"] == ["resize", "re*"] and pool["type_globs"] is None
    r = jobq_run(env, jobq_cmd, "show", "1", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["waiting"]["code"] == "no_pool"


def test_cli_retry_names_the_unique_key_conflict(
    env: dict[str, str], jobq_cmd: list[str], location: str
) -> None:
    jobq_env = env
    store = open_backend(location, Role.PRODUCER)
    held = make_job(store, "failed", now=time.time(), type="pdf", unique_key="P")
    free = make_job(store, "failed", now=time.time(), type="resize", unique_key="P")
    store.close()
    assert jobq_run(jobq_env, jobq_cmd, "enqueue", "pdf", "--unique-key", "P").returncode == 0
    r = jobq_run(jobq_env, jobq_cmd, "retry", str(held.id))
    assert r.returncode == 1
    assert r.stderr == (f"jobq: error: cannot retry job {held.id}: a pending or running job of "
                        "its type holds its unique key\n")  # fmt: skip
    r = jobq_run(jobq_env, jobq_cmd, "retry", str(free.id))
    assert (r.returncode, r.stdout) == (0, f"{free.id} retried\n")


def test_enqueue_unique_takes_after_like_enqueue(location: str) -> None:
    with jobq.Queue(location) as q:
        first = q.enqueue("a")
        job_id, created = q.enqueue_unique("b", unique_key="k", after=first)
        assert created
        assert q.dependencies_of([job_id]) == {job_id: [(first, jobq.JobState.PENDING)]}
        assert q.enqueue_unique("b", unique_key="k", after=first) == (job_id, False)

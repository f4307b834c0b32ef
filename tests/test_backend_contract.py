"""The backend seam itself: locations pick a backend, a password is never printed, a server that
is down is one line and exit 75, and the operator actions' outcomes are typed. (The state
machine, rescue and model contract tests live in test_store_machine.py, test_store_rescue.py
and test_store_hypothesis.py, over `backend`.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobq import ActionResult, InvalidInput, Queue
from jobq.backend import (
    ActionOutcome,
    JobFilter,
    Role,
    display_location,
    open_backend,
    parse_location,
)
from jobq.model import JobState
from tests.conftest import ROOT
from tests.factories import T0, make_job, new_job

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

URL = "postgresql://bob:s3cret@db.example:5432/jobs"


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("/var/lib/q.db", "sqlite", "/var/lib/q.db"),
        ("q.db", "sqlite", "q.db"),
        ("sqlite:/var/lib/q.db", "sqlite", "/var/lib/q.db"),
        ("sqlite:///var/lib/q.db", "sqlite", "/var/lib/q.db"),
        ("sqlite:rel/q.db", "sqlite", "rel/q.db"),
        (URL, "postgresql", URL),
        ("postgres://h/db", "postgresql", "postgres://h/db"),
    ],
)
def test_a_location_names_its_backend(text: str, kind: str, target: str) -> None:
    loc = parse_location(text)
    assert (loc.kind, loc.target) == (kind, target)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (URL, "postgresql://bob:***@db.example:5432/jobs"),
        ("postgres://bob@h/db", "postgres://bob@h/db"),  # no password: nothing to hide
        ("postgresql://h/db", "postgresql://h/db"),
        ("postgresql://a:b:c@h/db?sslmode=require", "postgresql://a:***@h/db?sslmode=require"),
        (
            "postgresql:///db?host=/run&password=pw&user=u",
            "postgresql:///db?host=/run&password=***&user=u",
        ),
        ("postgresql://h/db?PASSWORD=pw", "postgresql://h/db?PASSWORD=***"),
        ("/tmp/a:b@c.db", "/tmp/a:b@c.db"),  # a path is a path, whatever its characters
    ],
)
def test_a_password_is_never_displayed(text: str, shown: str) -> None:
    assert display_location(text) == shown
    assert str(parse_location(text)) == shown


def _jobq(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "jobq", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip


# A server that refuses connections at once: nothing listens on port 1 of this host.
DOWN = "postgresql://bob:s3cret@127.0.0.1:1/jobs"


@pytest.mark.parametrize(
    "args",
    [
        ["enqueue", "x"],
        ["enqueue", "--ndjson", "-"],
        ["ls"],
        ["show", "1"],
        ["stats"],
        ["doctor"],
    ],
)
def test_a_server_that_is_down_is_one_line_and_exit_75(tmp_path: Path, args: list[str]) -> None:
    out = _jobq(tmp_path, "--db", DOWN, *args)
    assert out.returncode == 75, (out.stdout, out.stderr)
    assert out.stderr.startswith(
        "jobq: error: cannot reach the PostgreSQL server of postgresql://bob:***@127.0.0.1:1/jobs"
    ), out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "s3cret" not in out.stdout + out.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is written, no file named after the URL"


def test_without_psycopg_a_postgresql_location_names_the_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from jobq.cli import main\n"
            f"main(['--db', {URL!r}, 'ls'])\n")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr == (
        "jobq: error: the PostgreSQL backend needs psycopg: pip install 'jobq[postgres]'\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_db_path_masks_the_password(tmp_path: Path) -> None:
    out = _jobq(tmp_path, "--db", URL, "db", "path")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "postgresql://bob:***@db.example:5432/jobs\n"


def test_a_sqlite_prefix_opens_the_file_it_names(tmp_path: Path) -> None:
    out = _jobq(tmp_path, "--db", "sqlite:sub/q.db", "enqueue", "x")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "sub" / "q.db").exists()
    path = _jobq(tmp_path, "--db", "sqlite:sub/q.db", "db", "path")
    assert path.stdout == str(tmp_path / "sub" / "q.db") + "\n"
    with Queue(str(tmp_path / "sub" / "q.db")) as q:
        assert [j.type for j in q.list()] == ["x"]


@pytest.mark.parametrize(
    "query", ["schema=Bad", "schema=1x", "schema=a-b", "schema=" + "x" * 59, "schema="]
)
def test_a_bad_schema_name_is_refused_before_connecting(query: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid schema name"):
        open_backend(f"{DOWN}?{query}", Role.PRODUCER)  # refused before any connection


@pytest.mark.parametrize("role", [Role.READER, Role.OPERATOR])
def test_read_only_roles_never_create_a_queue(tmp_path: Path, role: Role) -> None:
    from jobq import QueueFileError

    with pytest.raises(QueueFileError):
        open_backend(str(tmp_path / "missing.db"), role)
    assert list(tmp_path.iterdir()) == []


def test_action_outcomes_are_typed(backend: Backend) -> None:
    pending = make_job(backend, "pending", now=T0)
    running = make_job(backend, "running", now=T0)
    done = make_job(backend, "succeeded", now=T0)
    got = backend.cancel([pending.id, running.id, done.id, 999], T0)
    assert [got[i].result for i in (pending.id, running.id, done.id, 999)] == [
        ActionResult.CANCELLED,
        ActionResult.CANCEL_REQUESTED,
        ActionResult.WRONG_STATE,
        ActionResult.NOT_FOUND,
    ]
    assert got[done.id].state is JobState.SUCCEEDED
    assert [str(got[i]) for i in (pending.id, running.id, done.id, 999)] == [
        "cancelled", "cancel requested", "succeeded", "not found"
    ]  # fmt: skip
    assert got[running.id].done and not got[done.id].done
    assert backend.cancel([pending.id], T0) == {pending.id: ActionOutcome(ActionResult.CANCELLED)}


def test_one_job_filter_selects_for_list_count_and_ids(backend: Backend) -> None:
    ids = [make_job(backend, "failed", now=T0, type=f"mail.{i}").id for i in range(3)]
    make_job(backend, "failed", now=T0, type="image.x")
    f = JobFilter(state="failed", type_glob="mail.*", limit=2)
    assert [j.id for j in backend.list_jobs(T0, f)] == ids[::-1][:2]
    assert backend.count_jobs(T0, f) == 3  # limit and page do not apply to a count
    assert backend.matching_ids(T0, f) == ids
    page2 = JobFilter(state="failed", type_glob="mail.*", limit=2, after=ids[1])
    assert [j.id for j in backend.list_jobs(T0, page2)] == [ids[0]]


def test_the_waker_wakes_on_another_writers_commit(backend: Backend, tmp_path: Path) -> None:
    if backend.location.startswith("postgresql"):
        pytest.importorskip("jobq.store.postgres.waker", reason="the LISTEN waker (pgpool)")
    with backend.waker() as waker:
        other = open_backend(backend.location, Role.PRODUCER)
        try:
            token = backend.change_token()
            other.enqueue([new_job()], T0)
            assert waker.wait(10.0), "no wake-up for a commit by another connection"
            assert backend.change_token() != token
        finally:
            other.close()


def test_finished_order_pages_by_finish_time_latest_first(backend: Backend) -> None:
    """order="finished" (the Succeeded tab): newest finish first, ties by id, keyset pages."""
    from jobq.backend import ClaimFilter, JobFilter
    from tests.factories import new_job as _new_job

    now = 1_800_000_000.0
    finish: dict[int, float] = {}
    for n, at in enumerate([now - 5, now - 50, now - 30, now - 30, now - 40]):
        backend.enqueue([_new_job("t", payload_json=f'{{"n": {n}}}')], now - 100)
        (job,) = backend.claim("w/1", now - 90, 30, ClaimFilter(types=("t",)))
        backend.complete_many([(job.id, job.lease_token or "", None, None)], at)
        finish[job.id] = at
    want = sorted(finish, key=lambda i: (-finish[i], -i))
    assert want != sorted(finish, reverse=True)  # not the id order
    page = backend.list_jobs(now, JobFilter(state="succeeded", order="finished", limit=10))
    assert [j.id for j in page] == want
    seen: list[int] = []
    after: tuple[float, int] | None = None
    while True:  # pages of 2 cut through the tie at now - 30
        got = backend.list_jobs(now, JobFilter(state="succeeded", order="finished", limit=2,
                                               after=after))  # type: ignore[arg-type]  # fmt: skip
        seen += [j.id for j in got]
        if len(got) < 2:
            break
        last = got[-1]
        assert last.finished_at is not None
        after = (last.finished_at, last.id)
    assert seen == want


def test_a_snapshot_reads_one_instant(location: str) -> None:
    """`snapshot()`: the reads inside see the queue as of its first read, whatever another
    process commits meanwhile; a snapshot inside a snapshot is the outer one; after it, the
    commits show (the dashboard reads its header and its list in one)."""
    reader = Queue(location)
    writer = Queue(location)
    try:
        first = writer.enqueue("t")
        with reader.snapshot():
            assert [j.id for j in reader.list()] == [first]
            second = writer.enqueue("t")
            writer.cancel(first)
            with reader.snapshot():
                assert reader.counts()["pending"] == 1
            assert [(j.id, j.state) for j in reader.list()] == [(first, JobState.PENDING)]
            assert reader.count("cancelled") == 0
        assert [(j.id, j.state) for j in reader.list()] == [
            (second, JobState.PENDING), (first, JobState.CANCELLED)
        ]  # fmt: skip
    finally:
        reader.close()
        writer.close()

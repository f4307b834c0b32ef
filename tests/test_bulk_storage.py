"""Bulk enqueue (`enqueue_many`, `jobq enqueue --ndjson`) checked where it matters: the rows in the
file. Every payload is stored as exactly the text single `enqueue` stores, a batch is one durable
transaction (all or nothing, even under SIGKILL), committed with synchronous=FULL."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobq import Queue, bulk, ndjson
from jobq.basics import NewJob
from jobq.store import Store
from tests.conftest import ROOT, wait_until
from tests.factories import T0
from tests.test_ndjson import pipelining

LIMIT = 1024 * 1024
HOLD_ENV = "JOBQ_TEST_HOLD_BULK"  # the test-only hook in jobq/store/writes.py

# ---- JSON values, the awkward ones on purpose -------------------------------------------------

EDGE = [
    12345678901234567890, 2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64, 10**40, -(10**300),
    -0.0, 0.0, 1.0, 1e308, 1.7976931348623157e308, 5e-324, 1e15, 1e16, 0.1, -1.5e-7,
    True, False, None, 0, 1, -1, "", "x\u0000y", "\u0000", "\u2028\u2029", "😀", "日本", '"\\/',
    "\x7f\x1f\n\t", "[b]x[/b]", [], {}, [True, 1, 1.0, "1", None], {"": None, "\u0000": [-0.0]},
    {"k": 2**80, "n": [12345678901234567890, {"f": 1e308}]},
]  # fmt: skip

_scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(-(10**60), 10**60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10)
    | st.sampled_from(EDGE[:-3])
)  # fmt: skip
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


def typed(value: object) -> object:
    """`value` with every JSON type made explicit: true is not 1, 1.0 is not 1, -0.0 is not 0.0."""
    if value is None or isinstance(value, (bool, str)):
        return (type(value).__name__, value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, list):
        return ("array", [typed(v) for v in value])
    assert isinstance(value, dict)
    return ("object", [(k, typed(v)) for k, v in value.items()])


# ---- reading the file back --------------------------------------------------------------------


def stored(db: str) -> list[tuple[str, str, str, str]]:
    """(type, queue, SQLite type of the payload, payload) of every job, in id order, read by a
    plain connection."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT type, queue, typeof(payload), payload FROM jobs ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def count(db: str) -> int:
    conn = sqlite3.connect(db)
    try:
        n: int = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        return n
    finally:
        conn.close()


Job = tuple[str, str, object]  # type, queue, payload


def single(db: str, jobs: Sequence[Job]) -> list[tuple[str, str, str, str]]:
    """The rows single `Queue.enqueue` writes for `jobs`: the reference."""
    with Queue(db) as q:
        for type_, queue, payload in jobs:
            q.enqueue(type_, payload, queue=queue)  # type: ignore[arg-type]
    return stored(db)


def many(db: str, jobs: Sequence[Job]) -> list[tuple[str, str, str, str]]:
    """The rows `enqueue_many` writes: (type, payload) pairs in the default queue, mappings
    elsewhere (both ways in)."""
    items = [(t, p) if queue == "default" else {"type": t, "queue": queue, "payload": p}
             for t, queue, p in jobs]  # fmt: skip
    with Queue(db) as q:
        assert len(q.enqueue_many(items)) == len(jobs)  # type: ignore[arg-type]
    return stored(db)


def ndjson_text(jobs: Sequence[Job], ascii_only: bool = False) -> str:
    lines = []
    for type_, queue, payload in jobs:
        fields = {"type": type_, "payload": payload}
        if queue != "default":
            fields["queue"] = queue
        lines.append(json.dumps(fields, ensure_ascii=ascii_only) + "\n")
    return "".join(lines)


def same_rows(got: list[tuple[str, str, str, str]], want: list[tuple[str, str, str, str]]) -> None:
    assert [r[2] for r in got] == ["text"] * len(got)  # never an SQL integer, real or NULL
    assert got == want  # byte for byte
    assert [typed(json.loads(r[3])) for r in got] == [typed(json.loads(r[3])) for r in want]


_fresh = itertools.count()


def fresh(tmp_path: Path, name: str) -> str:
    return str(tmp_path / f"{name}-{next(_fresh)}.db")


_jobs = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["default", "q2"]), json_values),
    min_size=1, max_size=8,
)  # fmt: skip


# ---- every path stores what single enqueue stores ---------------------------------------------


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=_jobs, ascii_only=st.booleans(), pipelined=st.booleans())
def test_bulk_paths_store_exactly_what_single_enqueue_stores(
    tmp_path: Path, jobs: list[Job], ascii_only: bool, pipelined: bool
) -> None:
    want = single(fresh(tmp_path, "single"), jobs)
    assert [typed(json.loads(r[3])) for r in want] == [typed({} if p is None else p)
                                                        for _, _, p in jobs]  # fmt: skip
    db = fresh(tmp_path, "ndjson")
    Queue(db).close()  # a queue that exists: --ndjson may pipeline into it
    with pipelining() if pipelined else contextlib.nullcontext():
        same_rows(many(fresh(tmp_path, "many"), jobs), want)
        ndjson.enqueue(db, ndjson_text(jobs, ascii_only).encode(), LIMIT, T0)
    same_rows(stored(db), want)


def test_edge_values_top_level_and_nested(tmp_path: Path) -> None:
    jobs: list[Job] = [("a", "default", v) for v in EDGE] + [("b", "q2", [v]) for v in EDGE]
    jobs += [("a", "default", {"v": v}) for v in EDGE]
    want = single(fresh(tmp_path, "single"), jobs)
    same_rows(many(fresh(tmp_path, "many"), jobs), want)
    db = fresh(tmp_path, "ndjson")
    ndjson.enqueue(db, ndjson_text(jobs).encode(), LIMIT, T0)
    same_rows(stored(db), want)
    # the values the issue names, as single enqueue keeps them
    texts = [r[3] for r in want[: len(EDGE)]]
    for value, text in [(12345678901234567890, "12345678901234567890"),
                        (2**63, "9223372036854775808"), (-0.0, "-0.0"), (1e308, "1e+308"),
                        ("x\u0000y", '"x\\u0000y"'), (True, "true")]:  # fmt: skip
        assert texts[[typed(v) for v in EDGE].index(typed(value))] == text


def _cli(args: list[str], db: str, data: bytes, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "jobq", "--db", db, "enqueue", *args],
        input=data, capture_output=True, env=_env(**env), timeout=120,
    )  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NOTIFY_SOCKET", None)
    return {**env, **extra}


def test_cli_ndjson_stores_exactly_what_single_enqueue_stores(tmp_path: Path) -> None:
    jobs: list[Job] = [("a", "default", v) for v in EDGE] + [("b", "q2", {"v": v}) for v in EDGE]
    want = single(fresh(tmp_path, "single"), jobs)
    db = fresh(tmp_path, "cli")
    proc = _cli(["--ndjson", "-"], db, ndjson_text(jobs).encode())
    assert proc.returncode == 0, proc.stderr
    same_rows(stored(db), want)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(jobs=_jobs)
def test_cli_ndjson_sample_of_generated_values(tmp_path: Path, jobs: list[Job]) -> None:
    want = single(fresh(tmp_path, "single"), jobs)
    db = fresh(tmp_path, "cli")
    proc = _cli(["--ndjson", "-"], db, ndjson_text(jobs).encode())
    assert proc.returncode == 0, proc.stderr
    same_rows(stored(db), want)


# ---- null: one rule everywhere ----------------------------------------------------------------


def test_a_null_payload_means_no_payload_on_every_path(tmp_path: Path) -> None:
    """`payload: null`, `--payload null`, `enqueue(t, None)` and no payload at all store `{}`;
    a null inside a payload stays null."""
    db = fresh(tmp_path, "null")
    with Queue(db) as q:
        q.enqueue("api")
        q.enqueue("api", None)
        q.enqueue_many([("many", None), {"type": "many", "payload": None}, {"type": "many"}])
        q.enqueue("api", [None])
    data = b'{"type": "nd", "payload": null}\n{"type": "nd"}\n{"type": "nd", "payload": [null]}\n'
    assert _cli(["--ndjson", "-"], db, data).returncode == 0
    for args in (["cli", "--payload", "null"], ["cli", "--payload", " null "], ["cli"],
                 ["cli", "--payload", "-"], ["cli", "--payload", "[null]"]):  # fmt: skip
        proc = _cli(args, db, b"null\n")
        assert proc.returncode == 0, proc.stderr
    texts = [r[3] for r in stored(db)]
    assert texts == ["{}"] * 5 + ["[null]"] + ["{}"] * 2 + ["[null]"] + ["{}"] * 4 + ["[null]"]


# ---- one transaction, durable -----------------------------------------------------------------

RUNS = 3
PER_RUN = 3000  # a batch over bulk.PIPELINE_FROM lines: into a file that exists, pipelined


def _batch() -> bytes:
    """RUNS runs of PER_RUN jobs (a run: consecutive jobs that differ only in payload)."""
    assert RUNS * PER_RUN > bulk.PIPELINE_FROM
    lines = [json.dumps({"type": f"t{r}", "queue": f"q{r}", "payload": {"i": i, "n": 2**64}})
             for r in range(RUNS) for i in range(PER_RUN)]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def _held_enqueue(db: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `jobq enqueue --ndjson -` on a batch of several runs, and return once it holds its
    transaction open with the second run inserted (the test-only hook)."""
    Queue(db).close()
    flag = tmp_path / "held"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobq", "--db", db, "enqueue", "--ndjson", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_env(**{HOLD_ENV: f"{PER_RUN + 1}:{flag}"}),
    )  # fmt: skip
    assert proc.stdin is not None
    data = _batch()
    half = len(data) // 2
    proc.stdin.write(data[:half])  # through a pipe, in two parts
    proc.stdin.flush()
    proc.stdin.write(data[half:])
    proc.stdin.close()
    wait_until(lambda: flag.exists() or proc.poll() is not None, timeout=60,
               what="the enqueue to hold its transaction")  # fmt: skip
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    return proc, flag


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_sigkill_in_the_middle_of_an_ndjson_batch_leaves_none_of_it(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    proc, _ = _held_enqueue(db, tmp_path)
    try:
        assert count(db) == 0  # a concurrent reader sees none of the batch while it is open
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert count(db) == 0  # ... and none of it after the kill
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    # the lock died with the process; the same batch then goes in whole
    done = _cli(["--ndjson", "-"], db, _batch())
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == count(db) == RUNS * PER_RUN


def test_cli_ndjson_commits_with_synchronous_full(tmp_path: Path) -> None:
    proc, flag = _held_enqueue(str(tmp_path / "q.db"), tmp_path)
    try:
        sync = flag.read_text()
    finally:
        _kill(proc)
    assert sync == "2"  # FULL: the WAL is fsynced at commit


def _observe_sync(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record `PRAGMA synchronous` of the connection every bulk insert runs (and commits) on."""
    seen: list[int] = []
    original: Callable[..., range] = Store._insert_runs

    def spy(conn: sqlite3.Connection, runs: Sequence[tuple[NewJob, str, int]], now: float) -> range:
        seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        return original(conn, runs, now)

    monkeypatch.setattr(Store, "_insert_runs", staticmethod(spy))
    return seen


def test_bulk_inserts_commit_with_synchronous_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _observe_sync(monkeypatch)
    db = str(tmp_path / "q.db")
    with Queue(db) as q:
        q.enqueue_many([("a", {"i": i}) for i in range(10)] + [("b", 1)])
    ndjson.enqueue(db, _batch(), LIMIT, T0)
    with Queue(db) as q:
        q.enqueue_many([("a", i) for i in range(3)])
    assert seen == [2, 2, 2]
    assert count(db) == 11 + RUNS * PER_RUN + 3


def test_a_batch_of_several_runs_is_one_transaction(tmp_path: Path) -> None:
    """The last run failing inside the transaction takes the earlier runs with it."""
    db = str(tmp_path / "q.db")
    with Queue(db) as q:
        before = q.enqueue("before")
        runs = [(NewJob("a"), "[[1],[2]]", 2), (NewJob("b", queue="q2"), "[[3]]", 1),
                (NewJob("c"), "[[4],[5]]", 3)]  # fmt: skip
        with pytest.raises(ValueError, match="held 2 payloads"):
            q.backend.enqueue_runs(runs, T0)
    assert [r[3] for r in stored(db)] == ["{}"]
    assert before == 1

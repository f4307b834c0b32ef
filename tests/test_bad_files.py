"""Bad files through the CLI: refused with one line and zero bytes written; doctor reports what
is wrong without opening anything the file names."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from jobq.store import Store
from tests.factories import new_job


def _jobq_file(path: Path, jobs: int = 50) -> None:
    s = Store(str(path))
    s.enqueue([new_job("t", '{"x": "' + "p" * 200 + '"}') for _ in range(jobs)], time.time())
    s.close()


def _flip_data_page(path: Path) -> None:
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(bytes(rng ^ 0xA5 for rng in range(256)) * 4)


def _make_bad(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "bad.db"
    if kind == "not-jobq":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, note TEXT)")
        conn.execute("INSERT INTO jobs (note) VALUES ('someone else''s data')")
        conn.commit()
        conn.close()
    elif kind == "newer":
        _jobq_file(path)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
    elif kind == "corrupt-data":
        _jobq_file(path)
        _flip_data_page(path)
    elif kind == "corrupt-header":
        _jobq_file(path)
        with open(path, "r+b") as f:
            f.seek(16)
            f.write(b"\x03\x07")  # page size 775: not a power of two
    elif kind == "corrupt-magic":
        _jobq_file(path)
        with open(path, "r+b") as f:
            f.write(b"SQLite format 2\x00")
    elif kind == "empty":
        path.touch()
    elif kind == "directory":
        path.mkdir()
    elif kind == "truncated":
        _jobq_file(path)
        with open(path, "r+b") as f:
            f.truncate(60)
    return path


BAD_FILES = {
    # kind: words doctor must say (any of them)
    "not-jobq": ("not a jobq",),
    "newer": ("newer",),
    "corrupt-data": ("damaged", "malformed", "integrity", "corrupt"),
    "corrupt-header": ("damaged", "header"),
    "corrupt-magic": ("not a SQLite", "not a jobq"),
    "empty": ("empty",),
    "directory": ("directory",),
    "truncated": ("damaged", "truncated"),
    "read-only": ("cannot write", "permission", "read-only"),
}


def _fingerprint(path: Path) -> tuple[object, ...]:
    """Content hash and mtime of the file, and which side files exist next to it."""
    import hashlib

    if path.is_dir():
        main: tuple[object, ...] = ("dir", sorted(os.listdir(path)))
    else:
        st = path.stat()
        main = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size)
    sides = tuple(os.path.exists(str(path) + s) for s in ("-wal", "-shm", "-journal"))
    return (*main, sides)


@pytest.fixture
def read_only_bind(tmp_path: Path):
    """A jobq file seen through a read-only bind mount (we are root: modes alone do not stop us)."""
    src, view = tmp_path / "src", tmp_path / "view"
    src.mkdir()
    view.mkdir()
    _jobq_file(src / "bad.db")
    r = subprocess.run(["mount", "--bind", str(src), str(view)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {r.stderr.decode().strip()}")
    r = subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True)
    try:
        if r.returncode != 0:
            pytest.skip(f"cannot remount read-only: {r.stderr.decode().strip()}")
        yield view / "bad.db"
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_are_refused_without_a_write(
    kind: str, tmp_path: Path, jobq_env: dict[str, str], jobq_cmd: list[str], request
):
    path = request.getfixturevalue("read_only_bind") if kind == "read-only" else None
    path = path or _make_bad(kind, tmp_path)
    env = {**jobq_env, "JOBQ_DB": str(path)}
    before = _fingerprint(path)
    for args in (["ls"], ["enqueue", "t", "--payload", "{}"], ["stats"], ["show", "1"]):
        r = subprocess.run([*jobq_cmd, *args], env=env, capture_output=True, timeout=60)
        err = r.stderr.decode()
        assert r.returncode == 1, (args, r.returncode, err)  # 1: the file cannot be used
        assert r.stdout == b"", (args, r.stdout)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
        assert _fingerprint(path) == before, f"jobq {args[0]} wrote to a refused file"
    r = subprocess.run([*jobq_cmd, "doctor"], env=env, capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 1, out
    assert "Traceback" not in out
    assert any(w.lower() in out.lower() for w in BAD_FILES[kind]), out
    assert _fingerprint(path) == before, "jobq doctor wrote to a refused file"


@pytest.mark.timeout(60)
def test_doctor_names_hostile_tables_without_opening_them(
    tmp_path: Path, jobq_env: dict[str, str], jobq_cmd: list[str]
):
    path = tmp_path / "q.db"
    _jobq_file(path, 3)
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE [x"y] (a)')
    conn.commit()
    conn.close()
    r = subprocess.run(
        [*jobq_cmd, "doctor", "--json"],
        env={**jobq_env, "JOBQ_DB": str(path)},
        capture_output=True,
        timeout=60,
    )
    report = json.loads(r.stdout)
    # reported by name (shown safely), never opened: no SQL is built from a name in the file
    assert report["tables"]["jobs"] == 3 and report["unexpected_tables"] == ['x"y'], report

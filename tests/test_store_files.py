"""The queue file: creation, permissions, refusal with zero bytes written, migrations under
concurrent opens, and the network-filesystem check."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import jobq
from jobq.backend import JobFilter
from jobq.errors import (
    CorruptFile,
    NetworkFilesystem,
    NewerSchema,
    NotAJobqFile,
    QueueFileError,
)
from jobq.store import Store
from jobq.store.sqlite import filecheck
from jobq.store.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION
from tests.factories import T0, enqueue, new_job

TABLES = ["attempts", "events", "job_deps", "job_edits", "job_output", "job_progress", "jobs",
          "limits", "metric_totals", "queues", "rollup", "schedules", "workers"]  # fmt: skip


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_is_private_and_so_are_its_wal_and_shm(db_path: str, umask_022: None) -> None:
    store = Store(db_path)
    enqueue(store, T0)
    try:
        assert _mode(db_path) == 0o600
        for suffix in ("-wal", "-shm"):
            assert os.path.exists(db_path + suffix)
            assert _mode(db_path + suffix) & 0o077 == 0, oct(_mode(db_path + suffix))
    finally:
        store.close()
    leftovers = [n for n in os.listdir(os.path.dirname(db_path)) if n.startswith(".jobq-new-")]
    assert leftovers == []


def test_new_file_is_a_migrated_jobq_file_in_wal_mode(db_path: str, tmp_path: Path) -> None:
    Store(os.path.join(tmp_path, "sub", "dir", "q.db")).close()  # parent dirs are created
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_an_older_schema_is_migrated_in_place(db_path: str) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")  # a jobq file at user_version 0
    conn.close()
    store = Store(db_path)
    try:
        assert store.doctor()["schema_version"] == SCHEMA_VERSION
        assert enqueue(store, T0) == 1
    finally:
        store.close()


# ---- refusal with zero bytes written ---------------------------------------------------------


def _snapshot(path: str) -> tuple[object, ...]:
    """Everything a write would change: the file's bytes and mtime, and the directory listing."""
    directory = os.path.dirname(path)
    listing = sorted(os.listdir(directory))
    if os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
        return (data, os.stat(path).st_mtime_ns, listing)
    return (None, None, listing)


def _jobq_file(path: str) -> bytes:
    store = Store(path)
    store.enqueue([new_job('{"n":"' + "x" * 300 + '"}') for _ in range(300)], T0)
    store.close()
    with open(path, "rb") as f:
        return f.read()


def _flip(offset: int, mask: int = 0xFF) -> Callable[[str], None]:
    def make(path: str) -> None:
        data = bytearray(_jobq_file(path))
        data[offset] ^= mask
        with open(path, "wb") as f:
            f.write(data)

    return make


def _foreign_sqlite(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('hello')")
    conn.commit()
    conn.close()


def _newer_schema(path: str) -> None:
    _jobq_file(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


def _write(data: bytes) -> Callable[[str], None]:
    def make(path: str) -> None:
        with open(path, "wb") as f:
            f.write(data)

    return make


REFUSED: list[tuple[str, Callable[[str], None], type[QueueFileError]]] = [
    ("foreign-sqlite", _foreign_sqlite, NotAJobqFile),
    ("newer-schema", _newer_schema, NewerSchema),
    ("zero-length", _write(b""), NotAJobqFile),
    ("text-file", _write(b"hello, I am not a database\n" * 10), NotAJobqFile),
    ("truncated-header", lambda p: _write(_jobq_file(p)[:60])(p), CorruptFile),
    ("header-magic", _flip(3), NotAJobqFile),
    ("header-page-size", _flip(16), CorruptFile),
    ("header-page-size-odd", _flip(17, 0x01), CorruptFile),
    ("header-write-version", _flip(18), CorruptFile),
    ("header-read-version", _flip(19), CorruptFile),
    ("header-payload-fractions", _flip(21), CorruptFile),
    ("header-application-id", _flip(70, 0x01), NotAJobqFile),
    ("directory", os.mkdir, QueueFileError),
    ("fifo", os.mkfifo, QueueFileError),
]


@pytest.mark.parametrize(("make", "error"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_with_one_line_and_zero_bytes_written(
    db_path: str, make: Callable[[str], None], error: type[QueueFileError]
) -> None:
    make(db_path)
    before = _snapshot(db_path)

    with pytest.raises(error) as caught:
        Store(db_path)
    with pytest.raises(error):
        jobq.Queue(db_path)

    message = str(caught.value)
    assert message and "\n" not in message and db_path in message
    assert _snapshot(db_path) == before
    assert not os.path.exists(db_path + "-wal") and not os.path.exists(db_path + "-shm")


def test_newer_schema_is_not_migrated(db_path: str) -> None:
    _newer_schema(db_path)
    with pytest.raises(NewerSchema, match="upgrade jobq"):
        Store(db_path)
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    finally:
        conn.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="as a normal user, chmod itself is the test")
def test_unreadable_file_is_refused(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # root reads any file, so emulate EACCES where filecheck opens the file
    _jobq_file(db_path)
    before = _snapshot(db_path)

    def denied(*args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(filecheck, "open", denied, raising=False)
    with pytest.raises(QueueFileError, match="permission denied"):
        Store(db_path)
    assert _snapshot(db_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes any file")
def test_unreadable_file_is_refused_for_real(db_path: str) -> None:
    _jobq_file(db_path)
    os.chmod(db_path, 0)
    before = _snapshot(db_path)
    with pytest.raises(QueueFileError, match="permission denied"):
        Store(db_path)
    assert _snapshot(db_path) == before


def test_read_only_file_is_refused(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _jobq_file(db_path)
    before = _snapshot(db_path)
    real_access = os.access
    monkeypatch.setattr(
        filecheck.os,
        "access",
        lambda p, mode, **kw: False if mode == os.W_OK else real_access(p, mode, **kw),
    )
    with pytest.raises(QueueFileError, match="cannot write"):
        Store(db_path)
    assert _snapshot(db_path) == before


def test_corrupt_data_page_raises_corrupt_file_on_use(db_path: str) -> None:
    data = bytearray(_jobq_file(db_path))
    page = 4096
    assert len(data) >= 8 * page
    conn = sqlite3.connect(db_path)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs'").fetchone()
    conn.close()
    last = (root - 1) * page  # the root page of the jobs table (other tables follow it)
    for i in range(last, last + page, 7):
        data[i] ^= 0x5A
    with open(db_path, "wb") as f:
        f.write(data)
    store = Store(db_path)  # the header is fine: refusal comes on first use
    try:
        with pytest.raises(CorruptFile, match="damaged"):
            store.list_jobs(T0, JobFilter(limit=1000))
        assert store.doctor()["integrity"] != "ok"
    finally:
        store.close()


# ---- concurrent creation ---------------------------------------------------------------------


def open_at_once(db_path: str, barrier: object, results: object) -> None:
    """Child: wait for all, open the file, enqueue one job, report the id (or the error)."""
    barrier.wait()  # type: ignore[attr-defined]
    try:
        store = Store(db_path)
        job_id = store.enqueue([new_job("race")], T0)[0]
        store.close()
        results.put(("ok", job_id))  # type: ignore[attr-defined]
    except Exception as e:  # report anything, the parent asserts
        results.put(("error", f"{type(e).__name__}: {e}"))  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start", ["absent", "version-0"])
def test_eight_processes_opening_a_new_file_at_once(db_path: str, start: str) -> None:
    if start == "version-0":
        conn = sqlite3.connect(db_path)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    results = ctx.Queue()
    procs = [ctx.Process(target=open_at_once, args=(db_path, barrier, results)) for _ in range(8)]
    for p in procs:
        p.start()
    got = [results.get(timeout=50) for _ in procs]
    for p in procs:
        p.join(10)
    assert [status for status, _ in got] == ["ok"] * 8, got
    assert sorted(job_id for _, job_id in got) == list(range(1, 9))

    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        assert names == TABLES
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    leftovers = [n for n in os.listdir(os.path.dirname(db_path)) if n.startswith(".jobq-new-")]
    assert leftovers == []


# ---- network filesystems ---------------------------------------------------------------------


def _escape(path: str) -> str:
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")


def mountinfo(tmp_path: Path, mounts: list[tuple[str, str]]) -> str:
    """Write a mountinfo file: / on ext4, then each (mount point, fstype) in order."""
    lines = ["22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"]
    for n, (point, fstype) in enumerate(mounts, 30):
        lines.append(
            f"{n} 22 0:{n} / {_escape(point)} rw,relatime shared:{n} - {fstype} server:/x rw"
        )
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("fstype", ["nfs4", "nfs", "cifs", "smb3", "fuse.sshfs", "9p"])
def test_network_filesystem_is_refused(tmp_path: Path, fstype: str) -> None:
    share = tmp_path / "share"
    share.mkdir()
    table = mountinfo(tmp_path, [(str(share), fstype)])
    db = str(share / "q.db")
    with pytest.raises(NetworkFilesystem) as caught:
        Store(db, mountinfo=table)
    message = str(caught.value)
    assert fstype in message and "JOBQ_ALLOW_NETWORK_FS" in message and "\n" not in message
    with pytest.raises(NetworkFilesystem):
        jobq.Queue(db, mountinfo=table, allow_network_fs=False)
    assert os.listdir(share) == [], "nothing is created on a refused filesystem"

    Store(db, mountinfo=table, allow_network_fs=True).close()
    assert os.path.exists(db)


def test_network_filesystem_allowed_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    table = mountinfo(tmp_path, [(str(share), "nfs4")])
    db = str(share / "q.db")
    monkeypatch.setenv("JOBQ_ALLOW_NETWORK_FS", "0")
    with pytest.raises(NetworkFilesystem):
        jobq.Queue(db, mountinfo=table)
    monkeypatch.setenv("JOBQ_ALLOW_NETWORK_FS", "1")
    with jobq.Queue(db, mountinfo=table) as q:
        assert q.enqueue("t") == 1


@pytest.mark.parametrize(
    ("mounts", "sub", "refused"),
    [
        ([("{d}/my share", "nfs4")], "my share", True),  # \040 in the mount point
        ([("{d}/my share", "ext4")], "my share", False),
        ([("{d}/tab\there", "cifs")], "tab\there", True),
        ([("{d}/back\\slash", "fuse.sshfs")], "back\\slash", True),
        ([("{d}/net", "nfs4"), ("{d}/net/local", "ext4")], "net/local", False),  # nested local
        ([("{d}/net", "ext4"), ("{d}/net", "nfs4")], "net", True),  # mounted over: last wins
        ([("{d}/net", "nfs4")], "network", False),  # a sibling with a common prefix
        ([("{d}/fuse", "fuse.mergerfs")], "fuse", False),  # local FUSE
        ([], "plain", False),
    ],
)
def test_mountinfo_parsing(
    tmp_path: Path, mounts: list[tuple[str, str]], sub: str, refused: bool
) -> None:
    base = tmp_path / "m"
    target = base / sub
    target.mkdir(parents=True)
    table = mountinfo(tmp_path, [(p.format(d=base), t) for p, t in mounts])
    db = str(target / "q.db")
    if refused:
        with pytest.raises(NetworkFilesystem):
            Store(db, mountinfo=table)
    else:
        Store(db, mountinfo=table).close()


def test_unreadable_mountinfo_does_not_block_opening(tmp_path: Path, db_path: str) -> None:
    Store(db_path, mountinfo=str(tmp_path / "no-such-mountinfo")).close()

"""The queue file, its -wal / -shm / -lock and a backup copy are private to their owner."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq.store import Store


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _with_umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    ("umask", "expected"),
    [(0o022, 0o600), (0o002, 0o600), (0o000, 0o600), (0o077, 0o600), (0o277, 0o400)],
)
def test_queue_file_wal_and_shm_are_private(tmp_path: Path, umask: int, expected: int):
    """Created 0600 whatever a permissive umask says; a stricter umask is respected; the -wal and
    -shm files SQLite creates next to it, and the turnstile's -lock, get the same mode."""
    path = str(tmp_path / "q.db")
    gen = _with_umask(umask)
    next(gen)
    try:
        store = Store(path, turnstile=True)  # as jobq.Queue opens it
        store.enqueue([_job()], 1.0)  # a write: -wal, -shm and -lock exist from here on
        modes = {s: _mode(path + s) for s in ("", "-wal", "-shm", "-lock")}
        store.close()
    finally:
        next(gen, None)
    assert modes == {"": expected, "-wal": expected, "-shm": expected, "-lock": expected}


def test_backup_copy_is_private(tmp_path: Path):
    """`backup` writes its copy 0600 too (it holds every payload)."""
    path = str(tmp_path / "q.db")
    gen = _with_umask(0o022)
    next(gen)
    try:
        store = Store(path)
        store.enqueue([_job()], 1.0)
        store.backup(str(tmp_path / "copy.db"))
        store.close()
    finally:
        next(gen, None)
    assert _mode(str(tmp_path / "copy.db")) == 0o600


def _job():
    from tests.factories import new_job

    return new_job("t", '{"secret": "s3cr3t"}')

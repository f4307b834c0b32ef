"""`jobq backup` and `jobq doctor` on a queue file: the bodies of the SQLite backend's
administration verbs, loaded when one runs (not on every command's start-up)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import suppress

from ...errors import DiskFull, InvalidInput
from .connection import Connection, _translate, _umask
from .schema import SCHEMA_VERSION
from .sql import COUNT_TABLES, SCHEMA_TABLES


def backup(store: Connection, out_path: str) -> None:
    """Write a consistent copy of the queue file to `out_path`, appearing atomically."""
    directory = os.path.dirname(os.path.abspath(out_path))
    import errno
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix=".jobq-backup-", suffix=".db", dir=directory)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DiskFull(f"no space left for {out_path}: free some disk space") from None
        raise InvalidInput(f"cannot write a backup in {directory}: {e.strerror}") from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o600 & ~_umask())
        dest = sqlite3.connect(tmp, isolation_level=None)
        try:
            store._conn.backup(dest)
            dest.execute("PRAGMA journal_mode = WAL")
        finally:
            dest.close()
        os.replace(tmp, out_path)
    except sqlite3.Error as e:
        raise _translate(e, out_path) from None
    except OSError as e:  # e.g. OUT names a directory that appeared meanwhile
        raise InvalidInput(f"cannot write {out_path}: {e.strerror}") from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                os.unlink(tmp + suffix)


def doctor(store: Connection) -> dict[str, object]:
    """Integrity check and schema report."""
    try:
        conn = store._conn
        try:
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as e:
            # a page too damaged to walk is the doctor's finding, not a failure of the doctor
            integrity = [str(e)]
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        report: dict[str, object] = {
            "path": store.path,
            "integrity": "ok" if integrity == ["ok"] else integrity[:20],
            "foreign_key_violations": len(fk),
            "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
            "supported_schema_version": SCHEMA_VERSION,
            "application_id": conn.execute("PRAGMA application_id").fetchone()[0],
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
            "page_count": conn.execute("PRAGMA page_count").fetchone()[0],
            "freelist_count": conn.execute("PRAGMA freelist_count").fetchone()[0],
            "sqlite_version": sqlite3.sqlite_version,
        }
        present = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
        ]
        # Row counts of jobq's own tables only, each a constant statement: no SQL is ever
        # built from a name read back from the file. Other tables are listed, not opened.
        counts = conn.execute(COUNT_TABLES).fetchone()
        report["tables"] = dict(zip(SCHEMA_TABLES, counts, strict=True))
        report["unexpected_tables"] = [n for n in present if n not in SCHEMA_TABLES]
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'jobs_%'"
                " ORDER BY name"
            )
        ]
        report["indexes"] = indexes
    except sqlite3.Error as e:
        raise _translate(e, store.path) from None
    try:
        report["wal_bytes"] = os.path.getsize(store.real_path + "-wal")
    except OSError:
        report["wal_bytes"] = 0
    return report

"""SQLite's own floor: what bare sqlite3 does on this machine, in the same directory.

A minimal jobs table with the claim-order partial index (the physical limit any SQLite queue
works under), driven with as little Python as possible.
"""

from __future__ import annotations

import os
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    priority    INTEGER NOT NULL DEFAULT 0,
    run_at      REAL NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    locked_by   TEXT,
    finished_at REAL,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (priority DESC, run_at, id)
    WHERE state = 'pending';
"""
INSERT = "INSERT INTO jobs (type, payload, run_at, created_at) VALUES ('noop', ?, ?, ?)"
CLAIM = """
UPDATE jobs SET state = 'running', locked_by = ?, attempts = attempts + 1
WHERE id = (SELECT id FROM jobs WHERE state = 'pending' AND run_at <= ?
            ORDER BY priority DESC, run_at, id LIMIT 1)
RETURNING id, payload
"""
COMPLETE = "UPDATE jobs SET state = 'done', finished_at = ? WHERE id = ? AND locked_by = ?"


def connect(path: str, sync: str = "NORMAL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {sync}")
    conn.executescript(SCHEMA)
    return conn


def fresh(workdir: str, name: str) -> str:
    path = os.path.join(workdir, name)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    return path


def single_inserts(workdir: str, n: int, sync: str = "FULL") -> float:
    """Rows/s: one autocommit INSERT (one transaction, one fsync with FULL) per row."""
    conn = connect(fresh(workdir, f"floor-single-{sync}.db"), sync)
    conn.execute(INSERT, ("{}", time.time(), time.time()))  # warm-up
    t0 = time.perf_counter()
    for i in range(n):
        t = time.time()
        conn.execute(INSERT, (f'{{"i": {i}}}', t, t))
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


def batch_inserts(workdir: str, n: int, batch: int = 1000, sync: str = "FULL") -> float:
    """Rows/s: executemany with `batch` rows per transaction."""
    conn = connect(fresh(workdir, f"floor-batch-{sync}.db"), sync)
    t0 = time.perf_counter()
    for lo in range(0, n, batch):
        t = time.time()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, [(f'{{"i": {i}}}', t, t) for i in range(lo, min(n, lo + batch))])
        conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


def fill(path: str, n: int) -> None:
    """n pending rows, untimed."""
    conn = connect(path)
    t = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT, [(f'{{"i": {i}}}', t, t) for i in range(n)])
    conn.execute("COMMIT")
    conn.close()


def claim_complete(workdir: str, n: int, sync: str = "NORMAL") -> float:
    """Jobs/s: one process claims and completes n jobs one at a time, two write transactions each
    (jobq's running-job transitions use NORMAL too)."""
    path = fresh(workdir, f"floor-claim-{sync}.db")
    fill(path, n)
    conn = connect(path, sync)
    done = 0
    t0 = time.perf_counter()
    while True:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(CLAIM, ("w", time.time())).fetchone()
        conn.execute("COMMIT")
        if row is None:
            break
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(COMPLETE, (time.time(), row[0], "w"))
        conn.execute("COMMIT")
        done += 1
    dt = time.perf_counter() - t0
    conn.close()
    if done != n:
        raise RuntimeError(f"floor claimed {done} of {n} jobs")
    return n / dt


def bare_insert_script(db: str) -> list[str]:
    """argv of a bare `python -c` doing one durable insert into a jobq file's jobs table."""
    import sys

    code = (
        "import sqlite3,sys,time\n"
        "c=sqlite3.connect(sys.argv[1],isolation_level=None,timeout=30)\n"
        "c.execute('PRAGMA synchronous=FULL')\n"
        "t=time.time()\n"
        'c.execute("INSERT INTO jobs (type,queue,payload,priority,state,run_at,created_at)'
        " VALUES ('noop','default','{\\\"i\\\": 1}',0,'pending',?,?)\",(t,t))\n"
        "print(c.execute('SELECT last_insert_rowid()').fetchone()[0])\n"
    )
    return [sys.executable, "-c", code, db]

"""PostgreSQL's floor: bare psycopg against a minimal jobs table on the run's server.

The table is floor.py's, in PostgreSQL types (identity id, json payload, timestamptz) with the
claim-order partial index: what any PostgreSQL queue must at least write per job.
"""

from __future__ import annotations

import sys
import time

import pg_common

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_jobs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type        text NOT NULL,
    payload     json NOT NULL,
    state       text NOT NULL DEFAULT 'pending',
    priority    integer NOT NULL DEFAULT 0,
    run_at      timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    locked_by   text,
    finished_at timestamptz,
    created_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS floor_jobs_pending ON floor_jobs (priority DESC, run_at, id)
    WHERE state = 'pending';
"""
INSERT = (
    "INSERT INTO floor_jobs (type, payload, run_at, created_at) VALUES ('noop', %s, now(), now())"
)
COPY = "COPY floor_jobs (type, payload, run_at, created_at) FROM STDIN"


def create(dbname: str) -> None:
    with pg_common.connect(dbname) as c:
        c.execute(SCHEMA)


def single_inserts(dbname: str, n: int, explicit: bool = False) -> float:
    """Rows/s, one durable transaction per row: an autocommit INSERT (one round trip), or with
    `explicit` psycopg's default BEGIN, INSERT, COMMIT."""
    create(dbname)
    conn = pg_common.connect(dbname, autocommit=not explicit)
    conn.execute(INSERT, ('{"i": -1}',))  # warm-up: prepare nothing, but connect and plan
    conn.commit()
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute(INSERT, (f'{{"i": {i}}}',))
        if explicit:
            conn.commit()
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


def copy_rows(dbname: str, n: int) -> float:
    """Rows/s: COPY of n rows in one transaction (the bulk floor)."""
    create(dbname)
    conn = pg_common.connect(dbname, autocommit=False)
    t0 = time.perf_counter()
    with conn.cursor() as cur, cur.copy(COPY) as copy:
        for i in range(n):
            copy.write_row(("noop", f'{{"i": {i}}}', "now", "now"))
    conn.commit()
    dt = time.perf_counter() - t0
    rows = conn.execute("SELECT count(*) FROM floor_jobs").fetchone()[0]
    conn.close()
    if rows != n:
        raise RuntimeError(f"COPY left {rows} rows for {n}")
    return n / dt


def bare_insert_argv(dbname: str) -> list[str]:
    """`python -c` that connects, inserts one row and commits: a shell loop's floor."""
    code = (
        "import psycopg\n"
        f"c = psycopg.connect({pg_common.conninfo(dbname)!r})\n"
        f"c.execute({INSERT!r}, ('{{\"i\": 1}}',))\n"
        "c.commit()\n"
    )
    return [sys.executable, "-c", code]

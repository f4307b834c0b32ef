"""Lifecycle events, PostgreSQL side: a transaction that took its event first but commits last is
not skipped by a follower (sequence values are not commit-ordered; feed ids are given below the
xmin horizon), and ids stay dense and increasing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobq.backend import Role, open_backend
from jobq.model import EventKind
from jobq.store.postgres.connection import split_url
from tests.factories import T0, new_job
from tests.pgserver import PgServer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jobq.backend import Backend

ALL = [k.value for k in EventKind]


@pytest.fixture
def pg(pg_server: PgServer) -> Iterator[tuple[Backend, str]]:
    """A backend on a fresh schema, and its location."""
    location = pg_server.location()
    b = open_backend(location, Role.WORKER)
    yield b, location
    b.close()


def _raw(location: str) -> psycopg.Connection[Any]:
    url, schema = split_url(location)
    conn = psycopg.connect(url)
    conn.execute("SELECT set_config('search_path', %s, false)", (f'"{schema}"',))
    conn.commit()
    return conn


def test_an_event_committed_late_is_not_skipped(pg: tuple[Backend, str]) -> None:
    b, location = pg
    mark = b.last_event_id()
    slow = _raw(location)
    try:
        # a producer's transaction takes its event (and a lower sequence value) first...
        slow.execute("INSERT INTO jobs (type, payload, run_at, created_at)"
                     " VALUES ('slow', '{}', now(), now())")  # fmt: skip
        # ...and another commits after it
        fast = b.enqueue([new_job("fast")], T0)[0]
        head = b.last_event_id()
        # a follower that read the fast one now would skip the slow one for good: nothing is
        # given an id while an older transaction is open
        assert b.events(after=mark, until=head, kinds=ALL) == []
        slow.commit()
    finally:
        slow.close()
    head = b.last_event_id()
    got = b.events(after=mark, until=head, kinds=ALL)
    assert [e.type for e in got] == ["slow", "fast"]
    assert got[1].job_id == fast
    assert [e.id for e in got] == [mark + 1, mark + 2]  # dense, in the order shown


def test_a_rolled_back_change_leaves_no_event_and_no_gap(pg: tuple[Backend, str]) -> None:
    b, location = pg
    b.enqueue([new_job("a")], T0)
    first = b.last_event_id()
    conn = _raw(location)
    conn.execute("INSERT INTO jobs (type, payload, run_at, created_at)"
                 " VALUES ('gone', '{}', now(), now())")  # fmt: skip
    conn.rollback()
    conn.close()
    b.enqueue([new_job("b")], T0)
    got = b.events(after=0, kinds=ALL)
    assert [(e.id, e.type) for e in got] == [(first, "a"), (first + 1, "b")]

"""PgWaker: LISTEN/NOTIFY wake-ups on a real server, and what it does when the server goes away.

Notifications are sent with plain psycopg (as the store's write transactions send them), so the
waker is tested on its own. Tests that stop or restart a server use a server of their own.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pytest

from jobq.store.postgres.schema import channel_of
from jobq.store.postgres.waker import PgWaker
from tests.helpers import wait_until
from tests.pgserver import PgServer, ServerUnavailable, start_server


def _conninfo(server: PgServer) -> str:
    return server.url()


def _notify(server: PgServer, schema: str, *, commit: bool = True) -> psycopg.Connection:
    """Send the store's notification for `schema`; return the connection (open transaction
    when not `commit`)."""
    conn = psycopg.connect(_conninfo(server))
    conn.execute("SELECT pg_notify(%s, '')", (channel_of(schema),))
    if commit:
        conn.commit()
    return conn


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server this test may stop and restart (never the session's)."""
    try:
        server = start_server()
    except ServerUnavailable as e:
        pytest.skip(str(e))
    yield server
    server.destroy()


def test_a_commit_wakes_the_waiter(pg_server: PgServer) -> None:
    with PgWaker(_conninfo(pg_server), channel_of("s_one")) as waker:
        assert waker.fileno() >= 0
        assert not waker.drain()
        t0 = time.monotonic()
        _notify(pg_server, "s_one").close()
        assert waker.wait(5.0)
        assert time.monotonic() - t0 < 1.0
        assert not waker.drain()  # consumed


def test_no_wake_before_the_commit(pg_server: PgServer) -> None:
    """The store notifies inside its transaction: a waiter must not wake before the commit."""
    with PgWaker(_conninfo(pg_server), channel_of("s_tx")) as waker:
        conn = _notify(pg_server, "s_tx", commit=False)
        try:
            assert not waker.wait(0.3)
            conn.commit()
            assert waker.wait(5.0)
        finally:
            conn.close()


def test_other_schemas_do_not_wake(pg_server: PgServer) -> None:
    with PgWaker(_conninfo(pg_server), channel_of("s_mine")) as waker:
        _notify(pg_server, "s_other").close()
        assert not waker.wait(0.3)
        _notify(pg_server, "s_mine").close()
        assert waker.wait(5.0)


def test_channel_is_quoted_as_an_identifier(pg_server: PgServer) -> None:
    """Upper case and odd characters survive: LISTEN uses a quoted identifier, pg_notify a
    string, and both must name the same channel."""
    schema = 'Odd "Name"'
    with PgWaker(_conninfo(pg_server), channel_of(schema)) as waker:
        _notify(pg_server, schema).close()
        assert waker.wait(5.0)


def test_an_idle_wait_does_not_spin(pg_server: PgServer) -> None:
    with PgWaker(_conninfo(pg_server), channel_of("s_idle")) as waker:
        cpu = _cpu()
        t0 = time.monotonic()
        assert not waker.wait(1.0)
        assert time.monotonic() - t0 >= 0.99
        assert _cpu() - cpu < 0.1


def test_a_killed_connection_is_a_wakeup_then_reconnects(pg_server: PgServer) -> None:
    """pg_terminate_backend on the LISTEN connection: the waiter wakes (it must re-read), its
    fileno is -1 meanwhile, and it listens again after its reconnection."""
    with PgWaker(_conninfo(pg_server), channel_of("s_kill")) as waker:
        with psycopg.connect(_conninfo(pg_server), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN%%s_kill%%' AND pid <> pg_backend_pid()"
            )
        assert waker.wait(5.0)  # the loss
        assert waker.wait(5.0)  # the reconnection (at once: the server is up)
        assert waker.reconnects == 1 and waker.fileno() >= 0
        _notify(pg_server, "s_kill").close()
        assert waker.wait(5.0)


def test_server_restart_waiter_backs_off_and_comes_back(own_server: PgServer) -> None:
    with PgWaker(_conninfo(own_server), channel_of("s_restart")) as waker:
        own_server.stop()
        assert waker.wait(5.0)  # the connection closed: a wake-up
        assert waker.fileno() == -1
        cpu = _cpu()
        t0 = time.monotonic()
        woke = waker.wait(1.5)  # the server is down: reconnections fail, with backoff
        assert not woke and time.monotonic() - t0 >= 1.45
        assert _cpu() - cpu < 0.2, "a waiter must not spin while the server is down"
        own_server.start()
        t1 = time.monotonic()
        wait_until(lambda: waker.wait(0.2), timeout=10, what="reconnected")
        assert time.monotonic() - t1 < 3.0  # MAX_BACKOFF bounds the delay
        assert waker.fileno() >= 0
        _notify(own_server, "s_restart").close()
        assert waker.wait(5.0)


def test_created_while_the_server_is_down(own_server: PgServer) -> None:
    own_server.stop()
    with PgWaker(_conninfo(own_server), channel_of("s_down")) as waker:
        assert waker.fileno() == -1
        assert not waker.drain()
        own_server.start()
        wait_until(lambda: waker.wait(0.2), timeout=10, what="connected")
        _notify(own_server, "s_down").close()
        assert waker.wait(5.0)


def test_closed_waker_reports_nothing(pg_server: PgServer) -> None:
    waker = PgWaker(_conninfo(pg_server), channel_of("s_closed"))
    waker.close()
    assert waker.fileno() == -1 and not waker.drain() and not waker.wait(0.05)


def test_connection_parameters_pass_through(pg_server: PgServer) -> None:
    """libpq parameters of the URL are kept (here the socket directory and the user)."""
    params = dict(parse_qsl(urlsplit(pg_server.url()).query))
    with PgWaker(
        "dbname=jobq", channel_of("s_kw"), host=params["host"], user=params["user"]
    ) as waker:
        _notify(pg_server, "s_kw").close()
        assert waker.wait(5.0)

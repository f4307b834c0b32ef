"""The turnstile in front of SQLite's write lock (jobq/store/turnstile.py), with real processes:
writers go in in arrival order, a killed writer lets the next one in at once, a stopped one
delays it by `patience` at most, and whatever goes wrong, writes still happen."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until

from jobq import Queue
from jobq.store import Store
from jobq.store.sqlite import turnstile
from jobq.store.sqlite.turnstile import Turnstile
from tests.factories import T0, new_job

CTX = multiprocessing.get_context("spawn")


def _writer(db: str, name: str, log: str, hold: float) -> None:
    """Child: go through the turnstile, note our name, stay inside `hold` seconds, leave."""
    gate = Turnstile(db, patience=60.0)
    gate.enter()
    with open(log, "a") as f:
        f.write(name + "\n")
    time.sleep(hold)  # the simulated transaction
    gate.leave()
    gate.close()


def _tickets(db: str) -> int:
    return os.path.getsize(db + "-lock")


def _held(db: str, ticket: int) -> bool:
    """Whether ticket's byte is locked by someone (probed from a file of our own)."""
    fd = os.open(db + "-lock", os.O_RDWR)
    try:
        return not turnstile._try_lock(fd, fcntl.F_RDLCK, ticket % turnstile.SLOTS)
    finally:
        os.close(fd)


def _lines(path: str) -> list[str]:
    return Path(path).read_text().split() if os.path.exists(path) else []


def _start(db: str, name: str, log: str, hold: float = 0.0) -> Any:
    p = CTX.Process(target=_writer, args=(db, name, log, hold))
    p.start()
    return p


@pytest.fixture
def lockdb(tmp_path: Path) -> str:
    return str(tmp_path / "q.db")


def test_writers_go_in_in_the_order_they_arrived(lockdb: str, tmp_path: Path) -> None:
    log = str(tmp_path / "order.log")
    gate = Turnstile(lockdb)
    gate.enter()  # ticket 1: everyone below queues behind us
    procs = []
    for i in range(6):
        procs.append(_start(lockdb, f"w{i}", log))
        ticket = 2 + i
        wait_until(lambda t=ticket: _tickets(lockdb) >= t and _held(lockdb, t), what=f"w{i} queued")
    assert _lines(log) == []  # nobody got past the writer inside
    gate.leave()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert _lines(log) == [f"w{i}" for i in range(6)]
    assert gate.stepped_aside == 0


def test_a_killed_writer_lets_the_next_one_in_at_once(lockdb: str, tmp_path: Path) -> None:
    log = str(tmp_path / "in.log")
    inside = _start(lockdb, "victim", log, hold=600)
    wait_until(lambda: _lines(log) == ["victim"], what="victim inside")
    gate = Turnstile(lockdb, patience=60.0)
    entered = threading.Event()
    waiting = threading.Thread(target=lambda: (gate.enter(), entered.set()))
    waiting.start()
    wait_until(lambda: _tickets(lockdb) >= 2, what="our ticket")
    assert not entered.wait(0.3)  # a live writer inside keeps us out
    os.kill(inside.pid, signal.SIGKILL)  # the kernel drops its lock with the process
    assert entered.wait(10), "not let in after the writer inside was killed"
    waiting.join()
    inside.join(10)
    assert gate.stepped_aside == 0
    gate.leave()
    gate.close()


def test_a_stopped_writer_delays_the_next_by_patience_at_most(lockdb: str, tmp_path: Path) -> None:
    log = str(tmp_path / "in.log")
    stopped = _start(lockdb, "stopped", log, hold=5)
    wait_until(lambda: _lines(log) == ["stopped"], what="writer inside")
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        patience = 1.0
        gate = Turnstile(lockdb, patience=patience)
        t0 = time.monotonic()
        gate.enter()
        waited = time.monotonic() - t0
        # it waited its patience (not less: the writer inside is alive), then went on to SQLite's
        # own lock; within 2x its setting, which leaves a loaded machine a whole patience of slack
        assert patience <= waited < 2 * patience, (
            f"waited {waited:.2f} s for a {patience} s patience"
        )
        assert gate.stepped_aside == 1
        gate.leave()
        gate.enter()  # the next turn: a fresh helper, our own previous ticket is done
        assert gate.stepped_aside == 1
        gate.leave()
        gate.close()
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
        stopped.join(30)
    assert stopped.exitcode == 0


def test_tickets_wrap_and_the_side_file_stays_small(
    lockdb: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(turnstile, "SLOTS", 8)
    a, b = Turnstile(lockdb), Turnstile(lockdb)
    for _ in range(50):
        for gate in (a, b):
            gate.enter()
            gate.leave()
            assert _tickets(lockdb) <= 8
    assert a.stepped_aside == b.stepped_aside == 0
    a.close()
    b.close()


def test_writes_happen_when_the_side_file_cannot_be_opened(lockdb: str) -> None:
    os.mkdir(lockdb + "-lock")  # a directory where the side file should be
    store = Store(lockdb, turnstile=True)
    assert not store.fair
    assert store.enqueue([new_job()], T0) == [1]
    store.close()


def test_jobq_turnstile_0_turns_it_off(lockdb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQ_TURNSTILE", "0")
    with Queue(lockdb) as q:
        assert not q.backend.fair
        q.enqueue("t")
    assert not os.path.exists(lockdb + "-lock")
    monkeypatch.delenv("JOBQ_TURNSTILE")
    with Queue(lockdb) as q:
        assert q.backend.fair
        q.enqueue("t")
    assert os.path.exists(lockdb + "-lock")


def test_a_connection_that_must_not_wait_does_not_queue(lockdb: str) -> None:
    store = Store(lockdb, busy_timeout=0, turnstile=True)
    assert not store.fair
    store.close()

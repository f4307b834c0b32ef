"""`jobq demo`: seeding, and the worker pool it starts is stopped with nothing left behind."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from jobq import Queue
from jobq.demo import ensure_generator, group_alive, seed_demo, start_workers, stop_workers
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_seed_demo_mix(tmp_path: Path) -> None:
    with Queue(str(tmp_path / "demo.db")) as q:
        seed_demo(q)
        ensure_generator(q)
        ensure_generator(q)  # idempotent
        assert q.count("pending", type="demo.generator") == 1
        assert q.count("scheduled") >= 1
        assert len(q.stats().by_queue) >= 4


def test_demo_workers_run_and_stop_without_strays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = str(tmp_path / "demo.db")
    with Queue(path) as q:
        ids = q.enqueue_many([("text.wordcount", {"text": "one two three"})])
    proc = start_workers(path, str(tmp_path / "workers.log"))
    try:
        with Queue(path) as q:
            deadline = time.monotonic() + 60
            while q.get(ids[0]).state.value != "succeeded":
                assert proc.poll() is None, (tmp_path / "workers.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "workers.log").read_text()
                time.sleep(0.1)
            assert q.get(ids[0]).result == 3  # the command handler (python3 -c …) ran
    finally:
        stop_workers(proc)
    assert proc.returncode is not None
    assert not group_alive(proc.pid)  # no process of the pool's group runs (zombies aside)


def _read(fd: int, until: bytes, timeout: float, out: bytearray) -> float:
    """Read the pty into `out` until `until` shows up; return when (monotonic), or fail."""
    import select

    deadline = time.monotonic() + timeout
    while until not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"{until!r} not seen in {timeout}s: {bytes(out[-400:])!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 0.05))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the other side closed
                chunk = b""
            assert chunk, f"{until!r} never came: {bytes(out[-400:])!r}"
            out += chunk
    return time.monotonic()


@pytest.mark.timeout(120)
def test_quitting_the_demo_says_so_at_once_and_returns_within_about_a_second(
    tmp_path: Path,
) -> None:
    """`jobq demo` on a pseudo-terminal, its four workers busy; `q`: "stopping workers…" at
    once, and the shell prompt back within about a second (it took 3 s, saying nothing)."""
    import fcntl
    import pty
    import struct
    import termios

    db = tmp_path / "data" / "jobq" / "demo.db"
    pid, fd = pty.fork()
    if pid == 0:  # the child: `jobq demo` on the pty, its files under tmp_path
        os.environ.update(TERM="xterm-256color", PYTHONPATH=str(ROOT),
                          XDG_DATA_HOME=str(tmp_path / "data"))  # fmt: skip
        os.execv(sys.executable, [sys.executable, "-m", "jobq", "demo"])
    out = bytearray()
    done = (0, 0)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        _read(fd, b"Pending", 60, out)
        wait_until(lambda: db.exists(), 30, what="the demo file")
        with Queue(str(db)) as q:  # the workers are busy: some jobs done, some running
            wait_until(lambda: q.count("succeeded") >= 4 and q.count("running") >= 1, 60,
                       interval=0.05, what="busy demo workers")  # fmt: skip
        os.write(fd, b"q")
        pressed = time.monotonic()
        said = _read(fd, "stopping workers…".encode(), 10, out) - pressed
        deadline = pressed + 15
        while not (done := os.waitpid(pid, os.WNOHANG))[0]:
            assert time.monotonic() < deadline, "the demo did not exit"
            with contextlib.suppress(OSError):
                if select.select([fd], [], [], 0.01)[0]:
                    out += os.read(fd, 65536)
        returned = time.monotonic() - pressed
    finally:
        if not done[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(done[1]) == 0, bytes(out[-400:])
    print(f"q -> 'stopping workers…' {said:.2f}s, -> exit {returned:.2f}s")
    assert said < 0.6, f"'stopping workers…' came {said:.2f}s after q"
    assert returned < 2.0, f"the demo took {returned:.2f}s to return after q"

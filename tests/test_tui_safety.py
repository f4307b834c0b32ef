"""Untrusted text from the queue file is shown literally and never reaches the terminal raw."""

from __future__ import annotations

import html
import json
import os
import select
import signal
import struct
import sys
import time
from pathlib import Path

import pytest

from devtools.screenshots import SIZE, first_load
from jobq import NewJob
from jobq.store import Store
from tui.app import JobqApp, make_app
from tui.screens.detail import DetailScreen

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_767_225_600.0
OSC52 = "\x1b]52;c;SGVsbG8=\x07"
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2Jboom"
BIDI = "abc\u202edef"
MARKUP = "[@click=app.quit]click[/] [link=https://evil.example]x[/link] [/] [bold"
HOSTILE = f"{OSC52}|{TITLE}|{CLEAR}|{BIDI}|{MARKUP}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def seed_hostile(path: str) -> int:
    """A failed job whose every string is hostile (written around the CLI's validation)."""
    s = Store(path)
    try:
        job = NewJob(type="evil" + TITLE, queue="q" + OSC52,
                     payload_json=json.dumps({"m": MARKUP, "b": BIDI, "e": OSC52}))  # fmt: skip
        (job_id,) = s.enqueue([job], NOW - 10)
        s.register_worker("w" + CLEAR, name="n" + TITLE, host="h" + BIDI, pid=1, concurrency=1,
                          queues=[], types=["evil" + TITLE], now=NOW)  # fmt: skip
        claimed = s.claim("w" + CLEAR + "/1", NOW - 5, 30)
        s.fail(claimed[0].id, claimed[0].lease_token or "", NOW - 4, HOSTILE,
               traceback=HOSTILE + "\n" + MARKUP, output=HOSTILE, retryable=False)  # fmt: skip
        s.enqueue([NewJob(type="big", payload_json=json.dumps({"blob": "x" * 100_000}))], NOW)
    finally:
        s.close()
    return job_id


def rendered(app: JobqApp) -> str:
    """Everything the app would paint now, as text."""
    return app.export_screenshot()


async def test_markup_in_the_file_is_shown_literally_and_does_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    job_id = seed_hostile(path)
    app = make_app(path, clock=lambda: NOW, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("3")
        for _ in range(300):
            if app.main.table.selected_key == str(job_id):
                break
            await pilot.pause(0.01)
        await pilot.click("#list", offset=(60, 1))  # on the error cell, "[@click=app.quit]"
        await pilot.pause(0.1)
        await pilot.press("enter")
        for _ in range(300):
            if isinstance(app.screen, DetailScreen) and app.screen.job is not None:
                break
            await pilot.pause(0.01)
        await pilot.pause()
        svg = rendered(app)
        assert app.is_running
        assert "[@click=app.quit]click[/]" in svg.replace("&#160;", " ")
        assert "␛]52;c;SGVsbG8=␇" in svg
        assert "<U+202E>" in svg.replace("&lt;", "<").replace("&gt;", ">")
        for raw in (OSC52, TITLE, "\u202e"):
            assert raw not in svg
        detail = str(app.screen.query_one("#detail").render())
        assert "[link=https://evil.example]x[/link]" in detail


async def test_long_values_are_truncated_with_a_byte_count(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    seed_hostile(path)
    app = make_app(path, clock=lambda: NOW, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        await pilot.press("enter")  # the top pending job is the 100 kB one
        for _ in range(300):
            if isinstance(app.screen, DetailScreen) and app.screen.job is not None:
                break
            await pilot.pause(0.01)
        detail = str(app.screen.query_one("#detail").render())
        assert "more bytes]" in detail
        assert len(detail) < 40_000


def _read_until(fd: int, want: list[bytes], timeout: float) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(w in out for w in want):
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_raw_bytes_written_to_a_terminal_hold_no_hostile_sequence(tmp_path: Path) -> None:
    import fcntl
    import pty
    import termios

    path = str(tmp_path / "q.db")
    seed_hostile(path)
    code = "import sys; from tui.app import make_app; make_app(sys.argv[1]).run()"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the dashboard on the pty
        os.environ["TERM"] = "xterm-256color"
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(sys.executable, [sys.executable, "-c", code, path])
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 160, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        out = _read_until(fd, [b"Failed"], 20)
        os.write(fd, b"3")
        out += _read_until(fd, ["␛]0;pwned␇".encode()], 10)
        os.write(fd, b"\r")
        out += _read_until(fd, [b"<U+202E>", b"Attempts"], 10)
        os.write(fd, b"\x1b")
        time.sleep(0.3)
        os.write(fd, b"q")
        out += _read_until(fd, [b"\x1b[?1049l"], 10)
    finally:
        for _ in range(50):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode("utf-8", "replace")
    assert "␛]0;pwned␇" in text  # the type, made visible
    assert "<U+202E>" in text  # the bidi override, made visible
    assert "␛]52;c;SGVsbG8=␇" in text  # the OSC 52 clipboard write, made visible
    for raw in (OSC52, TITLE, CLEAR, "\u202e"):
        assert raw.encode() not in out, f"raw {raw!r} reached the terminal"


async def test_invisible_characters_in_the_list_are_shown(tmp_path: Path) -> None:
    # ASCII hidden in tag characters, a zero-width space, a variation selector, a soft hyphen,
    # an invisible separator: each shown as a placeholder in the row (tests/test_safetext.py
    # checks every code point; this checks that the dashboard's cells go through it)
    tags = "".join(chr(0xE0000 + ord(c)) for c in "rm")
    path = str(tmp_path / "q.db")
    s = Store(path)
    try:
        payload = json.dumps({"s": f"ok{tags}|a\u200bb|c\ufe0fd"}, ensure_ascii=False)
        job = NewJob(type="hidden\u2064x", queue="e\u00adf", payload_json=payload)
        s.enqueue([job], NOW)
    finally:
        s.close()
    app = make_app(path, clock=lambda: NOW, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await first_load(pilot)
        screen = html.unescape(rendered(app))
    for shown in ("ok<U+E0072><U+E006D>|a<U+200B>b|c<U+FE0F>d", "e<U+00AD>f", "hidden<U+2064>x"):
        assert shown in screen
    for raw in (*tags, "\u200b", "\ufe0f", "\u00ad", "\u2064"):
        assert raw not in screen

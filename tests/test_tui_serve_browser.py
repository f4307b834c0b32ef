"""The dashboard in a real browser: headless Chromium loads the page of `jobq tui --serve`, the
page's script opens the websocket, the served dashboard sends the live Pending list, and the
page draws it; a key typed in the page reaches the dashboard (refused: read-only).

Chromium is driven through its DevTools protocol (aiohttp's websocket client, already installed
with textual-serve): the test waits for the events it needs instead of a fixed time budget
(`--virtual-time-budget` never lets the page's websocket open). Without Chromium the test skips,
except in CI (`CI` or TESTS_REQUIRE_BROWSER=1, as .ci/run sets), where it fails: scripts/test.sh
installs Debian's chromium.

`python -m tests.test_tui_serve_browser OUT.png` writes the README's screenshot the same way.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from jobq import Queue
from tests.helpers import wait_until
from tests.test_tui_serve import MARKER, free_port, hostile_dir, seed, served

# the flags known to work here: no GPU, no sandbox as root, no traffic but to the page
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]  # fmt: skip
WINDOW = (1280, 720)


def chromium() -> str:
    """Chromium's executable ($JOBQ_CHROMIUM or `chromium` on PATH); skip, or fail in CI."""
    exe = os.environ.get("JOBQ_CHROMIUM") or shutil.which("chromium")
    if exe is None:
        why = "chromium not found (Debian: apt-get install chromium; scripts/test.sh does)"
        if os.environ.get("CI") or os.environ.get("TESTS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CI must run the browser test: {why}")
        pytest.skip(why)
    return exe


class Page:
    """One Chromium tab, driven through the DevTools protocol."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: object) -> dict[str, Any]:
        """Send a command and return its result (events that arrive meanwhile are kept)."""
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return dict(msg["result"])
            self.events.append(msg)

    async def event(self) -> dict[str, Any]:
        """The next event, kept or new."""
        if self.events:
            return self.events.pop(0)
        return dict(await self.ws.receive_json())

    async def frames_until(self, marker: bytes, timeout: float = 20) -> bytes:
        """What the page's websockets received, until it holds `marker`."""
        got = b""

        async def read() -> None:
            nonlocal got
            while marker not in got:
                ev = await self.event()
                if ev.get("method") == "Network.webSocketFrameReceived":
                    r = ev["params"]["response"]
                    data = r["payloadData"]
                    got += base64.b64decode(data) if r["opcode"] == 2 else data.encode()

        try:
            await asyncio.wait_for(read(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {marker!r} from the page's websocket in {timeout}s") from None
        return got

    async def js(self, expression: str) -> Any:
        r = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                            returnByValue=True)  # fmt: skip
        return r["result"].get("value")


@asynccontextmanager
async def browser(exe: str) -> AsyncIterator[Page]:
    """A headless Chromium with a new profile, and its one tab; both gone afterwards."""
    import aiohttp

    port = free_port()
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             f"--remote-debugging-port={port}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:

            def targets() -> list[dict[str, Any]] | None:
                try:
                    url = f"http://127.0.0.1:{port}/json/list"
                    with urllib.request.urlopen(url, timeout=1) as r:
                        found: list[dict[str, Any]] = json.load(r)
                        return [t for t in found if t["type"] == "page"] or None
                except OSError:
                    return None

            tab = await asyncio.to_thread(wait_until, targets, 20, 0.05, "Chromium's DevTools")
            assert isinstance(tab, list)
            async with (
                aiohttp.ClientSession() as s,
                s.ws_connect(tab[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws,
            ):
                yield Page(ws)
        finally:
            proc.terminate()
            proc.wait(10)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


async def show_dashboard(page: Page, url: str, marker: str = MARKER) -> tuple[bytes, bytes]:
    """Load the page; return what its websocket brought until `marker` (a pending job's type),
    and a screenshot taken once the page has drawn it."""
    await page.call("Network.enable")
    await page.call("Page.enable")
    # the viewport itself (a headless window's size includes what would be its frame)
    await page.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1],
                    deviceScaleFactor=1, mobile=False)  # fmt: skip
    await page.call("Page.navigate", url=url)
    frames = await page.frames_until(marker.encode())
    # textual.js marks the body once bytes arrived (the intro dialog hides, the terminal shows,
    # in a 0.3 s fade); then two animation frames: xterm.js has painted what it was given
    await page.js("""new Promise(done => { const poll = () =>
        document.body.classList.contains('-first-byte') ? done(true) : setTimeout(poll, 20);
        poll(); })""")
    await page.js("new Promise(done => setTimeout(done, 400))")  # the CSS fade-in
    await page.js("new Promise(d => requestAnimationFrame(() => requestAnimationFrame(d)))")
    shot = await page.call("Page.captureScreenshot", format="png")
    return frames, base64.b64decode(shot["data"])


@pytest.mark.timeout(60)
def test_the_browser_shows_the_live_pending_list(tmp_path: Path) -> None:
    """Chromium opens the served page of a queue whose path holds spaces, quotes and `$(…)`: the
    dashboard of that very queue comes over the page's websocket and is drawn (the screenshot
    is the whole window, the terminal shown); a key typed in the page is refused, read-only."""
    exe = chromium()
    d, canary = hostile_dir(tmp_path)
    path = str(d / "queue.db")
    seed(path)
    with served(path, log=tmp_path / "serve.log") as srv:

        async def run() -> tuple[bytes, bytes, bytes, bool]:
            async with browser(exe) as page:
                frames, png = await show_dashboard(page, srv.url)
                terminal_shown = await page.js(
                    "getComputedStyle(document.querySelector('.textual-terminal')).opacity == '1'"
                )
                await page.js("document.querySelector('.xterm-helper-textarea').focus()")
                for kind in ("keyDown", "keyUp"):
                    await page.call("Input.dispatchKeyEvent", type=kind, key="+", text="+",
                                    code="Equal", modifiers=8)  # fmt: skip
                after = await page.frames_until(b"read-only:", timeout=10)
                return frames, png, after, bool(terminal_shown)

        frames, png, after, terminal_shown = asyncio.run(run())
    assert frames.count(MARKER.encode()) >= 3  # every pending job's row
    assert b"Pending" in frames
    assert terminal_shown
    assert png_size(png) == WINDOW
    assert b"read-only:" in after
    q = Queue(path, create=False)
    assert [j.priority for j in q.list(state="pending")] == [0, 0, 0]
    q.close()
    assert not canary.exists()
    if out := os.environ.get("JOBQ_BROWSER_SCREENSHOT"):
        Path(out).write_bytes(png)


def _screenshot(out: str) -> None:
    """Serve a small realistic queue and save what Chromium shows (the README's picture)."""
    with tempfile.TemporaryDirectory(prefix="jobq-") as tmp:
        path = str(Path(tmp) / "queue.db")
        q = Queue(path)
        for i, (type_, priority) in enumerate(
            [
                ("resize", "high"),
                ("email.send", "critical"),
                ("report.build", "normal"),
                ("resize", "normal"),
                ("thumbnail", "low"),
                ("email.send", "normal"),
            ]
        ):
            q.enqueue(type_, {"n": i, "path": f"img/{i:04}.jpg"}, priority=priority)
        q.enqueue("report.build", {"month": "2026-11"}, delay=3600)
        q.close()
        with served(path, log=Path(tmp) / "serve.log") as srv:

            async def run() -> bytes:
                async with browser(chromium()) as page:
                    return (await show_dashboard(page, srv.url, "thumbnail"))[1]

            Path(out).write_bytes(asyncio.run(run()))


if __name__ == "__main__":
    _screenshot(sys.argv[1])

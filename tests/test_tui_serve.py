"""`jobq tui --serve`: addresses, bad input, the served command through a shell, the location
through the environment, read-only unless --allow-actions, and the websocket guards. The real
browser test is tests/test_tui_serve_browser.py; these speak textual-serve's websocket protocol
with aiohttp's client (what the page's script does), so they run without Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobq import Queue
from tests.helpers import descendants, gone, wait_until

pytest.importorskip("textual_serve")
from tui.serve import Address, parse_address, served_command

ROOT = Path(__file__).resolve().parent.parent
MARKER = "marker.s13type"  # a job type that exists only in the served queue


def hostile_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A directory whose path holds spaces, both quotes, a backtick and `$(touch …)`, and the
    file that touch would create if a shell ever ran it."""
    canary = tmp_path / "pwned-s13"
    d = tmp_path / f"q $(touch {canary}) 'it''s' \"x\" `true`"
    d.mkdir(parents=True)
    return d, canary


def seed(path: str, n: int = 3) -> None:
    q = Queue(path)
    for i in range(n):
        q.enqueue(MARKER, {"n": i})
    q.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("JOBQ_DB", None)
    return env


@dataclass(frozen=True)
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def _page_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextmanager
def served(location: str, *flags: str, log: Path) -> Iterator[Served]:
    """`jobq --db LOCATION tui --serve 127.0.0.1:PORT FLAGS…` until the block ends; then stopped
    with SIGTERM, and every dashboard process it started must be gone."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobq", "--db", location, "tui", "--serve",
             f"127.0.0.1:{port}", *flags],
            env=_env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    kids: list[int] = []
    try:
        wait_until(lambda: proc.poll() is not None or _page_up(port), 20, what="the page")
        assert proc.poll() is None, log.read_text()
        yield Served(proc, port, log)
        kids = descendants(proc.pid)
    finally:
        proc.terminate()
        assert proc.wait(15) == 0, log.read_text()
        wait_until(lambda: all(gone(k) for k in kids), 10, what="dashboards gone")


async def _session(
    port: int, marker: str, keys: str = "", origin: str | None = None, **headers: str
) -> bytes:
    """Open the websocket like the page does (with `headers`: Host=…, X_Forwarded_Host=…),
    read the dashboard's output until `marker` appears, then type `keys`; return what was
    read (what the keys drew after `--keys--`)."""
    import aiohttp

    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    if origin:
        headers["Origin"] = origin
    url = f"http://127.0.0.1:{port}/ws?width=140&height=40"
    async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=headers) as ws:
        got = bytearray()

        async def read(until: bytes | None) -> None:
            while until is None or until not in got:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got.extend(msg.data)
                elif msg.type != aiohttp.WSMsgType.TEXT:  # closed: the dashboard ended
                    raise AssertionError(f"websocket ended: {bytes(got[-300:])!r}")

        await ws.send_str(json.dumps(["resize", {"width": 140, "height": 40}]))
        await asyncio.wait_for(read(marker.encode()), 20)
        if keys:
            for key in keys:
                await ws.send_str(json.dumps(["stdin", key]))
            got.extend(b"\n--keys--\n")
            # what the keys made the dashboard draw in the next second and a half
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(read(None), 1.5)
        return bytes(got)


# ---- addresses and bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address", "loopback"),
    [
        ("8000", Address("127.0.0.1", 8000), True),
        ("127.0.0.1:1", Address("127.0.0.1", 1), True),
        ("localhost:65535", Address("localhost", 65535), True),
        ("[::1]:8080", Address("::1", 8080), True),
        ("0.0.0.0:8000", Address("0.0.0.0", 8000), False),
        ("[::]:8000", Address("::", 8000), False),
        ("dash.example.org:80", Address("dash.example.org", 80), False),
    ],
)
def test_addresses(text: str, address: Address, loopback: bool) -> None:
    assert parse_address(text) == address
    assert address.loopback is loopback


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--serve", "nonsense"], "expected PORT or HOST:PORT"),
        (["--serve", "0"], "out of range"),
        (["--serve", "65536"], "out of range"),
        (["--serve", "127.0.0.1:99999"], "out of range"),
        (["--serve", "127.0.0.1:http"], "must be a number"),
        (["--serve", "::1:8000"], "brackets"),
        (["--serve", "[nope]:8000"], "not an IPv6 address"),
        (["--serve", "a;b:8000"], "not a host name"),
        (["--serve", "0.0.0.0:8000"], "add --public"),
        (["--serve", "[::]:8000"], "add --public"),
        (["--allow-actions"], "--allow-actions applies to --serve only"),
        (["--public"], "--public applies to --serve only"),
        (["--serve", "8000", "--allow-actions", "--read-only"], "contradict"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    """Nothing is served, no file is created, one line on stderr, exit 2."""
    path = tmp_path / "queue.db"
    r = subprocess.run([sys.executable, "-m", "jobq", "--db", str(path), "tui", *args],
                       env=_env(), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("jobq: error: "), r.stderr
    assert says in r.stderr
    assert r.stdout == ""
    assert not path.exists()


def test_port_taken_and_foreign_address_are_one_line_exit_1(tmp_path: Path) -> None:
    """A port in use, or an address not on this machine (with --public: the warning first)."""
    path = str(tmp_path / "queue.db")
    seed(path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (f"127.0.0.1:{port}", [], "address already in use"),
            # TEST-NET-1 (RFC 5737): never this machine's, so the bind fails; nothing is sent
            ("192.0.2.1:8000", ["--public"], "cannot serve on 192.0.2.1:8000"),
        ]
        for address, flags, says in cases:
            r = subprocess.run(
                [sys.executable, "-m", "jobq", "--db", path, "tui", "--serve", address, *flags],
                env=_env(), capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert r.returncode == 1, r.stderr
            assert "Traceback" not in r.stderr + r.stdout
            lines = r.stderr.splitlines()
            assert lines[-1].startswith("jobq: error: cannot serve on ") and says in lines[-1]
            if flags:
                assert lines[0].startswith("jobq: warning: http://192.0.2.1:8000 has no auth")
                assert "SSH tunnel" in lines[0]


def test_a_password_in_the_location_is_never_printed(tmp_path: Path) -> None:
    url = "postgresql://jobq:s3cr3t-pw@127.0.0.1:1/jobq"
    r = subprocess.run([sys.executable, "-m", "jobq", "--db", url, "tui", "--serve", "8000"],
                       env=_env(), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode != 0
    assert "s3cr3t" not in r.stdout + r.stderr


# ---- the served command and the location ------------------------------------------------------


@pytest.mark.parametrize("read_only", [True, False])
def test_served_command_reaches_the_program_literally(tmp_path: Path, read_only: bool) -> None:
    """textual-serve runs the command with /bin/sh: a Python executable whose path holds
    spaces, quotes, a backtick and `$(…)` gets exactly the intended argv, and runs nothing."""
    d, canary = hostile_dir(tmp_path)
    fake = d / "python 3"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv))\n")
    fake.chmod(0o755)
    command = served_command(str(fake), read_only=read_only)
    r = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    argv = json.loads(r.stdout)
    assert argv == [str(fake), "-m", "jobq", "tui", *(["--read-only"] if read_only else [])]
    assert not canary.exists()


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return []


def _dashboards(server_pid: int) -> list[int]:
    """The dashboard processes textual-serve started (not the shells that start them)."""
    return [p for p in descendants(server_pid) if _argv(p)[1:4] == [b"-m", b"jobq", b"tui"]]


def test_the_location_travels_in_the_environment(tmp_path: Path) -> None:
    """A queue path with spaces, quotes and `$(…)` is opened literally: the dashboard shows that
    queue's jobs, no shell ran the `$(…)`, and the path is in the dashboard's environment
    (JOBQ_DB), not on its command line."""
    d, canary = hostile_dir(tmp_path)
    path = str(d / "queue 'x'.db")
    seed(path)
    with served(path, log=tmp_path / "serve.log") as srv:

        async def check() -> None:
            task = asyncio.create_task(_session(srv.port, MARKER))
            kids: list[int] = []
            while not task.done() and not kids:
                kids = _dashboards(srv.proc.pid)
                await asyncio.sleep(0.05)
            await task
            assert kids, "no dashboard process seen"
            for pid in kids:
                argv = _argv(pid)
                assert path.encode() not in b"\0".join(argv)
                assert b"--read-only" in argv
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                assert b"JOBQ_DB=" + path.encode() in environ

        asyncio.run(check())
    assert not canary.exists()
    assert "Traceback" not in srv.log.read_text()


@pytest.mark.parametrize("allow_actions", [False, True], ids=["read-only", "allow-actions"])
def test_actions_only_with_allow_actions(tmp_path: Path, allow_actions: bool) -> None:
    """`+` (raise the selected job's priority, no confirmation) from the browser's side of the
    websocket: refused with the read-only message, unless --allow-actions."""
    path = str(tmp_path / "queue.db")
    seed(path, 1)
    flags = ["--allow-actions"] if allow_actions else []
    with served(path, *flags, log=tmp_path / "serve.log") as srv:
        got = asyncio.run(_session(srv.port, MARKER, keys="+"))

        def priority() -> int:
            q = Queue(path, create=False)
            try:
                return q.get(1).priority
            finally:
                q.close()

        if allow_actions:
            wait_until(lambda: priority() == 10, 10, what="priority raised to high")
        else:
            assert b"read-only:" in got.split(b"--keys--")[1]
            assert priority() == 0


def test_page_points_the_browser_at_the_address_it_used(tmp_path: Path) -> None:
    """Through a tunnel (another local port) or a proxy, the page's websocket URL is the one
    the browser used, not the bind address; the title masks nothing it should not show."""
    path = str(tmp_path / "queue.db")
    seed(path, 1)
    with served(path, log=tmp_path / "serve.log") as srv:
        req = urllib.request.Request(srv.url, headers={"Host": "localhost:9999"})
        with urllib.request.urlopen(req, timeout=5) as r:
            page = r.read().decode()
        assert 'data-session-websocket-url="ws://localhost:9999/ws"' in page
        req = urllib.request.Request(
            srv.url, headers={"Host": "jobq.example.org", "X-Forwarded-Proto": "https"}
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert 'data-session-websocket-url="wss://jobq.example.org/ws"' in r.read().decode()


def test_a_websocket_from_another_site_is_refused(tmp_path: Path) -> None:
    """Any page a browser visits may open ws://127.0.0.1:PORT/ws: the handshake from another
    origin is refused (403) and starts no dashboard; the page's own origin is let in."""
    import aiohttp

    path = str(tmp_path / "queue.db")
    seed(path, 1)
    with served(path, log=tmp_path / "serve.log") as srv:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            asyncio.run(_session(srv.port, MARKER, origin="http://evil.example"))
        assert refused.value.status == 403
        assert _dashboards(srv.proc.pid) == []
        got = asyncio.run(_session(srv.port, MARKER, origin=f"http://127.0.0.1:{srv.port}"))
        assert MARKER.encode() in got


def test_a_websocket_by_a_rebound_name_is_refused(tmp_path: Path) -> None:
    """DNS rebinding: a site's name made to resolve to 127.0.0.1 passes the origin check (its
    page is of that name), so a handshake by a name that is not a loopback one is refused,
    unless a proxy says where it came from (X-Forwarded-Host, which no page can set)."""
    import aiohttp

    path = str(tmp_path / "queue.db")
    seed(path, 1)
    with served(path, log=tmp_path / "serve.log") as srv:
        rebound = f"evil.example:{srv.port}"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            asyncio.run(_session(srv.port, MARKER, origin=f"http://{rebound}", Host=rebound))
        assert refused.value.status == 403
        assert _dashboards(srv.proc.pid) == []
        for headers in ({"Host": f"localhost:{srv.port}"},
                        {"Host": rebound, "X_Forwarded_Host": rebound}):  # fmt: skip
            origin = f"http://{headers['Host']}"
            got = asyncio.run(_session(srv.port, MARKER, origin=origin, **headers))
            assert MARKER.encode() in got

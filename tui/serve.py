"""`jobq tui --serve [HOST:]PORT`: the dashboard in a browser, through textual-serve.

textual-serve starts one dashboard process per browser connection, running its command string
through a shell (`asyncio.create_subprocess_shell`). So the command is built from fixed parts
only, each quoted with `shlex.quote`: the Python executable (a path that may hold spaces or
`$(…)`), `-m jobq tui`, and `--read-only` unless `--allow-actions`. The queue's location never
enters that string: it travels in the environment, as `JOBQ_DB`, which textual-serve copies into
each dashboard process. So a path is opened literally whatever it contains, and a password in a
`postgresql://` URL appears neither in the served page nor in the logs nor in `ps` (a process's
environment is readable only by its user and root).

The server binds 127.0.0.1 by default; any other address needs `public=True` (the dashboard has
no authentication: the README says to use an SSH tunnel or a proxy that authenticates). Two
changes to textual-serve's page, for tunnels and proxies: the websocket URL in the page is built
from the address the browser used (textual-serve writes the bind address, unreachable through a
tunnel on another port), and a websocket handshake from another site's page is refused (any page
a browser visits may open a websocket to 127.0.0.1; browsers send its origin), as is one by a
name other than a loopback one unless `public` (DNS rebinding: see `loopback_host`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shlex
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server

from jobq import InvalidInput, JobqError, Queue

DEFAULT_HOST = "127.0.0.1"
ENV_DB = "JOBQ_DB"  # how the served dashboard finds the queue (jobq's own variable)
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
_HOST_HEADER = re.compile(r"[A-Za-z0-9.\-\[\]:]{1,300}")  # what may go into the page's URL
_USAGE = "expected PORT or HOST:PORT, e.g. 8000 or 127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Address:
    """Where the server listens."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the address."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name other than localhost may resolve to anything
            return False

    @property
    def netloc(self) -> str:
        """`host:port`, an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> Address:
    """`PORT`, `HOST:PORT` or `[IPV6]:PORT` → Address (host 127.0.0.1 if not given)."""
    shown = repr(text)
    if text.isdigit():
        host, port_text = DEFAULT_HOST, text
    elif text.startswith("["):
        inside, bracket, port_part = text[1:].partition("]")
        if not bracket or not port_part.startswith(":"):
            raise InvalidInput(f"--serve {shown}: {_USAGE} or [::1]:8000")
        host, port_text = inside, port_part[1:]
        if not _is_ip(host, 6):
            raise InvalidInput(f"--serve {shown}: {host!r} is not an IPv6 address")
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon or not host:
            raise InvalidInput(f"--serve {shown}: {_USAGE}")
        if ":" in host:
            raise InvalidInput(
                f"--serve {shown}: write an IPv6 address in brackets, e.g. [::1]:8000"
            )
        if not (_is_ip(host, 4) or _HOSTNAME.fullmatch(host)):
            raise InvalidInput(f"--serve {shown}: {host!r} is not a host name or IP address")
    if not port_text.isascii() or not port_text.isdigit():
        raise InvalidInput(f"--serve {shown}: the port must be a number from 1 to 65535")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise InvalidInput(f"--serve {shown}: port {port} is out of range (1 to 65535)")
    return Address(host, port)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def served_command(python: str, *, read_only: bool) -> str:
    """The shell command textual-serve runs for each browser: every part quoted; no location."""
    argv = [python, "-m", "jobq", "tui"]
    if read_only:
        argv.append("--read-only")
    return " ".join(shlex.quote(part) for part in argv)


def check_address(address: Address, *, public: bool) -> None:
    """Refuse (exit 2) an address beyond this machine unless `public`."""
    if not address.loopback and not public:
        raise InvalidInput(
            f"--serve {address.netloc} can be reached from other machines and the dashboard has "
            "no authentication: add --public to serve it anyway, or keep 127.0.0.1 and use an "
            "SSH tunnel (see the README)"
        )


def serve(location: str, address: Address, *, allow_actions: bool, public: bool) -> None:
    """Serve the dashboard of `location` at `address` until Ctrl+C or SIGTERM."""
    check_address(address, public=public)
    # refuse a missing (read-only), foreign or damaged file now, in one line, rather than in
    # every browser's dashboard process; with actions allowed, create it as `jobq tui` would
    queue = Queue(location, create=allow_actions)
    shown = queue.location  # a password in a URL masked
    queue.close()
    mode = "actions allowed" if allow_actions else "read-only"
    if not address.loopback:
        sys.stderr.write(
            f"jobq: warning: http://{address.netloc} has no authentication: anyone who can reach "
            f"it sees every job{' and can act on them' if allow_actions else ''}. Use an SSH "
            "tunnel or a proxy that authenticates (README: The dashboard in a browser).\n"
        )
    os.environ[ENV_DB] = location  # copied into each dashboard process by textual-serve
    command = served_command(sys.executable, read_only=not allow_actions)
    server = DashboardServer(command, address, title=f"jobq · {shown}", public=public)
    sys.stderr.write(
        f"jobq: serving the dashboard of {shown} at http://{address.netloc} ({mode}); "
        "Ctrl+C stops it\n"
    )
    sys.stderr.flush()
    try:
        server.serve()
    except OSError as e:  # the port is taken, or the address is not this machine's
        raise JobqError(f"cannot serve on {address.netloc}: {e.strerror or e}") from None


class DashboardServer(Server):
    """textual-serve's Server with the page and handshake changes of the module doc."""

    def __init__(self, command: str, address: Address, title: str, *, public: bool) -> None:
        super().__init__(command, host=address.host, port=address.port, title=title)
        self.address = address
        self.public = public

    def initialize_logging(self) -> None:
        """Plain lines on stderr: textual-serve's Rich handler prints the local variables of a
        traceback's frames, and a dashboard's environment holds the location."""
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    async def on_startup(self, app: web.Application) -> None:
        """Say nothing: `serve` printed the one line that matters (textual-serve would print
        its logo and the command)."""

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """textual-serve's page, with URLs the browser can reach."""
        return page_context(request, self.title, fallback=self.address.netloc)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Refuse a handshake from another site's page, then run a dashboard for it."""
        if not same_origin(request):
            raise web.HTTPForbidden(text="websocket refused: opened from another site")
        if not (self.public or loopback_host(request, self.address)):
            raise web.HTTPForbidden(
                text=f"websocket refused: {request.host!r} is not a name of this machine's "
                f"loopback; open http://{self.address.netloc} (a proxy: set X-Forwarded-Host)"
            )
        return await super().handle_websocket(request)


def page_context(request: web.Request, title: str, *, fallback: str) -> dict[str, Any]:
    """The template values of textual-serve's app_index.html for this request."""
    host = request.headers.get("X-Forwarded-Host") or request.host
    if not _HOST_HEADER.fullmatch(host):
        host = fallback
    secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
    try:
        font_size = int(request.query.get("fontsize", "16"))
    except ValueError:
        font_size = 16
    return {
        "font_size": font_size,
        "app_websocket_url": f"{'wss' if secure else 'ws'}://{host}/ws",
        "config": {"static": {"url": "/static/"}},
        "application": {"name": title},
    }


def same_origin(request: web.Request) -> bool:
    """False when a browser opened this websocket from a page of another origin. A client
    that sends no Origin (not a browser) is let through: it could send anything."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    hosts = {request.host, request.headers.get("X-Forwarded-Host")}
    return urlsplit(origin).netloc.lower() in {h.lower() for h in hosts if h}


def loopback_host(request: web.Request, address: Address) -> bool:
    """Whether the browser reached the server by a loopback name (localhost, 127.0.0.1, [::1],
    the bound address), or through a proxy that says so (X-Forwarded-Host, a header a page's
    script cannot add to a websocket handshake). Refuses DNS rebinding: a site's name made to
    resolve to 127.0.0.1 passes the origin check, its page being of that same name."""
    if "X-Forwarded-Host" in request.headers:
        return True
    host = urlsplit(f"//{request.host}").hostname or ""
    return host == address.host or Address(host, address.port).loopback

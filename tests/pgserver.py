"""A real PostgreSQL server for the tests: initdb + pg_ctl in a temporary directory, on a Unix
socket only (no TCP), run as the unprivileged `postgres` user when the tests run as root (the
server refuses root).

One server per test session (conftest's `pg_server` fixture); each test gets its own schema in
the `jobq` database (`PgServer.location()`), which is cheaper than a database per test. Tests
that restart or stop the server (`restart`, `stop`) use a server of their own (`start_server`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

SERVER_USER = "postgres"


def find_bin(name: str) -> str | None:
    """A PostgreSQL program on PATH, else in Debian's versioned directory."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", SERVER_USER, "--", *argv]


@dataclass
class PgServer:
    """A running server: its data directory, and the socket directory clients connect to."""

    base: str
    data: str
    socket_dir: str
    pg_ctl: str

    def url(self, dbname: str = "jobq", **params: str) -> str:
        """A postgresql:// URL for `dbname` over the Unix socket."""
        query = "&".join([f"host={self.socket_dir}", f"user={SERVER_USER}"]
                         + [f"{k}={v}" for k, v in params.items()])  # fmt: skip
        return f"postgresql:///{dbname}?{query}"

    def location(self) -> str:
        """A fresh, empty jobq queue: a schema of its own in the `jobq` database."""
        return self.url(schema="t_" + uuid.uuid4().hex[:12])

    def _ctl(self, *args: str) -> None:
        argv = _as_server_user([self.pg_ctl, "-D", self.data, *args])
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m MODE`: every connection is cut, the server comes back."""
        self._ctl("-w", "-m", mode, "-o", self._options(), "-l", self._log(), "restart")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        self._ctl("-w", "-o", self._options(), "-l", self._log(), "start")

    def _log(self) -> str:
        return os.path.join(self.base, "server.log")

    def _options(self) -> str:
        # fsync off: the tests kill clients and restart the server cleanly, never the machine
        return (f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off "
                "-c max_connections=400 -c shared_buffers=64MB")  # fmt: skip

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


SESSION: PgServer | None = None  # the session's server while conftest's `pg_server` runs


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server could be started here (the reason is the message)."""


def start_server(dbname: str = "jobq") -> PgServer:
    """initdb, start, create `dbname`; raise ServerUnavailable with a one-line reason."""
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise ServerUnavailable("PostgreSQL's initdb/pg_ctl not found (apt-get install postgresql)")
    base = tempfile.mkdtemp(prefix="jobq-pg-")
    if os.geteuid() == 0:
        import pwd

        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            raise ServerUnavailable(f"no {SERVER_USER!r} user to run the server as") from None
        os.chown(base, entry.pw_uid, entry.pw_gid)
    os.chmod(base, 0o755)
    server = PgServer(base=base, data=os.path.join(base, "data"), socket_dir=base, pg_ctl=pg_ctl)
    try:
        init = [initdb, "-D", server.data, "-A", "trust", "-U", SERVER_USER, "--no-sync",
                "-E", "UTF8", "--locale=C"]  # fmt: skip
        subprocess.run(_as_server_user(init), check=True, capture_output=True, timeout=120)
        server.start()
        psql = find_bin("psql")
        if psql is not None:
            subprocess.run([psql, "-h", base, "-U", SERVER_USER, "-d", "postgres", "-qc",
                            f"CREATE DATABASE {dbname}"], check=True, capture_output=True,
                           timeout=60)  # fmt: skip
        else:
            import psycopg

            with psycopg.connect(host=base, user=SERVER_USER, dbname="postgres",
                                 autocommit=True) as c:  # fmt: skip
                c.execute(f"CREATE DATABASE {dbname}")
    except (subprocess.SubprocessError, OSError) as e:
        server.destroy()
        detail = getattr(e, "stderr", b"") or b""
        last = detail.decode(errors="replace").strip().splitlines()[-1:] if detail else []
        raise ServerUnavailable(f"PostgreSQL did not start: {e} {' '.join(last)}") from None
    return server

"""systemd integration: the sd_notify protocol, and the unit file `jobq systemd-unit` prints.

sd_notify is one datagram per message on the AF_UNIX socket named by NOTIFY_SOCKET (a leading
'@' names an abstract socket). No libsystemd is needed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import sys
from collections.abc import MutableMapping, Sequence

from ..backend import absolute_location, is_url
from ..errors import InvalidInput
from .settings import PoolSettings

# Seconds `TimeoutStopSec=` adds to the drain timeout: time to interrupt jobs and record that.
STOP_MARGIN = 15


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """Read NOTIFY_SOCKET and WATCHDOG_USEC and remove them (children must not inherit
        them: only the supervisor speaks for the service)."""
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None) or None
        usec_text = env.pop("WATCHDOG_USEC", None)
        pid_text = env.pop("WATCHDOG_PID", None)
        usec: int | None = None
        if usec_text and usec_text.isdigit() and int(usec_text) > 0:
            usec = int(usec_text)
        if pid_text and pid_text.isdigit() and int(pid_text) != os.getpid():
            usec = None  # the watchdog is meant for another process
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        """Whether a notification socket was given."""
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the watchdog timeout), or None."""
        if self.address is None or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2_000_000

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` fields in one datagram; False when it could not be sent."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode("utf-8", "replace"), target)
        except OSError:
            return False
        return True

    def status(self, text: str) -> bool:
        """Send `STATUS=` with one line of text."""
        return self.notify("STATUS=" + " ".join(text.split()))

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def quote_arg(arg: str) -> str:
    """Quote one command-line argument for `ExecStart=` (systemd.syntax and systemd.service:
    `%` starts a specifier and `$` a variable, so both are doubled)."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN.fullmatch(arg):
        return escaped
    escaped = (
        escaped.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def quote_env(name: str, value: str) -> str:
    """One `Environment=` assignment, quoted (specifiers expand there too)."""
    text = f"{name}={value}".replace("%", "%%")
    if _PLAIN.fullmatch(f"{name}={value}"):
        return text
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def jobq_executable() -> list[str]:
    """The absolute command that runs this jobq: its script, else `python -m jobq`."""
    # abspath, not realpath: a venv's python is a symlink to an interpreter without jobq
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "jobq" and os.path.isfile(argv0):
        return [os.path.abspath(argv0)]
    beside = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "jobq")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return [beside]
    found = shutil.which("jobq")
    if found:
        return [os.path.abspath(found)]
    return [os.path.abspath(sys.executable), "-m", "jobq"]


def settings_to_argv(s: PoolSettings) -> list[str]:
    """The `jobq work` flags that reproduce `s` (for a unit file's ExecStart)."""
    argv = ["--concurrency", str(s.concurrency)]
    for module in s.apps:
        argv += ["--app", module]
    for type_name, command in s.execs:
        argv += ["--exec", f"{type_name}={command}"]
    if s.handlers_file:
        argv += ["--handlers", os.path.abspath(s.handlers_file)]
    for q in s.queues:
        argv += ["--queue", q]
    for g in s.type_globs:
        argv += ["--type", g]
    if s.burst:
        argv.append("--burst")
    argv += ["--shutdown-timeout", f"{s.shutdown_timeout:g}s", "--lease", f"{s.lease_seconds:g}s"]
    if s.max_jobs_per_child:
        argv += ["--max-jobs-per-child", str(s.max_jobs_per_child)]
    if s.name:
        argv += ["--name", s.name]
    if s.log_level != "INFO":
        argv += ["--log-level", s.log_level]
    if s.retention is not None:
        argv += ["--retention", f"{s.retention:g}s"]
    for hook in s.on_failure:
        argv += ["--on-failure", shlex.join(hook)]
    if s.metrics is not None:
        host, port = s.metrics
        argv += ["--metrics", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    return argv


def has_password(url: str) -> bool:
    """Whether a postgresql:// URL carries a password (`user:pw@`, or `password=` in its query)."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    if parts.password is not None:
        return True
    return any(k.strip().lower() == "password" for k, _ in parse_qsl(parts.query, True))


def render_unit(
    settings: PoolSettings,
    argv: Sequence[str] | None = None,
    *,
    executable: Sequence[str] | None = None,
    working_directory: str | None = None,
    watchdog_sec: int = 30,
    user: str | None = None,
) -> str:
    """A systemd service unit running `jobq --db DB work ARGV` (ARGV: the work flags; derived
    from `settings` when None): a user service, or with `user` a system one run as that user."""
    db = absolute_location(settings.db_path)
    server = is_url(db)
    if server and has_password(db):
        raise InvalidInput(
            "the --db URL holds a password, and a unit file is readable by anyone who can run"
            " `systemctl cat`: put the password in a PGPASSFILE (Environment=PGPASSFILE=…) or"
            " use a pg_service.conf service (postgresql:///db?service=jobq)"
        )
    exe = list(executable) if executable is not None else jobq_executable()
    work_args = list(argv) if argv is not None else settings_to_argv(settings)
    cmd = [*exe, "--db", db, "work", *work_args]
    cwd = working_directory or os.getcwd()
    stop = int(settings.shutdown_timeout + 0.999) + STOP_MARGIN
    name = settings.name or "jobq-worker"
    if user is None:
        install = [
            "# Install (user service; use /etc/systemd/system and drop --user for a system one):",
            f"#   cp {name}.service ~/.config/systemd/user/",
            f"#   systemctl --user daemon-reload && systemctl --user enable --now {name}",
        ]
    else:
        install = [
            f"# Install (system service, run as {user}):",
            f"#   cp {name}.service /etc/systemd/system/",
            f"#   systemctl daemon-reload && systemctl enable --now {name}",
        ]
    lines = [
        f"# {name}.service: a jobq worker pool, generated by `jobq systemd-unit`.",
        *install,
        "# The pool sends READY=1 once its children run, STATUS= lines, WATCHDOG=1 pings from its",
        "# supervisor loop, and drains running jobs on SIGTERM for up to --shutdown-timeout.",
        "",
        "[Unit]",
        f"Description=jobq worker pool on {db}",
        # a server: start once the network is up (the pool reconnects if it goes away later)
        *(
            ["Wants=network-online.target", "After=network-online.target"]
            if server
            else ["After=local-fs.target"]
        ),
        "",
        "[Service]",
        "Type=notify",
        *([] if user is None else [f"User={user}"]),
        "NotifyAccess=main",
        "ExecStart=" + " ".join(quote_arg(a) for a in cmd),
        "Environment=" + quote_env("JOBQ_DB", db),
        "Environment=PYTHONUNBUFFERED=1",
        # a literal path (no quoting), where only specifiers expand
        "WorkingDirectory=" + cwd.replace("%", "%%"),
        # mixed: SIGTERM to the supervisor only (it drains and stops its children), and SIGKILL
        # to whatever is left of the cgroup when TimeoutStopSec= runs out
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={stop}",
        f"WatchdogSec={watchdog_sec}",
        "Restart=on-failure",
        "RestartSec=2",
        "",
        "[Install]",
        "WantedBy=default.target" if user is None else "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)

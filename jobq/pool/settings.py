"""Settings of a worker pool (`jobq work`), as plain picklable values."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Everything `jobq work` was asked to do. Each field but on_failure has a `JOBQ_*`
    environment variable (read by the CLI): JOBQ_CONCURRENCY, JOBQ_APP, JOBQ_EXEC,
    JOBQ_HANDLERS, JOBQ_QUEUE, JOBQ_TYPE, JOBQ_BURST, JOBQ_SHUTDOWN_TIMEOUT,
    JOBQ_MAX_JOBS_PER_CHILD, JOBQ_NAME, JOBQ_LOG_LEVEL, JOBQ_LEASE, JOBQ_POLL_INTERVAL,
    JOBQ_RETENTION, JOBQ_METRICS."""

    db_path: str
    concurrency: int
    apps: tuple[str, ...] = ()
    # (type, command line) pairs from --exec TYPE=COMMAND
    execs: tuple[tuple[str, str], ...] = ()
    handlers_file: str | None = None
    queues: tuple[str, ...] = ()  # empty: all queues
    type_globs: tuple[str, ...] = ()  # empty: every type a handler exists for
    burst: bool = False
    shutdown_timeout: float = 30.0
    max_jobs_per_child: int = 0  # 0: no limit
    name: str | None = None
    log_level: str = "INFO"
    lease_seconds: float = 30.0
    poll_interval: float = 5.0  # fallback poll when no wake-up arrives
    retention: float | None = None  # prune finished jobs older than this many seconds
    start_method: str = "spawn"
    metrics: tuple[str, int] | None = None  # serve Prometheus /metrics on (host, port)
    on_failure: tuple[tuple[str, ...], ...] = ()  # hook commands (argv) for jobs failed for good


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _env_list(name: str, separators: str) -> list[str]:
    text = os.environ.get(name, "")
    for sep in separators[1:]:
        text = text.replace(sep, separators[0])
    return [part.strip() for part in text.split(separators[0]) if part.strip()]


def pool_settings(
    db: str | None,
    *,
    concurrency: int | None,
    apps: list[str] | None,
    execs: list[str] | None,
    handlers: str | None,
    queues: list[str] | None,
    type_globs: list[str] | None,
    burst: bool,
    shutdown_timeout: str,
    max_jobs_per_child: int,
    name: str | None,
    log_level: str,
    lease: str,
    retention: str | None,
    metrics: str | None = None,
    on_failure: list[str] | None = None,
) -> PoolSettings:
    """Validate the `jobq work` options (flags over JOBQ_* variables) into PoolSettings."""
    from ..backend import supported
    from ..config import resolve_db_path
    from ..errors import InvalidInput
    from ..values import parse_duration, parse_listen, validate_queue, validate_type
    from .loader import parse_exec

    apps = apps or _env_list("JOBQ_APP", "," + os.pathsep)
    pairs = [parse_exec(s) for s in (execs or _env_list("JOBQ_EXEC", "\n;"))]
    queues = [validate_queue(q) for q in (queues or _env_list("JOBQ_QUEUE", ","))]
    globs = [validate_type(g) for g in (type_globs or _env_list("JOBQ_TYPE", ","))]
    if handlers is not None:
        handlers = os.path.abspath(os.path.expanduser(handlers))
        if not os.path.isfile(handlers):
            raise InvalidInput(f"handlers file {handlers} does not exist")
    if log_level.upper() not in LOG_LEVELS:
        raise InvalidInput(f"unknown log level {log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    lease_seconds = parse_duration(lease, "lease")
    if lease_seconds < 1:
        raise InvalidInput(f"lease {lease!r} is too short: use at least 1s")
    if name is not None and not name.strip():
        raise InvalidInput("pool name must not be empty")
    poll = os.environ.get("JOBQ_POLL_INTERVAL", "").strip()
    poll_interval = parse_duration(poll, "JOBQ_POLL_INTERVAL") if poll else 5.0
    if poll_interval < 0.05:
        raise InvalidInput(f"JOBQ_POLL_INTERVAL={poll!r} is too short: use at least 0.05s")
    return PoolSettings(
        db_path=supported(resolve_db_path(db)),
        concurrency=concurrency or os.cpu_count() or 1,
        apps=tuple(apps),
        execs=tuple(pairs),
        handlers_file=handlers,
        queues=tuple(queues),
        type_globs=tuple(globs),
        burst=burst,
        shutdown_timeout=parse_duration(shutdown_timeout, "shutdown timeout"),
        max_jobs_per_child=max_jobs_per_child,
        name=name,
        log_level=log_level.upper(),
        lease_seconds=lease_seconds,
        poll_interval=poll_interval,
        retention=None if retention is None else parse_duration(retention, "retention"),
        metrics=None if metrics is None else parse_listen(metrics, "--metrics"),
        on_failure=tuple(hook_command(c) for c in on_failure or ()),
    )


def hook_command(command: str) -> tuple[str, ...]:
    """An --on-failure command split shell-style (no shell runs it), its program found now."""
    import shlex
    import shutil

    from ..errors import InvalidInput

    try:
        argv = tuple(shlex.split(command))
    except ValueError as e:
        raise InvalidInput(f"--on-failure {command!r}: {e}") from None
    if not argv:
        raise InvalidInput("--on-failure needs a command")
    if shutil.which(argv[0]) is None:
        raise InvalidInput(f"--on-failure: program {argv[0]!r} not found or not executable")
    return argv

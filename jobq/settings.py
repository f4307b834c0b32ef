"""Settings of a worker pool (`jobq work`), as plain picklable values."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Everything `jobq work` was asked to do. Each field has a `JOBQ_*` environment variable
    (read by the CLI): JOBQ_CONCURRENCY, JOBQ_APP, JOBQ_EXEC, JOBQ_HANDLERS, JOBQ_QUEUE,
    JOBQ_TYPE, JOBQ_BURST, JOBQ_SHUTDOWN_TIMEOUT, JOBQ_MAX_JOBS_PER_CHILD, JOBQ_NAME,
    JOBQ_LOG_LEVEL, JOBQ_LEASE, JOBQ_POLL_INTERVAL, JOBQ_RETENTION."""

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
    extra: dict[str, str] = field(default_factory=dict)

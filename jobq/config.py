"""Where the queue file is, and settings read from the environment."""

from __future__ import annotations

import os

ENV_DB = "JOBQ_DB"
ENV_ALLOW_NETWORK_FS = "JOBQ_ALLOW_NETWORK_FS"
ENV_BUSY_TIMEOUT = "JOBQ_BUSY_TIMEOUT"
ENV_PAYLOAD_LIMIT = "JOBQ_PAYLOAD_LIMIT"
ENV_TURNSTILE = "JOBQ_TURNSTILE"


def default_db_path() -> str:
    """The platform's user data dir, e.g. ~/.local/share/jobq/jobq.db on Linux."""
    from platformdirs import user_data_dir  # imported here: not needed when --db or JOBQ_DB is set

    return os.path.join(user_data_dir("jobq", appauthor=False), "jobq.db")


def resolve_db_path(explicit: str | None = None) -> str:
    """`--db` wins over `JOBQ_DB`, which wins over the platform default."""
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    env = os.environ.get(ENV_DB)
    if env:
        return os.path.abspath(os.path.expanduser(env))
    return default_db_path()


def env_flag(name: str) -> bool:
    """Whether an environment variable is set to a true-ish value."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def env_off(name: str) -> bool:
    """Whether an environment variable is set to a false-ish value (a setting that is on by
    default turned off)."""
    return os.environ.get(name, "").strip().lower() in ("0", "false", "no", "off")

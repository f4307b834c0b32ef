"""Where the queue file is, and settings read from the environment.

Every `JOBQ_*` variable read here is validated where it is read: a malformed value is an
`InvalidInput` (one line, exit 2) naming the variable, never a traceback or a silent default.
An empty variable counts as unset.
"""

from __future__ import annotations

import os

from .errors import InvalidInput

ENV_DB = "JOBQ_DB"
ENV_ALLOW_NETWORK_FS = "JOBQ_ALLOW_NETWORK_FS"
ENV_BUSY_TIMEOUT = "JOBQ_BUSY_TIMEOUT"
ENV_PAYLOAD_LIMIT = "JOBQ_PAYLOAD_LIMIT"
ENV_TURNSTILE = "JOBQ_TURNSTILE"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def default_db_path() -> str:
    """The platform's user data dir, e.g. ~/.local/share/jobq/jobq.db on Linux."""
    from platformdirs import user_data_dir  # imported here: not needed when --db or JOBQ_DB is set

    return os.path.join(user_data_dir("jobq", appauthor=False), "jobq.db")


def resolve_db_path(explicit: str | None = None) -> str:
    """`--db` wins over `JOBQ_DB`, which wins over the platform default.

    A path (or `sqlite:PATH`) becomes an absolute path; a server URL is kept as it is.
    """
    text = explicit or os.environ.get(ENV_DB)
    if not text:
        return default_db_path()
    from .backend import parse_location

    loc = parse_location(text)
    if loc.kind != "sqlite":
        return text
    return os.path.abspath(os.path.expanduser(loc.target))


def _env(name: str) -> str | None:
    text = os.environ.get(name, "").strip()
    return text or None


def _switch(name: str) -> bool | None:
    """A yes/no variable: True, False, or None when unset; anything else is refused."""
    text = _env(name)
    if text is None:
        return None
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise InvalidInput(f"{name}={text!r} is not a yes/no value: use 1 or 0")


def env_flag(name: str) -> bool:
    """Whether a yes/no variable (off by default) is set to yes."""
    return _switch(name) is True


def env_off(name: str) -> bool:
    """Whether a yes/no variable that is on by default is set to no."""
    return _switch(name) is False


def env_seconds(name: str, default: float) -> float:
    """A number of seconds >= 0 from the environment (`default` when unset)."""
    text = _env(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):  # NaN fails both comparisons
        raise InvalidInput(f"{name}={text!r} is not a number of seconds (e.g. 30 or 2.5)")
    return value


def env_positive_int(name: str, default: int) -> int:
    """An integer >= 1 from the environment (`default` when unset)."""
    text = _env(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInput(f"{name}={text!r} is not a positive whole number")
    return value


def check_env() -> None:
    """Validate every process-wide `JOBQ_*` variable at once, so that a malformed one is reported
    by every command, including those that do not happen to read it."""
    from .basics import DEFAULT_PAYLOAD_LIMIT

    env_seconds(ENV_BUSY_TIMEOUT, 0.0)
    env_positive_int(ENV_PAYLOAD_LIMIT, DEFAULT_PAYLOAD_LIMIT)
    env_flag(ENV_ALLOW_NETWORK_FS)
    env_off(ENV_TURNSTILE)

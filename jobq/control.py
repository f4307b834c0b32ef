"""What a handler can tell the pool beyond success and failure: fail now, snooze, and its own
backoff between retries.

- `raise jobq.Fail("image too large")`: the job ends `failed` at once, whatever attempts are left
  (a command handler: exit status EXIT_FAIL_NOW, 100).
- `return jobq.Snooze(30)`: the job goes back to pending, due in 30 s, and the attempt is not
  counted (a command handler: exit status EXIT_SNOOZE, 101, with the seconds as the first line of
  stdout; 60 s if there is none). Oban's snooze, for rate-limited APIs. A job may snooze
  MAX_SNOOZES times in its life (an operator's retry starts it over); the next snooze counts as a
  failed attempt, so a job cannot snooze for ever.
- `@jobq.handler("t", backoff=…)` / TOML `backoff = …`: the delay before each retry of a failed
  attempt, instead of 5 s × 5ⁿ: seconds (`10`, `"30s"`), a list whose item n is the delay after
  attempt n+1, its last item repeating (`["10s", "1m", "10m"]`), or (Python only) a function of
  the attempt number returning seconds. No jitter is added to a handler's own backoff.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import HandlerError

EXIT_FAIL_NOW = 100
EXIT_SNOOZE = 101
DEFAULT_SNOOZE = 60.0
MAX_SNOOZES = 100
MAX_DELAY = 366 * 86400.0  # a snooze or backoff beyond a year is a mistake, not a plan


class Fail(Exception):
    """Raise from a handler to end the job `failed` now, without retries."""


@dataclass(frozen=True, slots=True)
class Snooze:
    """Return from a handler to run the job again in `seconds`, the attempt not counted."""

    seconds: float

    def __post_init__(self) -> None:
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= MAX_DELAY:
            raise ValueError(f"jobq.Snooze needs 0 to {MAX_DELAY:g} seconds, not {s!r}")
        if math.isnan(s):
            raise ValueError("jobq.Snooze needs a number of seconds, not NaN")


Backoff = float | tuple[float, ...] | Callable[[int], float]


def check_backoff(value: object, where: str) -> Backoff:
    """A handler's backoff as given (seconds, durations, a list of them, or a function), validated;
    raises HandlerError with `where` in its one-line message."""
    from .values import parse_duration

    def seconds(v: object) -> float:
        if isinstance(v, bool):
            raise HandlerError(f"{where}: backoff must be seconds or durations, not {v!r}")
        try:
            s = parse_duration(v, "backoff") if isinstance(v, str) else float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            raise HandlerError(f"{where}: bad backoff {v!r}: {e}") from None
        if not 0 <= s <= MAX_DELAY or math.isnan(s):
            raise HandlerError(f"{where}: backoff {v!r} must be 0 to {MAX_DELAY:g} seconds")
        return s

    if callable(value):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise HandlerError(f"{where}: backoff list must not be empty")
        return tuple(seconds(v) for v in value)
    return seconds(value)


def backoff_delay(backoff: Backoff | None, attempt: int) -> float | None:
    """Seconds before the retry after failed attempt `attempt` (1-based), or None for the default
    backoff. A function's bad answer (an exception, not a number) falls back to the default."""
    if backoff is None:
        return None
    if isinstance(backoff, (int, float)):
        return float(backoff)
    if isinstance(backoff, Sequence):
        return backoff[min(max(attempt, 1), len(backoff)) - 1]
    try:
        value = float(backoff(attempt))
    except Exception:  # a user's function: its failure must not lose the attempt's record
        return None
    return value if 0 <= value <= MAX_DELAY else None

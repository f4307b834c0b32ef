"""The retry policy: exponential backoff between failed attempts."""

from __future__ import annotations

BASE_DELAY = 5.0
FACTOR = 5.0
MAX_DELAY = 3600.0
JITTER = 0.10


def backoff(attempt: int, rand: float | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): 5 s, 25 s, 125 s ... <= 1 h.

    `rand` in [0, 1) picks the jitter (±10 %); None draws it.
    """
    if attempt < 1:
        attempt = 1
    # min() before the power would overflow for huge attempt counts
    exponent = min(attempt - 1, 32)
    delay = min(BASE_DELAY * FACTOR**exponent, MAX_DELAY)
    if rand is None:
        import random  # here, not at the top: off the start-up path of `jobq enqueue`

        rand = random.random()
    r = rand
    return delay * (1.0 - JITTER + 2.0 * JITTER * r)

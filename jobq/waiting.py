"""`Waiter`: what a backend's waker looks like to its callers (the CLI, workers, the dashboard).

Its own module so that `jobq.Waiter` can be a real, importable name without putting `typing` on
the start-up path of `jobq enqueue` (jobq.backend imports it only for type checking).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol


class Waiter(Protocol):
    """Wake-ups on commits by any process: select on `fileno()` (-1: none, use `wait`)."""

    def fileno(self) -> int: ...
    def wait(self, timeout: float) -> bool: ...
    def drain(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Waiter: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

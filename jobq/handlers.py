"""The handler registry: `@jobq.handler("type")` on a function makes it the handler of that type."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .control import Backoff, check_backoff
from .errors import HandlerError
from .values import validate_type

if TYPE_CHECKING:
    from .model import Job, JSONValue

HandlerFunc = Callable[["JSONValue", "Job"], object]
F = TypeVar("F", bound=Callable[..., object])
G = TypeVar("G", bound=Callable[["Job"], object])


@dataclass(frozen=True, slots=True)
class Handler:
    """A registered handler: a Python function or a command line, with per-type overrides."""

    type: str
    func: HandlerFunc | None = None
    command: tuple[str, ...] | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    backoff: Backoff | None = None  # jobq.control: delay before each retry; None: 5 s × 5ⁿ


REGISTRY: dict[str, Handler] = {}


def handler(
    type: str,
    *,
    max_attempts: int | None = None,
    timeout: float | None = None,
    backoff: float | str | Sequence[float | str] | Callable[[int], float] | None = None,
) -> Callable[[F], F]:
    """Register the decorated `func(payload, job)` as the handler of jobs of `type`.

    `backoff`: the delay before each retry (jobq.control explains the forms)."""
    validate_type(type)
    delay = None if backoff is None else check_backoff(backoff, f"handler {type!r}")
    if max_attempts is not None and max_attempts < 1:
        raise HandlerError(f"handler {type!r}: max_attempts must be >= 1")
    if timeout is not None and timeout < 0:
        raise HandlerError(f"handler {type!r}: timeout must be >= 0")

    def register(func: F) -> F:
        REGISTRY[type] = Handler(type, func=func, max_attempts=max_attempts, timeout=timeout,
                                 backoff=delay)  # fmt: skip
        return func

    return register


ON_FAILURE: list[Callable[[Job], object]] = []


def on_failure(func: G) -> G:
    """Register `func(job)` to run when a job ends `failed` for good (in the pool's supervisor,
    on a thread of its own, after the failure is recorded: jobq.pool.hooks)."""
    ON_FAILURE.append(func)
    return func
